"""The Store: every query and write, in transactions.

SQLite runs in WAL mode with synchronous=NORMAL: a committed transaction survives a crash of the
process (SIGKILL included); after a power cut the last transactions before the crash may be lost,
never half-applied. Each poll of a feed is one transaction: articles, matches and feed state commit
together or not at all.

Storage returns only what is new: callers never ask "have I seen this?".
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from ..records import Article, Delivery, Evidence, Feed, Match
from ..text import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN
from .rows import (
    ARTICLE_SELECT,
    FeedState,
    OutboxItem,
    article_columns,
    article_from_row,
    delivery_from_row,
    iso,
    match_columns,
    outbox_item_from_row,
    parse_iso,
)
from .schema import migrations

WEBHOOK_BATCH_ARTICLES = 100  # a batched webhook's message carries at most this many articles


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
        # 32 MB of page cache instead of SQLite's 2 MB: the indexes a poll looks up (guids,
        # canonical URLs, band keys) stay in memory instead of being read back from the OS.
        self.db.execute("PRAGMA cache_size=-32000")
        migrations.apply(self.db)
        # Band keys of the articles in sketch_band_log (key -> article ids, and the ids), read
        # from that table on first use; None until then, and after anything it may not know of.
        self._recent_bands: dict[int, list[int]] | None = None
        self._recent_articles: set[int] = set()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; nested, a savepoint. Begun IMMEDIATE: the write lock is taken at once
        (waiting up to busy_timeout), so a transaction that reads and then writes cannot fail
        because another connection (the delivery jobs have their own) wrote in between. Not
        `with conn:`, under which sqlite-utils' execute() commits each statement on its own."""
        conn = self.db.conn
        if conn.in_transaction:
            try:
                with self.db.atomic():
                    yield
            except BaseException:
                self._recent_bands = None
                raise
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.rollback()
            self._recent_bands = None  # it may hold what was just rolled back
            raise
        conn.commit()

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
        full_text: bool = False,
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
            "full_text": int(full_text),
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
            full_text=bool(row.get("full_text")),
            seen_items=tuple((d, u) for d, u in json.loads(row.get("seen_items") or "[]")),
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
        if state.seen_items is not None:
            values["seen_items"] = json.dumps(state.seen_items, separators=(",", ":"))
        self.db.conn.execute(
            f"UPDATE feeds SET {', '.join(f'{k} = ?' for k in values)}, items = items + ? "
            "WHERE id = ?",
            [*values.values(), state.new_items, feed_id],
        )

    # Articles --------------------------------------------------------------------------------

    def insert_articles(self, articles: Iterable[Article], now: datetime) -> list[Article]:
        """Insert articles not stored yet; return the new ones with ids (`store_articles`
        without revisions). Call inside a transaction."""
        return [a for a in self.store_articles(articles, now) if a.revision == 1]

    def article(self, article_id: int) -> Article | None:
        rows = list(self.db.query(ARTICLE_SELECT + " WHERE a.id = ?", [article_id]))
        return article_from_row(rows[0]) if rows else None

    def articles_since(self, since: datetime | None, limit: int | None = None) -> Iterator[Article]:
        sql = ARTICLE_SELECT + (" WHERE a.first_seen >= ?" if since else "") + " ORDER BY a.id"
        params: list[Any] = [iso(since)] if since else []
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        for row in self.db.query(sql, params):
            yield article_from_row(row)

    def recent_articles(self, limit: int) -> list[Article]:
        """The `limit` most recently stored articles, newest first."""
        rows = self.db.query(ARTICLE_SELECT + " ORDER BY a.id DESC LIMIT ?", [limit])
        return [article_from_row(row) for row in rows]

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
        rows = [match_columns(m, now) for m in matches]
        if rows:
            self.db["matches"].insert_all(rows, replace=True)
        return len(rows)

    def insert_mentions(self, article_id: int, mentions: Iterable[Evidence]) -> None:
        self.db.conn.executemany(
            "INSERT INTO mentions (article_id, entity_id, field, [start], [end]) "
            "VALUES (?, ?, ?, ?, ?)",
            [(article_id, e.entity, e.field, e.start, e.end) for e in mentions if e.entity],
        )

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

    # Identity: canonical URLs, revisions, stories (docs/identity.md) ------------------------

    def store_articles(self, articles: Iterable[Article], now: datetime) -> list[Article]:
        """Store one feed's items; return only what is new: articles never seen (revision 1)
        and new revisions of stored ones (revision > 1), with id, revision and story_id set.

        An item is a stored article when its feed and guid are known, when another feed's item
        already has its canonical URL (it becomes an alias of that article), or when it was
        pruned (a tombstone remains). A known item whose feed changed its title or text
        (fingerprint) becomes the article's next revision; another feed's copy never revises
        it. Call inside the feed's transaction.

        Whether each item is known is asked in a few queries for the whole batch; an item that
        none of them knows, and that shares neither guid nor canonical URL with an earlier item
        of the batch, is inserted at once, the others looked up one by one."""
        articles = list(articles)
        known = self._known_keys(articles)
        done: set[str] = set()  # the keys of the items handled so far in this batch
        out = []
        for article in articles:
            keys = _keys(article)
            if keys.isdisjoint(known) and keys.isdisjoint(done):
                stored: Article | None = self._insert_article(article, now)
            else:
                stored = self._store_article(article, now)
            done |= keys
            if stored is not None:
                out.append(stored)
        return out

    def _known_keys(self, articles: Sequence[Article]) -> set[str]:
        """Which guid keys (`guid:feed:guid`) and URL keys (`url:canonical`) of these items the
        database knows: stored articles, aliases and tombstones."""
        known: set[str] = set()
        by_feed: dict[int, list[str]] = {}
        for article in articles:
            by_feed.setdefault(article.feed_id, []).append(article.guid)
        for feed_id, guids in by_feed.items():
            for table in ("articles", "article_aliases"):
                for chunk in _chunks(guids):
                    rows = self.db.conn.execute(
                        f"SELECT guid FROM {table} WHERE feed_id = ? "
                        f"AND guid IN ({','.join('?' * len(chunk))})",
                        [feed_id, *chunk],
                    )
                    known.update(_guid_key(feed_id, guid) for (guid,) in rows)
        urls = [a.canonical_url for a in articles if a.canonical_url]
        for chunk in _chunks(urls):
            rows = self.db.conn.execute(
                "SELECT canonical_url FROM articles "
                f"WHERE canonical_url IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            known.update(_url_key(url) for (url,) in rows)
        keys = [key for a in articles for key in _keys(a)]
        for chunk in _chunks(keys):
            rows = self.db.conn.execute(
                f"SELECT key FROM tombstones WHERE key IN ({','.join('?' * len(chunk))})", chunk
            )
            known.update(key for (key,) in rows)
        return known

    def _store_article(self, article: Article, now: datetime) -> Article | None:
        row = self._article_by_guid(article.feed_id, article.guid)
        if row is None and article.canonical_url:
            row = self._article_row("canonical_url = ?", [article.canonical_url])
            if row is not None:
                self.db.execute(
                    "INSERT OR IGNORE INTO article_aliases "
                    "(feed_id, guid, article_id, fingerprint, first_seen) VALUES (?, ?, ?, ?, ?)",
                    [article.feed_id, article.guid, row["id"], article.fingerprint, iso(now)],
                )
        if row is None:
            if self._tombstoned(article):
                return None
            return self._insert_article(article, now)
        if row["feed_id"] != article.feed_id:  # another feed's copy: never a revision
            self.db.execute(
                "UPDATE article_aliases SET fingerprint = ? WHERE feed_id = ? AND guid = ?",
                [article.fingerprint, article.feed_id, article.guid],
            )
            return None
        if not article.fingerprint:
            return None
        if row["fingerprint"] in (None, article.fingerprint):
            if row["fingerprint"] is None:  # stored before fingerprints existed
                self.db.execute(
                    "UPDATE articles SET fingerprint = ? WHERE id = ?",
                    [article.fingerprint, row["id"]],
                )
            return None
        return self._revise(row, article, now)

    def _article_by_guid(self, feed_id: int, guid: str) -> dict[str, Any] | None:
        row = self._article_row("feed_id = ? AND guid = ?", [feed_id, guid])
        if row is not None:
            return row
        alias = self.db.execute(
            "SELECT article_id, fingerprint FROM article_aliases WHERE feed_id = ? AND guid = ?",
            [feed_id, guid],
        ).fetchone()
        if alias is None:
            return None
        row = self._article_row("id = ?", [alias[0]])
        if row is not None and row["feed_id"] != feed_id:
            row["fingerprint"] = alias[1]  # compare the alias with itself, never the original
        return row

    def _article_row(self, where: str, params: Sequence[Any]) -> dict[str, Any] | None:
        rows = list(
            self.db.query(
                "SELECT id, feed_id, fingerprint, revision, story_id, canonical_url "
                f"FROM articles WHERE {where}",
                params,
            )
        )
        return rows[0] if rows else None

    def _tombstoned(self, article: Article) -> bool:
        keys = [_guid_key(article.feed_id, article.guid)]
        if article.canonical_url:
            keys.append(_url_key(article.canonical_url))
        return (
            self.db.execute(
                f"SELECT 1 FROM tombstones WHERE key IN ({','.join('?' * len(keys))})", keys
            ).fetchone()
            is not None
        )

    def _insert_article(self, article: Article, now: datetime) -> Article:
        values = {
            **article_columns(article),
            "feed_id": article.feed_id,
            "guid": article.guid,
            "canonical_url": article.canonical_url or None,
            "revision": 1,
            "first_seen": iso(now),
        }
        cursor = self.db.execute(
            f"INSERT INTO articles ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
            list(values.values()),
        )
        stored = replace(article, id=cursor.lastrowid, revision=1, story_id=None)
        self._record_revision(stored, now)
        return stored

    def _revise(self, row: dict[str, Any], article: Article, now: datetime) -> Article:
        revision = (row["revision"] or 1) + 1
        values = {**article_columns(article), "revision": revision}
        self.db.execute(
            f"UPDATE articles SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
            [*values.values(), row["id"]],
        )
        self.db.execute(  # when the feed re-issued the item under another guid
            "UPDATE article_aliases SET fingerprint = ? WHERE feed_id = ? AND guid = ?",
            [article.fingerprint, article.feed_id, article.guid],
        )
        stored = replace(
            article,
            id=row["id"],
            revision=revision,
            story_id=row["story_id"],
            canonical_url=row["canonical_url"] or "",
        )
        self._record_revision(stored, now)
        return stored

    def _record_revision(self, article: Article, now: datetime) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO revisions (article_id, revision, title, summary, "
            "fingerprint, seen) VALUES (?, ?, ?, ?, ?, ?)",
            [
                article.id,
                article.revision,
                article.title,
                article.summary[:1000],
                article.fingerprint,
                iso(now),
            ],
        )

    def revisions(self, article_id: int) -> list[dict[str, Any]]:
        """Each revision's headline, summary and when it was seen, oldest first."""
        return list(
            self.db.query(
                "SELECT * FROM revisions WHERE article_id = ? ORDER BY revision", [article_id]
            )
        )

    def aliases(self, article_id: int) -> list[dict[str, Any]]:
        """Other feeds' items that are this article (same canonical URL)."""
        return list(
            self.db.query(
                "SELECT feed_id, guid, first_seen FROM article_aliases WHERE article_id = ? "
                "ORDER BY first_seen, feed_id",
                [article_id],
            )
        )

    def item_fingerprints(self, feed_id: int) -> dict[str, str | None]:
        """guid -> fingerprint of every item of this feed already stored (None for pruned
        ones): what a worker needs to fetch pages for new or changed items only."""
        known: dict[str, str | None] = {}
        for sql in (
            "SELECT guid, fingerprint FROM articles WHERE feed_id = ?",
            "SELECT guid, fingerprint FROM article_aliases WHERE feed_id = ?",
        ):
            known.update(self.db.execute(sql, [feed_id]).fetchall())
        prefix = _guid_key(feed_id, "")
        for (key,) in self.db.execute(
            "SELECT key FROM tombstones WHERE key >= ? AND key < ?", [prefix, prefix + "\uffff"]
        ):
            known[key[len(prefix) :]] = None
        return known

    def record_matches(
        self, article_id: int, revision: int, matches: Iterable[Match], now: datetime
    ) -> list[Match]:
        """Store the matches of one revision of an article; return only the rules that match it
        and matched no earlier revision. A rule that matched before keeps its first match time
        and revision (it was delivered then) with this revision's evidence."""
        before = {
            rule_id
            for (rule_id,) in self.db.execute(
                "SELECT rule_id FROM matches WHERE article_id = ?", [article_id]
            )
        }
        new, updates, inserts = [], [], []
        matched_at = iso(now)
        for match in matches:
            evidence = json.dumps([e.__dict__ for e in match.evidence], ensure_ascii=False)
            tags = json.dumps(list(match.tags))
            if match.rule_id in before:
                updates.append(
                    [match.score, evidence, match.snippet, tags, match.priority]
                    + [article_id, match.rule_id]
                )
            else:
                inserts.append(
                    [article_id, match.rule_id, match.score, evidence, match.snippet, tags]
                    + [match.priority, matched_at, revision]
                )
                if match.article_id != article_id:
                    match = replace(match, article_id=article_id)
                new.append(match)
        self.db.conn.executemany(
            "UPDATE matches SET score = ?, evidence = ?, snippet = ?, tags = ?, "
            "priority = ? WHERE article_id = ? AND rule_id = ?",
            updates,
        )
        self.db.conn.executemany(
            "INSERT INTO matches (article_id, rule_id, score, evidence, snippet, tags, priority, "
            "matched_at, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            inserts,
        )
        return new

    def replace_mentions(self, article_id: int, mentions: Iterable[Evidence]) -> None:
        """The entity mentions of an article's latest revision."""
        self.db.execute("DELETE FROM mentions WHERE article_id = ?", [article_id])
        self.insert_mentions(article_id, mentions)

    # Stories and their LSH index (monitor/stories.py decides; this only stores) -------------

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
        for chunk in _chunks(sorted(ids)):
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

    # Retention -------------------------------------------------------------------------------

    def prune(self, before: datetime, now: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` articles first seen before `before`, with everything that points
        at them (matches, mentions, revisions, aliases, sketches, and any other table with a
        foreign key to articles); FTS follows through its triggers. Each leaves tombstones
        (feed and guid, canonical URL) so that it is not stored again while a feed still
        carries it. Stories lose those members and get the earliest remaining one as lead.
        Returns how many articles were pruned."""
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
            keys = [_guid_key(feed_id, guid) for _, feed_id, guid, _, _ in rows]
            keys += [_url_key(url) for _, _, _, url, _ in rows if url]
            keys += [
                _guid_key(feed_id, guid)
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
            self.db.execute(f"DELETE FROM articles WHERE id IN ({marks})", ids)
            self._refresh_stories({row[4] for row in rows if row[4] is not None})
            self._recent_bands = None  # pruned articles may have had keys in the band log
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

    # Delivery outbox (docs/delivery.md) -----------------------------------------------------------
    # Only this section reads or writes deliveries, delivery_matches, subscribers and endpoints.
    # Writers either commit on their own or say they belong inside the caller's transaction.

    def insert_delivery(
        self, kind: str, target: str, status: str, now: datetime, matches: Iterable[tuple[int, str]]
    ) -> int:
        """A new delivery carrying these (article id, rule id) matches, due now."""
        delivery_id = self.db.execute(
            "INSERT INTO deliveries (kind, target, key, status, attempts, next_attempt, created) "
            "VALUES (?, ?, ?, ?, 0, ?, ?)",
            [kind, target, secrets.token_hex(8), status, iso(now), iso(now)],
        ).lastrowid
        self.db.conn.executemany(
            "INSERT OR IGNORE INTO delivery_matches (delivery_id, article_id, rule_id) "
            "VALUES (?, ?, ?)",
            [(delivery_id, article_id, rule_id) for article_id, rule_id in matches],
        )
        return delivery_id  # type: ignore[return-value]

    def enqueue_webhook(
        self,
        name: str,
        url: str,
        batched: bool,
        article_id: int,
        rule_ids: Sequence[str],
        now: datetime,
    ) -> int | None:
        """Queue one article's matches for a webhook, in the transaction that stored them.

        Per-match webhooks get one delivery per article; batched ones add to their open batch
        (closed by `close_batches`, or when it holds WEBHOOK_BATCH_ARTICLES articles). Returns the
        delivery id, or None while the endpoint at `url` is disabled."""
        if self.disabled_endpoint(name, url):
            return None
        pairs = [(article_id, rule_id) for rule_id in rule_ids]
        if batched:
            row = self.db.execute(
                "SELECT d.id, (SELECT count(DISTINCT article_id) FROM delivery_matches "
                "WHERE delivery_id = d.id) FROM deliveries d "
                "WHERE kind = 'webhook' AND target = ? AND status = 'open'",
                [name],
            ).fetchone()
            if row and row[1] < WEBHOOK_BATCH_ARTICLES:
                self.db.conn.executemany(
                    "INSERT OR IGNORE INTO delivery_matches VALUES (?, ?, ?)",
                    [(row[0], a, r) for a, r in pairs],
                )
                return row[0]
            if row:
                self._set_status(row[0], "pending", now)
        return self.insert_delivery("webhook", name, "open" if batched else "pending", now, pairs)

    def close_batches(self, now: datetime) -> int:
        """Open webhook batches become due now. Returns how many."""
        with self.transaction():
            return self.db.execute(
                "UPDATE deliveries SET status = 'pending', next_attempt = ? "
                "WHERE kind = 'webhook' AND status = 'open'",
                [iso(now)],
            ).rowcount

    def due_deliveries(self, kind: str, now: datetime, limit: int = 100) -> list[Delivery]:
        return self._deliveries(
            "WHERE d.kind = ? AND d.status = 'pending' AND d.next_attempt <= ? "
            "ORDER BY d.next_attempt, d.id LIMIT ?",
            [kind, iso(now), limit],
        )

    def delivery(self, delivery_id: int) -> Delivery | None:
        found = self._deliveries("WHERE d.id = ?", [delivery_id])
        return found[0] if found else None

    def list_deliveries(
        self,
        *,
        kind: str | None = None,
        status: str | None = None,
        target: str | None = None,
        limit: int = 50,
    ) -> list[Delivery]:
        """Newest first."""
        clauses, params = [], []
        for column, value in (("kind", kind), ("status", status), ("target", target)):
            if value:
                clauses.append(f"d.{column} = ?")
                params.append(value)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._deliveries(f"{where} ORDER BY d.id DESC LIMIT ?", [*params, limit])

    def _deliveries(self, tail: str, params: Sequence[Any]) -> list[Delivery]:
        rows = self.db.query(
            "SELECT d.*, (SELECT count(*) FROM delivery_matches WHERE delivery_id = d.id) "
            f"AS items FROM deliveries d {tail}",
            params,
        )
        return [delivery_from_row(row) for row in rows]

    def delivery_items(self, delivery_id: int) -> list[OutboxItem]:
        """The matches a delivery carries, with their articles (and story, once stories exist).
        Matches pruned by retention since the delivery was made are left out."""
        return self._outbox_items(
            "delivery_matches dm JOIN matches m ON m.article_id = dm.article_id "
            "AND m.rule_id = dm.rule_id",
            "dm.delivery_id = ?",
            [delivery_id],
        )

    def items_for(self, matches: Sequence[tuple[int, str]]) -> list[OutboxItem]:
        """Like delivery_items, for (article id, rule id) pairs no delivery carries yet."""
        found = []
        for start in range(0, len(matches), 400):
            chunk = matches[start : start + 400]
            found += self._outbox_items(
                "matches m",
                f"(m.article_id, m.rule_id) IN (VALUES {','.join(['(?, ?)'] * len(chunk))})",
                [value for pair in chunk for value in pair],
            )
        return found

    def _outbox_items(self, source: str, where: str, params: Sequence[Any]) -> list[OutboxItem]:
        rows = self.db.query(
            "SELECT a.*, COALESCE(NULLIF(f.name, ''), f.title, '') AS feed_name, "
            "f.url AS feed_url, m.rule_id, m.score, m.evidence, m.snippet, "
            "m.tags AS match_tags, m.priority, a.story_id AS story_id, "
            f"m.revision AS match_revision FROM {source} "
            "JOIN articles a ON a.id = m.article_id JOIN feeds f ON f.id = a.feed_id "
            f"WHERE {where} ORDER BY a.id, m.rule_id",
            params,
        )
        return [outbox_item_from_row(row) for row in rows]

    def mentions_of(self, article_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        """Entity mentions per article: {article id: {entity id: count}}."""
        found: dict[int, dict[str, int]] = {}
        for start in range(0, len(article_ids), 500):
            chunk = list(article_ids[start : start + 500])
            rows = self.db.execute(
                "SELECT article_id, entity_id, count(*) FROM mentions "
                f"WHERE article_id IN ({','.join('?' * len(chunk))}) "
                "GROUP BY article_id, entity_id ORDER BY article_id, entity_id",
                chunk,
            )
            for article_id, entity_id, count in rows:
                found.setdefault(article_id, {})[entity_id] = count
        return found

    def freeze_payload(self, delivery_id: int, payload: str) -> None:
        """Keep a webhook body before its first attempt, so every attempt sends the same bytes."""
        with self.transaction():
            self.db.execute(
                "UPDATE deliveries SET payload = ? WHERE id = ? AND payload IS NULL",
                [payload, delivery_id],
            )

    def last_delivery_created(self, kind: str, target: str) -> datetime | None:
        row = self.db.execute(
            "SELECT max(created) FROM deliveries WHERE kind = ? AND target = ?", [kind, target]
        ).fetchone()
        return parse_iso(row[0]) if row else None

    def record_attempt(
        self,
        delivery_id: int,
        status: str,
        now: datetime,
        *,
        next_attempt: datetime | None = None,
        last_status: int | None = None,
        last_error: str = "",
        payload: str | None = None,
    ) -> None:
        """The outcome of one attempt, committed at once: `sent` only after the server said so."""
        with self.transaction():
            self.db.execute(
                "UPDATE deliveries SET status = ?, attempts = attempts + 1, next_attempt = ?, "
                "last_status = ?, last_error = ?, sent = CASE WHEN ? = 'sent' THEN ? ELSE sent "
                "END, payload = COALESCE(?, payload) WHERE id = ?",
                [
                    status,
                    iso(next_attempt) if next_attempt else None,
                    last_status,
                    last_error,
                    status,
                    iso(now),
                    payload,
                    delivery_id,
                ],
            )

    def requeue(self, delivery_id: int, now: datetime) -> Delivery | None:
        """An operator's retry: due now, attempts counted afresh, same key; re-enables the
        webhook endpoint it was going to."""
        with self.transaction():
            found = self.delivery(delivery_id)
            if found is None:
                return None
            self._set_status(delivery_id, "pending", now, reset=True)
            if found.kind == "webhook":
                self.db.execute("DELETE FROM endpoints WHERE name = ?", [found.target])
        return self.delivery(delivery_id)

    def requeue_since(
        self, since: datetime, now: datetime, *, target: str | None = None, sent: bool = False
    ) -> list[int]:
        """Failed and dead deliveries created since `since` (sent ones too with sent=True) become
        due now, keeping their keys. Returns their ids."""
        statuses = ("failed", "dead", "sent") if sent else ("failed", "dead")
        sql = (
            "SELECT id FROM deliveries WHERE created >= ? "
            f"AND status IN ({','.join('?' * len(statuses))})"
        )
        params: list[Any] = [iso(since), *statuses]
        if target:
            sql += " AND target = ?"
            params.append(target)
        with self.transaction():
            ids = [row[0] for row in self.db.execute(sql + " ORDER BY id", params)]
            for delivery_id in ids:
                self._set_status(delivery_id, "pending", now, reset=True)
        return ids

    def _set_status(
        self, delivery_id: int, status: str, now: datetime, reset: bool = False
    ) -> None:
        extra = ", attempts = 0, last_error = '', last_status = NULL" if reset else ""
        self.db.execute(
            f"UPDATE deliveries SET status = ?, next_attempt = ?{extra} WHERE id = ?",
            [status, iso(now), delivery_id],
        )

    def prune_deliveries(self) -> int:
        """Forget what retention made pointless: the carried matches of articles that no longer
        exist (ids below the oldest stored article's), then the finished deliveries left carrying
        nothing. Costs an indexed lookup when there is nothing to do. Returns deliveries removed."""
        with self.transaction():
            oldest = self.db.execute("SELECT min(id) FROM articles").fetchone()[0]
            if oldest is None:
                return 0
            touched = [
                row[0]
                for row in self.db.execute(
                    "SELECT DISTINCT delivery_id FROM delivery_matches WHERE article_id < ?",
                    [oldest],
                )
            ]
            if not touched:
                return 0
            self.db.execute("DELETE FROM delivery_matches WHERE article_id < ?", [oldest])
            removed = 0
            for start in range(0, len(touched), 500):
                chunk = touched[start : start + 500]
                removed += self.db.execute(
                    f"DELETE FROM deliveries WHERE id IN ({','.join('?' * len(chunk))}) "
                    "AND status IN ('sent', 'failed', 'dead') AND NOT EXISTS "
                    "(SELECT 1 FROM delivery_matches dm WHERE dm.delivery_id = deliveries.id)",
                    chunk,
                ).rowcount
            return removed

    def disable_endpoint(self, name: str, url: str, reason: str, now: datetime) -> int:
        """Stop sending to a webhook endpoint (it answered 410 Gone) until its URL changes or an
        operator retries one of its deliveries. Its pending deliveries fail. Returns how many."""
        with self.transaction():
            self.db["endpoints"].upsert(
                {"name": name, "url": url, "disabled": iso(now), "reason": reason}, pk="name"
            )
            return self.db.execute(
                "UPDATE deliveries SET status = 'failed', last_error = ? "
                "WHERE kind = 'webhook' AND target = ? AND status IN ('pending', 'open')",
                [f"endpoint disabled: {reason}", name],
            ).rowcount

    def disabled_endpoint(self, name: str, url: str) -> str | None:
        """Why the endpoint at `url` is disabled, or None when it is not."""
        row = self.db.execute(
            "SELECT reason FROM endpoints WHERE name = ? AND url = ? AND disabled IS NOT NULL",
            [name, url],
        ).fetchone()
        return row[0] if row else None

    def subscriber_state(self, name: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM subscribers WHERE name = ?", [name]))
        return rows[0] if rows else None

    def save_subscriber(self, state: dict[str, Any]) -> None:
        """Insert or replace a subscriber's row (name, since, filter, schedule, next_due, token)."""
        self.db["subscribers"].upsert(state, pk="name")

    def set_next_due(self, name: str, next_due: datetime | None) -> None:
        self.db.execute(
            "UPDATE subscribers SET next_due = ? WHERE name = ?",
            [iso(next_due) if next_due else None, name],
        )

    def undelivered_matches(
        self,
        name: str,
        since: datetime,
        rule_ids: Sequence[str],
        tags: Sequence[str],
        priorities: Sequence[str],
    ) -> list[tuple[int, str]]:
        """(article id, rule id) of matches made since `since` that this subscriber follows (by
        rule or tag, at these priorities) and that no digest of theirs carries yet."""
        # Only the ways the subscriber follows are asked: by rules alone, the rule_id index
        # answers, instead of every match since `since` being read and its tags unpacked.
        follows = []
        if rule_ids:
            follows.append(f"m.rule_id IN ({','.join('?' * len(rule_ids))})")
        if tags:
            follows.append(
                "EXISTS (SELECT 1 FROM json_each(m.tags) t "
                f"WHERE t.value IN ({','.join('?' * len(tags))}))"
            )
        if not follows:
            return []
        rows = self.db.execute(
            "SELECT m.article_id, m.rule_id FROM matches m WHERE m.matched_at >= ? "
            f"AND m.priority IN ({','.join('?' * len(priorities))}) "
            f"AND ({' OR '.join(follows)}) "
            "AND NOT EXISTS (SELECT 1 FROM delivery_matches dm "
            "JOIN deliveries d ON d.id = dm.delivery_id WHERE d.kind = 'digest' "
            "AND d.target = ? AND dm.article_id = m.article_id AND dm.rule_id = m.rule_id) "
            "ORDER BY m.matched_at, m.article_id, m.rule_id",
            [iso(since), *priorities, *rule_ids, *tags, name],
        )
        return [(row[0], row[1]) for row in rows]


def _guid_key(feed_id: int, guid: str) -> str:
    return f"guid:{feed_id}:{guid}"


def _url_key(canonical_url: str) -> str:
    return f"url:{canonical_url}"


def _keys(article: Article) -> set[str]:
    """The keys by which an item may be known: its feed and guid, and its canonical URL."""
    keys = {_guid_key(article.feed_id, article.guid)}
    if article.canonical_url:
        keys.add(_url_key(article.canonical_url))
    return keys


def _chunks(values: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    """Pieces of at most `size` values, under SQLite's limit on parameters per statement."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
