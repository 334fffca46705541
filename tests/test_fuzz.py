"""Fuzzing with hypothesis: hostile text never crashes the rule parser, the matcher or the feed
normaliser; each either works or raises the error an operator is meant to see.

A short run in CI; `make fuzz` runs many more examples (VIGIE_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import FeedParseError
from monitor.parse import parse_feed
from monitor.records import Article
from monitor.rules.index import RuleIndex
from monitor.rules.model import Entity, Rule
from monitor.rules.parser import QuerySyntaxError, parse_query

EXAMPLES = int(os.environ.get("VIGIE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 11, 23, tzinfo=UTC)
ENTITIES = {"calais": Entity("calais", aliases=("Calais", "Coquelles*"), case_aliases=("PAF",))}

WORDS = st.sampled_from(
    [
        "police",
        "migrants",
        "Calais",
        "exilés",
        "slap",
        "PAF",
        "court",
        "l'immigration",
        "Boulogne-sur-Mer",
        "a",
        "the",
        "ÉTÉ",
        "x",
    ]
)
TERM = st.one_of(
    WORDS,
    WORDS.map(lambda w: w + "*"),
    WORDS.map(lambda w: w + "~"),
    WORDS.map(lambda w: "=" + w),
    st.lists(WORDS, min_size=1, max_size=3).map(lambda ws: '"' + " ".join(ws) + '"'),
    st.just("@calais"),
    st.tuples(st.sampled_from(["title", "content", "url", "lang", "text"]), WORDS).map(
        lambda p: f"{p[0]}:{p[1]}"
    ),
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from([" AND ", " OR ", " ", " NOT "]), children).map(
            "".join
        ),
        st.tuples(children, st.integers(0, 12), children).map(
            lambda t: f"({t[0]}) NEAR/{t[1]} ({t[2]})"
        ),
        children.map(lambda c: f"({c})"),
        children.map(lambda c: f"NOT {c}"),
    )


QUERY = st.recursive(TERM, _combine, max_leaves=8)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400)


@FUZZ
@given(st.text(max_size=200))
def test_any_text_parses_or_raises_a_located_syntax_error(text: str) -> None:
    try:
        parse_query(text)
    except QuerySyntaxError as e:
        assert e.line >= 1 and e.column >= 1 and e.message


@FUZZ
@given(QUERY, TEXT, TEXT)
def test_generated_queries_compile_and_match_hostile_text(query: str, title: str, body: str):
    try:
        index = RuleIndex.build([Rule("r", query)], ENTITIES)
    except QuerySyntaxError:
        return  # e.g. NOT inside NEAR, a too-short wildcard: refused with a position
    article = Article(
        feed_id=1,
        guid="g",
        url="https://e.org/" + title[:20],
        title=title,
        content=body,
        language="fr",
    )
    found, _ = index.match(article)
    assert [m.rule_id for m in found] == [m.rule_id for m in index.match_all(article)]
    for match in found:
        for e in match.evidence:
            assert getattr(article, e.field, None) is None or (
                getattr(article, e.field)[e.start : e.end] == e.text
            )


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes_are_a_feed_or_a_feed_error(body: bytes) -> None:
    try:
        parse_feed(body, {}, "https://example.org/feed", now=NOW)
    except FeedParseError as e:
        assert e.reason


@FUZZ
@given(TEXT, TEXT, st.text(max_size=40), st.sampled_from(["rss", "atom", "json"]))
def test_hostile_item_fields_are_normalised(title: str, body: str, date: str, kind: str):
    if kind == "json":
        import json

        doc = json.dumps(
            {
                "version": "https://jsonfeed.org/version/1.1",
                "title": title,
                "items": [
                    {
                        "id": "1",
                        "title": title,
                        "content_html": body,
                        "date_published": date,
                        "url": body[:50],
                    }
                ],
            }
        ).encode()
    elif kind == "rss":
        doc = (
            f"<rss version='2.0'><channel><title>{escape(title)}</title><item>"
            f"<title>{escape(title)}</title><description>{escape(body)}</description>"
            f"<pubDate>{escape(date)}</pubDate><link>{escape(body[:50])}</link>"
            "</item></channel></rss>"
        ).encode("utf-8", "surrogatepass")
    else:
        doc = (
            "<feed xmlns='http://www.w3.org/2005/Atom'><entry>"
            f"<title>{escape(title)}</title><content type='html'>{escape(body)}</content>"
            f"<updated>{escape(date)}</updated></entry></feed>"
        ).encode("utf-8", "surrogatepass")
    try:
        _, articles = parse_feed(doc, {}, "https://example.org/feed", now=NOW)
    except FeedParseError:
        return
    for article in articles:
        assert "<script" not in article.content_html.lower()
        assert article.published is not None and article.published <= NOW.replace(day=24)
        assert "\x00" not in article.title + article.content
