"""Wire-copy pairs for measuring story grouping, built at run time from real articles.

tests/data/wire_pairs.json holds only definitions: which real article (an id in the article
extraction benchmark of ../shared/corpora) and which light edits another outlet made to it (a new
headline, a byline or dateline, a paragraph added or cut, the end trimmed, typographic quotes),
plus groups of real articles from different outlets on one subject, which must stay apart. The
texts are read from the corpus and edited here, so no publisher's text is kept in the repository.

`evaluate` feeds every article (each benchmark article, the Guardian feed's items, the BBC
snapshots' items on one subject, and the edited copies) through the real story index in a SQLite
file and scores the grouping on pairs: precision is the share of pairs put in one story that are
a copy and its original; recall the share of such pairs that were put in one story.
"""

from __future__ import annotations

import gzip
import html
import json
import re
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path
from typing import Any

from monitor.config import IdentityConfig
from monitor.identity import sketch
from monitor.parse import parse_feed
from monitor.records import Article
from monitor.store import Store
from monitor.stories import place

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"
PAGES = CORPORA / "pages" / "article-extraction-benchmark"
PAIRS = ROOT / "tests" / "data" / "wire_pairs.json"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Source:
    key: str  # "benchmark:<id prefix>" or "bbc:<guid>"
    title: str
    paragraphs: tuple[str, ...]
    outlet: str


@dataclass
class Corpus:
    """Real articles by key, read once."""

    sources: dict[str, Source] = field(default_factory=dict)

    def get(self, key: str) -> Source:
        if key in self.sources:
            return self.sources[key]
        matches = [k for k in self.sources if k.startswith(key)]
        if len(matches) != 1:
            raise KeyError(f"{key!r} names {len(matches)} articles of the corpus")
        return self.sources[matches[0]]


def load_corpus(corpora: Path = CORPORA) -> Corpus:
    pages = corpora / "pages" / "article-extraction-benchmark"
    corpus = Corpus()
    truth = json.loads((pages / "ground-truth.json").read_text(encoding="utf-8"))
    for page_id, row in sorted(truth.items()):
        raw = gzip.decompress((pages / "html" / f"{page_id}.html.gz").read_bytes())
        found = re.search(rb"<title[^>]*>(.*?)</title>", raw, re.S | re.I)
        title = html.unescape(found.group(1).decode("utf-8", "replace")) if found else ""
        paragraphs = tuple(p.strip() for p in row["articleBody"].split("\n") if p.strip())
        host = re.sub(r"^https?://(www\.)?", "", row.get("url", "")).split("/")[0]
        key = f"benchmark:{page_id}"
        corpus.sources[key] = Source(key, " ".join(title.split())[:300], paragraphs, host)
    for path in sorted((corpora / "feeds").glob("*/*")):
        if path.name.startswith("guardian_uk-news") or "bbc-snapshots" in str(path):
            _, items = parse_feed(path.read_bytes(), {}, "https://feeds.example/", now=NOW)
            prefix = "guardian" if "guardian" in path.name else "bbc"
            for item in items:
                paragraphs = tuple(p for p in (item.summary + "\n\n" + item.content).split("\n\n"))
                key = f"{prefix}:{item.guid}"
                corpus.sources.setdefault(
                    key, Source(key, item.title, tuple(p for p in paragraphs if p), prefix)
                )
    return corpus


def apply_edits(source: Source, edits: list[dict[str, Any]], corpus: Corpus) -> Source:
    """Another outlet's copy of `source`, edited as the recipe says."""
    title, paragraphs = source.title, list(source.paragraphs)
    for edit in edits:
        op = edit["op"]
        if op == "headline":
            title = edit["text"]
        elif op == "byline":
            paragraphs.insert(0, edit["text"])
        elif op == "dateline":
            paragraphs[0] = f"{edit['text']} {paragraphs[0]}"
        elif op == "cut":
            del paragraphs[edit["paragraph"]]
        elif op == "add":
            paragraphs.insert(edit.get("at", len(paragraphs)), edit["text"])
        elif op == "add_from":
            other = corpus.get(edit["source"]).paragraphs[edit.get("paragraph", 0)]
            paragraphs.insert(edit.get("at", len(paragraphs)), other)
        elif op == "trim":
            paragraphs = paragraphs[: max(1, round(len(paragraphs) * edit["keep"]))]
        elif op == "typography":
            paragraphs = [_typography(p) for p in paragraphs]
        else:
            raise ValueError(f"unknown edit {op!r}")
    return Source(source.key + "#copy", title, tuple(paragraphs), "wire-copy")


