"""The SQLite store on real files: migrations, upgrades in place, only-new inserts, search."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlite_utils
from conftest import LoopbackServer
from identity_support import Item, Services, rss

from monitor.records import Article
from monitor.store import FeedState, Store, migrations

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def article(feed_id: int, guid: str, title: str = "", **fields: object) -> Article:
    return Article(
        feed_id=feed_id,
        guid=guid,
        url=f"https://news.example.com/{guid}",
        title=title or f"Article {guid}",
        published=NOW - timedelta(hours=1),
        updated=NOW - timedelta(hours=1),
        **fields,  # type: ignore[arg-type]
    )


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def applied(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT name, applied_at FROM _sqlite_migrations WHERE migration_set = 'vigie' "
            "ORDER BY id"
        ).fetchall()


def test_fresh_file_gets_every_migration(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "vigie.db"
    Store(path).close()
    assert {"feeds", "articles", "articles_fts", "matches", "mentions"} <= tables(path)
    assert [name for name, _ in applied(path)] == [
        "m001_feeds_and_articles",
        "m002_matches_and_mentions",
        "m003_identity",
        "m004_outbox",
        "m005_seen_items",
        "m006_sketch_band_log",
        "m007_band_index_in_memory",
        "m008_match_withdrawal",
        "m009_retired_feeds",
        "m010_ids_never_reused",
        "m011_added_url",
        "m012_unsubscribed",
        "m013_asked_until",
        "m014_feed_addresses_in_any_case",
        "m015_edition_urls_folded",
        "m016_backlog_matches",
        "m017_told_stories",
        "m018_endpoint_pauses",
        "m019_delivery_urls",
        "m020_revision_dates",
        "m021_delivery_events",
        "m022_stemmed_search",
        "m023_rules_in_force",
        "m024_maybe_handled",
        "m025_rule_files_read",
    ]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_webhook_deliveries_made_before_say_whether_they_may_have_been_handled(
    tmp_path: Path,
) -> None:
    """Of the deliveries made before `maybe_handled` (m024), only the last attempt is known: a
    webhook's given up after more than one attempt, or after one that was not a 4xx, may have
    reached its consumer's handler; one never POSTed (no body frozen) did not."""
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db, stop_before="m024_maybe_handled")
    made = NOW.isoformat()
    rows = {  # name: (kind, status, attempts, last_status, sent, payload)
        "sent": ("webhook", "sent", 1, 204, made, "{}"),
        "dead after 500s": ("webhook", "dead", 8, 500, None, "{}"),
        "dead, the last refused": ("webhook", "dead", 8, None, None, "{}"),
        "one timeout, then disabled": ("webhook", "failed", 1, None, None, "{}"),
        "one 410": ("webhook", "failed", 1, 410, None, "{}"),
        "never POSTed": ("webhook", "failed", 1, None, None, None),
        "waiting": ("webhook", "pending", 0, None, None, None),
        "a digest": ("digest", "dead", 6, 451, None, None),
    }
    for key, (kind, status, attempts, last_status, sent, payload) in rows.items():
        db["deliveries"].insert(
            {
                "kind": kind,
                "target": key,
                "key": key,
                "status": status,
                "attempts": attempts,
                "last_status": last_status,
                "sent": sent,
                "payload": payload,
                "created": made,
            }
        )
    db.close()
    Store(path).close()
    with sqlite3.connect(path) as conn:
        handled = dict(conn.execute("SELECT target, maybe_handled FROM deliveries"))
    assert {key for key, value in handled.items() if value} == {
        "sent",
        "dead after 500s",
        "dead, the last refused",
        "one timeout, then disabled",
    }


def test_reopening_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "vigie.db"
    first = Store(path)
    feed_id = first.upsert_feed("https://a.example/feed", name="A", now=NOW)
    with first.transaction():
        first.insert_articles([article(feed_id, "1")], NOW)
    first.close()
    before = applied(path)
    again = Store(path)
    assert applied(path) == before
    assert again.count("articles") == 1
    assert again.feeds()[0]["name"] == "A"
    again.close()


