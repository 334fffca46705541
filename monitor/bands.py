"""The LSH band index of the story window, in memory: band key -> the articles that have it.

monitor/stories.py looks up each new article's band keys (identity.band_keys) here to find the
earlier articles that may be copies of it, then verifies them on their stored signatures. It
used to be a SQLite table, but filing 29 keys an article at random places in a B-tree, and
looking them up again, cost more than the rest of storing an article, and grew with the window
(bench.ingest). Here a key is looked up in one sorted array, through a directory of its
buckets: 8 to 10 bytes a key.

A false candidate costs a signature comparison and a missing one splits a story, so the index
may hold more than the window (articles that left it, a revision's earlier keys), never less.
The stories module rebuilds it from the stored signatures and keeps it up to date.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

FOLD_EVERY = 4000  # articles whose keys wait in a dict before they are filed in the array


class BandIndex:
    """Band keys of articles: the bulk in one sorted array, the latest articles in a dict."""

    fold_every = FOLD_EVERY

    def __init__(self, layout: str) -> None:
        self.layout = layout  # identity.LshLayout.name the keys were cut with
        self.upto = 0  # the highest article id added: later ones are other processes' to read
        self.data_version: int | None = None  # the database's when it last read them
        self.pruned: datetime | None = None  # the window's start when its leavers were dropped
        self._set_filed(np.zeros(0, dtype=np.uint64))  # key << 32 | article id (< 2**32), sorted
        # The keys waiting to be filed, for lookups: key -> its first article, and the others in
        # _more (rare). Ints only: a dict of ints is not tracked by the garbage collector, where a
        # list per key made 29 objects an article for every collection to walk.
        self._recent: dict[int, int] = {}
        self._more: dict[int, list[int]] = {}
        self._waiting: list[np.ndarray] = []  # and the same, in order, for filing
        self._waiting_ids: list[int] = []

    def __len__(self) -> int:
        """How many (key, article) entries it holds."""
        return len(self._filed) + sum(map(len, self._waiting))

    def add(self, article_id: int, keys: np.ndarray) -> None:
        """An article's band keys (a revision adds its new ones; its old ones stay, harmless)."""
        recent = self._recent
        for key in keys.tolist():
            if recent.setdefault(key, article_id) != article_id:
                self._more.setdefault(key, []).append(article_id)
        self._waiting.append(keys)
        self._waiting_ids.append(article_id)
        self.upto = max(self.upto, article_id)

    def add_many(self, article_ids: np.ndarray, keys: np.ndarray) -> None:
        """Articles' keys at once: `keys` has one row per article of `article_ids`. A few (what
        another process sketched meanwhile) wait like added ones: filing rewrites the array."""
        if len(article_ids) < self.fold_every:
            for article_id, row in zip(article_ids.tolist(), keys, strict=True):
                self.add(article_id, row)
            return
        self._file(keys.ravel(), np.repeat(article_ids, keys.shape[1]))
        self.upto = max(self.upto, int(article_ids.max()))

    def candidates(self, keys: np.ndarray) -> set[int]:
        """The articles that share at least one key with `keys`."""
        found: set[int] = set()
        recent, more = self._recent, self._more
        listed = keys.tolist()
        for key in listed:
            if key in recent:
                found.add(recent[key])
                if key in more:
                    found.update(more[key])
        # The filed entries of a key are in its bucket (the key's top bits), a few entries long:
        # two reads of memory far apart per key, where a binary search made twenty.
        filed, buckets, shift = self._entries, self._buckets, self._bucket_shift
        for key in listed:
            bucket = key >> shift
            at, end = buckets[bucket], buckets[bucket + 1]
            low = key << 32  # the key's entries are low + article id
            while at < end:
                entry = filed[at] - low
                if entry > 0xFFFFFFFF:
                    break
                if entry >= 0:
                    found.add(entry)
                at += 1
        return found

    @property
    def folding_due(self) -> bool:
        return len(self._waiting) >= self.fold_every

    def fold(self, live: np.ndarray | None = None) -> None:
        """File the waiting keys in the sorted array; with `live` (the ids of the articles
        still in the window), drop the keys of every other article filed before."""
        if live is not None and len(self._filed):
            self._set_filed(self._filed[_live(self._filed & _IDS, live)])
        if self._waiting:
            keys = np.concatenate(self._waiting)
            ids = np.repeat(self._waiting_ids, list(map(len, self._waiting)))
            self._file(keys, ids)
        self._recent, self._more, self._waiting, self._waiting_ids = {}, {}, [], []

    def _file(self, keys: np.ndarray, ids: np.ndarray) -> None:
        """Insert entries among the filed ones: one pass over those, not a new sort."""
        entries = np.sort((keys.astype(np.uint64) << _SHIFT) | ids.astype(np.uint64))
        self._set_filed(np.insert(self._filed, np.searchsorted(self._filed, entries), entries))

    def _set_filed(self, filed: np.ndarray) -> None:
        """The filed entries, and where each bucket of them starts: 2 to 4 entries a bucket,
        1 to 2 bytes of directory per entry (a single bucket under 4 entries)."""
        bits = min(32, (len(filed) // 4).bit_length())
        starts = np.zeros((1 << bits) + 1, dtype=np.uint32)
        top = (filed >> np.uint64(64 - bits)).astype(np.intp) if bits else np.zeros_like(filed)
        np.cumsum(np.bincount(top, minlength=1 << bits), out=starts[1:])
        self._filed, self._bucket_shift = filed, 32 - bits
        # Read from Python one at a time: a memoryview gives plain ints, fast.
        self._entries, self._buckets = memoryview(filed), memoryview(starts)


_SHIFT = np.uint64(32)
_IDS = np.uint64(0xFFFFFFFF)


def _live(ids: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Which of `ids` are in `live`, through a lookup table over the live ids' range."""
    if not len(live):
        return np.zeros(len(ids), dtype=bool)
    low, high = int(live.min()), int(live.max())
    table = np.zeros(high - low + 2, dtype=bool)  # the last slot: out of range, never live
    table[live - low] = True
    slots = ids.astype(np.int64) - low
    slots[(slots < 0) | (slots > high - low)] = high - low + 1
    return table[slots]