def _typography(text: str) -> str:
    """Straight quotes become curly ones, and curly ones straight, as CMSes do."""
    if "“" in text or "’" in text:
        return text.translate(str.maketrans({"“": '"', "”": '"', "’": "'", "‘": "'"}))
    text = re.sub(r'"(\w)', "“\\1", text).replace('"', "”")
    return text.replace("'", "’")


@dataclass(frozen=True)
class Grouping:
    articles: int
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    false_pairs: tuple[tuple[str, str], ...]
    missed_pairs: tuple[tuple[str, str], ...]
    same_subject_joined: tuple[tuple[str, str], ...]

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0


def evaluate(corpus: Corpus | None = None, settings: IdentityConfig | None = None) -> Grouping:
    """Group every article of the pool with the real story index; score it on pairs."""
    settings = settings or IdentityConfig()
    definitions = json.loads(PAIRS.read_text(encoding="utf-8"))
    corpus = corpus or load_corpus()
    cluster: dict[str, str] = {}  # article key -> the original it is a copy of (or itself)
    pool: list[Source] = list(corpus.sources.values())
    for pair in definitions["pairs"]:
        original = corpus.get(pair["source"])
        copy = apply_edits(original, pair["edits"], corpus)
        copy = replace(copy, key=f"{original.key}#{pair['id']}")
        pool.append(copy)
        cluster[copy.key] = original.key
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "stories.db")
        try:
            story = _group(store, pool, settings)
        finally:
            store.close()
    truth = {frozenset(p) for p in combinations(pool, 2) if _same(cluster, p[0].key, p[1].key)}
    predicted = {frozenset(p) for p in combinations(pool, 2) if story[p[0].key] == story[p[1].key]}
    subjects = [[corpus.get(k).key for k in group] for group in definitions["same_subject"]]
    joined = tuple(
        (a, b) for group in subjects for a, b in combinations(group, 2) if story[a] == story[b]
    )
    return Grouping(
        articles=len(pool),
        true_pairs=len(truth),
        predicted_pairs=len(predicted),
        correct_pairs=len(truth & predicted),
        false_pairs=tuple(tuple(sorted(s.key for s in p)) for p in predicted - truth),  # type: ignore[misc]
        missed_pairs=tuple(tuple(sorted(s.key for s in p)) for p in truth - predicted),  # type: ignore[misc]
        same_subject_joined=joined,
    )


def _same(cluster: dict[str, str], a: str, b: str) -> bool:
    return cluster.get(a, a) == cluster.get(b, b)


def _group(store: Store, pool: list[Source], settings: IdentityConfig) -> dict[str, int]:
    """Store each article as its outlet's feed item and place it in a story, in pool order
    (originals first, copies after, a minute apart). Returns article key -> story id."""
    feeds: dict[str, int] = {}
    story: dict[str, int] = {}
    for i, source in enumerate(pool):
        if source.outlet not in feeds:
            feeds[source.outlet] = store.upsert_feed(f"https://{source.outlet}/feed", now=NOW)
        when = NOW + timedelta(minutes=i)
        article = Article(
            feed_id=feeds[source.outlet],
            guid=source.key,
            url=f"https://{source.outlet}/{i}",
            title=source.title,
            content="\n\n".join(source.paragraphs),
        )
        with store.transaction():
            [stored] = store.store_articles([article], when)
            story[source.key] = place(store, stored, sketch(stored.text), settings, when)
    return story
