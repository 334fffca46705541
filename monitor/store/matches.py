"""Matches and entity mentions, written in the article's transaction.

Mixed into Store (monitor/store/database.py), whose connection and transaction they use."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, NamedTuple

import sqlite_utils

from ..records import Evidence, Match
from .rows import (
    iso,
    match_columns,
)


class Recorded(NamedTuple):
    """What storing a revision's matches changed (MatchQueries.record_matches)."""

    new: list[Match]  # rules that match it and matched no earlier revision
    withdrawn: tuple[str, ...]  # rules that held until this revision
    restored: tuple[str, ...]  # rules withdrawn before that match this revision again


class Replaced(NamedTuple):
    """What backtest --apply changed (MatchQueries.replace_matches)."""

    new: list[Match]
    removed: int  # matches that stopped holding: deleted, or withdrawn
    withdrawn: list[tuple[int, str]]  # (article, rule) that a delivery carried, now withdrawn
    restored: list[tuple[int, str]]  # (article, rule) withdrawn before, holding again


class MatchQueries:
    """Store methods for matches and entity mentions, written in the article's transaction."""

    db: sqlite_utils.Database

    def insert_matches(self, matches: Iterable[Match], now: datetime) -> int:
        """Store matches (one per article and rule) found on the articles' stored text, their
        latest revision, replacing what was stored for those pairs; call inside the article's
        transaction. Made on that revision: it is their `revision` (a backtest's matches had
        none, so queries for matches of updated articles passed them by)."""
        rows = [match_columns(m, now) for m in matches]
        if rows:
            self.db["matches"].insert_all(rows, replace=True)
            self.db.conn.executemany(
                "UPDATE matches SET (revision, evidence_revision) = "
                "(SELECT COALESCE(revision, 1), COALESCE(revision, 1) FROM articles WHERE id = ?) "
                "WHERE article_id = ? AND rule_id = ?",
                [(r["article_id"], r["article_id"], r["rule_id"]) for r in rows],
            )
        return len(rows)

    def insert_mentions(self, article_id: int, mentions: Iterable[Evidence]) -> None:
        self.db.conn.executemany(
            "INSERT INTO mentions (article_id, entity_id, field, [start], [end]) "
            "VALUES (?, ?, ?, ?, ?)",
            [(article_id, e.entity, e.field, e.start, e.end) for e in mentions if e.entity],
        )

    def matches_for(
        self,
        rule_ids: Sequence[str] | None = None,
        since: datetime | None = None,
        *,
        withdrawn: bool = False,
    ) -> list[dict[str, Any]]:
        """The stored matches of these rules on articles first seen since `since`, with each
        article's title and URL. Withdrawn ones (the article's latest revision no longer
        matches) only with withdrawn=True."""
        clauses, params = [], []
        if not withdrawn:
            clauses.append("m.withdrawn_revision IS NULL")
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

    def withdrawn_matches(self) -> int:
        """How many stored matches no longer hold for their article's latest revision."""
        return self.db.execute(
            "SELECT count(*) FROM matches WHERE withdrawn_revision IS NOT NULL"
        ).fetchone()[0]

    def replace_matches(
        self,
        rule_ids: Sequence[str],
        article_ids: Sequence[int],
        matches: Iterable[Match],
        now: datetime,
    ) -> Replaced:
        """Backtest --apply: these rules' matches over these articles become `matches`, found
        on the articles' latest revisions. A match stored already keeps its first match time
        and revision, as record_matches keeps them (it was delivered then: made again, it went
        to every immediate digest once more); its score, evidence and snippet become the latest
        revision's, and it is no longer withdrawn. The rules' other matches on these articles
        go, but those a delivery carried are withdrawn instead (at the article's revision), kept
        as the record of what was sent (`deliveries replay` sends it as it was). New ones are
        matched now. Returns the new matches (for the webhooks that follow them), how many
        stopped holding (deleted or withdrawn), and the (article, rule) pairs withdrawn and
        restored (for the webhooks that asked for withdrawals)."""
        matches = list(matches)
        rules = ",".join("?" * len(rule_ids))
        with self.transaction():
            stored: set[tuple[int, str]] = set()
            holding: set[tuple[int, str]] = set()  # not withdrawn
            for start in range(0, len(article_ids), 500):
                chunk = article_ids[start : start + 500]
                for article_id, rule_id, withdrawn in self.db.execute(
                    "SELECT article_id, rule_id, withdrawn_revision FROM matches "
                    f"WHERE rule_id IN ({rules}) AND article_id IN ({','.join('?' * len(chunk))})",
                    [*rule_ids, *chunk],
                ):
                    stored.add((article_id, rule_id))
                    if withdrawn is None:
                        holding.add((article_id, rule_id))
            found = {(m.article_id, m.rule_id) for m in matches}
            gone = sorted(stored - found)
            delivered = {
                pair
                for pair in gone
                if self.db.execute(
                    "SELECT 1 FROM delivery_matches WHERE article_id = ? AND rule_id = ? LIMIT 1",
                    pair,
                ).fetchone()
            }
            self.db.conn.executemany(
                "DELETE FROM matches WHERE article_id = ? AND rule_id = ?",
                [pair for pair in gone if pair not in delivered],
            )
            self.db.conn.executemany(
                "UPDATE matches SET withdrawn_revision = (SELECT COALESCE(revision, 1) FROM "
                "articles WHERE id = matches.article_id) WHERE article_id = ? AND rule_id = ? "
                "AND withdrawn_revision IS NULL",
                sorted(delivered),
            )
            kept = [match_columns(m, now) for m in matches if (m.article_id, m.rule_id) in stored]
            self.db.conn.executemany(
                "UPDATE matches SET score = ?, evidence = ?, snippet = ?, tags = ?, priority = ?, "
                "evidence_revision = (SELECT COALESCE(revision, 1) FROM articles WHERE id = ?), "
                "withdrawn_revision = NULL WHERE article_id = ? AND rule_id = ?",
                [
                    (r["score"], r["evidence"], r["snippet"], r["tags"], r["priority"])
                    + (r["article_id"], r["article_id"], r["rule_id"])
                    for r in kept
                ],
            )
            new = [m for m in matches if (m.article_id, m.rule_id) not in stored]
            self.insert_matches(new, now)
        withdrawn = sorted(holding.intersection(delivered))
        restored = sorted((stored - holding).intersection(found))
        return Replaced(new, len(holding.intersection(gone)), withdrawn, restored)

    def add_matches(
        self,
        article_id: int,
        revision: int,
        matches: Iterable[Match],
        now: datetime,
        backlog: bool = False,
    ) -> list[Match]:
        """Store those of `matches` whose rule has no match on the article yet, stored ones left
        as they are (withdrawn or not); return the added. For rules that newly hold once another
        feed carries the article: what the rules say of its text is record_matches' to keep.
        `backlog`: as record_matches'."""
        stored = {
            rule_id
            for (rule_id,) in self.db.execute(
                "SELECT rule_id FROM matches WHERE article_id = ?", [article_id]
            )
        }
        added = [replace(m, article_id=article_id) for m in matches if m.rule_id not in stored]
        self.db.conn.executemany(
            _INSERT_MATCH, [_new_match_row(m, iso(now), revision, backlog) for m in added]
        )
        return added

    def record_matches(
        self,
        article_id: int,
        revision: int,
        matches: Iterable[Match],
        now: datetime,
        backlog: bool = False,
    ) -> Recorded:
        """Store the matches of one revision of an article, all of them at once (a rule left out
        is one this revision does not match); return the rules that match it and matched no
        earlier revision, and those it withdrew and restored.

        A rule that matched before keeps its first match time and revision (it was delivered
        then): if it matches this revision too, its score, evidence and snippet become this
        revision's (evidence_revision) and it is no longer withdrawn; if it does not, it is
        withdrawn at this revision (withdrawn_revision, kept from the first revision that no
        longer matched) and its evidence stays that of evidence_revision, whose text it quotes.

        `backlog`: the article is of a feed's archive, read with the feed the first time
        (delivery.backlog): its new matches are kept, for searches and backtests, but no digest
        claims them (undelivered_matches) and no webhook is queued for them."""
        before = {
            rule_id: withdrawn
            for rule_id, withdrawn in self.db.execute(
                "SELECT rule_id, withdrawn_revision FROM matches WHERE article_id = ?",
                [article_id],
            )
        }
        new, updates, inserts = [], [], []
        matched_at = iso(now)
        for match in matches:
            if match.article_id != article_id:
                match = replace(match, article_id=article_id)
            if match.rule_id in before:
                evidence = json.dumps([e._asdict() for e in match.evidence], ensure_ascii=False)
                updates.append(
                    [match.score, evidence, match.snippet, json.dumps(list(match.tags))]
                    + [match.priority, revision, article_id, match.rule_id]
                )
            else:
                inserts.append(_new_match_row(match, matched_at, revision, backlog))
                new.append(match)
        self.db.conn.executemany(
            "UPDATE matches SET score = ?, evidence = ?, snippet = ?, tags = ?, priority = ?, "
            "evidence_revision = ?, withdrawn_revision = NULL WHERE article_id = ? AND rule_id = ?",
            updates,
        )
        matched = {rule_id for *_, rule_id in updates}
        gone = [r for r, withdrawn in before.items() if withdrawn is None and r not in matched]
        self.db.conn.executemany(  # the rules this revision no longer matches
            "UPDATE matches SET withdrawn_revision = ? WHERE article_id = ? AND rule_id = ?",
            [(revision, article_id, rule_id) for rule_id in gone],
        )
        self.db.conn.executemany(
            _INSERT_MATCH,
            inserts,
        )
        back = [r for r, withdrawn in before.items() if withdrawn is not None and r in matched]
        return Recorded(new, tuple(sorted(gone)), tuple(sorted(back)))

    def mention_places(self, article_id: int) -> set[tuple[str, str, int, int]]:
        """(entity, field, start, end) of the stored mentions of an article."""
        return set(
            self.db.execute(
                "SELECT entity_id, field, [start], [end] FROM mentions WHERE article_id = ?",
                [article_id],
            ).fetchall()
        )

    def replace_mentions(self, article_id: int, mentions: Iterable[Evidence]) -> None:
        """The entity mentions of an article's latest revision."""
        self.db.execute("DELETE FROM mentions WHERE article_id = ?", [article_id])
        self.insert_mentions(article_id, mentions)


_INSERT_MATCH = (
    "INSERT INTO matches (article_id, rule_id, score, evidence, snippet, tags, priority, "
    "matched_at, revision, evidence_revision, backlog) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _new_match_row(match: Match, matched_at: str, revision: int, backlog: bool) -> list:
    """A match first made at `revision`, as _INSERT_MATCH takes it."""
    evidence = json.dumps([e._asdict() for e in match.evidence], ensure_ascii=False)
    return [
        *(match.article_id, match.rule_id, match.score, evidence, match.snippet),
        *(json.dumps(list(match.tags)), match.priority, matched_at, revision, revision),
        1 if backlog else None,
    ]