def test_older_schema_is_upgraded_in_place_keeping_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db, stop_before="m002_matches_and_mentions")
    feed_id = db["feeds"].insert({"url": "https://old.example/rss", "name": "Old"}).last_pk
    db["articles"].insert(
        {"feed_id": feed_id, "guid": "old-1", "title": "Les exilés de Calais", "url": "u"}
    )
    db.close()
    assert "matches" not in tables(path)

    store = Store(path)
    assert {"matches", "mentions"} <= tables(path)
    assert [name for name, _ in applied(path)][1:3] == [
        "m002_matches_and_mentions",
        "m003_identity",
    ]
    assert [f["url"] for f in store.feeds()] == ["https://old.example/rss"]
    assert store.count("articles") == 1
    assert [r["title"] for r in store.search_articles("exiles")] == ["Les exilés de Calais"]
    with store.transaction():
        new = store.insert_articles([article(feed_id, "old-1"), article(feed_id, "new-2")], NOW)
    assert [a.guid for a in new] == ["new-2"]
    store.close()


def test_upgrade_tells_which_revision_old_match_evidence_describes(tmp_path: Path) -> None:
    """Before m008 a rule that stopped matching a revision kept the evidence of the last one it
    matched: the upgrade finds those rows by their evidence and marks them withdrawn."""
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db, stop_before="m008_match_withdrawal")
    feed_id = db["feeds"].insert({"url": "https://old.example/rss"}).last_pk
    titles = ["Zebra escapes from zoo", "Correction: lemur escapes from zoo"]
    db["articles"].insert_all(
        [
            {"id": 1, "feed_id": feed_id, "guid": "a", "title": titles[1], "revision": 2},
            {"id": 2, "feed_id": feed_id, "guid": "b", "title": titles[0], "revision": 1},
        ]
    )
    db["revisions"].insert_all(
        [{"article_id": 1, "revision": r, "title": t} for r, t in enumerate(titles, 1)]
        + [{"article_id": 2, "revision": 1, "title": titles[0]}]
    )

    def evidence(title: str, word: str) -> str:
        start = title.index(word)
        found = {"field": "title", "start": start, "end": start + len(word), "text": word}
        return json.dumps([{**found, "term": word.lower(), "entity": None}])

    db["matches"].insert_all(
        {"article_id": a, "rule_id": r, "evidence": evidence(titles[t], w), "revision": 1}
        for a, r, t, w in [  # z no longer matched revision 2; zoo did, its evidence rewritten
            (1, "z", 0, "Zebra"),
            (1, "zoo", 1, "zoo"),
            (2, "z", 0, "Zebra"),
        ]
    )
    db.close()

    store = Store(path)
    rows = store.db.execute(
        "SELECT article_id, rule_id, revision, evidence_revision, withdrawn_revision "
        "FROM matches ORDER BY article_id, rule_id"
    ).fetchall()
    store.close()
    assert rows == [(1, "z", 1, 1, 2), (1, "zoo", 1, 2, None), (2, "z", 1, 1, None)]


DAILY_POST = "https://www.dailypost.example"


