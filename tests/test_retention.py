"""Retention: old articles go with their matches, mentions, revisions and sketches, FTS stays
consistent, and a pruned item still carried by a feed is not stored (and alerted) again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from conftest import LoopbackServer
from identity_support import NOW, Item, Service, Services, rss, rule_index

from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.retention import prune_expired
from monitor.store import Store

DAY = 86400.0
RETENTION = 90 * DAY
PARAGRAPH = (
    "The regional council approved the new flood defences on Tuesday after a long debate "
    "about the cost of the sea wall, the dunes and the pumping stations along the estuary."
)


@pytest.fixture
def service(services: Services) -> Callable[..., Service]:
    """A Service on these feeds that keeps articles 90 days."""
    config = '[storage]\ndatabase = "vigie.db"\nretention = "90d"\n[fetch]\nallow_private = true\n'
    return partial(services.make, config)


def counts(svc: Service) -> dict[str, int]:
    tables = ("articles", "matches", "mentions", "revisions", "sketches")
    return {table: svc.store.count(table) for table in tables}


def test_old_articles_go_with_everything_that_points_at_them(
    tmp_path: Path, server: LoopbackServer, service: Callable[..., Service]
) -> None:
    rules = rule_index(tmp_path, {"floods": "flood*", "estuary": "estuary"})
    old = Item("old", "Sea wall approved", PARAGRAPH + " Lighthouse.")
    new = Item("new", "Flood defences: work starts", PARAGRAPH + " Contractors.")
    server.route("/f.xml", bodies=[rss([old]), rss([old, new])])
    svc = service([server.url("/f.xml")])
    svc.poll(NOW, matcher=rules)
    svc.poll(NOW + timedelta(days=60), matcher=rules)
    before = counts(svc)
    assert before["articles"] == 2 and before["matches"] == 4 and before["sketches"] == 2

    assert prune_expired(svc.store, RETENTION, NOW + timedelta(days=91)) == 1

    after = counts(svc)
    assert after["articles"] == 1 and after["matches"] == 2
    assert after["revisions"] == 1 and after["sketches"] == 1
    assert [r["title"] for r in svc.store.search_articles("lighthouse OR contractors")] == [
        new.title
    ]
    db = svc.store.db
    db.execute("INSERT INTO articles_fts(articles_fts) VALUES ('integrity-check')")
    assert db.execute("SELECT count(*) FROM articles_fts").fetchone()[0] == 1


def test_a_pruned_item_still_in_its_feed_is_not_stored_or_matched_again(
    tmp_path: Path, server: LoopbackServer, service: Callable[..., Service]
) -> None:
    rules = rule_index(tmp_path, {"floods": "flood*"})
    old = Item("old", "Flood defences approved", PARAGRAPH, "https://n.example/defences")
    other = Item("x", "Flood defences approved", PARAGRAPH, "https://n.example/defences?utm_x=1")
    fresh = Item("fresh", "Flood warning for the estuary", "Rain expected.")
    server.route("/f.xml", bodies=[rss([old]), rss([old, fresh])])
    server.route("/g.xml", bodies=[rss([]), rss([other])])  # another feed's copy, later
    svc = service([server.url("/f.xml"), server.url("/g.xml")])
    svc.poll(NOW, matcher=rules)
    later = NOW + timedelta(days=91)
    prune_expired(svc.store, RETENTION, later)
    assert svc.store.count("articles") == 0

    summary = svc.poll(later, matcher=rules)

    assert [c.article.guid for c in summary.changes] == ["fresh"]
    assert summary.new_matches == 1


def test_tombstones_are_forgotten_after_another_retention_period(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    server.route("/f.xml", rss([Item("old", "Title", PARAGRAPH, "https://n.example/old")]))
    svc = service([server.url("/f.xml")])
    svc.poll(NOW)
    prune_expired(svc.store, RETENTION, NOW + timedelta(days=91))
    assert svc.store.count("tombstones") == 2  # feed and guid, canonical URL
    prune_expired(svc.store, RETENTION, NOW + timedelta(days=180))
    assert svc.store.count("tombstones") == 2
    prune_expired(svc.store, RETENTION, NOW + timedelta(days=182))
    assert svc.store.count("tombstones") == 0


def test_a_story_outlives_its_pruned_lead(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    text = " ".join([PARAGRAPH] * 3)
    server.route("/a.xml", rss([Item("lead", "Sea wall approved", text)]))
    server.route("/b.xml", bodies=[rss([]), rss([Item("copy", "Council backs sea wall", text)])])
    svc = service([server.url("/a.xml"), server.url("/b.xml")])
    [lead] = svc.poll(NOW).changes
    [copy] = svc.poll(NOW + timedelta(days=5)).changes
    story = lead.article.story_id
    assert copy.article.story_id == story

    prune_expired(svc.store, RETENTION, NOW + timedelta(days=92))
    assert svc.store.story(story)["lead_article_id"] == copy.article.id
    assert svc.store.story(story)["articles"] == 1

    prune_expired(svc.store, RETENTION, NOW + timedelta(days=100))
    assert svc.store.story(story) is None


def test_ids_of_pruned_articles_and_stories_are_not_given_again(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    # Webhook consumers keep Vigie's article and story ids: once everything was pruned, SQLite
    # would have handed the next article id 1 again, and its story too.
    server.route(
        "/f.xml",
        bodies=[
            rss([Item("a", "Sea wall approved", PARAGRAPH), Item("b", "Dunes", PARAGRAPH[::-1])]),
            rss([Item("c", "Pumping stations reopen", "The estuary pumps run again.")]),
        ],
    )
    svc = service([server.url("/f.xml")])
    first = [c.article for c in svc.poll(NOW).changes]
    later = NOW + timedelta(days=91)
    assert prune_expired(svc.store, RETENTION, later) == 2
    assert svc.store.count("articles") == 0 and svc.store.count("stories") == 0

    [fresh] = [c.article for c in svc.poll(later).changes]

    assert fresh.id is not None and fresh.id > max(a.id or 0 for a in first)
    assert fresh.story_id is not None and fresh.story_id > max(a.story_id or 0 for a in first)
    reopened = Store(svc.store.path)  # the marks are in the database, not in this process
    assert reopened.next_id("articles") == fresh.id + 1
    reopened.close()


def test_zero_retention_keeps_everything(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    server.route("/f.xml", rss([Item("old", "Title", PARAGRAPH)]))
    svc = service([server.url("/f.xml")])
    svc.poll(NOW)
    assert prune_expired(svc.store, 0, NOW + timedelta(days=3650)) == 0
    assert svc.store.count("articles") == 1


def test_retention_is_a_duration_in_the_storage_section(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[storage]\nretention = "30d"\n', encoding="utf-8")
    assert load_config(path).retention == 30 * DAY
    path.write_text("[storage]\n", encoding="utf-8")
    assert load_config(path).retention == RETENTION
    path.write_text('[storage]\nretention = "three months"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="storage.retention: expected a duration"):
        load_config(path)
