"""Retention: pruning old articles with everything that hangs on them, leaving tombstones.

Mixed into Store (monitor/store/database.py), whose connection and transaction they use."""

from __future__ import annotations

from datetime import datetime

import sqlite_utils

from .rows import (
    guid_key,
    iso,
    url_key,
)
from .stems import unindex_stems


class PruningQueries:
    """Store methods for retention."""

    db: sqlite_utils.Database

    def prune(self, before: datetime, now: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` articles first seen before `before`, with everything that points
        at them (matches, mentions, revisions, aliases, sketches, and any other table with a
        foreign key to articles); articles_fts follows through its triggers, articles_stems
        here. Each leaves tombstones (feed and guid, canonical URL) so that it is not stored
        again while a feed still carries it. Stories lose those members and get the earliest
        remaining one as lead. Returns how many articles were pruned."""
        with self.transaction():
            rows = self.db.execute(
                "SELECT id, feed_id, guid, canonical_url, story_id FROM articles "
                "WHERE first_seen < ? ORDER BY first_seen LIMIT ?",
                [iso(before), limit],
            ).fetchall()
            if not rows:
                return 0
            ids = [row[0] for row in rows]
            marks = ",".join("?" * len(ids))
            keys = [guid_key(feed_id, guid) for _, feed_id, guid, _, _ in rows]
            keys += [url_key(url) for _, _, _, url, _ in rows if url]
            keys += [
                guid_key(feed_id, guid)
                for feed_id, guid in self.db.execute(
                    f"SELECT feed_id, guid FROM article_aliases WHERE article_id IN ({marks})", ids
                )
            ]
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO tombstones (key, pruned) VALUES (?, ?)",
                [(key, iso(now)) for key in keys],
            )
            for table, column in self._article_children():
                self.db.execute(f"DELETE FROM [{table}] WHERE [{column}] IN ({marks})", ids)
            # A delivery's items name articles without a foreign key (deliveries outlive them):
            # they go with them. A finished delivery left with no item goes too
            # (docs/delivery.md, History).
            carried = f"FROM delivery_matches WHERE article_id IN ({marks})"
            # What digests sent told of these articles' stories stays told: the story's copies
            # held back (outbox.undelivered_matches) are not news once the copy sent is pruned.
            # Not a digest still retrying: it may never arrive, and then the copies are news.
            self.db.execute(
                "INSERT INTO told_stories (story_id, target, rule_id, sent) "
                "SELECT a.story_id, d.target, dm.rule_id, min(d.sent) FROM delivery_matches dm "
                "JOIN deliveries d ON d.id = dm.delivery_id "
                "JOIN articles a ON a.id = dm.article_id "
                f"WHERE dm.article_id IN ({marks}) AND d.kind = 'digest' AND d.status = 'sent' "
                "AND d.sent IS NOT NULL AND a.story_id IS NOT NULL "
                "GROUP BY a.story_id, d.target, dm.rule_id "
                "ON CONFLICT (story_id, target, rule_id) DO UPDATE SET "
                "sent = min(sent, excluded.sent)",
                ids,
            )
            touched = [
                row[0] for row in self.db.execute(f"SELECT DISTINCT delivery_id {carried}", ids)
            ]
            self.db.execute(f"DELETE {carried}", ids)
            self._forget_emptied_deliveries(touched)
            self.keep_high_water("articles")  # ids are not given again (next_id)
            self.db.execute(f"DELETE FROM articles WHERE id IN ({marks})", ids)
            unindex_stems(self.db.conn, ids)
            self._refresh_stories({row[4] for row in rows if row[4] is not None})
        return len(ids)

    def expire_tombstones(self, before: datetime) -> int:
        """Forget tombstones older than `before`. Returns how many."""
        with self.transaction():
            return self.db.execute(
                "DELETE FROM tombstones WHERE pruned < ?", [iso(before)]
            ).rowcount

    def _article_children(self) -> list[tuple[str, str]]:
        """(table, column) of every foreign key that points at articles."""
        found = []
        for table in self.db.table_names():
            for fk in self.db.execute(f"PRAGMA foreign_key_list([{table}])").fetchall():
                if fk[2] == "articles" and table != "articles":
                    found.append((table, fk[3]))
        return found
