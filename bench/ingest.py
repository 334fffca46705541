"""Ingest end to end: feed documents through parse, dedup, identity, stories, 10k rules and SQLite.

Two streams, each polled through the real pipeline (`pipeline.poll_due` over file:// feeds, so
everything but the network is in the measure: reading, hashing, parsing, identifying, detecting
languages, placing in stories, matching and storing, one transaction per feed):

- the 39 BBC snapshots of ../shared/corpora, replayed in order as one feed: most items of a
  snapshot are in the one before (dedup), some come back with a new headline (revisions);
- a generated stream (bench.newsgen) of 100,000 new articles (20,000 with --quick): 1,000 feeds
  polled again and again, each document holding 16 new items and 4 already stored;
- a fifth of that stream again with reader processes (polling.processes = one per CPU), as
  `vigie run` polls by default: what the machine does, not one process (the target's case).

Rules: 10,000 generated as in bench.matching ("targeted" mix), with their entities. Beside each,
from the same run: feedparser alone over the same documents (what every feed reader pays), and the
feed XML bytes per item, to compare the database's bytes per article with.

Usage: python -m bench.ingest [--quick] [--articles N] [--rules N] [--rows PATH]
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.baselines import in_own_process
from bench.matching import feed_items, generate_rules, vocabulary
from bench.newsgen import ITEMS_PER_FEED, rss
from bench.report import Row, emit, quick
from monitor.config import load_config
from monitor.pipeline import poll_due
from monitor.readers import ReaderPool
from monitor.rules.index import RuleIndex
from monitor.rules.stats import TermStats
from monitor.scheduler import keep_long_lived
from monitor.store import Store

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT.parent / "shared" / "corpora" / "feeds" / "bbc-snapshots"
FEEDS = 1000
NEW_PER_POLL = 16
TARGET = 500  # new articles per second, end to end with 10k rules


def argument(name: str, default: int) -> int:
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def build_index(count: int) -> RuleIndex:
    items = feed_items()
    words, df = vocabulary(items)
    rules, entities = generate_rules(count, words, df, random.Random(7), "targeted", items)
    return RuleIndex.build(rules, entities, TermStats(df, len(items)))


class Ingest:
    """A fresh database and configuration with `feeds` file:// feeds, polled on demand."""

    def __init__(
        self, tmp: Path, feeds: int, index: RuleIndex, readers: ReaderPool | None = None
    ) -> None:
        self.tmp, self.index, self.readers = tmp, index, readers
        (tmp / "config.toml").write_text(
            '[storage]\ndatabase = "vigie.db"\n[rules]\npaths = []\n'
            # Snapshots of past news, matched and stored as news, as when they were recorded.
            '[delivery]\nbacklog = "0"\n',
            encoding="utf-8",
        )
        self.config = load_config(tmp / "config.toml")
        self.store = Store(self.config.database)
        self.clock = datetime.now(UTC)
        self.files = [tmp / f"feed-{i}.xml" for i in range(feeds)]
        for path in self.files:
            self.store.upsert_feed(path.as_uri(), now=self.clock)
        self.new = self.seconds = self.cpu = 0.0

    def poll(self, bodies: list[bytes]) -> None:
        """Write each feed's next document, then one timed poll cycle over every feed."""
        for path, body in zip(self.files, bodies, strict=True):
            path.write_bytes(body)
        self.clock += timedelta(hours=1)
        readers = self.readers
        workers = readers.cpu_seconds() if readers else 0.0
        wall, cpu = time.perf_counter(), time.process_time()
        summary = poll_due(self.store, None, self.config, self.index, self.clock, readers=readers)  # type: ignore[arg-type]
        self.seconds += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        self.cpu += (readers.cpu_seconds() - workers) if readers else 0.0
        assert not summary.errors, summary.errors[:3]
        self.new += summary.new_articles

    def bytes_per_article(self) -> float:
        self.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = self.config.database.stat().st_size
        return size / max(1, self.store.count("articles"))

    def close(self) -> None:
        self.store.close()


