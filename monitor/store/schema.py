"""The database schema, as sqlite-utils migrations applied in order when a Store opens: each
function is one step of the schema's history, and a database of any earlier version upgrades
in place."""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import groupby
from operator import itemgetter
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from .rows import url_key
from .stems import create_stems_table, index_stored_articles

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


@migrations()
def m003_identity(db: sqlite_utils.Database) -> None:
    """Article identity (docs/identity.md): canonical URLs unique across feeds, revisions,
    other feeds' items that are the same article, stories and their persisted LSH index, and
    tombstones that keep pruned items from coming back."""
    from ..identity import identity_url

    # Re-index an article's text only when its text changes, not when its story, fingerprint or
    # revision number is written (sqlite-utils' trigger fires on any column).
    db.execute("DROP TRIGGER IF EXISTS articles_au")
    db.execute(
        'CREATE TRIGGER "articles_au" AFTER UPDATE OF "title", "summary", "content" '
        'ON "articles" BEGIN\n'
        '  INSERT INTO "articles_fts" ("articles_fts", rowid, "title", "summary", "content") '
        'VALUES(\'delete\', old.rowid, old."title", old."summary", old."content");\n'
        '  INSERT INTO "articles_fts" (rowid, "title", "summary", "content") '
        'VALUES (new.rowid, new."title", new."summary", new."content");\n'
        "END"
    )
    articles = db["articles"]
    for column, kind in (
        ("canonical_url", str),
        ("fingerprint", str),
        ("revision", int),
        ("story_id", int),
        ("full_text", int),
        ("full_text_error", str),
    ):
        articles.add_column(column, kind)
    db.execute("UPDATE articles SET revision = 1, full_text = 0")
    # Articles stored before this migration get their canonical URL; when two of them share
    # one, the first keeps it and the others stay apart, as they were.
    taken: set[str] = set()
    for article_id, url in db.execute("SELECT id, url FROM articles ORDER BY id").fetchall():
        canonical = identity_url(url or "")
        if canonical and canonical not in taken:
            taken.add(canonical)
            db.execute(
                "UPDATE articles SET canonical_url = ? WHERE id = ?", [canonical, article_id]
            )
    db.execute(
        "CREATE UNIQUE INDEX idx_articles_canonical_url ON articles (canonical_url) "
        "WHERE canonical_url IS NOT NULL"
    )
    articles.create_index(["story_id"])
    articles.create_index(["first_seen"])
    db["feeds"].add_column("full_text", int, not_null_default=0)
    db["matches"].add_column("revision", int)  # the article revision the rule first matched
    db.execute("UPDATE matches SET revision = 1")
    db["article_aliases"].create(  # another feed's item (or an item re-issued under a new guid)
        {"feed_id": int, "guid": str, "article_id": int, "fingerprint": str, "first_seen": str},
        pk=("feed_id", "guid"),
        foreign_keys=[("article_id", "articles", "id"), ("feed_id", "feeds", "id")],
    )
    db["article_aliases"].create_index(["article_id"])
    db["revisions"].create(
        {
            "article_id": int,
            "revision": int,
            "title": str,
            "summary": str,
            "fingerprint": str,
            "seen": str,
        },
        pk=("article_id", "revision"),
        foreign_keys=[("article_id", "articles", "id")],
    )
    db["stories"].create(
        {"id": int, "lead_article_id": int, "articles": int, "first_seen": str, "last_seen": str},
        pk="id",
    )
    db["sketches"].create(
        {"article_id": int, "signature": bytes, "seen": str},
        pk="article_id",
        foreign_keys=[("article_id", "articles", "id")],
    )
    db["sketches"].create_index(["seen"])
    db.execute(
        "CREATE TABLE sketch_bands (band_key INTEGER NOT NULL, "
        "article_id INTEGER NOT NULL REFERENCES articles(id), "
        "PRIMARY KEY (band_key, article_id)) WITHOUT ROWID"
    )
    db["sketch_bands"].create_index(["article_id"])
    db["sketch_layout"].create({"id": int, "layout": str}, pk="id")  # one row
    db.execute("CREATE TABLE tombstones (key TEXT PRIMARY KEY, pruned TEXT NOT NULL) WITHOUT ROWID")
    db["tombstones"].create_index(["pruned"])


