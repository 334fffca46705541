"""The only module that speaks SQL: schema, migrations, batched writes and queries.

SQLite runs in WAL mode with synchronous=NORMAL: a committed transaction survives a crash of the
process (SIGKILL included); after a power cut the last transactions before the crash may be lost,
never half-applied. Each poll of a feed is one transaction: articles, matches and feed state commit
together or not at all.

Storage returns only what is new: callers never ask "have I seen this?".
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from .records import Article, Evidence, Feed, Match
from .text import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN

migrations = Migrations("vigie")


@migrations()
def m001_feeds_and_articles(db: sqlite_utils.Database) -> None:
    db["feeds"].create(
        {
            "id": int,
            "url": str,
            "name": str,
            "title": str,
            "tags": str,
            "interval": float,
            "language": str,
            "source": str,
            "etag": str,
            "last_modified": str,
            "body_hash": str,
            "last_status": int,
            "last_error": str,
            "error_count": int,
            "last_polled": str,
            "last_success": str,
            "next_poll": str,
            "items": int,
            "added": str,
        },
        pk="id",
        not_null={"url"},
        defaults={"error_count": 0, "items": 0, "tags": "[]"},
    )
    db["feeds"].create_index(["url"], unique=True)
    db["articles"].create(
        {
            "id": int,
            "feed_id": int,
            "guid": str,
            "url": str,
            "title": str,
            "summary": str,
            "content": str,
            "content_html": str,
            "published": str,
            "updated": str,
            "authors": str,
            "language": str,
            "categories": str,
            "first_seen": str,
        },
        pk="id",
        foreign_keys=[("feed_id", "feeds", "id")],
    )
    db["articles"].create_index(["feed_id", "guid"], unique=True)
    db["articles"].create_index(["published"])
    db["articles"].enable_fts(
        ["title", "summary", "content"],
        create_triggers=True,
        tokenize="unicode61 remove_diacritics 2",
    )


@migrations()
def m002_matches_and_mentions(db: sqlite_utils.Database) -> None:
    db["matches"].create(
        {
            "article_id": int,
            "rule_id": str,
            "score": float,
            "evidence": str,
            "snippet": str,
            "tags": str,
            "priority": str,
            "matched_at": str,
        },
        pk=("article_id", "rule_id"),
        foreign_keys=[("article_id", "articles", "id")],
    )
    db["matches"].create_index(["rule_id"])
    db["mentions"].create(
        {
            "article_id": int,
            "entity_id": str,
            "field": str,
            "start": int,
            "end": int,
        },
        foreign_keys=[("article_id", "articles", "id")],
    )
    db["mentions"].create_index(["article_id"])
    db["mentions"].create_index(["entity_id"])


def iso(when: datetime) -> str:
    """Fixed-width UTC timestamps that sort as text."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def parse_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class FeedState:
    """What is written back to a feed after a poll."""

    status: int
    error: str | None
    error_count: int
    next_poll: datetime
    polled: datetime
    url: str | None = None  # a permanent redirect's new URL
    title: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    success: bool = False
    new_items: int = 0


