"""The story index's band keys (Store.save_sketch): each article's keys wait in sketch_band_log
and are filed into sketch_bands in bulk. Wherever the keys are, the same articles are candidates
and the same stories come out; a rolled-back feed leaves no keys behind; the log survives a
restart."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from identity_support import NOW

from bench.wirecopy import PAIRS, Corpus, Source, _group, apply_edits
from monitor.config import IdentityConfig
from monitor.identity import sketch
from monitor.records import Article
from monitor.store import Store
from monitor.stories import place


def open_store(path: Path, band_log_articles: int) -> Store:
    store = Store(path)
    store.band_log_articles = band_log_articles
    return store


def test_stories_are_the_same_whether_keys_wait_in_the_log_or_were_filed(
    corpus: Corpus, tmp_path: Path
) -> None:
    pool = list(corpus.sources.values())[:400]
    for pair in json.loads(PAIRS.read_text(encoding="utf-8"))["pairs"]:
        original = corpus.get(pair["source"])
        if original in pool:
            copy = apply_edits(original, pair["edits"], corpus)
            pool.append(replace(copy, key=f"{original.key}#{pair['id']}"))
    stories = {}
    for name, waiting in (("never-filed", 10**9), ("filed-every-7", 7), ("filed-each", 1)):
        store = open_store(tmp_path / f"{name}.db", waiting)
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


@pytest.mark.parametrize("waiting", [1, 1000], ids=["filed", "in-the-log"])
def test_a_rolled_back_feed_leaves_no_band_keys_behind(
    corpus: Corpus, tmp_path: Path, waiting: int
) -> None:
    source, other = list(corpus.sources.values())[:2]
    store = open_store(tmp_path / "vigie.db", waiting)
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


@pytest.mark.parametrize("waiting", [1, 1000], ids=["filed", "in-the-log"])
def test_band_keys_survive_a_restart(corpus: Corpus, tmp_path: Path, waiting: int) -> None:
    source = next(iter(corpus.sources.values()))
    store = open_store(tmp_path / "vigie.db", waiting)
    feeds = [store.upsert_feed(f"https://outlet{i}.example/feed", now=NOW) for i in range(2)]
    first = placed(store, article(feeds[0], source, "a"))
    store.close()
    store = open_store(tmp_path / "vigie.db", waiting)
    assert placed(store, article(feeds[1], source, "copy"), 1).story_id == first.story_id
    store.close()


@pytest.mark.parametrize("waiting", [1, 1000], ids=["filed", "in-the-log"])
def test_a_revision_replaces_its_band_keys(corpus: Corpus, tmp_path: Path, waiting: int) -> None:
    old, new = list(corpus.sources.values())[:2]
    store = open_store(tmp_path / "vigie.db", waiting)
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
