"""Story sketches: cost per ~5 KB article, and how well stories group wire copies.

Cost, side by side from one run over real article bodies cut to 5 KB: datasketch's MinHash (the
usual choice, the baseline), a plain rensa pipeline (regex words, Python shingle strings), Vigie's
sketch (identity.sketch: numpy shingle hashes, rensa permutations), the sketch with its LSH band
keys, and sketch plus index (stories.place: band lookup, verification and the writes, in SQLite).

Grouping: bench/wirecopy.py's pairs (precision and recall on pairs, at several thresholds), and
how much of a copy an outlet may cut before it no longer joins its story.

Usage: python -m bench.identity [--quick]
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import rensa

from bench.wirecopy import NOW, PAGES, PAIRS, apply_edits, evaluate, load_corpus
from monitor.config import IdentityConfig
from monitor.identity import band_keys, lsh_layout, similarity, sketch, sketches
from monitor.records import Article
from monitor.store import Store
from monitor.stories import place

SIZE = 5000


def texts() -> list[str]:
    truth = json.loads((PAGES / "ground-truth.json").read_text(encoding="utf-8"))
    bodies = [row["articleBody"] for _, row in sorted(truth.items())]
    return [body[:SIZE] for body in bodies if len(body) >= SIZE]


def per_article(function: Callable[[str], object], corpus: list[str], rounds: int) -> float:
    """Best of `rounds` passes over the corpus, in µs per article."""
    return per_article_in_batches(lambda batch: function(batch[0]), corpus, 1, rounds)


def per_article_in_batches(
    function: Callable[[list[str]], object], corpus: list[str], size: int, rounds: int
) -> float:
    """Best of `rounds` passes over the corpus, `size` texts to a call, in µs per article."""
    batches = [corpus[i : i + size] for i in range(0, len(corpus), size)]
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for batch in batches:
            function(batch)
        best = min(best, (time.perf_counter() - start) / len(corpus))
    return best * 1e6


_WORD = re.compile(r"[^\W_]+")


def _shingles(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    return [" ".join(words[i : i + 3]) for i in range(len(words) - 2)]


def plain_rensa(text: str) -> object:
    minhash = rensa.RMinHash(num_perm=128, seed=1)
    minhash.update(_shingles(text))
    return minhash.digest()


def datasketch_baseline() -> Callable[[str], object] | None:
    try:
        from datasketch import MinHash
    except ImportError:
        return None

    def run(text: str) -> object:
        minhash = MinHash(num_perm=128)
        minhash.update_batch([s.encode() for s in _shingles(text)])
        return minhash.hashvalues

    return run


def index_cost(corpus: list[str], rounds: int) -> tuple[float, float, int]:
    """µs per article for stories.place (sketch, band lookup, verification, writes; not the
    commit, which a feed's transaction shares with its other writes) into a SQLite index that
    already holds every article of the corpora, the texts measured among them. Returns the
    cost, the cost of storing the article itself (row and full-text index) for scale, and the
    number of articles indexed."""
    settings = IdentityConfig()
    background = [
        (s.outlet, s.title + "\n\n" + "\n\n".join(s.paragraphs))
        for s in load_corpus().sources.values()
    ]
    best = storing = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        feeds: dict[str, int] = {}
        with store.transaction():
            for i, (outlet, text) in enumerate(background):
                if outlet not in feeds:
                    feeds[outlet] = store.upsert_feed(f"https://{outlet}/feed", now=NOW)
                article = Article(feeds[outlet], str(i), f"https://{outlet}/{i}", "", content=text)
                [stored] = store.store_articles([article], NOW)
                place(store, stored, sketch(stored.text), settings, NOW)
        for round_ in range(rounds):
            feed = store.upsert_feed(f"https://copies{round_}.example/feed", now=NOW)
            with store.transaction():
                start = time.perf_counter()
                copies = store.store_articles(
                    [
                        Article(feed, str(i), f"https://copies{round_}.example/{i}", "", content=t)
                        for i, t in enumerate(corpus)
                    ],
                    NOW,
                )
                storing = min(storing, (time.perf_counter() - start) / len(corpus))
                start = time.perf_counter()
                for article in copies:
                    place(
                        store, article, sketch(article.text), settings, NOW + timedelta(minutes=1)
                    )
                best = min(best, (time.perf_counter() - start) / len(corpus))
        indexed = store.count("sketches")
        store.close()
    return best * 1e6, storing * 1e6, indexed


def cost_table(quick: bool) -> None:
    corpus = texts()
    rounds = 2 if quick else 5
    layout = lsh_layout(IdentityConfig().story_threshold)
    baseline = datasketch_baseline()
    rows: list[tuple[str, float]] = []
    if baseline is not None:
        rows.append(("datasketch MinHash (baseline)", per_article(baseline, corpus, 1)))
    rows.append(("rensa, Python shingle strings", per_article(plain_rensa, corpus, rounds)))
    rows.append(("identity.sketch", per_article(sketch, corpus, rounds)))
    rows.append(
        (
            "identity.sketches, 16 at a time (as a feed's)",
            per_article_in_batches(sketches, corpus, 16, rounds),
        )
    )
    rows.append(
        (
            "sketch + LSH band keys",
            per_article(lambda t: band_keys(sketch(t), layout), corpus, rounds),  # type: ignore[arg-type]
        )
    )
    index_micros, storing, indexed = index_cost(corpus, 2 if quick else 5)
    rows.append((f"sketch + index (stories.place, {indexed} indexed)", index_micros))
    rows.append(("for scale: storing the article (row + FTS)", storing))
    reference = rows[0][1]
    print(f"Cost per article: {len(corpus)} real article bodies cut to {SIZE} characters")
    threshold = IdentityConfig().story_threshold
    print(f"LSH layout at threshold {threshold}: {layout.bands} bands x {layout.rows} rows")
    print(f"{'step':45} {'µs/article':>11} {'vs first':>9}")
    for name, micros in rows:
        print(f"{name:45} {micros:11.1f} {reference / micros:8.1f}x")


def grouping_table(quick: bool) -> None:
    corpus = load_corpus()
    print("\nGrouping wire copies (bench/wirecopy.py, tests/data/wire_pairs.json)")
    print("threshold articles  true  grouped precision  recall")
    thresholds = (0.5,) if quick else (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    for threshold in thresholds:
        result = evaluate(corpus, IdentityConfig(story_threshold=threshold))
        print(
            f"{threshold:9.1f} {result.articles:8} {result.true_pairs:5} "
            f"{result.predicted_pairs:8} {result.precision:9.3f} {result.recall:7.3f}"
        )
        if threshold == 0.5:
            for pair in result.false_pairs + result.missed_pairs:
                print(f"    {'false' if pair in result.false_pairs else 'missed'}: {pair}")
    definitions = json.loads(PAIRS.read_text(encoding="utf-8"))
    print("\nShare of copies still over the default threshold when the outlet keeps only the")
    print("first part of the article (and writes its own headline):")
    sources = [corpus.get(p["source"]) for p in definitions["pairs"]]
    for keep in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4):
        kept = 0
        for source in sources:
            edits = [{"op": "trim", "keep": keep}, {"op": "headline", "text": "Another headline"}]
            copy = apply_edits(source, edits, corpus)
            a = sketch(source.title + "\n\n" + "\n\n".join(source.paragraphs))
            b = sketch(copy.title + "\n\n" + "\n\n".join(copy.paragraphs))
            kept += a is not None and b is not None and similarity(a, b) >= 0.5
        print(f"  keeps {keep:.0%} of the paragraphs: {kept / len(sources):.0%} of {len(sources)}")


def syndication_table(quick: bool) -> None:
    """One wire story run by many outlets: each copy is compared with the story's latest
    copies (stories.STORY_CANDIDATES), not with every copy, so the last copy costs what the
    first did."""
    copies = 400 if quick else 1200
    text = texts()[0]
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "vigie.db")
        settings = IdentityConfig()
        for i in range(copies):
            store.upsert_feed(f"https://outlet{i}.example/rss", name=f"outlet {i}", now=NOW)
        costs = []
        for i, row in enumerate(store.feeds()):
            article = Article(
                feed_id=row["id"], guid=f"wire-{i}", url=f"https://outlet{i}.example/wire",
                title="Wire story", content=text,
            )  # fmt: skip
            start = time.perf_counter()
            with store.transaction():
                stored = store.store_articles([article], NOW)
                signature = sketch(stored[0].text)
                place(store, stored[0], signature, settings, NOW)
            costs.append(time.perf_counter() - start)
        stories = store.count("stories")
        store.close()
    first, last = sum(costs[:100]) / 100 * 1000, sum(costs[-100:]) / 100 * 1000
    print(f"\nOne wire story from {copies} outlets, stored copy by copy: {stories} story")
    print(f"{'copies':22} {'ms/copy':>8}")
    print(f"{'first 100':22} {first:8.2f}")
    print(f"{'last 100':22} {last:8.2f}  ({last / first:.1f}x the first)")


def main() -> None:
    quick = "--quick" in sys.argv
    cost_table(quick)
    grouping_table(quick)
    syndication_table(quick)


if __name__ == "__main__":
    main()