@migrations()
def m004_outbox(db: sqlite_utils.Database) -> None:
    """The delivery outbox (docs/delivery.md): one row per digest or webhook message, the
    matches each carries, each subscriber's schedule state, and disabled webhook endpoints.
    No foreign keys to matches or articles, so retention can prune them."""
    db["deliveries"].create(
        {
            "id": int,
            "kind": str,
            "target": str,
            "key": str,
            "status": str,
            "attempts": int,
            "next_attempt": str,
            "created": str,
            "sent": str,
            "last_status": int,
            "last_error": str,
            "payload": str,
        },
        pk="id",
        not_null={"kind", "target", "key", "status", "created"},
        defaults={"attempts": 0},
    )
    db["deliveries"].create_index(["key"], unique=True)
    db["deliveries"].create_index(["status", "next_attempt"])
    db["deliveries"].create_index(["kind", "target", "status"])
    db["deliveries"].create_index(["created"])
    db["delivery_matches"].create(
        {"delivery_id": int, "article_id": int, "rule_id": str},
        pk=("delivery_id", "article_id", "rule_id"),
        foreign_keys=[("delivery_id", "deliveries", "id")],
    )
    db["delivery_matches"].create_index(["article_id", "rule_id"])
    db["subscribers"].create(
        {
            "name": str,
            "since": str,
            "filter": str,
            "schedule": str,
            "next_due": str,
            "token": str,
        },
        pk="name",
    )
    db["endpoints"].create(
        {"name": str, "url": str, "disabled": str, "reason": str},
        pk="name",
    )
    db["matches"].create_index(["matched_at"])


@migrations()
def m005_seen_items(db: sqlite_utils.Database) -> None:
    """Each feed remembers the items of its last document (their digests and identity URLs, as
    JSON), so that the items a changed document still carries are not parsed again
    (monitor/delta.py)."""
    db["feeds"].add_column("seen_items", str)


@migrations()
def m006_sketch_band_log(db: sqlite_utils.Database) -> None:
    """The LSH band keys of the articles sketched since the last merge into sketch_bands, one
    row per article (a JSON list), written in order instead of 29 index entries at random
    places (see Store.save_sketch)."""
    db.execute(
        "CREATE TABLE sketch_band_log (article_id INTEGER PRIMARY KEY "
        "REFERENCES articles(id), keys TEXT NOT NULL)"
    )


@migrations()
def m007_band_index_in_memory(db: sqlite_utils.Database) -> None:
    """The LSH band keys live in memory now (monitor/bands.py), rebuilt from the stored
    signatures: filing them in SQLite cost more than the rest of storing an article."""
    db.execute("DROP TABLE sketch_band_log")
    db.execute("DROP TABLE sketch_bands")


@migrations()
def m008_match_withdrawal(db: sqlite_utils.Database) -> None:
    """Matches say which revision of their article their evidence describes (evidence_revision)
    and whether the latest revision still matches (withdrawn_revision: NULL while it does, else
    the first revision that no longer matched). See Store.record_matches."""
    matches = db["matches"]
    matches.add_column("evidence_revision", int)
    matches.add_column("withdrawn_revision", int)
    # Until now a rule's evidence was rewritten on every revision it matched and left alone on
    # the others, so it describes the last revision that matched. On an article never revised
    # (most rows) that is revision 1; on a revised one it is the latest revision if the evidence
    # still fits the article's text (`vigie rules backtest --apply` re-derives the rows if a
    # rule's NOT or NEAR makes that a wrong guess).
    db.execute(
        "UPDATE matches SET evidence_revision = "
        "(SELECT COALESCE(a.revision, 1) FROM articles a WHERE a.id = matches.article_id)"
    )
    # Evidence that no longer fits was left behind by a revision the rule stopped matching: it
    # describes the latest earlier revision whose stored headline and summary it fits (the
    # revision it first matched if none does), and the one after that withdrew it.
    # Article by article, its text read once: not every match row with its article's content.
    revised = db.execute(
        "SELECT m.article_id, m.rule_id, m.evidence, m.revision, a.revision "
        "FROM matches m JOIN articles a ON a.id = m.article_id WHERE a.revision > 1 "
        "ORDER BY m.article_id"
    ).fetchall()
    for article_id, rows in groupby(revised, key=itemgetter(0)):
        title, summary, content = db.execute(
            "SELECT title, summary, content FROM articles WHERE id = ?", [article_id]
        ).fetchone()
        texts = {"title": title, "summary": summary, "content": content}
        for _, rule_id, evidence_json, first_revision, latest in rows:
            evidence = json.loads(evidence_json or "[]")
            if _evidence_fits(evidence, texts):
                continue
            first = first_revision or 1
            earlier = db.execute(
                "SELECT revision, title, summary FROM revisions WHERE article_id = ? "
                "AND revision >= ? AND revision < ? ORDER BY revision DESC",
                [article_id, first, latest],
            ).fetchall()
            described = next(
                (r for r, then, said in earlier if _fits_headline(evidence, then, said)),
                first,
            )
            db.execute(
                "UPDATE matches SET evidence_revision = ?, withdrawn_revision = ? "
                "WHERE article_id = ? AND rule_id = ?",
                [described, min(described + 1, latest), article_id, rule_id],
            )


