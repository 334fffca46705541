"""Stories and their sketches (monitor/stories.py decides; this only stores).

Mixed into Store (monitor/store/database.py), whose connection and transaction they use."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import numpy as np
import sqlite_utils

from ..bands import BandIndex
from ..records import Article
from .rows import (
    ARTICLE_SELECT,
    article_from_row,
    chunks,
    iso,
)


class StoryQueries:
    """Store methods for stories and their sketches."""

    db: sqlite_utils.Database
    story_bands: BandIndex | None

    def sketch_layout(self) -> str | None:
        row = self.db.execute("SELECT layout FROM sketch_layout WHERE id = 1").fetchone()
        return row[0] if row else None

    def reset_sketches(self, layout: str) -> None:
        """Forget every sketch (they were made under another layout); stories are kept."""
        with self.transaction():
            self.db.execute("DELETE FROM sketches")
            self.story_bands = None
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

    def signatures(
        self, since: datetime | None = None, after: int = 0, batch: int = 10_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(article ids, their signatures one per row), `batch` articles at a time, of the
        sketches with a signature made since `since`, or of articles after id `after`."""
        where = "seen >= ?" if since else "article_id > ?"  # through the index of each
        cursor = self.db.conn.execute(
            f"SELECT article_id, signature FROM sketches WHERE {where} AND signature IS NOT NULL",
            [iso(since) if since else after],
        )
        while rows := cursor.fetchmany(batch):
            ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
            blobs = np.frombuffer(b"".join(row[1] for row in rows), dtype="<u4")
            yield ids, blobs.reshape(len(rows), -1).astype(np.uint32)

    def sketched_since(self, since: datetime) -> np.ndarray:
        """The ids of the articles sketched since `since`."""
        rows = self.db.conn.execute(
            "SELECT article_id FROM sketches WHERE seen >= ? AND signature IS NOT NULL",
            [iso(since)],
        )
        return np.fromiter((row[0] for row in rows), dtype=np.int64)

    def story_candidates(
        self, article_ids: Iterable[int], since: datetime, feed_id: int
    ) -> list[tuple[int, int | None, bytes]]:
        """(article id, story id, signature) of those of `article_ids` that other feeds
        published and were sketched since `since`, in id order."""
        found: list[tuple[int, int | None, bytes]] = []
        for chunk in chunks(sorted(article_ids)):
            found += self.db.conn.execute(
                "SELECT s.article_id, a.story_id, s.signature FROM sketches s "
                "JOIN articles a ON a.id = s.article_id WHERE s.seen >= ? AND a.feed_id != ? "
                "AND s.signature IS NOT NULL "
                f"AND s.article_id IN ({','.join('?' * len(chunk))}) ORDER BY s.article_id",
                [iso(since), feed_id, *chunk],
            ).fetchall()
        return found

    def article_texts(self, article_ids: Iterable[int]) -> dict[int, tuple[str, str, str]]:
        """Article id -> (title, summary, content) of those stored."""
        found: dict[int, tuple[str, str, str]] = {}
        for chunk in chunks(sorted(article_ids)):
            for row in self.db.conn.execute(
                "SELECT id, title, summary, content FROM articles "
                f"WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                found[row[0]] = (row[1] or "", row[2] or "", row[3] or "")
        return found

    def earlier_revisions(self, article_id: int) -> list[str]:
        """The headline and summary of each revision of the article before its latest, as the
        table revisions keeps them (the summary's first 1,000 characters), oldest first."""
        rows = self.db.execute(
            "SELECT r.title, r.summary FROM revisions r JOIN articles a ON a.id = r.article_id "
            "WHERE r.article_id = ? AND r.revision < a.revision ORDER BY r.revision",
            [article_id],
        )
        return [f"{title or ''}\n{summary or ''}" for title, summary in rows]

    def save_sketch(self, article_id: int, signature: bytes | None, seen: datetime) -> None:
        """An article's signature (None for a text too short to sketch, so that it is not
        sketched again), replacing any earlier one."""
        self.db.conn.execute(
            "INSERT OR REPLACE INTO sketches (article_id, signature, seen) VALUES (?, ?, ?)",
            [article_id, signature, iso(seen)],
        )

    def start_story(self, article_id: int, now: datetime) -> int:
        """A new story led by this article."""
        story_id = self.next_id("stories")
        self.db.conn.execute(
            "INSERT INTO stories (id, lead_article_id, articles, first_seen, last_seen) "
            "VALUES (?, ?, 1, ?, ?)",
            [story_id, article_id, iso(now), iso(now)],
        )
        self.db.execute("UPDATE articles SET story_id = ? WHERE id = ?", [story_id, article_id])
        return story_id

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
                self.keep_high_water("stories")
                self.db.execute("DELETE FROM stories WHERE id = ?", [story_id])
                self.db.execute("DELETE FROM told_stories WHERE story_id = ?", [story_id])
            else:
                self.db.execute(
                    "UPDATE stories SET lead_article_id = ?, articles = ? WHERE id = ?",
                    [lead[0], lead[1], story_id],
                )
