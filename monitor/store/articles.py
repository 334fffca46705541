"""Articles: stored once per feed and guid or canonical URL, with their revisions and aliases;
only what is new is returned.

Mixed into Store (monitor/store/database.py), whose connection and transaction they use."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlite_utils

from ..identity import fingerprint
from ..records import Article, evolve
from .rows import (
    ARTICLE_SELECT,
    article_columns,
    article_from_row,
    chunks,
    guid_key,
    iso,
    item_keys,
    outlet_name,
    parse_iso,
    url_key,
)
from .stems import StemsAhead, index_stems

_INSERT_ROWS = 50  # articles per INSERT: 900 parameters, under SQLite's 999 before 3.32
_INSERT_REVISION = (
    "INSERT OR REPLACE INTO revisions "
    "(article_id, revision, title, summary, fingerprint, seen, published) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _revision_row(article: Article, now: datetime, published: str | None) -> tuple[Any, ...]:
    a = article
    return (a.id, a.revision, a.title, a.summary[:1000], a.fingerprint, iso(now), published)


class ArticleQueries:
    """Store methods for articles."""

    db: sqlite_utils.Database

    def insert_articles(self, articles: Iterable[Article], now: datetime) -> list[Article]:
        """Insert articles not stored yet; return the new ones with ids (`store_articles`
        without revisions). Call inside a transaction."""
        return [a for a in self.store_articles(articles, now) if a.revision == 1]

    def other_carriers(self, article_id: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The names and tags of the feeds other than its own whose items are copies of this
        article (article_aliases), in the order they first carried it."""
        return self.carriers_of("al.article_id = ?", [article_id]).get(article_id, ((), ()))

    def carriers_of(
        self, where: str = "1", params: Sequence[Any] = ()
    ) -> dict[int, tuple[tuple[str, ...], tuple[str, ...]]]:
        """Article id -> (names, tags) of the other feeds that carry it, for the articles
        `where` selects (all by default) that other feeds carry."""
        found: dict[int, tuple[list[str], list[str]]] = {}
        for article_id, name, feed_tags in self.db.conn.execute(
            "SELECT al.article_id, COALESCE(NULLIF(f.name, ''), f.title, ''), f.tags "
            "FROM article_aliases al JOIN articles a ON a.id = al.article_id "
            "JOIN feeds f ON f.id = al.feed_id "
            f"WHERE al.feed_id != a.feed_id AND {where} ORDER BY al.first_seen, f.id",
            params,
        ):
            names, tags = found.setdefault(article_id, ([], []))
            names.append(name)
            tags.extend(json.loads(feed_tags or "[]"))
        return {
            article_id: (tuple(dict.fromkeys(names)), tuple(dict.fromkeys(tags)))
            for article_id, (names, tags) in found.items()
        }

    def article(self, article_id: int) -> Article | None:
        rows = list(self.db.query(ARTICLE_SELECT + " WHERE a.id = ?", [article_id]))
        return article_from_row(rows[0]) if rows else None

    def article_record(self, article_id: int) -> dict[str, Any] | None:
        """Everything stored about one article, for `vigie articles show`: the article, its
        revisions, the other feeds that carry it, its story's other articles, its matches with
        their evidence, the entities it names and the deliveries that carried it."""
        found = list(
            self.db.query(
                "SELECT a.id, a.title, a.url, f.name, f.title AS feed_title, f.url AS feed_url, "
                "a.feed_id, a.published, a.first_seen, a.revision, a.language, a.story_id, "
                "a.full_text_error, a.summary, a.content FROM articles a "
                "JOIN feeds f ON f.id = a.feed_id "
                "WHERE a.id = ?",
                [article_id],
            )
        )
        if not found:
            return None
        row = found[0]
        outlet = outlet_name(row.pop("name"), row.pop("feed_title"), row.pop("feed_url"))
        record = {"id": row.pop("id"), "title": row.pop("title"), "url": row.pop("url")}
        record.update(feed=outlet, **row)
        query = self.db.query
        record["revisions"] = list(
            query(
                "SELECT revision, title, seen FROM revisions WHERE article_id = ? "
                "ORDER BY revision",
                [article_id],
            )
        )
        record["carried_by"] = [
            {"feed": outlet_name(name, title, url), "guid": guid, "first_seen": first_seen}
            for name, title, url, guid, first_seen in self.db.execute(
                "SELECT f.name, f.title, f.url, al.guid, al.first_seen "
                "FROM article_aliases al JOIN feeds f ON f.id = al.feed_id "
                "WHERE al.article_id = ? AND al.feed_id != ? ORDER BY al.first_seen",
                [article_id, record["feed_id"]],
            )
        ]
        record["story"] = [
            {"id": other_id, "title": title, "feed": outlet_name(name, feed_title, url)}
            for other_id, title, name, feed_title, url in self.db.execute(
                "SELECT a.id, a.title, f.name, f.title, f.url "
                "FROM articles a JOIN feeds f ON f.id = a.feed_id "
                "WHERE a.story_id = ? AND a.id != ? ORDER BY a.id",
                [record["story_id"], article_id],
            )
        ]
        matches = list(
            query(
                "SELECT rule_id, tags, priority, score, matched_at, revision, "
                "evidence_revision, withdrawn_revision, backlog, snippet, evidence "
                "FROM matches WHERE article_id = ? ORDER BY score DESC, rule_id",
                [article_id],
            )
        )
        for match in matches:
            match["tags"] = json.loads(match["tags"] or "[]")
            match["evidence"] = json.loads(match["evidence"] or "[]")
            match["backlog"] = bool(match["backlog"])
        record["matches"] = matches
        record["mentions"] = dict(
            self.db.execute(
                "SELECT entity_id, count(*) FROM mentions WHERE article_id = ? "
                "GROUP BY entity_id ORDER BY count(*) DESC, entity_id",
                [article_id],
            ).fetchall()
        )
        record["deliveries"] = [
            {**row, "rules": json.loads(row["rules"])}  # a list, as everywhere else
            for row in query(
                "SELECT d.id, d.kind, d.target, d.status, d.created, d.sent, d.last_error, "
                "COALESCE(d.event, '') AS event, "
                "json_group_array(dm.rule_id) AS rules "
                "FROM delivery_matches dm JOIN deliveries d ON d.id = dm.delivery_id "
                "WHERE dm.article_id = ? GROUP BY d.id ORDER BY d.id",
                [article_id],
            )
        ]
        return record

    def articles_since(self, since: datetime | None, limit: int | None = None) -> Iterator[Article]:
        sql = ARTICLE_SELECT + (" WHERE a.first_seen >= ?" if since else "") + " ORDER BY a.id"
        params: list[Any] = [iso(since)] if since else []
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        for row in self.db.query(sql, params):
            yield article_from_row(row)

    def oldest_first_seen(self) -> datetime | None:
        """When the oldest article kept was stored: how far back the database reaches."""
        return parse_iso(self.db.execute("SELECT min(first_seen) FROM articles").fetchone()[0])

    def newest_first_seen(self) -> datetime | None:
        """When the last new article was stored (None before the first)."""
        return parse_iso(self.db.execute("SELECT max(first_seen) FROM articles").fetchone()[0])

    def recent_articles(self, limit: int) -> list[Article]:
        """The `limit` most recently stored articles, newest first."""
        rows = self.db.query(ARTICLE_SELECT + " ORDER BY a.id DESC LIMIT ?", [limit])
        return [article_from_row(row) for row in rows]

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

    def store_articles(
        self,
        articles: Iterable[Article],
        now: datetime,
        aliased: list[tuple[int, Article]] | None = None,
        stems: StemsAhead | None = None,
    ) -> list[Article]:
        """Store one feed's items; return only what is new: articles never seen (revision 1)
        and new revisions of stored ones (revision > 1), with id, revision and story_id set.

        An item is a stored article when its feed and guid are known, when another feed's item
        already has its canonical URL (it becomes an alias of that article), or when it was
        pruned (a tombstone remains). A known item whose feed changed its title or text
        (fingerprint) becomes the article's next revision; another feed's copy never revises
        it. Call inside the feed's transaction. `aliased`, when given, receives (article id,
        item) for each item that became another feed's copy of a stored article (the rules
        scoped to that feed have yet to see it). `stems` are the stems index's values of
        items, when worked out ahead (stems.StemsAhead); the others' are worked out here.

        Whether each item is known is asked in a few queries for the whole batch; an item that
        none of them knows, and that shares neither guid nor canonical URL with an earlier item
        of the batch, is inserted with the others like it in one statement, the others looked
        up one by one (after inserting those before them)."""
        articles = list(articles)
        known = self._knownitem_keys(articles)
        done: set[str] = set()  # the keys of the items handled so far in this batch
        out: list[Article] = []
        unknown: list[Article] = []  # waiting to be inserted together
        for article in articles:
            keys = item_keys(article)
            if keys.isdisjoint(known) and keys.isdisjoint(done):
                unknown.append(article)
            else:
                out += self._insert_articles(unknown, now, stems)
                unknown = []
                stored = self._store_article(article, now, aliased, stems)
                if stored is not None:
                    out.append(stored)
            done |= keys
        return out + self._insert_articles(unknown, now, stems)

    def _knownitem_keys(self, articles: Sequence[Article]) -> set[str]:
        """Which guid keys (`guid:feed:guid`) and URL keys (`url:canonical`) of these items the
        database knows: stored articles, aliases and tombstones."""
        known: set[str] = set()
        by_feed: dict[int, list[str]] = {}
        for article in articles:
            by_feed.setdefault(article.feed_id, []).append(article.guid)
        for feed_id, guids in by_feed.items():
            for table in ("articles", "article_aliases"):
                for chunk in chunks(guids):
                    rows = self.db.conn.execute(
                        f"SELECT guid FROM {table} WHERE feed_id = ? "
                        f"AND guid IN ({','.join('?' * len(chunk))})",
                        [feed_id, *chunk],
                    )
                    known.update(guid_key(feed_id, guid) for (guid,) in rows)
        urls = [a.canonical_url for a in articles if a.canonical_url]
        for chunk in chunks(urls):
            rows = self.db.conn.execute(
                "SELECT canonical_url FROM articles "
                f"WHERE canonical_url IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            known.update(url_key(url) for (url,) in rows)
        keys = [key for a in articles for key in item_keys(a)]
        for chunk in chunks(keys):
            rows = self.db.conn.execute(
                f"SELECT key FROM tombstones WHERE key IN ({','.join('?' * len(chunk))})", chunk
            )
            known.update(key for (key,) in rows)
        return known

    def _store_article(
        self,
        article: Article,
        now: datetime,
        aliased: list[tuple[int, Article]] | None = None,
        stems: StemsAhead | None = None,
    ) -> Article | None:
        row = self._article_by_guid(article.feed_id, article.guid)
        url = article.canonical_url
        if row is not None and url and row["canonical_url"] not in (None, url):
            # A guid the feed gave several items once (identity.distinct_guids) is bare again
            # now that only one carries it: that item was stored under "guid URL", and the bare
            # guid is another item's. Only asked when the URLs differ, which is rare.
            row = self._article_by_guid(article.feed_id, f"{article.guid} {url}") or row
        if row is None and article.canonical_url:
            row = self._article_row("canonical_url = ?", [article.canonical_url])
            if row is not None:
                added = self.db.conn.execute(
                    "INSERT OR IGNORE INTO article_aliases "
                    "(feed_id, guid, article_id, fingerprint, first_seen) VALUES (?, ?, ?, ?, ?)",
                    [article.feed_id, article.guid, row["id"], article.fingerprint, iso(now)],
                ).rowcount
                if added and aliased is not None and row["feed_id"] != article.feed_id:
                    aliased.append((row["id"], article))
        if row is None:
            if self._tombstoned(article):
                return None
            return self._insert_articles([article], now, stems)[0]
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
        if row["fingerprint"] == _decomposed_fingerprint(article):
            # Stored before text was composed (text.normalise_space): the same words, not a
            # revision; the stored text takes the composed form that search and rules expect.
            values = article_columns(article)
            self.db.execute(
                f"UPDATE articles SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                [*values.values(), row["id"]],
            )
            index_stems(self.db.conn, [evolve(article, id=row["id"])])
            return None
        return self._revise(row, article, now, stems)

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
                "SELECT id, feed_id, fingerprint, revision, story_id, canonical_url, published "
                f"FROM articles WHERE {where}",
                params,
            )
        )
        return rows[0] if rows else None

    def _tombstoned(self, article: Article) -> bool:
        keys = [guid_key(article.feed_id, article.guid)]
        if article.canonical_url:
            keys.append(url_key(article.canonical_url))
        return (
            self.db.execute(
                f"SELECT 1 FROM tombstones WHERE key IN ({','.join('?' * len(keys))})", keys
            ).fetchone()
            is not None
        )

    def _insert_articles(
        self, articles: list[Article], now: datetime, stems: StemsAhead | None = None
    ) -> list[Article]:
        """Insert articles new to the database, of distinct guids, as revision 1; returns them
        stored, in the same order. One statement for many rows, not one each: the full-text
        index's trigger runs inside a statement's savepoint, at which FTS5 writes what it holds
        as a segment, so one INSERT per row made a segment per article, merged again soon
        after: store_articles took 300 µs an article of feeds of 16 new items, 190 to 240 now."""
        stored: list[Article] = []
        for chunk in chunks(articles, _INSERT_ROWS):
            # Ids written out (RETURNING needs SQLite 3.35): the feed's transaction holds the
            # write lock.
            first = self.next_id("articles")
            numbered = [
                evolve(a, id=first + n, revision=1, story_id=None, first_seen=now)
                for n, a in enumerate(chunk)
            ]
            rows = [
                {
                    "id": a.id,
                    **article_columns(a),
                    "feed_id": a.feed_id,
                    "guid": a.guid,
                    "canonical_url": a.canonical_url or None,
                    "revision": 1,
                    "first_seen": iso(now),
                }
                for a in numbered
            ]
            columns = ", ".join(rows[0])
            values = ", ".join([f"({', '.join('?' * len(rows[0]))})"] * len(rows))
            self.db.conn.execute(
                f"INSERT INTO articles ({columns}) VALUES {values}",
                [value for row in rows for value in row.values()],
            )
            stored += numbered
        index_stems(self.db.conn, stored, new=True, ahead=stems)
        self.db.conn.executemany(
            _INSERT_REVISION,
            (_revision_row(a, now, iso(a.published) if a.published else None) for a in stored),
        )
        return stored

    def _revise(
        self,
        row: dict[str, Any],
        article: Article,
        now: datetime,
        stems: StemsAhead | None = None,
    ) -> Article:
        revision = (row["revision"] or 1) + 1
        values = {**article_columns(article), "revision": revision}
        if article.published == now:
            # Undated (parse gave it this cycle's time): it keeps the time first seen, rather
            # than take each revision's as a publication date.
            del values["published"]
        # The date this revision came with, kept with it: an outlet that moves its date when
        # it edits the article (the BBC does) left no trace of when it first published it.
        published = values.get("published", row["published"])
        self.db.execute(
            f"UPDATE articles SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
            [*values.values(), row["id"]],
        )
        self.db.execute(  # when the feed re-issued the item under another guid
            "UPDATE article_aliases SET fingerprint = ? WHERE feed_id = ? AND guid = ?",
            [article.fingerprint, article.feed_id, article.guid],
        )
        stored = evolve(
            article,
            id=row["id"],
            revision=revision,
            story_id=row["story_id"],
            canonical_url=row["canonical_url"] or "",
        )
        self.db.conn.execute(_INSERT_REVISION, _revision_row(stored, now, published))
        index_stems(self.db.conn, [stored], ahead=stems)
        return stored

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


def _decomposed_fingerprint(article: Article) -> str | None:
    """The fingerprint the article's text had when Vigie stored accents as it received them,
    decomposed (e and a combining accent); None for text without any accent to decompose."""
    parts = (article.title, article.summary, article.content)
    if all(part.isascii() for part in parts):
        return None
    return fingerprint(*(unicodedata.normalize("NFD", part) for part in parts))
