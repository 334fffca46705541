"""Feeds: what to poll, and what a poll wrote back.

Mixed into Store (monitor/store/database.py), whose connection and transaction they use."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from ..config import lower_scheme_and_host
from ..records import Feed
from .rows import (
    FeedState,
    guid_key,
    iso,
    parse_iso,
)


@dataclass(frozen=True)
class FeedAdded:
    """What FeedQueries.add_feed did: the feed's id, whether it is new or back from retirement,
    and each setting it changed on a feed already stored (name: (before, after))."""

    id: int
    created: bool
    revived: bool
    changes: dict[str, tuple[Any, Any]]


def _sooner_poll(
    row: dict[str, Any], interval: float | None, old: float | None, now: datetime
) -> dict[str, str]:
    """The next poll of a stored feed whose interval becomes `interval` (from `old`; None when
    unknown): when shorter, no later than its last poll plus the new interval, now if that is
    past, and never before the server's Retry-After. Kept, `feeds add --interval 1m` said
    "changed" and the feed waited the old 30 minutes. A longer interval keeps the next poll,
    at most the old interval away. {} when the next poll stays."""
    if interval is None or (old is not None and interval >= old):
        return {}
    last = parse_iso(row["last_polled"])
    due = now if last is None else max(now, last + timedelta(seconds=interval))
    asked = parse_iso(row.get("asked_until"))
    if asked is not None:
        due = max(due, asked)
    stored = parse_iso(row["next_poll"])
    return {"next_poll": iso(due)} if stored is None or due < stored else {}


class FeedQueries:
    """Store methods for feeds."""

    def follow_default_interval(self, latest: float, now: datetime) -> int:
        """Bring forward the next poll of healthy feeds without an interval of their own to no
        later than `latest` seconds after their last poll (polling.interval and its slot's
        margin), and no sooner than now or a server's Retry-After: a polling.interval shortened
        in config.toml, from 2 hours to 10 minutes, left them due up to 2 hours on, as feeds
        list showed (a review). A no-op while the interval stays: a slot is within the margin.
        Returns how many moved."""
        with self.transaction():
            return self.db.execute(
                "UPDATE feeds SET next_poll = max(?, strftime('%Y-%m-%dT%H:%M:%S+00:00', "
                "last_polled, ?), coalesce(asked_until, '')) "
                "WHERE interval IS NULL AND retired IS NULL AND error_count = 0 "
                "AND last_polled IS NOT NULL AND next_poll > strftime('%Y-%m-%dT%H:%M:%S+00:00', "
                "last_polled, ?)",
                [iso(now), f"+{latest:.0f} seconds", f"+{latest:.0f} seconds"],
            ).rowcount

    db: sqlite_utils.Database

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
        default_interval: float | None = None,
        now: datetime,
    ) -> int:
        """Add a feed, or update its settings; its HTTP state and schedule are kept, but a
        shorter interval brings the next poll forward (_sooner_poll; `default_interval`, the
        polling.interval of a feed with none of its own, tells a shorter one). A feed of
        config.toml (source "config") is found under the URL written there even after a
        permanent redirect moved it, and is polled again if it had been retired."""
        url = lower_scheme_and_host(url)
        rows = self._feeds_at(url, "url")
        if not rows and source == "config":
            rows = self._feeds_at(url, "config_url")
        settings = {
            "name": name,
            "interval": interval,
            "tags": json.dumps(list(tags)),
            "language": language,
            "source": source,
            "full_text": int(full_text),
            "retired": None,
            "config_url": url if source == "config" else None,
        }
        with self.db.conn:
            if rows:
                row = rows[0]
                if row["interval"] != interval:
                    old = row["interval"] or default_interval
                    settings |= _sooner_poll(row, interval or default_interval, old, now)
                self.db["feeds"].update(row["id"], settings)
                return row["id"]
            added_url = None if source == "config" else url
            return (
                self.db["feeds"]
                .insert(
                    {
                        "url": url,
                        **settings,
                        "added_url": added_url,
                        "added": iso(now),
                        "next_poll": iso(now),
                    }
                )
                .last_pk
            )

    def add_feed(
        self,
        url: str,
        *,
        name: str | None = None,
        interval: float | None = None,
        tags: Sequence[str] | None = None,
        language: str | None = None,
        full_text: bool | None = None,
        source: str,
        default_interval: float | None = None,
        now: datetime,
    ) -> FeedAdded:
        """Add a feed from the command line or an OPML file. A feed already stored keeps every
        setting not given (None) and its source; one that was retired comes back, as this
        source's; a shorter interval brings its next poll forward (as upsert_feed's). Says
        what changed."""
        row = self.find_feed(url)
        if row is None:
            feed_id = self.upsert_feed(
                url,
                name=name or "",
                interval=interval,
                tags=tags or (),
                language=language or "",
                full_text=bool(full_text),
                source=source,
                now=now,
            )
            return FeedAdded(feed_id, created=True, revived=False, changes={})
        given = {
            "name": name,
            "interval": interval,
            "tags": None if tags is None else list(tags),
            "language": language,
            "full_text": full_text,
        }
        stored = {
            **row,
            "tags": json.loads(row["tags"] or "[]"),
            "full_text": bool(row["full_text"]),
            "language": row["language"] or "",
        }
        changes = {
            key: (stored[key], value)
            for key, value in given.items()
            if value is not None and stored[key] != value
        }
        values: dict[str, Any] = {
            key: json.dumps(new) if key == "tags" else new for key, (_, new) in changes.items()
        }
        if "interval" in changes:
            old = row["interval"] or default_interval
            values |= _sooner_poll(row, interval, old, now)
        revived = row["retired"] is not None
        if revived:
            values.update(retired=None, source=source)
        if values:
            with self.db.conn:
                self.db["feeds"].update(row["id"], values)
        return FeedAdded(row["id"], created=False, revived=revived, changes=changes)

    def find_feed(self, url: str) -> dict[str, Any] | None:
        """The stored feed at this address, retired or not, or added or listed in config.toml
        under it before a permanent redirect moved it. The scheme and host may differ in case
        (_feeds_at)."""
        found = self._feeds_at(url, "url") or self._feeds_at(url, "added_url", "config_url")
        return found[0] if found else None

    def _feeds_at(self, url: str, *columns: str) -> list[dict[str, Any]]:
        """The stored feeds with this address in one of `columns`, its scheme and host in any
        case: one feed, whose rows stored before addresses were lower-cased
        (lower_scheme_and_host) must still be found. The one written exactly so comes first,
        then the oldest."""
        key = lower_scheme_and_host(url)
        where = " OR ".join(f"lower({column}) = lower(?)" for column in columns)
        rows = self.db.query(f"SELECT * FROM feeds WHERE {where} ORDER BY id", [url] * len(columns))
        same = [
            row
            for row in rows
            if any(row[c] is not None and lower_scheme_and_host(row[c]) == key for c in columns)
        ]
        return sorted(same, key=lambda row: url not in (row[c] for c in columns))

    def retire_config_feeds(self, listed: Collection[str], now: datetime) -> list[str]:
        """Retire the feeds config.toml gave (source "config") that it no longer lists: they
        are not polled nor listed any more, and their articles, matches and deliveries stay;
        listed again (upsert_feed), a feed comes back with its state. Feeds added from the
        command line or an OPML file are left alone. Returns the URLs retired now."""
        rows = self.db.execute(
            "SELECT id, url, config_url FROM feeds WHERE source = 'config' AND retired IS NULL"
        ).fetchall()
        gone = [
            (feed_id, url) for feed_id, url, config_url in rows if (config_url or url) not in listed
        ]
        with self.db.conn:
            self.db.conn.executemany(
                "UPDATE feeds SET retired = ? WHERE id = ?", [(iso(now), i) for i, _ in gone]
            )
        return [url for _, url in gone]

    def feed_row(self, feed_id: int) -> dict[str, Any] | None:
        """The stored feed with this id, retired or not."""
        return next(self.db.query("SELECT * FROM feeds WHERE id = ?", [feed_id]), None)

    def feed_article_count(self, feed_id: int) -> int:
        return self.db.execute(
            "SELECT count(*) FROM articles WHERE feed_id = ?", [feed_id]
        ).fetchone()[0]

    def retire_feed(self, feed_id: int, now: datetime) -> None:
        """Stop polling a feed (`vigie feeds remove`), keeping its articles, matches and
        deliveries, as for a feed config.toml no longer lists; add_feed brings it back."""
        with self.db.conn:
            self.db.conn.execute("UPDATE feeds SET retired = ? WHERE id = ?", [iso(now), feed_id])

    def feeds(self, include_retired: bool = False) -> list[dict[str, Any]]:
        """The feeds polled (with include_retired, also those config.toml no longer lists and
        those `vigie feeds remove` retired)."""
        where = "" if include_retired else "WHERE retired IS NULL "
        return list(self.db.query(f"SELECT * FROM feeds {where}ORDER BY id"))

    def copies_by_feed(self) -> dict[int, int]:
        """Feed id -> how many of its items were copies of articles another feed brought first
        (article_aliases): a feed that only duplicates others stores no article of its own."""
        return dict(
            self.db.execute(
                "SELECT al.feed_id, count(*) FROM article_aliases al "
                "JOIN articles a ON a.id = al.article_id WHERE a.feed_id != al.feed_id "
                "GROUP BY al.feed_id"
            ).fetchall()
        )

    def due_feeds(self, now: datetime, default_interval: float) -> list[Feed]:
        rows = self.db.query(
            "SELECT * FROM feeds WHERE retired IS NULL AND (next_poll IS NULL OR next_poll <= ?) "
            "ORDER BY next_poll, id",
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
            seen_items=_seen_items(row.get("seen_items")),
        )

    def record_poll(self, feed_id: int, state: FeedState) -> None:
        """Write a feed's poll outcome. Call inside the poll's transaction."""
        values: dict[str, Any] = {
            "last_status": state.status,
            "last_error": state.error,
            "error_count": state.error_count,
            "next_poll": iso(state.next_poll),
            "last_polled": iso(state.polled),
            "asked_until": iso(state.asked_until) if state.asked_until else None,
        }
        if state.success:
            values["last_success"] = iso(state.polled)
            for key in ("etag", "last_modified", "body_hash"):
                values[key] = getattr(state, key)
        if state.title:
            values["title"] = state.title
        if state.url:
            clash = any(row["id"] != feed_id for row in self._feeds_at(state.url, "url"))
            if not clash:
                values["url"] = lower_scheme_and_host(state.url)
        if state.seen_items is not None:
            values["seen_items"] = json.dumps(state.seen_items, separators=(",", ":"))
        self.db.conn.execute(
            f"UPDATE feeds SET {', '.join(f'{k} = ?' for k in values)}, items = items + ? "
            "WHERE id = ?",
            [*values.values(), state.new_items, feed_id],
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
        prefix = guid_key(feed_id, "")
        for (key,) in self.db.execute(
            "SELECT key FROM tombstones WHERE key >= ? AND key < ?", [prefix, prefix + "\uffff"]
        ):
            known[key[len(prefix) :]] = None
        return known


def _seen_items(value: str | None) -> tuple[tuple[str, str, str], ...]:
    """A feed's remembered items. Those remembered before guids were (digest and URL only) are
    left out: their items are parsed once more, so that a guid they share with a new item is
    seen (identity.distinct_guids)."""
    items = json.loads(value or "[]")
    return tuple((item[0], item[1], item[2]) for item in items if len(item) == 3)