class Store:
    """A Vigie database on disk. Opening it applies any pending migrations."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, used by one thread at a time (the CLI, or the scheduler's single job
        # thread), so it may be created on one thread and used on another.
        self.db = sqlite_utils.Database(sqlite3.connect(self.path, check_same_thread=False))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=5000")
        migrations.apply(self.db)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db.conn:
            yield

    # Feeds -----------------------------------------------------------------------------------

    def upsert_feed(
        self,
        url: str,
        *,
        name: str = "",
        interval: float | None = None,
        tags: Sequence[str] = (),
        language: str = "",
        source: str = "config",
        now: datetime,
    ) -> int:
        """Add a feed, or update its settings; its HTTP state and schedule are kept."""
        row = self.db.execute("SELECT id FROM feeds WHERE url = ?", [url]).fetchone()
        settings = {
            "name": name,
            "interval": interval,
            "tags": json.dumps(list(tags)),
            "language": language,
            "source": source,
        }
        with self.db.conn:
            if row:
                self.db["feeds"].update(row[0], settings)
                return row[0]
            return (
                self.db["feeds"]
                .insert({"url": url, **settings, "added": iso(now), "next_poll": iso(now)})
                .last_pk
            )

    def feeds(self) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM feeds ORDER BY id"))

    def due_feeds(self, now: datetime, default_interval: float) -> list[Feed]:
        rows = self.db.query(
            "SELECT * FROM feeds WHERE next_poll IS NULL OR next_poll <= ? ORDER BY next_poll, id",
            [iso(now)],
        )
        return [self._feed(row, default_interval) for row in rows]

    def feed(self, feed_id: int, default_interval: float) -> Feed:
        return self._feed(self.db["feeds"].get(feed_id), default_interval)

    @staticmethod
    def _feed(row: dict[str, Any], default_interval: float) -> Feed:
        return Feed(
            id=row["id"],
            url=row["url"],
            name=row["name"] or row["title"] or "",
            interval=row["interval"] or default_interval,
            tags=tuple(json.loads(row["tags"] or "[]")),
            language=row["language"] or "",
            etag=row["etag"],
            last_modified=row["last_modified"],
            body_hash=row["body_hash"],
            error_count=row["error_count"] or 0,
        )

    def record_poll(self, feed_id: int, state: FeedState) -> None:
        """Write a feed's poll outcome. Call inside the poll's transaction."""
        values: dict[str, Any] = {
            "last_status": state.status,
            "last_error": state.error,
            "error_count": state.error_count,
            "next_poll": iso(state.next_poll),
            "last_polled": iso(state.polled),
        }
        if state.success:
            values["last_success"] = iso(state.polled)
            for key in ("etag", "last_modified", "body_hash"):
                values[key] = getattr(state, key)
        if state.title:
            values["title"] = state.title
        if state.url:
            clash = self.db.execute(
                "SELECT id FROM feeds WHERE url = ? AND id != ?", [state.url, feed_id]
            ).fetchone()
            if not clash:
                values["url"] = state.url
        self.db["feeds"].update(feed_id, values)
        if state.new_items:
            self.db.execute(
                "UPDATE feeds SET items = items + ? WHERE id = ?", [state.new_items, feed_id]
            )

    # Articles --------------------------------------------------------------------------------

    def insert_articles(self, articles: Iterable[Article], now: datetime) -> list[Article]:
        """Insert articles not stored yet (unique by feed and guid); return the new ones with ids.
        Call inside a transaction."""
        new = []
        for article in articles:
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO articles (feed_id, guid, url, title, summary, content, "
                "content_html, published, updated, authors, language, categories, first_seen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    article.feed_id,
                    article.guid,
                    article.url,
                    article.title,
                    article.summary,
                    article.content,
                    article.content_html,
                    iso(article.published) if article.published else None,
                    iso(article.updated) if article.updated else None,
                    json.dumps(list(article.authors), ensure_ascii=False),
                    article.language,
                    json.dumps(list(article.categories), ensure_ascii=False),
                    iso(now),
                ],
            )
            if cursor.rowcount:
                new.append(_with_id(article, cursor.lastrowid))
        return new

    def article(self, article_id: int) -> Article | None:
        rows = list(self.db.query(_ARTICLE_SELECT + " WHERE a.id = ?", [article_id]))
        return _article(rows[0]) if rows else None

    def articles_since(self, since: datetime | None, limit: int | None = None) -> Iterator[Article]:
        sql = _ARTICLE_SELECT + (" WHERE a.first_seen >= ?" if since else "") + " ORDER BY a.id"
        params: list[Any] = [iso(since)] if since else []
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        for row in self.db.query(sql, params):
            yield _article(row)

    def search_articles(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Full-text search (SQLite FTS5 syntax), best matches first."""
        return list(
            self.db.query(
                "SELECT a.id, a.title, a.url, a.published, f.name AS feed_name, "
                "f.title AS feed_title, "
                f"snippet(articles_fts, -1, '{HIGHLIGHT_OPEN}', '{HIGHLIGHT_CLOSE}', '…', 12) "
                "AS snippet "
                "FROM articles_fts "
                "JOIN articles a ON a.rowid = articles_fts.rowid JOIN feeds f ON f.id = a.feed_id "
                "WHERE articles_fts MATCH ? ORDER BY rank LIMIT ?",
                [query, limit],
            )
        )

    def term_frequencies(self, min_documents: int = 2) -> tuple[dict[str, int], int]:
        """(word -> number of stored articles containing it, number of articles), from the FTS
        index's own vocabulary; the rules' presearcher uses it to pick each rule's rarest words."""
        self.db.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.articles_vocab "
            "USING fts5vocab(main, articles_fts, row)"
        )
        rows = self.db.execute(
            "SELECT term, doc FROM temp.articles_vocab WHERE doc >= ?", [min_documents]
        )
        return dict(rows.fetchall()), self.count("articles")

    def count(self, table: str) -> int:
        return self.db[table].count

    # Matches ---------------------------------------------------------------------------------

    def insert_matches(self, matches: Iterable[Match], now: datetime) -> int:
        """Store matches (one per article and rule); call inside the article's transaction."""
        rows = [_match_row(m, now) for m in matches]
        if rows:
            self.db["matches"].insert_all(rows, replace=True)
        return len(rows)

    def insert_mentions(self, article_id: int, mentions: Iterable[Evidence]) -> None:
        rows = [
            {
                "article_id": article_id,
                "entity_id": e.entity,
                "field": e.field,
                "start": e.start,
                "end": e.end,
            }
            for e in mentions
            if e.entity
        ]
        if rows:
            self.db["mentions"].insert_all(rows)

    def matches_for(
        self, rule_ids: Sequence[str] | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        clauses, params = [], []
        if rule_ids is not None:
            clauses.append(f"m.rule_id IN ({','.join('?' * len(rule_ids))})")
            params.extend(rule_ids)
        if since:
            clauses.append("a.first_seen >= ?")
            params.append(iso(since))
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return list(
            self.db.query(
                "SELECT m.*, a.title, a.url FROM matches m JOIN articles a ON a.id = m.article_id"
                + where
                + " ORDER BY m.article_id",
                params,
            )
        )

    def replace_matches(
        self,
        rule_ids: Sequence[str],
        article_ids: Sequence[int],
        matches: Iterable[Match],
        now: datetime,
    ) -> None:
        """Backtest --apply: these rules' matches over these articles become `matches`."""
        with self.db.conn:
            for start in range(0, len(article_ids), 500):
                chunk = article_ids[start : start + 500]
                self.db.execute(
                    f"DELETE FROM matches WHERE rule_id IN ({','.join('?' * len(rule_ids))}) "
                    f"AND article_id IN ({','.join('?' * len(chunk))})",
                    [*rule_ids, *chunk],
                )
            self.insert_matches(matches, now)


_ARTICLE_SELECT = (
    "SELECT a.*, COALESCE(NULLIF(f.name, ''), f.title, '') AS feed_name FROM articles a "
    "JOIN feeds f ON f.id = a.feed_id"
)


def _article(row: dict[str, Any]) -> Article:
    return Article(
        id=row["id"],
        feed_id=row["feed_id"],
        guid=row["guid"],
        url=row["url"] or "",
        title=row["title"] or "",
        summary=row["summary"] or "",
        content=row["content"] or "",
        content_html=row["content_html"] or "",
        published=parse_iso(row["published"]),
        updated=parse_iso(row["updated"]),
        authors=tuple(json.loads(row["authors"] or "[]")),
        language=row["language"] or "",
        categories=tuple(json.loads(row["categories"] or "[]")),
        feed_name=row.get("feed_name") or "",
    )


def _with_id(article: Article, article_id: int | None) -> Article:
    from dataclasses import replace

    return replace(article, id=article_id)


def _match_row(match: Match, now: datetime) -> dict[str, Any]:
    return {
        "article_id": match.article_id,
        "rule_id": match.rule_id,
        "score": match.score,
        "evidence": json.dumps([e.__dict__ for e in match.evidence], ensure_ascii=False),
        "snippet": match.snippet,
        "tags": json.dumps(list(match.tags)),
        "priority": match.priority,
        "matched_at": iso(now),
    }
