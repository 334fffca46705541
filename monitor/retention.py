"""Retention: articles first seen longer ago than `storage.retention` are pruned, with their
matches, mentions, revisions, aliases and story sketches, in small batches.

Runs after each poll (`vigie run`'s poll job and `vigie once`), so it shares the poll's database
connection and never writes beside it; when nothing is due it costs one indexed query. Each
pruned item leaves tombstones (its feed and guid, its canonical URL) so that a feed still carrying
it does not bring it back as new and alert again; tombstones are kept for one more retention
period, long past the life of an item in any feed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from .store import Store

log = logging.getLogger(__name__)

BATCH = 1000  # articles per transaction: the poll never waits long for the writer lock
MAX_BATCHES = 20  # per call; a large backlog is worked off over the next polls


def prune_expired(store: Store, retention: float, now: datetime) -> int:
    """Prune what `retention` (seconds; 0 keeps everything) has expired. Returns how many
    articles were pruned."""
    if retention <= 0:
        return 0
    cutoff = now - timedelta(seconds=retention)
    pruned = 0
    for _ in range(MAX_BATCHES):
        count = store.prune(cutoff, now, BATCH)
        pruned += count
        if count < BATCH:
            break
    expired = store.expire_tombstones(cutoff)
    if pruned or expired:
        log.info("retention: pruned %d articles, forgot %d tombstones", pruned, expired)
    return pruned