def _fits_headline(evidence: list[dict[str, Any]], title: str, summary: str) -> bool:
    return _evidence_fits(evidence, {"title": title, "summary": summary})


def _evidence_fits(evidence: list[dict[str, Any]], texts: dict[str, str | None]) -> bool:
    """Whether each evidence item in one of these fields is found at its offsets there."""
    return all(
        (texts[e["field"]] or "")[e["start"] : e["end"]] == e["text"]
        for e in evidence
        if e.get("field") in texts
    )


@migrations()
def m009_retired_feeds(db: sqlite_utils.Database) -> None:
    """A feed taken out of config.toml is retired (`retired`: when), not deleted: it is no longer
    polled nor listed, and its articles, matches and deliveries stay for the day it is listed
    again. `config_url` is the address config.toml gives a feed, which a permanent redirect
    does not change, so a moved feed is still known as the one config.toml lists."""
    feeds = db["feeds"]
    feeds.add_column("retired", str)
    feeds.add_column("config_url", str)
    db.execute("UPDATE feeds SET config_url = url WHERE source = 'config'")
    feeds.create_index(["config_url"])


@migrations()
def m010_ids_never_reused(db: sqlite_utils.Database) -> None:
    """The largest article and story ids ever given, kept when retention deletes them: SQLite
    gives a new row one more than the largest id left, so once every article was pruned, new
    ones took pruned ones' ids, and a webhook consumer keeping Vigie's ids saw two articles
    (or stories) under one. Store.next_id reads it."""
    db.execute("CREATE TABLE id_high_water (name TEXT PRIMARY KEY, last INTEGER NOT NULL)")


@migrations()
def m011_added_url(db: sqlite_utils.Database) -> None:
    """`added_url`: the address a feed was added under (`feeds add`, an OPML file), which a
    permanent redirect does not change, as config_url for config.toml's feeds: once moved, the
    feed was not found under it, so adding or importing it again made a second feed polling
    the same one through the redirect, and `feeds remove` with it said no such feed."""
    feeds = db["feeds"]
    feeds.add_column("added_url", str)
    db.execute("UPDATE feeds SET added_url = url WHERE source != 'config'")
    feeds.create_index(["added_url"])


@migrations()
def m012_unsubscribed(db: sqlite_utils.Database) -> None:
    """When a subscriber unsubscribed (the one-click link of a digest, or `vigie digest
    unsubscribe`): no digest is made or sent for them until `vigie digest resubscribe`."""
    db["subscribers"].add_column("unsubscribed", str)


@migrations()
def m013_asked_until(db: sqlite_utils.Database) -> None:
    """`asked_until`: the time a feed's server asked not to be polled before (Retry-After),
    kept apart from the backoff of a failure: `vigie once` leaves such a feed alone, and polls
    again one that only failed."""
    db["feeds"].add_column("asked_until", str)


@migrations()
def m014_feed_addresses_in_any_case(db: sqlite_utils.Database) -> None:
    """Indexes on feeds' addresses in lower case: a feed is found under its address with the
    scheme and host in any case (FeedQueries._feeds_at), which without them read every feed
    for each address an import or config.toml gave."""
    for column in ("url", "added_url", "config_url"):
        db.execute(f"CREATE INDEX idx_feeds_lower_{column} ON feeds (lower({column}))")


