"""Stories: articles whose texts overlap strongly (one wire story in five outlets) share a story.

Each new article's text is sketched (identity.sketch: MinHash of word 3-shingles), its LSH band
keys are looked up among the articles sketched within `identity.story_window`, and the
candidates are verified on the whole signature: the article joins the story of the most similar
one whose estimated overlap reaches `identity.story_threshold`, or starts a story of its own as
its lead. Stories are never merged or split afterwards, so a story id handed to a subscriber
stays valid. A new revision keeps its story and refreshes its sketch.

Only other feeds' articles are candidates: a feed that publishes two items whose texts overlap
(a weekly quiz, a daily briefing with the same blurb) says they are two items, and an item
re-issued under the same URL is already the same article (identity.canonical_url).

The signatures are stored (table sketches), survive restarts and are pruned with the articles;
the band keys are kept in memory (monitor/bands.py), built from the stored signatures when a
process first places an article, and given the articles other processes sketch meanwhile. The
signatures are made again from the stored texts when the sketch algorithm or the band layout
(which follows the threshold) changes, and after the upgrade that introduced stories.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from .bands import BandIndex
from .config import IdentityConfig
from .identity import (
    EventFacts,
    LshLayout,
    band_keys,
    different_events,
    lsh_layout,
    signature_bytes,
    signature_from_bytes,
    similarities,
    sketches,
)
from .records import Article
from .store import Store

log = logging.getLogger(__name__)


def place_all(
    store: Store,
    articles: Sequence[Article],
    signatures: Sequence[np.ndarray | None],
    settings: IdentityConfig,
    now: datetime,
) -> list[int]:
    """`place` each article in turn (a feed's new items), the band keys of all their signatures
    worked out at once: numpy's cost per call is most of it for one signature."""
    layout = lsh_layout(settings.story_threshold)
    sketched = [signature for signature in signatures if signature is not None]
    keys = iter(band_keys(np.stack(sketched), layout) if sketched else ())
    return [
        place(store, article, signature, settings, now, None if signature is None else next(keys))
        for article, signature in zip(articles, signatures, strict=True)
    ]


STORY_CANDIDATES = 100  # similar articles an article is compared with, the latest first


def place(
    store: Store,
    article: Article,
    signature: np.ndarray | None,
    settings: IdentityConfig,
    now: datetime,
    keys: np.ndarray | None = None,
) -> int:
    """Give a stored article (new, or a new revision) its story, from the `signature` of its
    text (identity.sketch, worked out ahead, maybe in another process) and its band `keys`
    when they were worked out with others' (see place_all); returns the story id. Call inside
    the feed's transaction."""
    assert article.id is not None
    since = now - timedelta(seconds=settings.story_window)
    story_id = article.story_id  # a revision, or an article re-sketched for a new layout
    if signature is not None:
        layout = lsh_layout(settings.story_threshold)
        bands = _band_index(store, layout, since)
        if keys is None:
            keys = band_keys(signature, layout)
        if story_id is None:
            found = bands.candidates(keys) - {article.id}
            if len(found) > STORY_CANDIDATES:
                # A wire story run by hundreds of outlets: its latest copies speak for it. Read
                # and compared all, the copies made storing quadratic (1,200 copies of one text
                # took 5.4 s, each slower than the last; 850 syndicated feeds, four minutes).
                found = set(heapq.nlargest(STORY_CANDIDATES, found))
            candidates = store.story_candidates(found, since, article.feed_id) if found else []
            story_id = _closest_story(store, article, signature, candidates, settings)
        store.save_sketch(article.id, signature_bytes(signature), now)
        bands.add(article.id, keys)
        if bands.folding_due:
            _fold(store, bands, since, settings)
    else:
        store.save_sketch(article.id, None, now)
    if article.story_id is not None:
        return article.story_id
    if story_id is None:
        return store.start_story(article.id, now)
    store.join_story(article.id, story_id, now)
    return story_id


def _band_index(store: Store, layout: LshLayout, since: datetime) -> BandIndex:
    """The store's band index, built from the stored signatures of the story window on first
    use, and given the articles that other processes sketched since it last looked."""
    bands = store.story_bands
    version = store.data_version()
    if bands is None or bands.layout != layout.name:
        bands = store.story_bands = BandIndex(layout.name)
        batches = store.signatures(since=since)
    elif version != bands.data_version:  # another connection wrote
        batches = store.signatures(after=bands.upto)
    else:
        return bands
    bands.data_version = version
    found = [(ids, band_keys(signatures, layout)) for ids, signatures in batches]
    if found:
        bands.add_many(np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found]))
    return bands


