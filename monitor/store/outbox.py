"""The delivery outbox (docs/delivery.md): the only code that reads or writes deliveries,
delivery_matches, subscribers and endpoints. Writers either commit on their own or say they
belong inside the caller's transaction.

Mixed into Store (monitor/store/database.py), whose connection and transaction they use."""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlite_utils

from ..records import OUTBOX_UNWRITABLE, WITHDRAWN_EVENT, Delivery
from .rows import (
    OutboxItem,
    delivery_from_row,
    iso,
    outbox_item_from_row,
    parse_iso,
)

WEBHOOK_BATCH_ARTICLES = 100  # a batched webhook's message carries at most this many articles

# Whether an earlier delivery to the delivery's target was an article.withdrawn of the match:
# a rule matching again after its withdrawal (its one parameter: WITHDRAWN_EVENT).
_RESTORED = (
    "EXISTS (SELECT 1 FROM delivery_matches wm JOIN deliveries w ON w.id = wm.delivery_id "
    "WHERE wm.article_id = dm.article_id AND wm.rule_id = dm.rule_id AND w.event = ? "
    "AND w.id < dm.delivery_id AND w.target = "
    "(SELECT target FROM deliveries WHERE id = dm.delivery_id)) AS restored, "
)


class OutboxQueries:
    """Store methods for the delivery outbox (docs/delivery.md)."""

    db: sqlite_utils.Database

    def insert_delivery(
        self,
        kind: str,
        target: str,
        status: str,
        now: datetime,
        matches: Iterable[tuple[int, str]],
        url: str | None = None,
        event: str | None = None,
    ) -> int:
        """A new delivery carrying these (article id, rule id) matches, due now; `url`: a
        webhook's endpoint, by which it follows the webhook renamed (follow_renamed_webhooks);
        `event`: a webhook's other than article.matched (records.WITHDRAWN_EVENT)."""
        delivery_id = self.db.execute(
            "INSERT INTO deliveries (kind, target, key, status, attempts, next_attempt, created, "
            "url, event) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)",
            [kind, target, secrets.token_hex(8), status, iso(now), iso(now), url, event],
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
        status = "open" if batched else "pending"
        return self.insert_delivery("webhook", name, status, now, pairs, url)

    def enqueue_withdrawal(
        self, name: str, url: str, article_id: int, rule_ids: Sequence[str], now: datetime
    ) -> int | None:
        """Queue an article.withdrawn event of these rules for a webhook, in the transaction
        that withdrew them: one delivery of its own, batched webhook or not. None while the
        endpoint at `url` is disabled."""
        if self.disabled_endpoint(name, url):
            return None
        pairs = [(article_id, rule_id) for rule_id in rule_ids]
        return self.insert_delivery("webhook", name, "pending", now, pairs, url, WITHDRAWN_EVENT)

    def take_back_unsent(
        self, name: str, article_id: int, rule_ids: Sequence[str], event: str | None
    ) -> None:
        """Take these rules' matches of an article out of the webhook's deliveries of `event`
        (None: article.matched) that nothing was sent of yet (a batch still open, or one whose
        body is not frozen: it would be rendered from the article as it is now, and say the
        opposite of what the revision that queued it said), in the caller's transaction; those
        left carrying nothing go."""
        rows = self.db.execute(
            "SELECT DISTINCT d.id FROM deliveries d JOIN delivery_matches dm "
            "ON dm.delivery_id = d.id WHERE d.kind = 'webhook' AND d.target = ? "
            "AND d.event IS ? AND (d.status = 'open' OR (d.status = 'pending' "
            "AND d.payload IS NULL)) AND dm.article_id = ? "
            f"AND dm.rule_id IN ({','.join('?' * len(rule_ids))})",
            [name, event, article_id, *rule_ids],
        ).fetchall()
        touched = [row[0] for row in rows]
        if not touched:
            return
        self.db.conn.executemany(
            "DELETE FROM delivery_matches WHERE (delivery_id, article_id, rule_id) = (?, ?, ?)",
            [(d, article_id, rule_id) for d in touched for rule_id in rule_ids],
        )
        self.db.execute(
            f"DELETE FROM deliveries WHERE id IN ({','.join('?' * len(touched))}) AND NOT "
            "EXISTS (SELECT 1 FROM delivery_matches dm WHERE dm.delivery_id = deliveries.id)",
            touched,
        )

    def webhooks_told(
        self, article_id: int, rule_ids: Collection[str]
    ) -> dict[str, dict[str, str]]:
        """What each webhook was last told of these rules' matches of an article: webhook ->
        rule -> the event of the newest delivery that carried it ("article.matched" or
        WITHDRAWN_EVENT), leaving out those that failed for good (failed, dead) that the
        consumer cannot have handled: no attempt of theirs reached it, or it refused each
        (`maybe_handled`). One given up after a 500 or a timeout may have been handled, and
        told it as much as one sent."""
        if not rule_ids:
            return {}
        marks = ",".join("?" * len(rule_ids))
        rows = self.db.execute(
            "SELECT d.target, dm.rule_id, COALESCE(d.event, 'article.matched') "
            "FROM delivery_matches dm JOIN deliveries d ON d.id = dm.delivery_id "
            f"WHERE dm.article_id = ? AND dm.rule_id IN ({marks}) AND d.kind = 'webhook' "
            "AND (d.status NOT IN ('failed', 'dead') OR d.maybe_handled) ORDER BY d.id",
            [article_id, *sorted(rule_ids)],
        )
        told: dict[str, dict[str, str]] = {}
        for target, rule_id, event in rows:  # the newest last, and kept
            told.setdefault(target, {})[rule_id] = event
        return told

    def told_otherwise(self, name: str) -> list[tuple[int, str, bool, tuple[str, ...]]]:
        """(article id, rule id, whether the match holds, its tags) of the matches a delivery
        to webhook `name` that counts as told (as webhooks_told counts them) said otherwise
        than holds now: article.matched of one withdrawn since, article.withdrawn of one that
        matches again. Which one the webhook was told last is for webhooks_told to say."""
        rows = self.db.execute(
            "SELECT DISTINCT dm.article_id, dm.rule_id, m.withdrawn_revision IS NULL, m.tags "
            "FROM deliveries d JOIN delivery_matches dm ON dm.delivery_id = d.id "
            "JOIN matches m ON m.article_id = dm.article_id AND m.rule_id = dm.rule_id "
            "WHERE d.kind = 'webhook' AND d.target = ? "
            "AND (d.status NOT IN ('failed', 'dead') OR d.maybe_handled) "
            "AND (m.withdrawn_revision IS NULL) = (d.event IS NOT NULL) "
            "ORDER BY dm.article_id, dm.rule_id",
            [name],
        )
        return [
            (article_id, rule_id, bool(holds), tuple(json.loads(tags or "[]")))
            for article_id, rule_id, holds, tags in rows
        ]

    def carried_matches(
        self, delivery_ids: Sequence[int]
    ) -> list[tuple[str, int, str, bool, tuple[str, ...]]]:
        """(webhook, article id, rule id, whether the match holds, its tags) of each match
        these webhook deliveries carry, as things are now: held, or withdrawn since by a
        correction or a rule edit (those retention pruned are left out)."""
        found = []
        for start in range(0, len(delivery_ids), 500):
            chunk = delivery_ids[start : start + 500]
            rows = self.db.execute(
                "SELECT DISTINCT d.target, dm.article_id, dm.rule_id, "
                "m.withdrawn_revision IS NULL, m.tags FROM delivery_matches dm "
                "JOIN deliveries d ON d.id = dm.delivery_id JOIN matches m "
                "ON m.article_id = dm.article_id AND m.rule_id = dm.rule_id "
                f"WHERE d.kind = 'webhook' AND d.id IN ({','.join('?' * len(chunk))}) "
                "ORDER BY d.target, dm.article_id, dm.rule_id",
                list(chunk),
            )
            for target, article_id, rule_id, holds, tags in rows:
                found.append(
                    (target, article_id, rule_id, bool(holds), tuple(json.loads(tags or "[]")))
                )
        return found

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

    def due_per_target(
        self, kind: str, now: datetime, limit: int = 100, paused: Collection[str] = ()
    ) -> list[Delivery]:
        """Like due_deliveries, but the first `limit` of each target: a consumer with a backlog
        filled the whole batch, and the others' new deliveries waited for it to be sent. The
        `paused` targets' wait (their endpoint asked for a pause)."""
        paused = sorted(paused)
        return self._deliveries(
            "WHERE d.id IN (SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY target "
            "ORDER BY next_attempt, id) AS place FROM deliveries WHERE kind = ? "
            "AND status = 'pending' AND next_attempt <= ? "
            f"AND target NOT IN ({','.join('?' * len(paused))})) WHERE place <= ?) "
            "ORDER BY d.next_attempt, d.id",
            [kind, iso(now), *paused, limit],
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
        """The matches a delivery carries, with their articles (and story, once stories exist),
        each `restored` when an earlier delivery to the same target withdrew it. Matches pruned
        by retention since the delivery was made are left out."""
        return self._outbox_items(
            "delivery_matches dm JOIN matches m ON m.article_id = dm.article_id "
            "AND m.rule_id = dm.rule_id",
            "dm.delivery_id = ?",
            [WITHDRAWN_EVENT, delivery_id],
            _RESTORED,
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

    def _outbox_items(
        self, source: str, where: str, params: Sequence[Any], extra: str = ""
    ) -> list[OutboxItem]:
        rows = self.db.query(
            f"SELECT a.*, {extra}COALESCE(NULLIF(f.name, ''), f.title, '') AS feed_name, "
            "f.url AS feed_url, m.rule_id, m.score, m.evidence, m.snippet, "
            "m.tags AS match_tags, m.priority, a.story_id AS story_id, "
            "m.revision AS match_revision, (SELECT r.title FROM revisions r "
            "WHERE r.article_id = a.id AND r.revision < m.revision "
            f"ORDER BY r.revision DESC LIMIT 1) AS earlier_title FROM {source} "
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

    def freeze_payload(
        self,
        delivery_id: int,
        payload: str,
        left: Sequence[tuple[int, str]] = (),
        now: datetime | None = None,
    ) -> None:
        """Keep a webhook body before its first attempt, so every attempt sends the same bytes;
        the (article id, rule id) matches it `left` out (a batch over its size) move, in the
        same transaction, to a new delivery to the same webhook, due `now`."""
        with self.transaction():
            frozen = self.db.execute(
                "UPDATE deliveries SET payload = ? WHERE id = ? AND payload IS NULL",
                [payload, delivery_id],
            ).rowcount
            if not (frozen and left and now):
                return
            target, url = self.db.execute(
                "SELECT target, url FROM deliveries WHERE id = ?", [delivery_id]
            ).fetchone()
            self.insert_delivery("webhook", target, "pending", now, left, url)
            self.db.conn.executemany(
                "DELETE FROM delivery_matches WHERE delivery_id = ? AND article_id = ? "
                "AND rule_id = ?",
                [(delivery_id, article_id, rule_id) for article_id, rule_id in left],
            )

    def stories_sent_before(
        self, subscriber: str, story_ids: Iterable[str], until: datetime
    ) -> dict[str, datetime]:
        """Story id -> when a digest to `subscriber` that carried one of its articles was first
        sent, for those of `story_ids` a digest sent by `until` carried. A digest made at
        `until` asks with its own creation time, so every attempt at it says the same (one
        still retrying, or given up, sent nothing and counts for none)."""
        ids = sorted({int(s) for s in story_ids})
        found: dict[str, datetime] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self.db.execute(
                "SELECT a.story_id, min(d.sent) FROM delivery_matches dm "
                "JOIN deliveries d ON d.id = dm.delivery_id "
                "JOIN articles a ON a.id = dm.article_id "
                "WHERE d.kind = 'digest' AND d.target = ? AND d.status = 'sent' AND d.sent <= ? "
                f"AND a.story_id IN ({','.join('?' * len(chunk))}) GROUP BY a.story_id "
                # told by digests whose articles retention pruned since
                "UNION ALL SELECT story_id, min(sent) FROM told_stories WHERE target = ? "
                f"AND sent <= ? AND story_id IN ({','.join('?' * len(chunk))}) GROUP BY story_id",
                [subscriber, iso(until), *chunk, subscriber, iso(until), *chunk],
            )
            for story_id, sent in rows:  # both halves: sent, so a time
                first = parse_iso(sent)
                if first and (str(story_id) not in found or first < found[str(story_id)]):
                    found[str(story_id)] = first
        return found

    def last_delivery_created(
        self, kind: str, target: str, before: int | None = None
    ) -> datetime | None:
        """When the target's last delivery of this kind was made; with `before`, its last one
        made before that delivery (ids grow with time)."""
        older = "" if before is None else " AND id < ?"
        row = self.db.execute(
            f"SELECT max(created) FROM deliveries WHERE kind = ? AND target = ?{older}",
            [kind, target, *([] if before is None else [before])],
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
        maybe_handled: bool = False,
    ) -> None:
        """The outcome of one attempt, committed at once: `sent` only after the server said so.
        `maybe_handled`: a webhook consumer may have handled it (webhook.Attempt), which no
        later attempt undoes."""
        with self.transaction():
            self.db.execute(
                "UPDATE deliveries SET status = ?, attempts = attempts + 1, next_attempt = ?, "
                "last_status = ?, last_error = ?, sent = CASE WHEN ? = 'sent' THEN ? ELSE sent "
                "END, payload = COALESCE(?, payload), maybe_handled = CASE WHEN ? THEN 1 "
                "ELSE maybe_handled END WHERE id = ?",
                [
                    status,
                    iso(next_attempt) if next_attempt else None,
                    last_status,
                    last_error,
                    status,
                    iso(now),
                    payload,
                    maybe_handled,
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

    def hasten(self, kind: str, targets: Sequence[str], now: datetime) -> int:
        """Pending deliveries to these targets waiting for a retry become due now (an operator's
        "send now"). Returns how many are pending, due already or made due."""
        if not targets:
            return 0
        marks = ",".join("?" * len(targets))
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE deliveries SET next_attempt = min(next_attempt, ?) "
                f"WHERE kind = ? AND status = 'pending' AND target IN ({marks})",
                [iso(now), kind, *targets],
            )
        return cursor.rowcount

    def requeue_since(
        self,
        since: datetime,
        now: datetime,
        *,
        target: str | None = None,
        sent: bool = False,
        refused: Callable[[Delivery], str | None] | None = None,
    ) -> tuple[list[int], dict[tuple[str, str, str], int]]:
        """Failed and dead deliveries created since `since` (sent ones too with sent=True) become
        due now, keeping their keys, but those `refused` gives a reason not to send (a sent
        one queued for an endpoint disabled, or a webhook gone from config.toml, was
        rewritten as failed). Returns their ids, and (kind, target, reason) -> how many were
        left."""
        statuses = ("failed", "dead", "sent") if sent else ("failed", "dead")
        sql = (
            "SELECT d.* FROM deliveries d WHERE created >= ? "
            f"AND status IN ({','.join('?' * len(statuses))})"
        )
        params: list[Any] = [iso(since), *statuses]
        if target:
            sql += " AND target = ?"
            params.append(target)
        ids, left = [], Counter[tuple[str, str, str]]()
        with self.transaction():
            for row in list(self.db.query(sql + " ORDER BY id", params)):
                delivery = delivery_from_row(row)
                reason = refused(delivery) if refused is not None else None
                if reason:
                    left[delivery.kind, delivery.target, reason] += 1
                    continue
                ids.append(delivery.id)
                self._set_status(delivery.id, "pending", now, reset=True)
        return ids, dict(left)

    def took_url(self, name: str, url: str, before: datetime) -> bool:
        """Whether webhook `name` has had `url` since `before` only: no delivery of its queued
        for that URL was made earlier (or at that moment, as a poll queues for both). A
        webhook at the URL a delivery was queued for took it from the delivery's own (two
        swapped URLs), rather than shared it all along."""
        return not self.db.execute(
            "SELECT 1 FROM deliveries WHERE kind = 'webhook' AND target = ? AND url = ? "
            "AND created <= ? LIMIT 1",
            [name, url, iso(before)],
        ).fetchone()

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
        exist (ids below the oldest stored article's; Store.prune removes those of the articles
        it prunes), then the finished deliveries left carrying nothing. Costs an indexed lookup
        when there is nothing to do. Returns deliveries removed."""
        with self.transaction():
            oldest = self.db.execute("SELECT min(id) FROM articles").fetchone()[0]
            if oldest is None:  # every article pruned: every item is of a pruned one
                oldest = self.db.execute(
                    "SELECT COALESCE(max(article_id), 0) + 1 FROM delivery_matches"
                ).fetchone()[0]
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
            return self._forget_emptied_deliveries(touched)

    def _forget_emptied_deliveries(self, touched: Sequence[int]) -> int:
        """Of these deliveries, remove the finished ones that carry nothing any more."""
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
                "UPDATE deliveries SET status = 'failed', last_error = ?, next_attempt = NULL "
                "WHERE kind = 'webhook' AND target = ? AND status IN ('pending', 'open')",
                [f"endpoint disabled: {reason}", name],
            ).rowcount

    def enable_endpoint(self, name: str) -> bool:
        """Lift the disable a 410 put on a webhook's endpoint, whatever its URL, in the
        caller's transaction. Whether it was disabled."""
        return (
            self.db.execute(
                "UPDATE endpoints SET disabled = NULL, reason = NULL "
                "WHERE name = ? AND disabled IS NOT NULL",
                [name],
            ).rowcount
            > 0
        )

    def follow_renamed_webhooks(
        self, webhooks: Collection[tuple[str, str]], waiting_only: bool = True
    ) -> list[tuple[str, str, int]]:
        """Give the deliveries queued for a URL whose webhook is gone, or now at another URL, to
        the one webhook configured at that URL (`webhooks`: name, url) when it is new: it has
        no delivery from before the old name's last. That is a rename; a webhook that shared
        the URL all along is not one, and the old name's deliveries, queued for rules it may
        not follow, stay where they are (they fail: "no longer in config.toml"). The old
        name's deliveries without a URL (queued before 5 December) and its endpoint's state
        follow too. `waiting_only`: look among deliveries waiting to be sent only (the
        dispatcher's tick; a replay looks at all). Returns (old name, new name, deliveries
        moved)."""
        configured = dict(webhooks)
        # Read first, outside a transaction: a dispatcher's tick asks every few seconds, and
        # has almost always nothing to move. Waiting ones by the status index (+kind: not by
        # kind's, which walks every webhook delivery ever made).
        waiting = "AND status IN ('pending', 'open')" if waiting_only else ""
        queued = self.db.execute(
            "SELECT DISTINCT target, url FROM deliveries WHERE +kind = 'webhook' "
            f"AND url IS NOT NULL {waiting}"
        ).fetchall()
        renames = []
        for old, url in queued:
            if configured.get(old) == url:
                continue
            same = [
                name
                for name, at in configured.items()
                if at == url and name != old and self._new_webhook(name, old)
            ]
            if len(same) == 1:  # one new name at the URL: of two sharing it, the one renamed
                renames.append((old, url, same[0]))
        moved: list[tuple[str, str, int]] = []
        if not renames:
            return moved
        with self.transaction():
            for old, url, new in renames:
                gone = old not in configured  # its history follows; else only what it queued
                count = self.db.execute(
                    "UPDATE deliveries SET target = ? WHERE kind = 'webhook' AND target = ? "
                    f"AND (url = ?{' OR url IS NULL' if gone else ''})",
                    [new, old, url],
                ).rowcount
                if gone:
                    self._rename_endpoint(old, new, url)
                moved.append((old, new, count))
        return moved

    def _new_webhook(self, name: str, old: str) -> bool:
        """Whether `name` has no webhook delivery made before `old`'s last one."""
        return not self.db.execute(
            "SELECT 1 FROM deliveries WHERE kind = 'webhook' AND target = ? AND created <= "
            "(SELECT max(created) FROM deliveries WHERE kind = 'webhook' AND target = ?) LIMIT 1",
            [name, old],
        ).fetchone()

    def _rename_endpoint(self, old: str, new: str, url: str) -> None:
        """The endpoint row of `old` becomes `new`'s (its pause or its 410); a row `new` had
        for another URL is stale and goes; one for this URL is kept, and `old`'s dropped."""
        self.db.execute("DELETE FROM endpoints WHERE name = ? AND url IS NOT ?", [new, url])
        self.db.execute("UPDATE OR IGNORE endpoints SET name = ? WHERE name = ?", [new, old])
        self.db.execute("DELETE FROM endpoints WHERE name = ?", [old])

    def pause_endpoint(self, name: str, url: str, until: datetime, reason: str) -> None:
        """Send nothing to a webhook endpoint before `until` (it answered 429 or 503 with
        Retry-After): its deliveries wait without spending attempts (see paused_endpoints). A
        410's disable of another URL the row held is dropped: it was that URL's."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO endpoints (name, url, paused_until, pause_reason) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET paused_until = excluded.paused_until,"
                " pause_reason = excluded.pause_reason,"
                " disabled = CASE WHEN url = excluded.url THEN disabled END,"
                " reason = CASE WHEN url = excluded.url THEN reason END, url = excluded.url",
                [name, url, iso(until), reason],
            )

    def paused_endpoints(self, now: datetime) -> list[dict[str, Any]]:
        """Webhook endpoints paused at `now`: name, url, paused_until, pause_reason. A pause
        holds for its URL only: a webhook given another URL is sent to at once."""
        return list(
            self.db.query(
                "SELECT name, url, paused_until, pause_reason FROM endpoints "
                "WHERE paused_until > ? ORDER BY name",
                [iso(now)],
            )
        )

    def delivery_counts(
        self, since: datetime, targets: Collection[str]
    ) -> dict[tuple[str, str], int]:
        """(kind, status) -> how many deliveries made since `since` to `targets` ("digest:NAME",
        "webhook:NAME") have it."""
        rows = self.db.execute(
            "SELECT kind, status, count(*) FROM deliveries WHERE created >= ? "
            f"AND kind || ':' || target IN ({','.join('?' * len(targets))}) "
            "GROUP BY kind, status",
            [iso(since), *targets],
        )
        return {(kind, status): n for kind, status, n in rows}

    def undelivered(
        self, since: datetime, targets: Collection[str], limit: int = 10
    ) -> list[Delivery]:
        """Deliveries made since `since` to `targets` (as delivery_counts) that failed for good
        or were dead-lettered (newest first): what subscribers and consumers have not received
        unless an operator acts."""
        return self._deliveries(
            "WHERE d.status IN ('failed', 'dead') AND d.created >= ? "
            f"AND d.kind || ':' || d.target IN ({','.join('?' * len(targets))}) "
            "ORDER BY d.id DESC LIMIT ?",
            [iso(since), *targets, limit],
        )

    def waiting_on_outbox(self, targets: Collection[str]) -> list[Delivery]:
        """Digests to `targets` (as delivery_counts) waiting for a retry because the outbox
        folder could not take them (records.OUTBOX_UNWRITABLE), newest first."""
        return self._deliveries(
            "WHERE d.kind = 'digest' AND d.status = 'pending' AND d.attempts > 0 "
            "AND substr(d.last_error, 1, length(?)) = ? "
            f"AND d.kind || ':' || d.target IN ({','.join('?' * len(targets))}) "
            "ORDER BY d.id DESC",
            [OUTBOX_UNWRITABLE, OUTBOX_UNWRITABLE, *targets],
        )

    def defer_digests(self, until: datetime) -> int:
        """Pending digests due before `until` wait until then (the outbox folder could not
        take the one just tried, and would not take them either). Returns how many."""
        with self.transaction():
            return self.db.execute(
                "UPDATE deliveries SET next_attempt = ? WHERE kind = 'digest' "
                "AND status = 'pending' AND next_attempt < ?",
                [iso(until), iso(until)],
            ).rowcount

    def hasten_outbox_digests(self, now: datetime) -> int:
        """Digests waiting for a retry because the outbox folder could not take them become
        due now (it took one). Returns how many."""
        with self.transaction():
            return self.db.execute(
                "UPDATE deliveries SET next_attempt = ? WHERE kind = 'digest' "
                "AND status = 'pending' AND attempts > 0 AND next_attempt > ? "
                "AND substr(last_error, 1, length(?)) = ?",
                [iso(now), iso(now), OUTBOX_UNWRITABLE, OUTBOX_UNWRITABLE],
            ).rowcount

    def retrying(self, targets: Collection[str]) -> int:
        """Deliveries to `targets` (as delivery_counts) that failed an attempt and wait for
        the next one."""
        return self.db.execute(
            "SELECT count(*) FROM deliveries WHERE status = 'pending' AND attempts > 0 "
            f"AND kind || ':' || target IN ({','.join('?' * len(targets))})",
            [*targets],
        ).fetchone()[0]

    def disabled_endpoints(self) -> list[dict[str, Any]]:
        """Webhook endpoints a 410 Gone disabled: name, url, disabled (when) and reason."""
        return list(
            self.db.query(
                "SELECT name, url, disabled, reason FROM endpoints WHERE disabled IS NOT NULL "
                "ORDER BY name"
            )
        )

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

    def unsubscribe(self, name: str, now: datetime) -> bool:
        """Record that a subscriber unsubscribed (kept as first recorded). False when no such
        subscriber is stored."""
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE subscribers SET unsubscribed = coalesce(unsubscribed, ?) WHERE name = ?",
                [iso(now), name],
            )
        return cursor.rowcount > 0

    def resubscribe(self, name: str, now: datetime) -> bool:
        """A subscriber back: digests again, of matches made from `now` (not of what they
        missed while away), with an unsubscribe link of their own again: the old one, in
        digests forwarded or left in a shared mailbox, would unsubscribe them a second time
        (a security review). False when no such subscriber is stored."""
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE subscribers SET unsubscribed = NULL, since = ?, token = ? WHERE name = ?",
                [iso(now), secrets.token_urlsafe(16), name],
            )
        return cursor.rowcount > 0

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
        rule or tag, at these priorities), that the article's latest revision still matches (not
        withdrawn) and that no digest of theirs carries yet, nor another article of the same
        story under the same rule: one alert per story, however many outlets run it, even when
        an outlet's copy arrives after the story was sent. A copy arriving after the story's
        digest failed for good (failed, dead) goes: the subscriber never had the story."""
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
            "AND m.withdrawn_revision IS NULL AND m.backlog IS NULL "
            f"AND m.priority IN ({','.join('?' * len(priorities))}) "
            f"AND ({' OR '.join(follows)}) "
            "AND NOT EXISTS (SELECT 1 FROM delivery_matches dm "
            "JOIN deliveries d ON d.id = dm.delivery_id WHERE d.kind = 'digest' "
            "AND d.target = ? AND dm.article_id = m.article_id AND dm.rule_id = m.rule_id) "
            "AND NOT EXISTS (SELECT 1 FROM articles a "
            "JOIN articles told ON told.story_id = a.story_id AND told.id != a.id "
            "JOIN delivery_matches dm ON dm.article_id = told.id AND dm.rule_id = m.rule_id "
            "JOIN deliveries d ON d.id = dm.delivery_id "
            "WHERE a.id = m.article_id AND d.kind = 'digest' AND d.target = ? "
            "AND d.status NOT IN ('failed', 'dead')) "
            "AND NOT EXISTS (SELECT 1 FROM articles a JOIN told_stories ts "
            "ON ts.story_id = a.story_id WHERE a.id = m.article_id AND ts.target = ? "
            "AND ts.rule_id = m.rule_id) "
            "ORDER BY m.matched_at, m.article_id, m.rule_id",
            [iso(since), *priorities, *rule_ids, *tags, name, name, name],
        )
        return [(row[0], row[1]) for row in rows]