@migrations()
def m015_edition_urls_folded(db: sqlite_utils.Database) -> None:
    """Article identity folds an outlet's www, mobile and AMP addresses of a page into one
    (identity.fold_editions). Stored canonical URLs are folded likewise: left as they were, the
    next copy of a stored article under a folded URL (another feed's, or one re-issued under a
    new guid) would not find it, and be stored and alerted again. `url:` tombstones get their
    folded key beside the old one, so that pruned articles do not come back. Feeds forget the
    items of their last document (Feed.seen_items, with URLs of the old rule), so the next poll
    parses each document whole; nothing in it is new for that."""
    from ..identity import fold_editions, is_home_page

    def fold(url: str) -> str:
        folded = fold_editions(url)
        return url if is_home_page(folded) else folded

    rows = db.execute(
        "SELECT id, canonical_url FROM articles WHERE canonical_url IS NOT NULL ORDER BY id"
    ).fetchall()
    moved = _folded_canonical_urls(rows, fold)
    # Free every URL that moves before any is taken again: the UNIQUE index checks each row.
    db.conn.executemany(
        "UPDATE articles SET canonical_url = NULL WHERE id = ?", [[i] for i in moved]
    )
    db.conn.executemany(
        "UPDATE articles SET canonical_url = ? WHERE id = ?",
        [[url, i] for i, url in moved.items() if url is not None],
    )
    tombstones = db.execute(
        "SELECT key, pruned FROM tombstones WHERE key >= 'url:' AND key < 'url;'"
    ).fetchall()
    db.conn.executemany(
        "INSERT OR IGNORE INTO tombstones (key, pruned) VALUES (?, ?)",
        [[url_key(fold(key[4:])), pruned] for key, pruned in tombstones],
    )
    # Items of one document that share a guid are stored under "guid URL" (identity.
    # distinct_guids): their URL is folded too, or the next poll misses them by guid and files
    # them as copies of other articles.
    for table in ("articles", "article_aliases"):
        rows = db.execute(f"SELECT rowid, guid FROM {table} WHERE guid LIKE '% http%'").fetchall()
        db.conn.executemany(
            f"UPDATE OR IGNORE {table} SET guid = ? WHERE rowid = ?",
            [[new, rowid] for rowid, guid in rows if (new := _folded_guid(guid, fold)) != guid],
        )
    shared = db.execute(
        "SELECT key, pruned FROM tombstones WHERE key >= 'guid:' AND key < 'guid;' "
        "AND key LIKE '% http%'"
    ).fetchall()
    db.conn.executemany(
        "INSERT OR IGNORE INTO tombstones (key, pruned) VALUES (?, ?)",
        [[_folded_guid(key, fold), pruned] for key, pruned in shared],
    )
    db.execute("UPDATE feeds SET seen_items = NULL")


def _folded_guid(guid: str, fold: Callable[[str], str]) -> str:
    """A guid shared by items of one document, stored as "guid URL" (or a tombstone's key of
    one), with its URL folded."""
    head, _, url = guid.rpartition(" ")
    return f"{head} {fold(url)}" if url.startswith(("http://", "https://")) else guid


def _folded_canonical_urls(
    rows: list[tuple[int, str]], fold: Callable[[str], str]
) -> dict[int, str | None]:
    """Article id -> its new canonical URL, for the articles (`rows` of id and URL, oldest
    first) whose URL changes. Of the articles whose URLs fold to one, the oldest takes it,
    being the one first reported; the others keep their URL, which the index requires to be
    unique, except one whose URL was that folded one already: it has none any more, and its
    own feed still finds it by its guid."""
    owner: dict[str, int] = {}
    for article_id, url in rows:
        owner.setdefault(fold(url), article_id)
    moved: dict[int, str | None] = {}
    for article_id, url in rows:
        folded = fold(url)
        new = folded if owner[folded] == article_id else (None if url == folded else url)
        if new != url:
            moved[article_id] = new
    return moved


@migrations()
def m016_backlog_matches(db: sqlite_utils.Database) -> None:
    """Matches of a feed's archive, read with the feed the first time (delivery.backlog), are
    kept but not delivered: `backlog` is 1 on them, NULL on the others."""
    db.execute("ALTER TABLE matches ADD COLUMN backlog INTEGER")


@migrations()
def m017_told_stories(db: sqlite_utils.Database) -> None:
    """What digests told of a story, kept when retention prunes the articles that told it: a
    story's copies that a digest held back (its story was sent) came out as news once the
    article sent was pruned, as long after as the subscriber's `since` allowed (a researcher's
    review). One row per subscriber, story and rule, of digests sent (one still retrying may
    never arrive); `sent` is the first one's time. Gone with the story."""
    db.execute(
        "CREATE TABLE told_stories (story_id INTEGER NOT NULL, target TEXT NOT NULL, "
        "rule_id TEXT NOT NULL, sent TEXT NOT NULL, PRIMARY KEY (story_id, target, rule_id))"
    )


