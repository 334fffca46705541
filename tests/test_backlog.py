"""A new feed's archive: read with the feed the first time, stored and matched, but not sent as
news (delivery.backlog). What comes after the first read is news, whatever its date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from conftest import LoopbackServer
from delivery_support import IMMEDIATE_DESK, Receiver, Vigie, hook_to, write_delivery_config

NOW = datetime.now(UTC).replace(microsecond=0)  # webhook consumers reject old signatures
STORY = "Police fire tear gas at migrants in Calais camp"


def rss(items: list[tuple[str, str, datetime | None]]) -> bytes:
    """Items of (guid, title, published): each a story of its own about Calais."""
    body = "".join(
        f"<item><guid>{guid}</guid><title>{escape(title)}</title>"
        f"<link>https://news.example/{guid}</link>"
        f"<description>{escape(title)}: officers used tear gas on migrants near Calais, "
        f"story {guid}.</description>"
        + (f"<pubDate>{format_datetime(when)}</pubDate>" if when else "")
        + "</item>"
        for guid, title, when in items
    )
    return (
        "<?xml version='1.0'?><rss version='2.0'><channel><title>News Example</title>"
        f"{body}</channel></rss>"
    ).encode()


FIRST = [
    ("today", f"{STORY} (today)", NOW - timedelta(hours=1)),
    ("last-week", f"{STORY} (last week)", NOW - timedelta(days=9)),
    ("undated", f"{STORY} (undated)", None),
    ("2023", f"{STORY} (2023)", NOW - timedelta(days=3 * 365)),
]


def vigie(tmp_path: Path, server: LoopbackServer, receiver: Receiver, **delivery: object) -> Vigie:
    path = write_delivery_config(
        tmp_path,
        subscribers=[IMMEDIATE_DESK],
        webhooks=[hook_to(receiver)],
        delivery={"backlog": "30d", **delivery},
        feeds=[{"url": server.url("/feed.xml"), "name": "News Example"}],
    )
    return Vigie(path, NOW)


def sent_titles(v: Vigie, receiver: Receiver, when: datetime = NOW) -> tuple[list[str], list[str]]:
    """(titles of the digests' articles, titles of the webhook events), in order."""
    v.send_digests(when)
    v.dispatch(when)
    digests = v.rows(
        "SELECT a.title FROM delivery_matches dm JOIN deliveries d ON d.id = dm.delivery_id "
        "JOIN articles a ON a.id = dm.article_id WHERE d.kind = 'digest' GROUP BY a.id "
        "ORDER BY a.id"
    )
    events = [r.verify()["data"]["article"]["title"] for r in receiver.requests]
    return [t for (t,) in digests], events


def test_a_new_feeds_archive_is_stored_and_matched_but_not_sent(
    tmp_path: Path, server: LoopbackServer, receiver: Receiver
) -> None:
    server.route("/feed.xml", rss(FIRST))
    v = vigie(tmp_path, server, receiver)
    try:
        v.poll(NOW)
        news = [f"{STORY} (today)", f"{STORY} (last week)", f"{STORY} (undated)"]
        digests, events = sent_titles(v, receiver)
        assert digests == news and sorted(events) == sorted(news)
        # The archive is there for searches and backtests, matched like the rest.
        archived = v.rows(
            "SELECT count(*) FROM matches m JOIN articles a ON a.id = m.article_id "
            "WHERE a.title = ? AND m.backlog = 1",
            (f"{STORY} (2023)",),
        )
        assert archived[0][0] >= 1
        # After the first read, an item is news whatever its date.
        server.route(
            "/feed.xml", rss([*FIRST, ("found", f"{STORY} (found)", NOW - timedelta(days=800))])
        )
        later = NOW + timedelta(minutes=2)
        v.poll(later)
        digests, events = sent_titles(v, receiver, later)
        assert digests == [*news, f"{STORY} (found)"]
        assert f"{STORY} (found)" in events and f"{STORY} (2023)" not in events
    finally:
        v.close()


def test_a_dormant_feeds_old_items_are_not_sent_as_news(
    tmp_path: Path, server: LoopbackServer, receiver: Receiver
) -> None:
    """A feed quiet for months, newest item in June 2025: measured from its newest item, its
    2025 items were sent in a digest and webhooks. Old news is the archive, however recent
    within its own feed."""
    june = NOW - timedelta(days=180)
    dormant = [
        ("june", f"{STORY} (June)", june),
        ("may", f"{STORY} (May)", june - timedelta(days=12)),
        ("2021", f"{STORY} (2021)", NOW - timedelta(days=5 * 365)),
    ]
    server.route("/feed.xml", rss(dormant))
    v = vigie(tmp_path, server, receiver)
    try:
        summary = v.poll(NOW)
        assert sent_titles(v, receiver) == ([], [])
        # Counted apart in the cycle's summary: 3 new articles and a digest of none read as
        # matches lost (a re-test).
        assert (summary.new_articles, summary.archive_articles) == (3, 3)
        # Kept and matched all the same, for searches and backtests.
        archived = v.rows(
            "SELECT count(DISTINCT a.id) FROM matches m JOIN articles a ON a.id = m.article_id "
            "WHERE m.backlog = 1"
        )
        assert archived == [(3,)]
    finally:
        v.close()


def test_a_feed_configured_with_backlog_0_sends_its_snapshot_whatever_its_age(
    tmp_path: Path, server: LoopbackServer, receiver: Receiver
) -> None:
    """The bundled samples are a fixed snapshot (config.toml gives them backlog = "0"): their
    items are sent however long ago they were published, while delivery.backlog holds."""
    server.route("/feed.xml", rss(FIRST))
    path = write_delivery_config(
        tmp_path,
        webhooks=[hook_to(receiver)],
        delivery={"backlog": "30d"},
        feeds=[{"url": server.url("/feed.xml"), "name": "News Example", "backlog": "0"}],
    )
    v = Vigie(path, NOW)
    try:
        v.poll(NOW)
        assert len(sent_titles(v, receiver)[1]) == 4
    finally:
        v.close()


def test_backlog_0_sends_a_new_feeds_whole_archive(
    tmp_path: Path, server: LoopbackServer, receiver: Receiver
) -> None:
    server.route("/feed.xml", rss(FIRST))
    v = vigie(tmp_path, server, receiver, backlog="0")
    try:
        v.poll(NOW)
        digests, events = sent_titles(v, receiver)
        assert len(digests) == 4 and len(events) == 4
    finally:
        v.close()


def test_a_new_feeds_archive_copy_of_a_stored_article_sends_nothing(
    tmp_path: Path, server: LoopbackServer, receiver: Receiver
) -> None:
    """A copy in a new feed's archive is an alias of the stored article; rules scoped to that
    feed, which now hold, were sent as news of the archive."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "wire.toml").write_text(
        '[[rule]]\nid = "wire-calais"\nquery = "calais"\nfeeds = ["B"]\ntags = ["wire"]\n'
    )
    old = ("old", f"{STORY} (2023)", NOW - timedelta(days=3 * 365))
    server.route("/a.xml", rss([("a-new", f"{STORY} (today)", NOW - timedelta(hours=1)), old]))
    server.route("/b.xml", rss([("b-new", f"{STORY} (b today)", NOW - timedelta(hours=2)), old]))
    hook = hook_to(receiver, tags=["wire"])
    a = {"url": server.url("/a.xml"), "name": "A"}
    b = {"url": server.url("/b.xml"), "name": "B"}
    path = write_delivery_config(tmp_path, webhooks=[hook], feeds=[a], delivery={"backlog": "30d"})
    path.write_text(
        path.read_text().replace(str(Path(__file__).parent.parent / "rules"), str(rules))
    )
    v = Vigie(path, NOW)
    try:
        v.poll(NOW)
    finally:
        v.close()
    path.write_text(f'{path.read_text()}[[feeds]]\nurl = "{b["url"]}"\nname = "B"\n')
    v = Vigie(path, NOW)
    try:
        later = NOW + timedelta(minutes=2)
        v.poll(later)
        v.dispatch(later)
        [(guid,)] = v.rows("SELECT guid FROM article_aliases")  # B's copy of A's article
        assert guid.endswith("/old")
        assert v.rows(
            "SELECT m.backlog FROM matches m JOIN articles a ON a.id = m.article_id "
            "WHERE a.guid LIKE '%/old' AND m.rule_id = 'wire-calais'"
        ) == [(1,)]
    finally:
        v.close()
    assert [r.verify()["data"]["article"]["title"] for r in receiver.requests] == [
        f"{STORY} (b today)"
    ]