def _fold(store: Store, bands: BandIndex, since: datetime, settings: IdentityConfig) -> None:
    """File the waiting keys; once the window has moved on by a quarter of itself, also drop
    the keys of the articles that left it. Dropping reads every id of the window and filters
    the whole array: done at every fold, bands.fold and sketched_since took 65 µs an article
    between them at 100,000 articles of bench.ingest. Keys kept a little longer only cost
    false candidates, which story_candidates' own window test removes."""
    moved = bands.pruned is None or since - bands.pruned >= timedelta(
        seconds=settings.story_window / 4
    )
    bands.fold(store.sketched_since(since) if moved else None)
    if moved:
        bands.pruned = since


def _closest_story(
    store: Store,
    article: Article,
    signature: np.ndarray,
    candidates: list[tuple[int, int | None, bytes]],
    settings: IdentityConfig,
) -> int | None:
    """The story of the most similar candidate at or above the threshold (the earliest article
    among equals) that reports the same event (identity.different_events), as it does now or
    did before a correction, or None."""
    candidates = [c for c in candidates if c[1] is not None and c[2]]
    if not candidates:
        return None
    matrix = np.stack([signature_from_bytes(blob) for _, _, blob in candidates])
    scores = similarities(signature, matrix)
    # Most similar first; a stable sort keeps equals in article id order, the earliest first.
    ranked = [
        i for i in np.argsort(-scores, kind="stable") if scores[i] >= settings.story_threshold
    ]
    if not ranked:
        return None
    facts = EventFacts(article.title, _body(article.summary, article.content))
    # The most similar is almost always the same event: its text alone is read first (a wire
    # story run by a hundred outlets has a hundred candidates above the threshold), then the
    # next few; an article unlike the five most similar is taken for another event.
    for batch in (ranked[:1], ranked[1:_EVENT_CANDIDATES]):
        texts = store.article_texts([candidates[i][0] for i in batch])
        for i in batch:
            title, summary, content = texts.get(candidates[i][0], ("", "", ""))
            body = _body(summary, content)
            if not different_events(facts, EventFacts(title, body)):
                return candidates[i][1]
            # A copy of what the candidate said before its outlet corrected it (120 people,
            # since 210): read before the correction, the same copy joined.
            earlier = store.earlier_revisions(candidates[i][0])
            if earlier and not different_events(facts, EventFacts(title, body, earlier)):
                return candidates[i][1]
    return None


_EVENT_CANDIDATES = 5


def _body(summary: str, content: str) -> str:
    return f"{summary}\n\n{content}" if summary and content else summary or content


def ensure_index(store: Store, settings: IdentityConfig, now: datetime, batch: int = 500) -> int:
    """Bring the persisted index up to date: start afresh when the sketch algorithm or band
    layout changed, then sketch (and give a story to) every article of the story window that
    has no sketch yet, oldest first. Returns how many articles were sketched."""
    layout = lsh_layout(settings.story_threshold)
    if store.sketch_layout() != layout.name:
        log.info("rebuilding the story index for layout %s", layout.name)
        store.reset_sketches(layout.name)
    since = now - timedelta(seconds=settings.story_window)
    done = 0
    while articles := store.unsketched_articles(since, batch):
        with store.transaction():
            place_all(store, articles, sketches(a.text for a in articles), settings, now)
        done += len(articles)
    return done
