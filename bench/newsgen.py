"""Generated news for the benchmarks: feed items made of real sentences, deterministic.

Every item is a function of (feed, number) alone, so a feed served twice with the same items
gives byte-identical items, as a real feed does between two polls. Titles are real feed headlines;
descriptions are two to four real sentences from the article-extraction benchmark and the feed
corpora of ../shared/corpora, in English (French for one feed in twenty). One item in twenty is a
wire copy: the same text under its own headline in the five feeds of its group, as agencies'
stories are, so the story index has real work to do. One feed in five does not declare its
language.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from email.utils import formatdate
from functools import cache
from html import escape
from pathlib import Path

from monitor.language import detect_language
from monitor.parse import parse_feed

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"
PAGES = CORPORA / "pages" / "article-extraction-benchmark"
FEEDS = CORPORA / "feeds"
ITEMS_PER_FEED = 20
WIRE_SHARE = 0.05
WIRE_GROUP = 5  # feeds sharing each wire copy

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\u00c0-\u00de\"«“])")


@dataclass(frozen=True)
class Pool:
    """Real headlines and sentences, by language ("en", "fr")."""

    titles: dict[str, list[str]]
    sentences: dict[str, list[str]]


@cache
def pool() -> Pool:
    """Read the corpora once: about 3,000 headlines and 5,000 sentences."""
    titles: dict[str, list[str]] = {"en": [], "fr": []}
    sentences: dict[str, list[str]] = {"en": [], "fr": []}
    paths = sorted(FEEDS.glob("single/*")) + sorted(FEEDS.glob("bbc-snapshots/*.xml"))
    seen: set[str] = set()
    for path in paths:
        language = "fr" if path.name.startswith(("lemonde", "francetvinfo")) else "en"
        for article in parse_feed(path.read_bytes(), {}, path.as_uri())[1]:
            if article.title and article.title not in seen:
                seen.add(article.title)
                titles[language].append(article.title)
            _add_sentences(sentences[language], article.summary)
    truth = json.loads((PAGES / "ground-truth.json").read_text(encoding="utf-8"))
    for _, row in sorted(truth.items()):
        body = row.get("articleBody") or ""
        language = detect_language(body)
        if language in sentences:
            _add_sentences(sentences[language], body)
    return Pool(titles, {k: sorted(set(v)) for k, v in sentences.items()})


def _add_sentences(out: list[str], text: str) -> None:
    for sentence in _SENTENCE.split(" ".join(text.split())):
        if 40 <= len(sentence) <= 300:
            out.append(sentence)


def feed_language(feed: int) -> str:
    return "fr" if feed % 20 == 3 else "en"


def declares_language(feed: int) -> bool:
    return feed % 5 != 4


@dataclass(frozen=True)
class Item:
    feed: int
    number: int
    title: str
    description: str
    link: str
    guid: str
    published: float  # seconds since the epoch


def item(feed: int, number: int, now: float) -> Item:
    """Item `number` of `feed`; a later number is a newer item, ten minutes apart."""
    p = pool()
    language = feed_language(feed)
    rng = random.Random(f"{feed}/{number}")
    titles, sentences = p.titles[language], p.sentences[language]
    if rng.random() < WIRE_SHARE:  # the same text as the other feeds of its group
        text_rng = random.Random(f"wire/{feed // WIRE_GROUP}/{number}")
        count = 6
    else:
        text_rng, count = rng, rng.randint(2, 4)
    description = " ".join(text_rng.choice(sentences) for _ in range(count))
    return Item(
        feed=feed,
        number=number,
        title=rng.choice(titles),
        description=description,
        link=f"https://news{feed}.example.org/{number}/story-{rng.randrange(10**6)}",
        guid=f"https://news{feed}.example.org/{number}",
        published=now - 600.0 * (1000 - number % 1000),
    )


def rss(feed: int, head: int, now: float, items: int = ITEMS_PER_FEED) -> bytes:
    """Feed `feed` as RSS 2.0 with its `items` newest items, the newest numbered `head`."""
    language = f"<language>{feed_language(feed)}</language>" if declares_language(feed) else ""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        f"<title>Feed {feed}</title><link>https://news{feed}.example.org/</link>{language}"
        "<description>Generated news for benchmarks</description>"
    ]
    for number in range(head, max(head - items, 0), -1):
        it = item(feed, number, now)
        parts.append(
            f"<item><title>{escape(it.title)}</title><link>{it.link}</link>"
            f'<guid isPermaLink="true">{it.guid}</guid>'
            f"<pubDate>{formatdate(it.published, usegmt=True)}</pubDate>"
            f"<description>{escape(it.description)}</description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()