def test_upgrade_folds_stored_urls_so_other_editions_of_stored_articles_are_not_new(
    tmp_path: Path, server: LoopbackServer, services: Services
) -> None:
    """A database of the rule before editions were folded: its articles' canonical URLs keep
    www. and /amp. After the upgrade the outlet's other feed, linking the mobile pages of the
    same items, and of one pruned since, brings nothing new."""
    amp = Item("dp-1", "Calais boat disaster", link=f"{DAILY_POST}/amp/news/calais-boat.amp")
    storm = Item("dp-3", "Storm warning", link=f"{DAILY_POST}/news/storm")
    server.route("/dp.xml", rss([amp, storm], title="Daily Post"))
    server.route(
        "/mobile.xml",
        rss(
            [
                Item("m-1", amp.title, link="https://m.dailypost.example/news/calais-boat?amp"),
                Item("m-2", "Ferry strike ends", link="https://m.dailypost.example/news/ferry"),
                Item("m-3", storm.title, link="https://m.dailypost.example/news/storm"),
            ],
            title="Daily Post mobile",
        ),
    )
    db = sqlite_utils.Database(tmp_path / "vigie.db")
    migrations.apply(db, stop_before="m015_edition_urls_folded")
    feed_id = (
        db["feeds"]
        .insert(
            {"url": server.url("/dp.xml"), "source": "config", "config_url": server.url("/dp.xml")}
        )
        .last_pk
    )
    old = {"feed_id": feed_id, "revision": 1, "first_seen": NOW.isoformat()}
    db["articles"].insert_all(  # 2 and 3 fold to one URL, which 3 had already; 4 and 5 too
        [
            {**old, "id": 1, "guid": "dp-1", "url": amp.link, "canonical_url": amp.link},
            {**old, "id": 2, "guid": "dp-3", "url": storm.link, "canonical_url": storm.link},
            {
                **old,
                "id": 3,
                "guid": "x-3",
                "canonical_url": "https://dailypost.example/news/storm",
            },
            {**old, "id": 4, "guid": "x-4", "canonical_url": "https://dailypost.example/news/tide"},
            {
                **old,
                "id": 5,
                "guid": "x-5",
                "canonical_url": "https://m.dailypost.example/news/tide",
            },
        ]
    )
    db["tombstones"].insert_all(
        {"key": key, "pruned": NOW.isoformat()}
        for key in (f"guid:{feed_id}:dp-2", f"url:{DAILY_POST}/news/ferry")
    )
    db.close()

    svc = services.make(
        '[storage]\ndatabase = "vigie.db"\n[fetch]\nallow_private = true\n',
        [server.url("/dp.xml"), server.url("/mobile.xml")],
    )
    assert [r["canonical_url"] for r in svc.rows("SELECT * FROM articles ORDER BY id")] == [
        "https://dailypost.example/news/calais-boat",
        "https://dailypost.example/news/storm",  # the oldest of the two takes it
        None,
        "https://dailypost.example/news/tide",
        "https://m.dailypost.example/news/tide",  # kept, as its URL is taken
    ]
    assert svc.poll(NOW + timedelta(hours=1)).new_articles == 0
    assert svc.store.count("articles") == 5
    assert [a["guid"] for a in svc.store.aliases(1)] == ["m-1"]
    assert [a["guid"] for a in svc.store.aliases(2)] == ["m-3"]


def test_upgrade_folds_the_urls_that_tell_apart_items_sharing_a_guid(
    tmp_path: Path, server: LoopbackServer, services: Services
) -> None:
    """Items of one document sharing a guid are stored under the guid and their canonical URL;
    the upgrade folded the URLs but not those guids, so the next poll missed them by guid and
    filed them as copies of other articles (a reviewer saw a feed-scoped rule match again)."""
    flood, dyke = f"{DAILY_POST}/news/flood", f"{DAILY_POST}/news/flood-dyke"
    server.route(
        "/d.xml",
        rss([Item("same", "Flood", link=flood), Item("same", "Dyke", link=dyke)], title="D"),
    )
    db = sqlite_utils.Database(tmp_path / "vigie.db")
    migrations.apply(db, stop_before="m015_edition_urls_folded")
    feed_id = db["feeds"].insert({"url": server.url("/d.xml"), "source": "config"}).last_pk
    old = {"feed_id": feed_id, "revision": 1, "first_seen": NOW.isoformat()}
    db["articles"].insert_all(
        {**old, "id": i, "guid": f"same {url}", "url": url, "canonical_url": url}
        for i, url in ((1, flood), (2, dyke))
    )
    db.close()
    svc = services.make(
        '[storage]\ndatabase = "vigie.db"\n[fetch]\nallow_private = true\n',
        [server.url("/d.xml")],
    )
    assert [r["guid"] for r in svc.rows("SELECT guid FROM articles ORDER BY id")] == [
        "same https://dailypost.example/news/flood",
        "same https://dailypost.example/news/flood-dyke",
    ]
    assert svc.poll(NOW + timedelta(hours=1)).new_articles == 0
    assert svc.rows("SELECT * FROM article_aliases") == []


