"""Stories and their LSH band index (monitor/stories.py decides; this only stores).

Mixed into Store (monitor/store/database.py), whose connection and transaction they use."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlite_utils

from ..records import Article
from .rows import (
    ARTICLE_SELECT,
    article_from_row,
    chunks,
    iso,
)


class StoryQueries:
    """Store methods for stories and their LSH band index."""

    db: sqlite_utils.Database

    def sketch_layout(self) -> str | None:
        row = self.db.execute("SELECT layout FROM sketch_layout WHERE id = 1").fetchone()
        return row[0] if row else None

    def reset_sketches(self, layout: str) -> None:
        """Forget every sketch (they were made under another layout); stories are kept."""
        with self.transaction():
            self.db.execute("DELETE FROM sketch_bands")
            self.db.execute("DELETE FROM sketch_band_log")
            self.db.execute("DELETE FROM sketches")
            self._recent_bands = None
            self.db.execute(
                "INSERT OR REPLACE INTO sketch_layout (id, layout) VALUES (1, ?)", [layout]
            )

    def unsketched_articles(self, since: datetime, limit: int = 500) -> list[Article]:
        """Articles first seen since `since` that have no sketch yet, oldest first."""
        rows = self.db.query(
            ARTICLE_SELECT + " WHERE a.first_seen >= ? AND a.id NOT IN "
            "(SELECT article_id FROM sketches) ORDER BY a.first_seen, a.id LIMIT ?",
            [iso(since), limit],
        )
        return [article_from_row(row) for row in rows]

    def story_candidates(
        self, keys: Sequence[int], since: datetime, article_id: int, feed_id: int
    ) -> list[tuple[int, int | None, bytes]]:
        """(article id, story id, signature) of other feeds' articles sketched since `since`
        that share at least one LSH band key with `keys`, in id order."""
        if not keys:
            return []
        recent = self._recent()
        ids = {found for key in keys for found in recent.get(key, ())}
        ids.update(
            row[0]
            for row in self.db.conn.execute(
                "SELECT article_id FROM sketch_bands "
                f"WHERE band_key IN ({','.join('?' * len(keys))})",
                list(keys),
            )
        )
        ids.discard(article_id)
        found: list[tuple[int, int | None, bytes]] = []
        for chunk in chunks(sorted(ids)):
            found += self.db.conn.execute(
                "SELECT s.article_id, a.story_id, s.signature FROM sketches s "
                "JOIN articles a ON a.id = s.article_id WHERE s.seen >= ? AND a.feed_id != ? "
                "AND s.signature IS NOT NULL "
                f"AND s.article_id IN ({','.join('?' * len(chunk))}) ORDER BY s.article_id",
                [iso(since), feed_id, *chunk],
            ).fetchall()
        return found

    def save_sketch(
        self,
        article_id: int,
        signature: bytes | None,
        keys: Sequence[int],
        seen: datetime,
        replacing: bool = False,
    ) -> None:
        """An article's signature and band keys (None and none for a text too short to
        sketch, so that it is not sketched again); `replacing` an earlier sketch of it.

        The keys go to sketch_band_log, one row appended per article, and reach the sketch_bands
        index in bulk, sorted, once BAND_LOG_ARTICLES articles are waiting: filed one by one,
        each article's 29 keys landed on 29 random pages of the index, each written whole to
        the WAL, and that cost more than the rest of storing the article."""
        if replacing:
            self.db.conn.execute("DELETE FROM sketch_bands WHERE article_id = ?", [article_id])
            self._forget_recent(article_id)
        self.db.conn.execute(
            "INSERT OR REPLACE INTO sketches (article_id, signature, seen) VALUES (?, ?, ?)",
            [article_id, signature, iso(seen)],
        )
        if not keys:
            return
        recent = self._recent()
        self.db.conn.execute(
            "INSERT OR REPLACE INTO sketch_band_log (article_id, keys) VALUES (?, ?)",
            [article_id, json.dumps(list(keys))],
        )
        for key in dict.fromkeys(keys):
            recent.setdefault(key, []).append(article_id)
        self._recent_articles.add(article_id)
        if len(self._recent_articles) >= self.band_log_articles:
            self.merge_band_log()

    band_log_articles = 4000  # articles waiting in sketch_band_log before a merge (~10 MB)

    def merge_band_log(self) -> int:
        """File the band keys waiting in sketch_band_log into sketch_bands, sorted, in the
        current transaction (or one of its own). Returns how many articles they were for."""
        with self.transaction():
            self.db.conn.execute(
                "INSERT OR IGNORE INTO sketch_bands (band_key, article_id) "
                "SELECT j.value, l.article_id FROM sketch_band_log l, json_each(l.keys) j "
                "ORDER BY j.value, l.article_id"
            )
            merged = self.db.conn.execute("DELETE FROM sketch_band_log").rowcount
            self._recent_bands, self._recent_articles = {}, set()
        return merged

    def _recent(self) -> dict[int, list[int]]:
        """The band keys in sketch_band_log: key -> article ids."""
        if self._recent_bands is None:
            bands: dict[int, list[int]] = {}
            articles: set[int] = set()
            for article_id, keys in self.db.conn.execute(
                "SELECT article_id, keys FROM sketch_band_log ORDER BY article_id"
            ):
                articles.add(article_id)
                for key in dict.fromkeys(json.loads(keys)):
                    bands.setdefault(key, []).append(article_id)
            self._recent_bands, self._recent_articles = bands, articles
        return self._recent_bands

    def _forget_recent(self, article_id: int) -> None:
        row = self.db.conn.execute(
            "SELECT keys FROM sketch_band_log WHERE article_id = ?", [article_id]
        ).fetchone()
        if row is None:
            return
        self.db.conn.execute("DELETE FROM sketch_band_log WHERE article_id = ?", [article_id])
        recent = self._recent()
        for key in dict.fromkeys(json.loads(row[0])):
            ids = recent.get(key, [])
            if article_id in ids:
                ids.remove(article_id)
        self._recent_articles.discard(article_id)

    def start_story(self, article_id: int, now: datetime) -> int:
        """A new story led by this article."""
        story_id = self.db.execute(
            "INSERT INTO stories (lead_article_id, articles, first_seen, last_seen) "
            "VALUES (?, 1, ?, ?)",
            [article_id, iso(now), iso(now)],
        ).lastrowid
        self.db.execute("UPDATE articles SET story_id = ? WHERE id = ?", [story_id, article_id])
        return story_id  # type: ignore[return-value]

    def join_story(self, article_id: int, story_id: int, now: datetime) -> None:
        self.db.execute("UPDATE articles SET story_id = ? WHERE id = ?", [story_id, article_id])
        self.db.execute(
            "UPDATE stories SET articles = articles + 1, last_seen = ? WHERE id = ?",
            [iso(now), story_id],
        )

    def story(self, story_id: int) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM stories WHERE id = ?", [story_id]))
        return rows[0] if rows else None

    def story_articles(self, story_id: int) -> list[Article]:
        """The story's articles, its lead first, then by first sight."""
        rows = self.db.query(
            ARTICLE_SELECT + " JOIN stories s ON s.id = a.story_id WHERE a.story_id = ? "
            "ORDER BY a.id != s.lead_article_id, a.first_seen, a.id",
            [story_id],
        )
        return [article_from_row(row) for row in rows]

    def _refresh_stories(self, story_ids: Iterable[int]) -> None:
        for story_id in story_ids:
            lead = self.db.execute(
                "SELECT id, (SELECT count(*) FROM articles WHERE story_id = ?) FROM articles "
                "WHERE story_id = ? ORDER BY first_seen, id LIMIT 1",
                [story_id, story_id],
            ).fetchone()
            if lead is None:
                self.db.execute("DELETE FROM stories WHERE id = ?", [story_id])
            else:
                self.db.execute(
                    "UPDATE stories SET lead_article_id = ?, articles = ? WHERE id = ?",
                    [lead[0], lead[1], story_id],
                )