@migrations()
def m018_endpoint_pauses(db: sqlite_utils.Database) -> None:
    """A webhook endpoint that answers 429 or 503 with Retry-After is paused until then: each
    of its other deliveries was still POSTed at once, and spent an attempt on the same answer
    (a consumer's review of "for a pause, answer 503")."""
    db.execute("ALTER TABLE endpoints ADD COLUMN paused_until TEXT")
    db.execute("ALTER TABLE endpoints ADD COLUMN pause_reason TEXT")


@migrations()
def m019_delivery_urls(db: sqlite_utils.Database) -> None:
    """A webhook delivery keeps the URL its endpoint had when it was queued: a webhook renamed in
    config.toml (same URL) left its waiting deliveries to fail, "no longer in config.toml", and
    the events never reached the consumer (a consumer's review). By the URL they follow the
    new name. Deliveries queued before have none, and cannot."""
    db.execute("ALTER TABLE deliveries ADD COLUMN url TEXT")


@migrations()
def m020_revision_dates(db: sqlite_utils.Database) -> None:
    """Each revision keeps the publication date its item gave: `articles.published` is the
    latest revision's, and an outlet that moves the date when it edits an article (the BBC
    does) left no trace of when it first published it, so a researcher's timeline counted an
    article of August 5 on September 2 (a researcher's review). Revisions stored before have
    none but the latest, which is the article's."""
    db.execute("ALTER TABLE revisions ADD COLUMN published TEXT")
    db.execute(
        "UPDATE revisions SET published = (SELECT a.published FROM articles a "
        "WHERE a.id = revisions.article_id AND a.revision = revisions.revision)"
    )


@migrations()
def m021_delivery_events(db: sqlite_utils.Database) -> None:
    """What a webhook delivery announces: NULL for article.matched, or article.withdrawn, sent
    to a consumer that asked for them when a correction undoes a match an event carried (a
    webhook consumer's review: a dashboard kept showing an article its rule no longer matched)."""
    db.execute("ALTER TABLE deliveries ADD COLUMN event TEXT")


@migrations(transactional=False)
def m022_stemmed_search(db: sqlite_utils.Database) -> None:
    """`articles_stems` (monitor/store/stems.py): each article's words as their stems in its
    language, so that `vigie articles search` finds every form of a word (`slap~`: slapped,
    slapping), as rules do. The articles stored before are indexed here, a batch a
    transaction rather than all in one: a large archive takes minutes, and an upgrade
    interrupted goes on from its last batch the next time the database opens (the migration
    is recorded once every article is indexed)."""
    create_stems_table(db.conn)
    index_stored_articles(db.conn)


@migrations()
def m023_rules_in_force(db: sqlite_utils.Database) -> None:
    """The rules a running service matches with, recorded each time new rules come into force:
    `vigie status` counted the rule files instead, and after an edit that did not load said "4
    rules" (0 for a file that is not valid TOML) while the service kept its 5 last good ones
    (a review). One row (`id` 1), the latest service's."""
    db["rules_in_force"].create(
        {"id": int, "pid": int, "loaded": str, "files": int, "rules": int, "disabled": int},
        pk="id",
    )


@migrations()
def m024_maybe_handled(db: sqlite_utils.Database) -> None:
    """Whether a webhook consumer may have handled a delivery, whatever its status: 1 once it
    was sent, or once an attempt failed in a way that does not prove the consumer never got it
    (a 5xx, no answer in time: its handler may have done its work). A correction of a match
    whose event was given up after 500s the consumer had handled sent no article.withdrawn, as
    if the event had never arrived, and the consumer kept the match (a review). Of
    the deliveries made before, only the last attempt's outcome is kept: one POSTed (its body
    frozen) is taken as handled unless its one attempt was refused with a 4xx."""
    db.execute("ALTER TABLE deliveries ADD COLUMN maybe_handled INTEGER")
    db.execute(
        "UPDATE deliveries SET maybe_handled = 1 WHERE kind = 'webhook' AND (sent IS NOT NULL "
        "OR (payload IS NOT NULL AND (attempts > 1 OR last_status IS NULL "
        "OR last_status NOT BETWEEN 400 AND 499)))"
    )


@migrations()
def m025_rule_files_read(db: sqlite_utils.Database) -> None:
    """The rule files as the latest load of every rule read them (their times and sizes) and
    how many errors they had: `vigie status`, from cron every quarter of an hour, compiled
    every rule to find errors (30 s of each run with 100,000 rules) where the service had
    just done so. One row (`id` 1)."""
    db["rule_files_read"].create(
        {"id": int, "version": str, "paths": str, "files": str, "errors": int}, pk="id"
    )
