"""The story window's band index, kept in memory (monitor/bands.py): each article's keys wait in
a dict and are filed in a sorted array in bulk. Wherever the keys are, the same articles are
candidates and the same stories come out; a rolled-back feed leaves no keys behind; a restarted
process, or another process on the same database, finds the stories already there; articles that
leave the window leave the index."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from identity_support import NOW

from bench.wirecopy import PAIRS, Corpus, Source, _group, apply_edits
from monitor.bands import BandIndex
from monitor.config import IdentityConfig
from monitor.identity import sketch
from monitor.records import Article
from monitor.store import Store
from monitor.stories import place


@pytest.fixture
def fold_every(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Set how many articles' keys wait in the dict before they are filed."""
    return lambda articles: monkeypatch.setattr(BandIndex, "fold_every", articles)


def test_stories_are_the_same_whether_keys_wait_or_were_filed(
    corpus: Corpus, tmp_path: Path, fold_every: Callable[[int], None]
) -> None:
    pool = list(corpus.sources.values())[:400]
    for pair in json.loads(PAIRS.read_text(encoding="utf-8"))["pairs"]:
        original = corpus.get(pair["source"])
        if original in pool:
            copy = apply_edits(original, pair["edits"], corpus)
            pool.append(replace(copy, key=f"{original.key}#{pair['id']}"))
    stories = {}
    for name, waiting in (("never-filed", 10**9), ("filed-every-7", 7), ("filed-each", 1)):
        fold_every(waiting)
        store = Store(tmp_path / f"{name}.db")
        stories[name] = _group(store, pool, IdentityConfig())
        store.close()
    assert stories["never-filed"] == stories["filed-every-7"] == stories["filed-each"]
    assert len(set(stories["never-filed"].values())) < len(pool)  # some copies joined


def article(feed_id: int, source: Source, guid: str) -> Article:
    return Article(
        feed_id=feed_id,
        guid=guid,
        url=f"https://outlet{feed_id}.example/{guid}",
        title=source.title,
        content="\n\n".join(source.paragraphs),
        fingerprint=source.key,
    )


def placed(store: Store, a: Article, minutes: int = 0) -> Article:
    when = NOW + timedelta(minutes=minutes)
    with store.transaction():
        [stored] = store.store_articles([a], when)
        signature = sketch(stored.text)
        return replace(stored, story_id=place(store, stored, signature, IdentityConfig(), when))


@pytest.mark.parametrize("waiting", [1, 1000], ids=["filed", "waiting"])
def test_a_rolled_back_feed_leaves_no_band_keys_behind(
    corpus: Corpus, tmp_path: Path, waiting: int, fold_every: Callable[[int], None]
) -> None:
    fold_every(waiting)
    source, other = list(corpus.sources.values())[:2]
    store = Store(tmp_path / "vigie.db")
    feeds = [store.upsert_feed(f"https://outlet{i}.example/feed", now=NOW) for i in range(3)]
    first = placed(store, article(feeds[0], source, "a"))
    with pytest.raises(RuntimeError), store.transaction():
        placed(store, article(feeds[1], source, "copy"))
        raise RuntimeError("the process dies")
    # The rolled-back copy's id is given to another text, which must not join the story.
    unrelated = placed(store, article(feeds[1], other, "other"), 1)
    assert unrelated.story_id != first.story_id
    again = placed(store, article(feeds[2], source, "copy-again"), 2)
    assert again.story_id == first.story_id
    store.close()


@pytest.mark.parametrize("waiting", [1, 1000], ids=["filed", "waiting"])
def test_a_restarted_process_finds_the_stories_already_stored(
    corpus: Corpus, tmp_path: Path, waiting: int, fold_every: Callable[[int], None]
) -> None:
    fold_every(waiting)  # the stored signatures are filed at once, or wait like added keys
    source = next(iter(corpus.sources.values()))
    store = Store(tmp_path / "vigie.db")
    feeds = [store.upsert_feed(f"https://outlet{i}.example/feed", now=NOW) for i in range(2)]
    first = placed(store, article(feeds[0], source, "a"))
    store.close()
    store = Store(tmp_path / "vigie.db")
    assert placed(store, article(feeds[1], source, "copy"), 1).story_id == first.story_id
    store.close()


