"""What matched, read for exports (`vigie articles export`): no write here.

Mixed into Store (monitor/store/database.py), whose connection they use."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlite_utils

from .rows import iso, outlet_name


class ExportQueries:
    """Store methods that read what matched for exports."""

    db: sqlite_utils.Database

    def matched_articles(
        self,
        start: datetime | None,
        end: datetime | None,
        *,
        by: str = "published",
        rule_ids: Sequence[str] = (),
        tags: Sequence[str] = (),
        withdrawn: bool = False,
        feed_ids: Sequence[int] = (),
        languages: Sequence[str] = (),
    ) -> Iterator[dict[str, Any]]:
        """Articles with their matches, for exports (`vigie articles export`): those whose time
        `by` (published or first_seen) is in [start, end), with the matches of `rule_ids` or
        `tags` (all when neither), withdrawn ones too with `withdrawn`; only those one of
        `feed_ids` carried (its own or a copy), in one of `languages` ("fr" takes "fr-CA"),
        when given. In time order, each with the other outlets that carried it and the entities
        it names, streamed."""
        if by not in ("published", "first_seen"):
            raise ValueError(by)
        where, params = _match_filter(rule_ids, tags, withdrawn)
        if start is not None:
            where.append(f"a.{by} >= ?")
            params.append(iso(start))
        if end is not None:
            where.append(f"a.{by} < ?")
            params.append(iso(end))
        for clause, values in (_carried_by("a", feed_ids), _in_languages("a", languages)):
            if clause:
                where.append(clause)
                params.extend(values)
        article_columns = (
            "id", "story_id", "title", "url", "published", "first_seen", "updated", "language",
            "revision", "feed_id",
        )  # fmt: skip
        cursor = self.db.conn.execute(
            f"SELECT {', '.join('a.' + c for c in article_columns)}, "
            "f.name AS feed_name, f.title AS feed_title, f.url AS feed_url, m.rule_id, m.tags, "
            "m.priority, "
            "m.score, m.matched_at, m.revision AS match_revision, m.evidence_revision, "
            "m.withdrawn_revision, "
            "m.backlog, m.snippet, m.evidence "
            "FROM matches m JOIN articles a ON a.id = m.article_id "
            f"JOIN feeds f ON f.id = a.feed_id WHERE {' AND '.join(where)} "
            f"ORDER BY a.{by}, a.id, m.score DESC, m.rule_id",
            params,
        )
        names = [column[0] for column in cursor.description]
        current: dict[str, Any] | None = None
        for values in cursor:
            row = dict(zip(names, values, strict=True))
            if current is None or current["id"] != row["id"]:
                if current is not None:
                    yield self._with_outlets_and_entities(current)
                current = {key: row[key] for key in article_columns}
                current["feed"] = outlet_name(row["feed_name"], row["feed_title"], row["feed_url"])
                current["matches"] = []
            current["matches"].append(
                {
                    "rule_id": row["rule_id"],
                    "tags": json.loads(row["tags"] or "[]"),
                    "priority": row["priority"],
                    "score": row["score"],
                    "matched_at": row["matched_at"],
                    "revision": row["match_revision"],
                    # The revision whose text the evidence's offsets and the snippet are in: an
                    # earlier one than the article's for a withdrawn match.
                    "evidence_revision": row["evidence_revision"] or row["match_revision"],
                    "withdrawn_revision": row["withdrawn_revision"],
                    "backlog": bool(row["backlog"]),
                    "snippet": row["snippet"] or "",
                    "evidence": json.loads(row["evidence"] or "[]"),
                }
            )
        if current is not None:
            yield self._with_outlets_and_entities(current)

    def matched_rules_and_tags(self) -> tuple[set[str], set[str]]:
        """The rules, and the tags, that stored matches have (withdrawn ones too)."""
        rules = {r for (r,) in self.db.execute("SELECT DISTINCT rule_id FROM matches")}
        tags = {
            t for (t,) in self.db.execute("SELECT DISTINCT t.value FROM matches, json_each(tags) t")
        }
        return rules, tags

    def _with_outlets_and_entities(self, article: dict[str, Any]) -> dict[str, Any]:
        article["dated"] = article["published"] != article["first_seen"]
        article["outlets"] = list(
            dict.fromkeys(
                outlet_name(*feed)
                for feed in self.db.execute(
                    "SELECT f.name, f.title, f.url FROM article_aliases al "
                    "JOIN feeds f ON f.id = al.feed_id WHERE al.article_id = ? AND al.feed_id != ? "
                    "ORDER BY al.first_seen",
                    [article["id"], article["feed_id"]],
                )
            )
        )
        article["entities"] = dict(
            self.db.execute(
                "SELECT entity_id, count(*) FROM mentions WHERE article_id = ? "
                "GROUP BY entity_id ORDER BY count(*) DESC, entity_id",
                [article["id"]],
            ).fetchall()
        )
        return article

    def matched_stories(
        self,
        start: datetime | None,
        end: datetime | None,
        *,
        by: str = "published",
        rule_ids: Sequence[str] = (),
        tags: Sequence[str] = (),
        withdrawn: bool = False,
        feed_ids: Sequence[int] = (),
        languages: Sequence[str] = (),
    ) -> Iterator[dict[str, Any]]:
        """Stories with a match, one record each, for `vigie articles export --stories`: those
        that broke in [start, end) (`by` published: the earliest date one of their articles came
        with, its revisions' included; first_seen: when their first article was stored), with a
        match of `rule_ids` or `tags` (all when neither; withdrawn ones too with `withdrawn`)
        in one of their articles, one of `feed_ids` among their outlets and one of their
        articles in one of `languages`, when given. In time order, streamed (_story_record)."""
        if by not in ("published", "first_seen"):
            raise ValueError(by)
        picked, params = _match_filter(rule_ids, tags, withdrawn)
        if start is not None and by == "published":
            # A story broke no later than any of its articles came out: one published before
            # `start` is of a story left out, and an export of the last 30 days reads the
            # matches of 30 days, not those of the whole archive.
            picked.append("a.published >= ?")
            params.append(iso(start))
        chosen = []
        for clause, values in (_carried_by("x", feed_ids), _in_languages("x", languages)):
            if clause:
                chosen.append(
                    f"EXISTS (SELECT 1 FROM articles x WHERE x.story_id = s.id AND {clause})"
                )
                params.extend(values)
        column = "first_published" if by == "published" else "first_seen"
        for moment, comparison in ((start, ">="), (end, "<")):
            if moment is not None:
                chosen.append(f"s.{column} {comparison} ?")
                params.append(iso(moment))
        cursor = self.db.conn.execute(
            "WITH picked AS (SELECT a.story_id, json_group_array(DISTINCT a.id) AS matched, "
            "json_group_array(DISTINCT m.rule_id) AS rules, "
            "json_group_array(DISTINCT m.tags) AS tag_lists "
            "FROM matches m JOIN articles a ON a.id = m.article_id "
            f"WHERE {' AND '.join(picked)} GROUP BY a.story_id) "
            "SELECT * FROM (SELECT s.id, s.lead_article_id, s.first_seen, s.last_seen, "
            "p.matched, p.rules, p.tag_lists, min("
            "  (SELECT min(coalesce(published, first_seen)) FROM articles WHERE story_id = s.id), "
            "  coalesce((SELECT min(r.published) FROM revisions r "
            "    JOIN articles x ON x.id = r.article_id "
            "    WHERE x.story_id = s.id AND r.published > ''), '9')) AS first_published "
            "FROM picked p JOIN stories s ON s.id = p.story_id) s "
            f"WHERE {' AND '.join(['1', *chosen])} ORDER BY s.{column}, s.id",
            params,
        )
        names = [column[0] for column in cursor.description]
        for values in cursor:
            yield self._story_record(dict(zip(names, values, strict=True)))

    def _story_record(self, story: dict[str, Any]) -> dict[str, Any]:
        """A story as the export writes it: its first-published article's headline, link and
        outlet; when it broke and when last updated; how many articles it has and every outlet
        that carried one (its copies under the same link included, article_aliases), the
        first-published's first; the rules and tags of its matches and the articles they
        matched."""
        articles = []
        for row in self.db.execute(
            "SELECT a.id, a.title, a.url, a.published, a.updated, a.first_seen, f.name, "
            "f.title, f.url, (SELECT min(r.published) FROM revisions r "
            "WHERE r.article_id = a.id AND r.published > '') "
            "FROM articles a JOIN feeds f ON f.id = a.feed_id WHERE a.story_id = ?",
            [story["id"]],
        ):
            article_id, title, url, published, updated, first_seen = row[:6]
            published = published or first_seen
            articles.append(
                {
                    "id": article_id,
                    "title": title,
                    "url": url,
                    "published": published,
                    "updated": updated,
                    "first_seen": first_seen,
                    "outlet": outlet_name(*row[6:9]),
                    # an edit that moved the date (the BBC's) left the first in revisions
                    "first_date": min(published, row[9] or published),
                }
            )
        # The one that came out first: when dates tie (or are the time collected, for
        # undated items), the story's lead, the first stored.
        first = min(
            articles, key=lambda a: (a["first_date"], a["id"] != story["lead_article_id"], a["id"])
        )
        carried = [(a["first_seen"], a["outlet"]) for a in articles]
        carried += [
            (seen, outlet_name(*feed))
            for seen, *feed in self.db.execute(
                "SELECT al.first_seen, f.name, f.title, f.url FROM article_aliases al "
                "JOIN articles a ON a.id = al.article_id JOIN feeds f ON f.id = al.feed_id "
                "WHERE a.story_id = ?",
                [story["id"]],
            )
        ]
        carried.sort(key=lambda pair: pair[0] or "")
        outlets = list(dict.fromkeys([first["outlet"], *(name for _, name in carried)]))
        return {
            "story_id": story["id"],
            "first_published": first["first_date"],
            "dated": first["first_date"] != first["first_seen"],
            "last_updated": max(max(a["published"], a["updated"] or "") for a in articles),
            "first_seen": story["first_seen"],
            "last_seen": story["last_seen"],
            "first_article_id": first["id"],
            "feed": first["outlet"],
            "title": first["title"],
            "url": first["url"],
            "articles": len(articles),
            "outlet_count": len(outlets),
            "outlets": outlets,
            "rules": sorted(json.loads(story["rules"])),
            "tags": sorted(
                {tag for tags in json.loads(story["tag_lists"]) for tag in json.loads(tags or "[]")}
            ),
            "matched_article_ids": sorted(json.loads(story["matched"])),
        }


def _match_filter(
    rule_ids: Sequence[str], tags: Sequence[str], withdrawn: bool
) -> tuple[list[str], list[Any]]:
    """Conditions on the matches `m` an export keeps, and their parameters: those of
    `rule_ids` or of rules with one of `tags` (all when neither), withdrawn ones too with
    `withdrawn`."""
    where, params = ["1"], []
    if not withdrawn:
        where.append("m.withdrawn_revision IS NULL")
    follows = []
    if rule_ids:
        follows.append(f"m.rule_id IN ({','.join('?' * len(rule_ids))})")
        params.extend(rule_ids)
    if tags:
        follows.append(
            "EXISTS (SELECT 1 FROM json_each(m.tags) t "
            f"WHERE t.value IN ({','.join('?' * len(tags))}))"
        )
        params.extend(tags)
    if follows:
        where.append(f"({' OR '.join(follows)})")
    return where, params


def _carried_by(article: str, feed_ids: Sequence[int]) -> tuple[str, list[Any]]:
    """The condition that one of `feed_ids` carried `article` (an alias of articles): it is
    that feed's own, or that feed's copy (article_aliases). Empty when no feed is given."""
    if not feed_ids:
        return "", []
    marks = ",".join("?" * len(feed_ids))
    return (
        f"({article}.feed_id IN ({marks}) OR EXISTS (SELECT 1 FROM article_aliases al "
        f"WHERE al.article_id = {article}.id AND al.feed_id IN ({marks})))",
        [*feed_ids, *feed_ids],
    )


def _in_languages(article: str, languages: Sequence[str]) -> tuple[str, list[Any]]:
    """The condition that `article` is in one of `languages`, "fr" taking "fr-CA". Empty when
    no language is given."""
    if not languages:
        return "", []
    params: list[Any] = []
    for language in languages:
        params.extend([language.lower(), f"{language.lower()}-%"])
    clause = " OR ".join(
        f"lower({article}.language) = ? OR lower({article}.language) LIKE ?" for _ in languages
    )
    return f"({clause})", params