def test_insert_articles_returns_only_new_ones(store: Store) -> None:
    feed_id = store.upsert_feed("https://a.example/feed", now=NOW)
    with store.transaction():
        first = store.insert_articles([article(feed_id, "1"), article(feed_id, "2")], NOW)
    assert [a.guid for a in first] == ["1", "2"]
    assert all(a.id is not None for a in first)
    with store.transaction():
        second = store.insert_articles(
            [article(feed_id, "2"), article(feed_id, "3"), article(feed_id, "1")], NOW
        )
    assert [a.guid for a in second] == ["3"]
    assert store.count("articles") == 3


def test_a_feeds_new_items_stored_together_each_keep_their_own_row(store: Store) -> None:
    # New items are inserted many to a statement (store_articles): each returned article must
    # carry the id of its own row, in the feed's order, and be found by search on its words,
    # around an item that shares a URL with an earlier one and is looked up on its own.
    feed_id = store.upsert_feed("https://a.example/feed", now=NOW)
    words = ["harbour", "tribunal", "lorry", "prefecture", "convoy", "hearing", "ferry", "shelter"]
    items = [
        article(feed_id, f"g{n}", f"Story of the {word}", canonical_url=f"https://n.example/{n}")
        for n, word in enumerate(words)
    ]
    items.insert(3, replace(items[1], guid="g1-again", title="Story of the tribunal, again"))
    items += [article(feed_id, f"h{n}", f"Item {n}") for n in range(250)]  # several statements
    with store.transaction():
        stored = store.store_articles(items, NOW)
    assert [a.guid for a in stored] == [a.guid for a in items if a.guid != "g1-again"]
    for a in stored:
        read = store.article(a.id)  # type: ignore[arg-type]
        assert read is not None and (read.guid, read.title) == (a.guid, a.title)
    for a, word in zip(stored, words, strict=False):
        [row] = store.search_articles(word)
        assert (row["id"], row["title"]) == (a.id, a.title)
    assert [r["title"] for r in store.search_articles("Item 249")] == ["Item 249"]


def test_same_guid_in_another_feed_is_new(store: Store) -> None:
    a = store.upsert_feed("https://a.example/feed", now=NOW)
    b = store.upsert_feed("https://b.example/feed", now=NOW)
    with store.transaction():
        store.insert_articles([article(a, "shared")], NOW)
        new = store.insert_articles([article(b, "shared")], NOW)
    assert [x.feed_id for x in new] == [b]


def test_stored_article_reads_back_equal(store: Store) -> None:
    feed_id = store.upsert_feed("https://a.example/feed", name="Alpha", now=NOW)
    original = article(
        feed_id,
        "g",
        "Titre accentué",
        summary="Résumé",
        content="Un.\n\nDeux.",
        content_html="<p>Un.</p><p>Deux.</p>",
        authors=("Zoé",),
        categories=("justice", "calais"),
        language="fr",
    )
    with store.transaction():
        [stored] = store.insert_articles([original], NOW)
    read = store.article(stored.id)  # type: ignore[arg-type]
    assert read is not None
    assert read == replace(stored, feed_name="Alpha")
    assert read.published is not None and read.published.tzinfo is not None


def test_search_finds_accented_words_typed_without_accents(store: Store) -> None:
    feed_id = store.upsert_feed("https://a.example/feed", name="Nord", now=NOW)
    with store.transaction():
        store.insert_articles(
            [
                article(feed_id, "1", "Évacuation d'un campement", summary="Des exilés délogés."),
                article(feed_id, "2", "Météo", summary="Il pleut sur Lille."),
            ],
            NOW,
        )
    for query in ("exiles", "evacuation", "EXILÉS", "delog*"):
        rows = store.search_articles(query)
        assert [r["title"] for r in rows] == ["Évacuation d'un campement"], query
    [row] = store.search_articles("exiles")
    assert row["feed_name"] == "Nord"
    assert "⟦exilés⟧" in row["snippet"]
    assert store.search_articles("neige") == []


