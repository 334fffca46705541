"""The LSH band index of the story window, in memory: band key -> the articles that have it.

monitor/stories.py looks up each new article's band keys (identity.band_keys) here to find the
earlier articles that may be copies of it, then verifies them on their stored signatures. It
used to be a SQLite table, but filing 29 keys an article at random places in a B-tree, and
looking them up again, cost more than the rest of storing an article, and grew with the window
(bench.ingest). Here a lookup is a binary search in one sorted array, 8 bytes a key.

A false candidate costs a signature comparison and a missing one splits a story, so the index
may hold more than the window (articles that left it, a revision's earlier keys), never less.
The stories module rebuilds it from the stored signatures and keeps it up to date.
"""

from __future__ import annotations

import numpy as np

FOLD_EVERY = 4000  # articles whose keys wait in a dict before they are filed in the array


class BandIndex:
    """Band keys of articles: the bulk in one sorted array, the latest articles in a dict."""

    fold_every = FOLD_EVERY

    def __init__(self, layout: str) -> None:
        self.layout = layout  # identity.LshLayout.name the keys were cut with
        self.upto = 0  # the highest article id added: later ones are other processes' to read
        self.data_version: int | None = None  # the database's when it last read them
        self._filed = np.zeros(0, dtype=np.uint64)  # key << 32 | article id (< 2**32), sorted
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
        """Articles' keys at once: `keys` has one row per article of `article_ids`."""
        if not len(article_ids):
            return
        self._file(keys.ravel(), np.repeat(article_ids, keys.shape[1]))
        self.upto = max(self.upto, int(article_ids.max()))

    def candidates(self, keys: np.ndarray) -> set[int]:
        """The articles that share at least one key with `keys`."""
        found: set[int] = set()
        recent, more = self._recent, self._more
        for key in keys.tolist():
            if key in recent:
                found.add(recent[key])
                if key in more:
                    found.update(more[key])
        filed = self._filed
        if not len(filed):
            return found
        low = keys.astype(np.uint64) << _SHIFT  # where each key's entries would start
        starts = np.searchsorted(filed, low)
        present = (filed[np.minimum(starts, len(filed) - 1)] >> _SHIFT) == keys
        if present.any():
            starts = starts[present]
            lengths = np.searchsorted(filed, low[present] | _IDS, side="right") - starts
            # Every entry of every run of equal keys: start of its run + place within it.
            firsts = np.cumsum(lengths) - lengths
            at = np.repeat(starts - firsts, lengths) + np.arange(int(lengths.sum()))
            found.update((filed[at] & _IDS).tolist())
        return found

    @property
    def folding_due(self) -> bool:
        return len(self._waiting) >= self.fold_every

    def fold(self, live: np.ndarray | None = None) -> None:
        """File the waiting keys in the sorted array; with `live` (the ids of the articles
        still in the window), drop the keys of every other article filed before."""
        if live is not None and len(self._filed):
            self._filed = self._filed[_live(self._filed & _IDS, live)]
        if self._waiting:
            keys = np.concatenate(self._waiting)
            ids = np.repeat(self._waiting_ids, list(map(len, self._waiting)))
            self._file(keys, ids)
        self._recent, self._more, self._waiting, self._waiting_ids = {}, {}, [], []

    def _file(self, keys: np.ndarray, ids: np.ndarray) -> None:
        """Insert entries among the filed ones: one pass over those, not a new sort."""
        entries = np.sort((keys.astype(np.uint64) << _SHIFT) | ids.astype(np.uint64))
        self._filed = np.insert(self._filed, np.searchsorted(self._filed, entries), entries)


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