def test_articles_another_process_placed_are_candidates_too(corpus: Corpus, tmp_path: Path) -> None:
    """`vigie poll` run beside `vigie run`: each has its own index, both see every story."""
    one, two = list(corpus.sources.values())[:2]
    running, beside = Store(tmp_path / "vigie.db"), Store(tmp_path / "vigie.db")
    feeds = [running.upsert_feed(f"https://outlet{i}.example/feed", now=NOW) for i in range(4)]
    first = placed(running, article(feeds[0], one, "a"))  # running's index is built now
    second = placed(beside, article(feeds[1], two, "a"), 1)  # and beside's
    assert second.story_id != first.story_id
    assert placed(running, article(feeds[2], two, "copy"), 2).story_id == second.story_id
    assert placed(beside, article(feeds[3], one, "copy"), 3).story_id == first.story_id
    running.close()
    beside.close()


def test_articles_that_leave_the_window_leave_the_index(
    corpus: Corpus, tmp_path: Path, fold_every: Callable[[int], None]
) -> None:
    """A service that runs for months holds the keys of one window's articles, not of all."""
    fold_every(2)
    settings = IdentityConfig(story_window=2 * 86400)
    sources = list(corpus.sources.values())[:12]
    store = Store(tmp_path / "vigie.db")
    feed = store.upsert_feed("https://outlet.example/feed", now=NOW)
    sizes = []
    for day, source in enumerate(sources):
        when = NOW + timedelta(days=day)
        with store.transaction():
            [stored] = store.store_articles([article(feed, source, f"day-{day}")], when)
            place(store, stored, sketch(stored.text), settings, when)
        assert store.story_bands is not None
        sizes.append(len(store.story_bands))
    keys_each = sizes[0]
    assert max(sizes) <= 4 * keys_each  # the window's 3 articles and one waiting, at most
    store.close()


@pytest.mark.parametrize("waiting", [1, 1000], ids=["filed", "waiting"])
def test_a_revision_replaces_its_band_keys(
    corpus: Corpus, tmp_path: Path, waiting: int, fold_every: Callable[[int], None]
) -> None:
    fold_every(waiting)
    old, new = list(corpus.sources.values())[:2]
    store = Store(tmp_path / "vigie.db")
    feeds = [store.upsert_feed(f"https://outlet{i}.example/feed", now=NOW) for i in range(3)]
    first = placed(store, article(feeds[0], old, "a"))
    revised = article(feeds[0], new, "a")
    with store.transaction():
        [stored] = store.store_articles([revised], NOW)
        assert stored.revision == 2
        place(store, stored, sketch(stored.text), IdentityConfig(), NOW)
    assert placed(store, article(feeds[1], old, "old-copy"), 1).story_id != first.story_id
    assert placed(store, article(feeds[2], new, "new-copy"), 2).story_id == first.story_id
    store.close()


@pytest.mark.parametrize("fold_at", [10**9, 1, 7, 100], ids=["waiting", "each", "by-7", "by-100"])
def test_the_index_gives_exactly_the_articles_sharing_a_key(
    fold_at: int, fold_every: Callable[[int], None]
) -> None:
    """Against a plain dict, with keys drawn from a pool of 600 (spread over the 32 bits, as
    hashed keys are) so that many articles share each key, and the extremes of the range."""
    fold_every(fold_at)
    rng = np.random.default_rng(fold_at)
    pool = rng.integers(0, 2**32, size=600, dtype=np.uint64).astype(np.uint32)
    index, truth = BandIndex("test"), defaultdict(set)
    for article in range(2**32 - 300, 2**32):  # ids as large as the index takes
        keys = rng.choice(pool, size=29)
        keys[:3] = rng.integers(0, 2**32, size=3, dtype=np.uint64).astype(np.uint32)
        keys[3] = [0, 2**32 - 1][article % 2]
        index.add(article, keys)
        for key in keys.tolist():
            truth[key].add(article)
        if index.folding_due:
            index.fold()
    for _ in range(200):
        asked = rng.choice(pool, size=29)
        asked[:2] = [0, 2**32 - 1]
        expected = set().union(*(truth[key] for key in asked.tolist()))
        assert index.candidates(asked) == expected