def test_upsert_feed_keeps_http_state_and_updates_settings(store: Store) -> None:
    feed_id = store.upsert_feed("https://a.example/feed", name="A", tags=["x"], now=NOW)
    store.record_poll(
        feed_id,
        FeedState(
            status=200,
            error=None,
            error_count=0,
            next_poll=NOW + timedelta(minutes=30),
            polled=NOW,
            etag='"e1"',
            body_hash="h1",
            success=True,
            new_items=4,
        ),
    )
    again = store.upsert_feed("https://a.example/feed", name="A2", tags=["y"], now=NOW)
    assert again == feed_id
    [row] = store.feeds()
    assert (row["name"], json.loads(row["tags"])) == ("A2", ["y"])
    assert (row["etag"], row["body_hash"], row["items"]) == ('"e1"', "h1", 4)
    feed = store.feed(feed_id, 1800)
    assert feed.etag == '"e1"' and feed.tags == ("y",) and feed.interval == 1800


def test_a_shorter_interval_keeps_a_servers_retry_after(store: Store) -> None:
    """A shorter interval brings the next poll forward, never before the time the server
    asked not to be polled before (Retry-After)."""
    feed_id = store.upsert_feed("https://a.example/feed", interval=3600, now=NOW)
    asked = NOW + timedelta(minutes=20)
    store.record_poll(
        feed_id,
        FeedState(
            status=429,
            error="HTTP 429",
            error_count=1,
            next_poll=NOW + timedelta(hours=2),
            polled=NOW,
            asked_until=asked,
        ),
    )
    store.upsert_feed("https://a.example/feed", interval=60, now=NOW + timedelta(minutes=5))
    assert store.feed_row(feed_id)["next_poll"] == asked.isoformat()


def test_due_feeds_follow_next_poll(store: Store) -> None:
    early = store.upsert_feed("https://a.example/feed", now=NOW)
    later = store.upsert_feed("https://b.example/feed", now=NOW)
    store.record_poll(
        later,
        FeedState(
            status=200, error=None, error_count=0, next_poll=NOW + timedelta(hours=1), polled=NOW
        ),
    )
    assert [f.id for f in store.due_feeds(NOW, 1800)] == [early]
    assert {f.id for f in store.due_feeds(NOW + timedelta(hours=1), 1800)} == {early, later}


def test_due_webhooks_are_taken_up_to_a_limit_per_endpoint(store: Store) -> None:
    """One consumer's backlog filled the dispatcher's whole batch: the others' deliveries,
    made later, waited for it to be sent."""
    with store.transaction():
        backlog = [store.insert_delivery("webhook", "slow", "pending", NOW, []) for _ in range(5)]
        fresh = [store.insert_delivery("webhook", "fast", "pending", NOW, []) for _ in range(2)]
        store.insert_delivery("digest", "desk", "pending", NOW, [])
    assert [d.id for d in store.due_deliveries("webhook", NOW, limit=3)] == backlog[:3]
    due = store.due_per_target("webhook", NOW, limit=3)
    assert [d.id for d in due] == backlog[:3] + fresh  # each endpoint's own order


def test_failed_poll_keeps_validators(store: Store) -> None:
    feed_id = store.upsert_feed("https://a.example/feed", now=NOW)
    ok = FeedState(
        status=200,
        error=None,
        error_count=0,
        next_poll=NOW,
        polled=NOW,
        etag='"e"',
        success=True,
    )
    store.record_poll(feed_id, ok)
    failed = FeedState(
        status=500, error="HTTP 500", error_count=1, next_poll=NOW, polled=NOW, etag=None
    )
    store.record_poll(feed_id, failed)
    [row] = store.feeds()
    assert (row["etag"], row["last_error"], row["error_count"]) == ('"e"', "HTTP 500", 1)
    assert row["last_success"] == "2026-11-23T12:00:00+00:00"


def test_permanent_redirect_onto_an_existing_feed_keeps_both(store: Store) -> None:
    a = store.upsert_feed("https://a.example/feed", now=NOW)
    store.upsert_feed("https://b.example/feed", now=NOW)
    moved = FeedState(
        status=200,
        error=None,
        error_count=0,
        next_poll=NOW,
        polled=NOW,
        url="https://b.example/feed",
        success=True,
    )
    store.record_poll(a, moved)
    assert [f["url"] for f in store.feeds()] == ["https://a.example/feed", "https://b.example/feed"]


