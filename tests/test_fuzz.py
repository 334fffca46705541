"""Fuzzing with hypothesis: hostile text never crashes the rule parser, the matcher, the feed
normaliser or the digest renderer; each either works or raises the error an operator is meant
to see, and the digest stays inert.

A short run in CI; `make fuzz` runs many more examples (VIGIE_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import email
import email.policy
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

from delivery_support import DIGEST_HEADERS
from html_support import DIGEST_TAGS, Markup
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config_delivery import DeliveryConfig, SubscriberConfig
from monitor.deliver.digest import build_digest, compose
from monitor.deliver.outbox import Labels
from monitor.errors import FeedParseError, SearchQueryError
from monitor.parse import parse_feed
from monitor.records import Article, Delivery, Match
from monitor.rules.index import RuleIndex
from monitor.rules.model import Entity, Rule
from monitor.rules.parser import QuerySyntaxError, parse_query
from monitor.store import OutboxItem, search_query

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
# Hostile text, and text made of the queries' words and their inflections (so that rules match
# and the presearch's shortcuts are put to the test, not only its refusals).
TEXT = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=400),
    st.lists(
        st.one_of(
            WORDS,
            st.sampled_from(["slapped", "slapping", "courts", "polices", "migrant", "Calaisiens"]),
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=6),
        ),
        max_size=40,
    ).map(" ".join),
)


@FUZZ
@given(st.text(max_size=200))
def test_any_text_parses_or_raises_a_located_syntax_error(text: str) -> None:
    try:
        parse_query(text)
    except QuerySyntaxError as e:
        assert e.line >= 1 and e.column >= 1 and e.message


# `articles search` queries: FTS5's syntax and ~, pieces of it side by side or run together.
SEARCH_PIECE = st.sampled_from(
    ["slap~", "police", '"tear gas"~', "migra*", "^calais", "pepper-spray", "AND", "OR", "NOT"]
    + ["(", ")", "title:", "-summary:", "{title content}:", "NEAR(", ",", "5", "~", "*", '"']
    + ["{", "^", "-", ":"]
)
SEARCH_TEXT = st.one_of(
    st.text(max_size=120),
    st.lists(SEARCH_PIECE, max_size=14).map(" ".join),
    st.lists(SEARCH_PIECE, max_size=14).map("".join),
)


@FUZZ
@given(SEARCH_TEXT, st.booleans())
def test_any_search_query_parses_or_says_where_it_cannot(text: str, stem_all: bool) -> None:
    try:
        tree = search_query.parse(text, stem_all)
    except SearchQueryError as e:
        column = re.search(r"\(column (\d+)\)$", e.reason)
        assert column is None or 1 <= int(column.group(1)) <= len(text) + 1, e.reason
        return
    for leaf, _ in search_query.leaves(tree):
        assert leaf.fields and search_query.render(leaf)


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


# The digest renderer -------------------------------------------------------------------------

HOSTILE_FRAGMENTS = st.sampled_from(
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(2)">',
        '<a href="javascript:alert(3)">x</a>',
        "<style>*{x:url(javascript:alert(4))}</style>",
        "<iframe srcdoc='<script>alert(5)</script>'>",
        '"><svg onload=alert(6)>',
        "</p></div></body><script>",
        "{{ 7*7 }}",
        "{% for x in range(10) %}",
        "{# #}",
        "\r\nBcc: victim@attacker.example\r\n",
        "&lt;script&gt;",
        "&amp;",
        "]]>",
        "\u2028\u0085",
        "⟦",
        "⟧",
    ]
)
# Feed text as it reaches the digest: the parser has removed control characters but tab and
# line breaks; anything else, hostile markup and template syntax included, may be there.
FEED_TEXT = st.lists(
    st.one_of(
        HOSTILE_FRAGMENTS,
        st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\t\n\r")),
    ),
    max_size=6,
).map("".join)
LINKS = st.one_of(
    st.sampled_from(
        [
            "https://news.example/a?b=1&c=<2>",
            'http://news.example/"onmouseover="alert(1)',
            "javascript:alert(1)",
            "jav\tascript:alert(2)",
            " JAVASCRIPT:alert(3)",
            "data:text/html,<script>alert(4)</script>",
            "file:///etc/passwd",
            "",
        ]
    ),
    FEED_TEXT,
)


@st.composite
def outbox_items(draw: st.DrawFn) -> list[OutboxItem]:
    items = []
    for article_id in range(1, draw(st.integers(1, 6)) + 1):
        published = draw(
            st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC))
        )
        article = Article(
            feed_id=1,
            guid=str(article_id),
            url=draw(LINKS),
            title=draw(FEED_TEXT),
            published=published,
            feed_name=draw(FEED_TEXT),
            id=article_id,
        )
        for rule_id in draw(
            st.sets(st.sampled_from(["calais", "police", "r<script>"]), min_size=1)
        ):
            match = Match(
                article_id,
                rule_id,
                draw(st.floats(-1e6, 1e6)),
                (),
                snippet=draw(FEED_TEXT),
                priority=draw(st.sampled_from(["normal", "urgent"])),
            )
            story = draw(st.one_of(st.none(), st.sampled_from(["1", "2"])))
            items.append(OutboxItem(article, match, story, updated=draw(st.booleans())))
    return items


def one_line(text: str) -> str:
    return " ".join(text.split())


@FUZZ
@given(
    outbox_items(),
    st.dictionaries(st.sampled_from(["calais", "police"]), FEED_TEXT),
    st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True),
    st.sampled_from(["UTC", "Europe/Paris", "Pacific/Kiritimati", "America/St_Johns"]),
)
def test_the_digest_renders_hostile_feed_text_inert(
    items: list[OutboxItem], names: dict[str, str], subscriber: str, timezone: str
) -> None:
    """Whatever the feed text, the digest renders; its HTML holds only the template's tags, no
    handler and no link but http(s) and the unsubscribe mailto; each title is shown as written,
    template syntax included, in both parts; no header spans two lines."""
    who = SubscriberConfig(subscriber, "desk@example.org", tags=("x",), timezone=timezone)
    digest = build_digest(items, who, Labels(names), NOW)
    delivery = Delivery(1, "digest", subscriber, "k", "pending", NOW)
    config = DeliveryConfig(outbox=Path("outbox"), from_header="Vigie <vigie@news.example>")
    message = email.message_from_bytes(
        compose(digest, delivery, who, config, "token", NOW).as_bytes(),
        policy=email.policy.default,
    )
    for name, value in message.items():
        assert "\n" not in value and "\r" not in value, name
    assert {name.lower() for name in message} == DIGEST_HEADERS
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    markup = Markup(html)
    assert "<script" not in html.lower()
    for tag, attrs in markup.tags:
        assert tag in DIGEST_TAGS, tag
        assert not any(name.startswith("on") for name in attrs), attrs
        assert "src" not in attrs and "srcdoc" not in attrs
        if "href" in attrs:
            assert attrs["href"].startswith(("https://", "http://", "mailto:")), attrs
    shown, plain = one_line("".join(markup.text)), one_line(text)
    assert digest.entries == len({item.story_id or f"a{item.article.id}" for item in items})
    for section in digest.sections:
        for entry in section.entries:
            title = one_line(entry.title)
            assert title in plain and title in shown  # as written, template syntax included