def parse_only(bodies: list[bytes]) -> tuple[float, int]:
    """(seconds, items) for feedparser alone over the documents, in a process that imports
    nothing of Vigie (bench.baselines): plain feedparser, without monitor.parse's settings."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"{i}.xml" for i in range(len(bodies))]
        for path, body in zip(paths, bodies, strict=True):
            path.write_bytes(body)
        seconds, items = in_own_process("parse", *map(str, paths))
    return seconds, int(items)


def replay_bbc(index: RuleIndex, tmp: Path) -> tuple[Ingest, float, float]:
    """The BBC snapshots; returns the ingest, the new articles per second feedparser alone
    would allow over the same documents, and the XML bytes per item."""
    bodies = [path.read_bytes() for path in sorted(SNAPSHOTS.glob("*.xml"))]
    ingest = Ingest(tmp, 1, index)
    for body in bodies:
        ingest.poll([body])
    seconds, items = parse_only(bodies)
    return ingest, ingest.new / seconds, sum(map(len, bodies)) / items


def generated(
    index: RuleIndex, tmp: Path, articles: int, readers: ReaderPool | None = None
) -> tuple[Ingest, float, float]:
    """The generated stream, `articles` new ones at least; same returns as replay_bbc."""
    now = time.time()
    feeds = min(FEEDS, max(10, articles // 40))
    ingest = Ingest(tmp, feeds, index, readers)
    heads = [ITEMS_PER_FEED] * feeds
    parse_seconds = xml_bytes = 0.0
    polls = 0
    while ingest.new < articles:
        bodies = [rss(feed, heads[feed], now) for feed in range(feeds)]
        ingest.poll(bodies)
        sample = bodies[:100]  # feedparser over a sample keeps the baseline cheap
        seconds, items = parse_only(sample)
        parse_seconds += seconds * len(bodies) / len(sample)
        xml_bytes += sum(map(len, sample)) / items
        heads = [head + NEW_PER_POLL for head in heads]
        polls += 1
    return ingest, ingest.new / parse_seconds, xml_bytes / polls


def main() -> None:
    rules = argument("--rules", 10_000)
    articles = argument("--articles", 20_000 if quick() else 100_000)
    start = time.perf_counter()
    index = build_index(rules)
    elapsed = time.perf_counter() - start
    keep_long_lived()  # as `vigie run` does with the rules it loads
    print(
        f"{len(index):,} rules and {len(index.entities)} entities compiled in {elapsed:.1f} s;"
        " one process, but for the stream with readers"
    )
    print(
        f"{'stream':34} {'new':>8} {'new art/s':>10} {'CPU ms/art':>11} {'DB bytes/art':>13} "
        f"{'feedparser art/s':>17} {'XML bytes/item':>15}"
    )
    rows: list[Row] = []
    processes = os.cpu_count() or 1
    readers = ReaderPool(processes, min_feeds=1)
    pooled = articles // 5
    for name, run in (
        ("BBC snapshots replayed (39 polls)", lambda tmp: replay_bbc(index, tmp)),
        (f"generated, {articles:,} new articles", lambda tmp: generated(index, tmp, articles)),
        (
            f"generated, {pooled:,}, {processes} readers",
            lambda tmp: generated(index, tmp, pooled, readers),
        ),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            ingest, parser_rate, xml_per_item = run(Path(tmp))
            rate = ingest.new / ingest.seconds
            per_article = ingest.bytes_per_article()
            ingest.close()
        print(
            f"{name:34} {ingest.new:>8,.0f} {rate:>10.0f} {ingest.cpu / ingest.new * 1000:>11.2f} "
            f"{per_article:>13,.0f} {parser_rate:>17.0f} {xml_per_item:>15,.0f}",
            flush=True,
        )
        case = f"{name}, {len(index) // 1000}k rules"
        one_process = ingest.readers is None  # the target is for one process
        rows.append(
            Row(
                "ingest",
                case,
                "new articles/s",
                rate,
                parser_rate,
                "feedparser alone",
                f">= {TARGET} (one process)" if one_process else "",
                rate >= TARGET if one_process else None,
            )
        )
        rows.append(
            Row(
                "ingest",
                case,
                "DB bytes/article",
                per_article,
                xml_per_item,
                "feed XML bytes/item",
                higher_is_better=False,
            )
        )
    readers.close()
    emit(rows)


if __name__ == "__main__":
    main()