def test_text_stored_with_decomposed_accents_is_not_revised_by_its_composed_form(
    store: Store,
) -> None:
    """Before text was composed (NFC), an item written with combining accents was stored as it
    came, fingerprint included; polled again it now arrives composed: the same words, not an
    update to announce."""
    from monitor.identity import fingerprint

    feed_id = store.upsert_feed("https://a.example/feed", now=NOW)
    decomposed = "Les exile\u0301s de Calais"
    with store.transaction():
        (stored,) = store.insert_articles(
            [article(feed_id, "1", decomposed, fingerprint=fingerprint(decomposed, "", ""))], NOW
        )
    composed = "Les exilés de Calais"
    again = article(feed_id, "1", composed, fingerprint=fingerprint(composed, "", ""))
    with store.transaction():
        assert store.store_articles([again], NOW + timedelta(hours=1)) == []
    row = store.article(stored.id)  # type: ignore[arg-type]
    assert row is not None and (row.title, row.revision) == (composed, 1)
    assert [r["title"] for r in store.search_articles("exilés")] == [composed]
    edited = article(feed_id, "1", composed + " évacués", fingerprint=fingerprint("x", "", ""))
    with store.transaction():
        (revised,) = store.store_articles([edited], NOW + timedelta(hours=2))
    assert revised.revision == 2  # a real edit still is one


def test_feeds_config_no_longer_lists_are_retired_with_their_articles_kept(store: Store) -> None:
    kept = store.upsert_feed("https://kept.example/feed", now=NOW)
    dropped = store.upsert_feed("https://dropped.example/feed", name="Dropped", now=NOW)
    by_hand = store.upsert_feed("https://hand.example/feed", source="cli", now=NOW)
    with store.transaction():
        store.insert_articles([article(dropped, "1")], NOW)
    retired = store.retire_config_feeds({"https://kept.example/feed"}, NOW)
    assert retired == ["https://dropped.example/feed"]
    assert store.retire_config_feeds({"https://kept.example/feed"}, NOW) == []
    assert [f.id for f in store.due_feeds(NOW, 1800)] == [kept, by_hand]
    assert [f["id"] for f in store.feeds()] == [kept, by_hand]
    assert [f["id"] for f in store.feeds(include_retired=True)] == [kept, dropped, by_hand]
    assert store.count("articles") == 1

    assert store.upsert_feed("https://dropped.example/feed", name="Back", now=NOW) == dropped
    assert [f.id for f in store.due_feeds(NOW, 1800)] == [kept, dropped, by_hand]
    assert store.feed(dropped, 1800).name == "Back"


def test_opening_the_database_again_keeps_the_locks_of_the_connections_open(
    tmp_path: Path,
) -> None:
    """`vigie run` opens several Stores, and one more at each rule reload. Reading the file's
    header with Python and closing it released the SQLite locks of the connections already
    open (POSIX drops a process's locks on any close), so another `vigie` command took itself
    for the last user and deleted the WAL the service was still writing to."""
    path = tmp_path / "vigie.db"
    service = Store(path)
    service.upsert_feed("https://a.example/rss", source="config", now=NOW)
    reload_job = Store(path)  # as stored_term_stats opens one beside the service's
    reload_job.close()
    wal = tmp_path / "vigie.db-wal"
    assert wal.exists()
    other_command = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
        "print(c.execute('SELECT count(*) FROM feeds').fetchone()[0]); c.close()"
    )
    seen = subprocess.run(
        [sys.executable, "-c", other_command, str(path)], capture_output=True, text=True, check=True
    )
    assert seen.stdout.strip() == "1"
    assert wal.exists()  # still the service's: the other process was not its last user
    service.upsert_feed("https://b.example/rss", source="config", now=NOW)
    again = subprocess.run(
        [sys.executable, "-c", other_command, str(path)], capture_output=True, text=True, check=True
    )
    assert again.stdout.strip() == "2"  # the service's later write is where others read
    service.close()


def test_a_delivery_job_gets_its_turn_while_a_poll_stores_feed_after_feed(
    tmp_path: Path,
) -> None:
    """In `vigie run`, the poll thread commits each feed and begins the next at once; the
    digest and webhook jobs (connections of their own) waited in vain on SQLite's busy
    handler and failed with "database is locked" for as long as a long poll lasted."""
    poll, job = Store(tmp_path / "vigie.db"), Store(tmp_path / "vigie.db")
    stop = threading.Event()

    def store_feeds() -> None:
        while not stop.is_set():
            with poll.transaction():
                poll.db.execute(
                    "INSERT INTO id_high_water (name, last) VALUES ('x', 1) "
                    "ON CONFLICT(name) DO UPDATE SET last = last + 1"
                )
                time.sleep(0.05)  # storing one feed

    polling = threading.Thread(target=store_feeds)
    polling.start()
    try:
        time.sleep(0.2)
        started = time.monotonic()
        with job.transaction():  # the webhook job closing its batches
            waited = time.monotonic() - started
    finally:
        stop.set()
        polling.join()
        poll.close()
        job.close()
    assert waited < 1.0  # one feed's turn, not the whole poll


def test_a_write_turn_not_given_in_time_is_storage_trouble_not_a_bug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """While another process held the database, a job that waited in vain for its turn raised
    an unnamed "database is locked", which the service's jobs took for a bug: a traceback every
    30 s instead of one line and a pause."""
    from monitor.scheduler import storage_trouble_pauses
    from monitor.store import database

    monkeypatch.setattr(database, "WRITE_WAIT", 0.2)
    holder, job = Store(tmp_path / "vigie.db"), Store(tmp_path / "vigie.db")
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.transaction():
            held.set()
            done.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        held.wait(5)
        with (
            caplog.at_level("ERROR"),
            storage_trouble_pauses("webhooks", None),
            job.transaction(),
        ):
            pass
    finally:
        done.set()
        thread.join()
        holder.close()
        job.close()
    assert "webhooks: the database could not be written (SQLITE_BUSY" in caplog.text


def test_the_wal_is_synced_where_sqlite_writes_it_through_a_symlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a symlinked database path, the WAL SQLite writes beside the real file went
    unsynced: make_durable looked for it beside the link (a code review)."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link.db").symlink_to(tmp_path / "real" / "vigie.db")
    store = Store(tmp_path / "link.db")
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    try:
        with store.transaction():
            store.db.execute("INSERT INTO id_high_water (name, last) VALUES ('x', 1)")
        monkeypatch.setattr(os, "fsync", spy)
        store.make_durable()
    finally:
        store.close()
    assert synced == [str(tmp_path / "real" / "vigie.db-wal")]


def test_stored_times_sort_as_text_whatever_the_year() -> None:
    """A code review: `articles export --since 0999-01-01` found nothing, as strftime wrote the
    year 999 with three digits, which sorts after 2026."""
    from datetime import UTC, datetime

    from monitor.store.rows import iso

    years = [999, 1000, 1995, 2026]
    written = [iso(datetime(year, 6, 1, tzinfo=UTC)) for year in years]
    assert written[0] == "0999-06-01T00:00:00+00:00"
    assert sorted(written) == written


def test_a_commit_that_fails_drops_the_story_band_index(tmp_path: Path) -> None:
    """A concurrency review: a COMMIT refused by a full disk rolls the transaction back, but
    the in-memory band index kept the keys of the articles it had stored, under ids that are
    given out again."""
    import sqlite3

    store = Store(tmp_path / "vigie.db")
    real = store.db.conn

    class FullDiskAtCommit:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def commit(self) -> None:
            real.rollback()
            raise sqlite3.OperationalError("database or disk is full")

    store.story_bands = object()  # type: ignore[assignment]  # as built from stored sketches
    store.db.conn = FullDiskAtCommit()  # type: ignore[assignment]
    try:
        with pytest.raises(sqlite3.OperationalError), store.transaction():
            real.execute("INSERT INTO id_high_water (name, last) VALUES ('x', 1)")
    finally:
        store.db.conn = real
    assert store.story_bands is None
    assert store.count("id_high_water") == 0  # rolled back
    store.close()
