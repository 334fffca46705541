"""One poll cycle over loopback: fetch -> parse -> store, failures recorded per feed, backoff."""

from __future__ import annotations

import json
import random
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from conftest import SAMPLES, LoopbackServer, serving

from monitor import pipeline
from monitor.config import Config, load_config
from monitor.fetch import make_session
from monitor.pipeline import CycleSummary, next_poll_time, poll_due
from monitor.store import Store, parse_iso

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RSS = (SAMPLES / "coastal-herald.rss").read_bytes()
RSS_ITEMS = len(ET.fromstring(RSS).findall("./channel/item"))
ATOM = (SAMPLES / "nord-actu.atom").read_bytes()


class Service:
    """A config, its database with the config's feeds, and a guarded session, as the CLI has."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = Store(config.database)
        for feed in config.feeds:
            self.store.upsert_feed(feed.url, name=feed.name, interval=feed.interval, now=NOW)
        self.session = make_session(config.fetch)

    def poll(self, now: datetime = NOW, force: bool = True) -> CycleSummary:
        return poll_due(self.store, self.session, self.config, None, now, force=force)

    def feed_row(self, url_part: str) -> dict:
        [row] = [f for f in self.store.feeds() if url_part in f["url"]]
        return row


@pytest.fixture
def service(write_config: Callable[..., Path]) -> Iterator[Callable[..., Service]]:
    made: list[Service] = []

    def make(feeds: list, **sections: object) -> Service:
        made.append(Service(load_config(write_config(feeds, **sections))))
        return made[-1]

    yield make
    for svc in made:
        svc.store.close()


def test_bbc_replay_stores_each_distinct_item_once(
    shared_corpora: Path, server: LoopbackServer, service: Callable[..., Service]
) -> None:
    files = sorted((shared_corpora / "feeds" / "bbc-snapshots").glob("*.xml"))
    assert len(files) == 39
    bodies = [f.read_bytes() for f in files]
    guids = set()
    for body in bodies:
        for item in ET.fromstring(body).iter("item"):
            guid = (item.findtext("guid") or "").strip() or (item.findtext("link") or "").strip()
            guids.add(guid)
    route = server.route("/bbc.xml", bodies=bodies)
    svc = service([server.url("/bbc.xml")])

    new_per_poll = []
    for i in range(len(bodies)):
        summary = svc.poll(NOW + timedelta(hours=i))
        assert summary.errors == [] and summary.feeds_polled == 1
        new_per_poll.append(summary.new_articles)
    assert route.served == 39
    assert svc.store.count("articles") == len(guids)
    assert sum(new_per_poll) == len(guids)
    assert new_per_poll[0] == len(ET.fromstring(bodies[0]).findall("./channel/item"))
    assert svc.feed_row("/bbc.xml")["items"] == len(guids)
    assert svc.feed_row("/bbc.xml")["title"] == "BBC News - Home"

    # The same bytes once more: nothing is new, and a repeated body is not even parsed.
    route.served = 0
    second_pass = [svc.poll(NOW + timedelta(days=2, hours=i)) for i in range(len(bodies))]
    assert sum(s.new_articles for s in second_pass) == 0
    assert all(s.errors == [] for s in second_pass)
    assert svc.store.count("articles") == len(guids)
    repeat = svc.poll(NOW + timedelta(days=5))
    assert (repeat.feeds_polled, repeat.feeds_unchanged, repeat.new_articles) == (1, 1, 0)


def test_good_feed_is_stored_while_broken_ones_are_recorded(
    server: LoopbackServer, closed_port: int, service: Callable[..., Service]
) -> None:
    server.route("/good.rss", RSS)
    server.route("/error.rss", b"Internal error", status=500, content_type="text/plain")
    server.route(
        "/broken.rss", b"<html><body><p>We moved!</p></body></html>", content_type="text/html"
    )
    svc = service(
        [
            {"url": server.url("/good.rss"), "name": "Good"},
            server.url("/error.rss"),
            f"http://127.0.0.1:{closed_port}/feed.rss",
            server.url("/broken.rss"),
        ]
    )
    summary = svc.poll()
    assert summary.feeds_polled == 4
    assert summary.new_articles == RSS_ITEMS == svc.store.count("articles")
    assert {url for url, _ in summary.errors} == {
        server.url("/error.rss"),
        f"http://127.0.0.1:{closed_port}/feed.rss",
        server.url("/broken.rss"),
    }
    assert all("\n" not in message for _, message in summary.errors)

    good = svc.feed_row("/good.rss")
    assert (good["last_error"], good["error_count"], good["last_status"]) == (None, 0, 200)
    assert good["items"] == RSS_ITEMS and good["last_success"]
    errors = {
        "/error.rss": "HTTP 500 Internal Server Error",
        f":{closed_port}/": "connection failed: ",
        "/broken.rss": "not a feed",
    }
    for part, message in errors.items():
        row = svc.feed_row(part)
        assert row["last_error"].startswith(message), row
        assert row["error_count"] == 1
        assert row["last_success"] is None
        assert parse_iso(row["next_poll"]) > NOW

    again = svc.poll(NOW + timedelta(days=3))
    assert again.new_articles == 0
    assert [svc.feed_row(part)["error_count"] for part in errors] == [2, 2, 2]
    assert svc.feed_row("/good.rss")["error_count"] == 0


def test_recovered_feed_resets_its_errors(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    server.route("/feed.rss", b"down", status=500)
    svc = service([server.url("/feed.rss")])
    svc.poll()
    svc.poll()
    assert svc.feed_row("/feed.rss")["error_count"] == 2
    server.route("/feed.rss", RSS)
    summary = svc.poll()
    assert summary.errors == [] and summary.new_articles == RSS_ITEMS
    row = svc.feed_row("/feed.rss")
    assert (row["error_count"], row["last_error"], row["last_status"]) == (0, None, 200)


def test_304_keeps_articles_and_validators(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    server.route("/feed.rss", RSS, etag='"v1"', last_modified="Mon, 23 Nov 2026 18:40:00 GMT")
    svc = service([server.url("/feed.rss")])
    assert svc.poll().new_articles == RSS_ITEMS
    summary = svc.poll(NOW + timedelta(hours=1))
    assert (summary.feeds_unchanged, summary.new_articles, summary.errors) == (1, 0, [])
    assert server.requests_to("/feed.rss")[-1].headers["if-none-match"] == '"v1"'
    row = svc.feed_row("/feed.rss")
    assert (row["last_status"], row["etag"], row["error_count"]) == (304, '"v1"', 0)
    assert row["last_modified"] == "Mon, 23 Nov 2026 18:40:00 GMT"
    assert svc.store.count("articles") == RSS_ITEMS


def test_every_poll_of_a_large_quiet_cycle_is_recorded(
    server: LoopbackServer, service: Callable[..., Service], caplog: pytest.LogCaptureFixture
) -> None:
    # Polls with nothing to store are recorded together: more of them than one batch, beside
    # a feed that changed and one that fails, must all reach their feed's record.
    quiet = [f"/quiet-{i}.rss" for i in range(130)]
    for path in quiet:
        server.route(path, RSS, etag=f'"{path}"')
    server.route("/changing.rss", RSS)
    svc = service([*map(server.url, quiet), server.url("/changing.rss"), server.url("/gone.rss")])
    svc.poll()
    server.route("/changing.rss", ATOM)
    later = NOW + timedelta(hours=2)
    summary = svc.poll(later)
    assert summary.feeds_polled == 132 and summary.feeds_unchanged == 130
    assert summary.new_articles > 0 and [url for url, _ in summary.errors] == [
        server.url("/gone.rss")
    ]
    for path in quiet:
        row = svc.feed_row(path)
        assert (row["last_status"], row["etag"], row["error_count"]) == (304, f'"{path}"', 0)
        # when the feed answered: `later` and the seconds into the cycle (stored to the second)
        polled = parse_iso(row["last_polled"])
        assert polled is not None and later <= polled < later + timedelta(minutes=1)
        assert parse_iso(row["next_poll"]) > polled
    assert svc.feed_row("/gone.rss")["error_count"] == 2
    polled = parse_iso(svc.feed_row("/changing.rss")["last_polled"])
    assert polled is not None and later <= polled < later + timedelta(minutes=1)
    failures = [r for r in caplog.records if r.getMessage() == "feed failed"]
    assert [r.feed_url for r in failures] == [server.url("/gone.rss")] * 2  # type: ignore[attr-defined]


def test_fetching_waits_for_storing_rather_than_piling_up_bodies(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    # Fetched bodies wait to be read and stored on the polling thread. When storing is slower
    # than fetching, the fetch threads must wait too, so a cycle of many large feeds does not
    # hold them all in memory: at most twice the concurrency wait, beside those being fetched.
    routes = [server.route(f"/feed-{i}.rss", RSS) for i in range(40)]
    svc = service([server.url(f"/feed-{i}.rss") for i in range(40)], fetch={"concurrency": 2})
    ahead: list[int] = []

    def slow_storing(outcome: object) -> None:
        ahead.append(sum(route.served for route in routes) - len(ahead) - 1)
        time.sleep(0.02)

    summary = poll_due(
        svc.store, svc.session, svc.config, None, NOW, on_feed_done=slow_storing, force=True
    )
    assert summary.feeds_polled == 40 and summary.errors == []
    assert svc.store.count("articles") == RSS_ITEMS  # the same items in every feed
    assert 2 <= max(ahead) <= 2 * 2 + 2


def test_an_error_while_storing_ends_the_cycle_without_fetching_every_feed(
    server: LoopbackServer, service: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A failure on the polling thread (a full disk, say) must reach the caller at once: the
    # fetch threads waiting for room must not keep the cycle from ending.
    routes = [server.route(f"/feed-{i}.rss", RSS) for i in range(40)]
    svc = service([server.url(f"/feed-{i}.rss") for i in range(40)], fetch={"concurrency": 2})

    def failing(*args: object) -> None:
        time.sleep(0.2)  # the fetch threads fill every place meanwhile
        raise OSError("disk full")

    monkeypatch.setattr(pipeline, "store_outcome", failing)
    errors: list[BaseException] = []

    def cycle() -> None:
        try:
            svc.poll()
        except OSError as e:
            errors.append(e)

    thread = threading.Thread(target=cycle, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert [str(e) for e in errors] == ["disk full"]
    assert sum(route.served for route in routes) < 40


def test_a_cycle_that_fails_while_storing_loses_nothing(
    server: LoopbackServer, service: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each feed is stored all or nothing: after a failure, a feed is stored with its poll
    # record or not at all, and the next cycle stores whatever is missing.
    server.route("/a.rss", RSS, etag='"a1"')
    server.route("/b.atom", ATOM, etag='"b1"')
    svc = service([server.url("/a.rss"), server.url("/b.atom")], fetch={"concurrency": 1})
    store_outcome, calls = pipeline.store_outcome, []

    def failing_second(*args: object) -> list:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return store_outcome(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "store_outcome", failing_second)
    with pytest.raises(OSError):
        svc.poll()
    other = Store(svc.config.database)  # what another connection, or a restart, would see
    for row in other.feeds():
        stored = other.db.execute(
            "SELECT count(*) FROM articles WHERE feed_id = ?", [row["id"]]
        ).fetchone()[0]
        assert (row["etag"] is None) == (stored == 0), (row["url"], row["etag"], stored)
    monkeypatch.setattr(pipeline, "store_outcome", store_outcome)
    svc.poll(NOW + timedelta(hours=1), force=False)
    atom_entries = len(ET.fromstring(ATOM).findall("{http://www.w3.org/2005/Atom}entry"))
    assert other.count("articles") == RSS_ITEMS + atom_entries
    assert {row["etag"] for row in other.feeds()} == {'"a1"', '"b1"'}
    other.close()


def test_same_body_under_a_new_etag_after_a_304_is_unchanged(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    server.route("/feed.rss", RSS, etag='"v1"')
    svc = service([server.url("/feed.rss")])
    svc.poll()
    assert svc.poll().feeds_unchanged == 1  # 304
    server.route("/feed.rss", RSS, etag='"v2"')  # a server that re-tags identical content
    summary = svc.poll()
    assert server.requests_to("/feed.rss")[-1].headers["if-none-match"] == '"v1"'
    assert (summary.feeds_unchanged, summary.new_articles) == (1, 0)
    assert svc.feed_row("/feed.rss")["etag"] == '"v2"'


def test_unchanged_body_without_validators_is_reported_unchanged(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    server.route("/feed.rss", RSS)
    svc = service([server.url("/feed.rss")])
    first = svc.poll()
    second = svc.poll(NOW + timedelta(hours=1))
    assert (first.feeds_unchanged, first.new_articles) == (0, RSS_ITEMS)
    assert (second.feeds_unchanged, second.new_articles) == (1, 0)
    assert "if-none-match" not in server.requests_to("/feed.rss")[-1].headers


def test_permanent_redirect_moves_the_stored_feed(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    server.redirect("/old.rss", "/new.rss", status=301)
    server.route("/new.rss", RSS)
    svc = service([server.url("/old.rss")])
    assert svc.poll().new_articles == RSS_ITEMS
    assert [f["url"] for f in svc.store.feeds()] == [server.url("/new.rss")]
    svc.poll(NOW + timedelta(hours=1))
    assert len(server.requests_to("/old.rss")) == 1
    assert len(server.requests_to("/new.rss")) == 2


@pytest.mark.parametrize(
    ("target", "body", "status"),
    [("/home.html", b"<html><body>Our feeds have moved</body></html>", 200), ("/gone", b"", 404)],
)
def test_a_permanent_redirect_to_a_failure_leaves_the_feed_where_it_was(
    server: LoopbackServer,
    service: Callable[..., Service],
    target: str,
    body: bytes,
    status: int,
) -> None:
    """A feed redirected for good to a maintenance page or a 404 (a misconfigured CDN) had its
    URL replaced by that page's, though the poll failed: the feed was lost for good, and
    polled at the page once the CDN was mended."""
    server.redirect("/feed.rss", target, status=301)
    server.route(target, body, status=status, headers={"Content-Type": "text/html"})
    svc = service([server.url("/feed.rss")])
    svc.poll()
    [feed] = svc.store.feeds()
    assert feed["url"] == server.url("/feed.rss") and feed["last_error"]
    server.route("/feed.rss", RSS)  # mended
    assert svc.poll(NOW + timedelta(hours=1)).new_articles == RSS_ITEMS


def test_temporary_redirect_keeps_the_stored_feed(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    server.redirect("/feed.rss", "/today.rss", status=302)
    server.route("/today.rss", RSS)
    svc = service([server.url("/feed.rss")])
    assert svc.poll().new_articles == RSS_ITEMS
    assert [f["url"] for f in svc.store.feeds()] == [server.url("/feed.rss")]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_pushes_next_poll(
    server: LoopbackServer, service: Callable[..., Service], status: int
) -> None:
    server.route("/feed.rss", b"busy", status=status, headers={"Retry-After": "7200"})
    svc = service([{"url": server.url("/feed.rss"), "interval": "1m"}])
    summary = svc.poll()
    assert summary.errors[0][1].startswith(f"HTTP {status}")
    row = svc.feed_row("/feed.rss")
    assert parse_iso(row["next_poll"]) >= NOW + timedelta(seconds=7200)
    assert row["error_count"] == 1
    assert svc.store.due_feeds(NOW + timedelta(seconds=7199), 1800) == []


def test_retry_after_is_capped_by_max_backoff(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    server.route("/feed.rss", b"busy", status=429, headers={"Retry-After": "9999999"})
    svc = service(
        [{"url": server.url("/feed.rss"), "interval": "1m"}], polling={"max_backoff": "1h"}
    )
    svc.poll()
    next_poll = parse_iso(svc.feed_row("/feed.rss")["next_poll"])
    assert NOW + timedelta(minutes=54) <= next_poll <= NOW + timedelta(hours=1)


def test_a_gone_feed_is_asked_again_only_after_max_backoff(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """A 410 was retried like any failure: every interval, doubled, a few times a day for good;
    and `vigie once` from cron asked at every run."""
    server.route("/gone.rss", b"gone", status=410)
    svc = service(
        [{"url": server.url("/gone.rss"), "interval": "1m"}], polling={"max_backoff": "6h"}
    )
    [(_, error)] = svc.poll().errors
    assert error.startswith("HTTP 410 Gone: the publisher removed this feed")
    assert parse_iso(svc.feed_row("/gone.rss")["next_poll"]) == NOW + timedelta(hours=6)
    later = svc.poll(NOW + timedelta(hours=1))  # `vigie once` an hour later
    assert later.feeds_polled == 0
    assert [url for url, _, _ in later.waiting] == [server.url("/gone.rss")]
    server.route("/gone.rss", RSS)  # back, by mistake undone
    assert svc.poll(NOW + timedelta(hours=7)).new_articles == RSS_ITEMS
    assert svc.feed_row("/gone.rss")["last_error"] is None


def test_the_service_log_counts_in_words_that_agree(
    server: LoopbackServer, service: Callable[..., Service], caplog: pytest.LogCaptureFixture
) -> None:
    """The log of every cycle read "polled 1 feeds: ... 1 errors"."""
    from monitor.rules.files import RuleBook
    from monitor.scheduler import poll_job

    server.route("/gone.rss", b"gone", status=410)
    svc = service([server.url("/gone.rss")])
    with caplog.at_level("INFO", logger="monitor.scheduler"):
        poll_job(svc.store, svc.session, svc.config, RuleBook([]))
    assert "polled 1 feed: 0 new articles, 0 updated, 0 new matches, 1 error" in caplog.text


def polled_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.getMessage().startswith(("polled", "polling:"))
    ]


def test_a_cycle_that_brought_nothing_is_logged_only_with_verbose(
    server: LoopbackServer, service: Callable[..., Service], caplog: pytest.LogCaptureFixture
) -> None:
    """Every tick that polled anything logged "polled 46 feeds: 0 new articles, 0 updated, 0
    new matches, 0 errors" at INFO: thousands of lines a day saying nothing."""
    from monitor.rules.files import RuleBook
    from monitor.scheduler import poll_job

    server.route("/feed.rss", QUIET)
    svc = service([server.url("/feed.rss")])
    with caplog.at_level("DEBUG", logger="monitor"):
        poll_job(svc.store, svc.session, svc.config, RuleBook([]))
        server.route("/feed.rss", RSS)
        with svc.store.db.conn:
            svc.store.db.execute("UPDATE feeds SET next_poll = NULL")  # due again
        poll_job(svc.store, svc.session, svc.config, RuleBook([]))
    assert polled_lines(caplog) == [
        ("DEBUG", "polled 1 feed: 0 new articles, 0 updated, 0 new matches, 0 errors"),
        ("INFO", f"polled 1 feed: {RSS_ITEMS} new articles, 0 updated, 0 new matches, 0 errors"),
    ]


def test_a_long_cycle_logs_its_progress(
    server: LoopbackServer,
    service: Callable[..., Service],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A first cycle of 2,000 feeds ran for minutes with nothing logged after "vigie running".
    Here every feed is "long enough" for a progress line (but the last: the summary follows)."""
    from monitor.rules.files import RuleBook
    from monitor.scheduler import poll_job

    monkeypatch.setattr(pipeline, "PROGRESS_EVERY", 0.0)
    server.route("/news.rss", RSS)
    server.route("/quiet-1.rss", QUIET)
    server.route("/quiet-2.rss", QUIET)
    paths = ["/news.rss", "/quiet-1.rss", "/quiet-2.rss"]
    svc = service([server.url(p) for p in paths], fetch={"concurrency": 1})
    with caplog.at_level("INFO", logger="monitor"):
        poll_job(svc.store, svc.session, svc.config, RuleBook([]))
    assert polled_lines(caplog) == [
        ("INFO", f"polling: 1 of 3 feeds done, {RSS_ITEMS} new articles so far"),
        ("INFO", f"polling: 2 of 3 feeds done, {RSS_ITEMS} new articles so far"),
        ("INFO", f"polled 3 feeds: {RSS_ITEMS} new articles, 0 updated, 0 new matches, 0 errors"),
    ]


def test_a_full_disk_is_one_error_line_and_a_pause_not_a_traceback_at_every_tick(
    server: LoopbackServer, service: Callable[..., Service], caplog: pytest.LogCaptureFixture
) -> None:
    """Each tick logged a traceback ("database or disk is full") and, its failures not
    recorded, fetched every feed again, whatever their interval."""
    from monitor.rules.files import RuleBook
    from monitor.scheduler import poll_job

    server.route("/feed.rss", RSS)
    svc = service([server.url("/feed.rss")])
    [(pages,)] = svc.store.db.execute("PRAGMA page_count").fetchall()
    svc.store.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "disk is full"
    stop = threading.Event()
    job = threading.Thread(
        target=poll_job, args=(svc.store, svc.session, svc.config, RuleBook([]), None, stop)
    )
    with caplog.at_level("INFO"):
        job.start()
        deadline = time.monotonic() + 20
        while "could not be written" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.is_alive()  # waiting before the next run, rather than fetching again
        stop.set()  # the service stopping ends the wait
        job.join(10)
    assert not job.is_alive()
    assert "polling: the database could not be written (SQLITE_FULL" in caplog.text
    assert [r.exc_info for r in caplog.records if r.exc_info] == []
    assert len(server.requests_to("/feed.rss")) == 1


def _flood(first: int, count: int) -> bytes:
    items = "".join(
        f"<item><title>Calais {i}</title><guid>f{i}</guid><description>Boats at Calais {i}."
        "</description></item>"
        for i in range(first, first + count)
    )
    return f"<rss version='2.0'><channel><title>Flood</title>{items}</channel></rss>".encode()


def test_a_feed_of_thousands_of_items_gives_its_newest_thousand_at_each_poll(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """A security review's feed listed 50,000 matching items: as many articles, matches and
    webhooks from one poll. Its 1,000 newest are read and remembered; the same document again
    brings nothing; a rolling feed that adds an item at its top and drops one at its bottom
    brings that one item, not an older one coming into view (a code review of a version that
    read both ends)."""
    route = server.route("/flood.rss", _flood(0, 5000))
    svc = service([server.url("/flood.rss")])
    assert svc.poll().new_articles == 1000
    # Remembered: the next document is cut, not parsed again whole (a code review found a
    # long feed's items never remembered, 0.3 s of parsing at every poll).
    assert len(json.loads(svc.feed_row("/flood.rss")["seen_items"])) == 1000
    assert svc.poll(NOW + timedelta(hours=1)).new_articles == 0
    for poll in range(1, 4):
        route.bodies = [_flood(-poll, 5000)]  # one more at the top, one fewer at the bottom
        assert svc.poll(NOW + timedelta(hours=1 + poll)).new_articles == 1
    titles = {r["title"] for r in svc.store.db.query("SELECT title FROM articles")}
    assert {"Calais -3", "Calais 0", "Calais 999"} <= titles and "Calais 1000" not in titles


def test_a_long_feed_listing_the_oldest_first_still_brings_its_new_items(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """Keeping a long feed's first 1,000 items cut, at every poll, the new items of a feed that
    adds them at its end (a code review)."""

    def oldest_first(count: int) -> bytes:
        items = "".join(
            f"<item><title>Calais {i}</title><guid>o{i}</guid><pubDate>"
            f"{format_datetime(NOW - timedelta(hours=5000 - i))}</pubDate></item>"
            for i in range(count)
        )
        return f"<rss version='2.0'><channel><title>Old</title>{items}</channel></rss>".encode()

    route = server.route("/archive.rss", oldest_first(2500))
    svc = service([server.url("/archive.rss")])
    assert svc.poll().new_articles == 1000
    route.bodies = [oldest_first(2501)]
    assert svc.poll(NOW + timedelta(hours=1)).new_articles == 1
    titles = {r["title"] for r in svc.store.db.query("SELECT title FROM articles")}
    assert "Calais 2500" in titles and "Calais 1500" in titles and "Calais 1499" not in titles
    # A last item with a date that cannot be read turned the feed the other way: its oldest
    # thousand were stored as news (a code review). The few items at each end decide.
    odd = b"<item><title>Calais late</title><guid>late</guid><pubDate>soon</pubDate></item>"
    route.bodies = [oldest_first(2501).replace(b"</channel>", odd + b"</channel>")]
    assert svc.poll(NOW + timedelta(hours=2)).new_articles == 1


def test_only_due_feeds_are_polled(server: LoopbackServer, service: Callable[..., Service]) -> None:
    server.route("/feed.rss", RSS)
    svc = service([{"url": server.url("/feed.rss"), "interval": "10m"}])
    assert svc.poll(force=False).feeds_polled == 1
    due = parse_iso(svc.feed_row("/feed.rss")["next_poll"])
    assert svc.poll(due - timedelta(seconds=1), force=False).feeds_polled == 0
    assert svc.poll(due, force=False).feeds_polled == 1
    assert len(server.requests_to("/feed.rss")) == 2


QUIET = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet</title>'
    b"<link>http://x.example/</link><description>nothing new</description></channel></rss>"
)


def slices_of_interval(times: list[datetime], interval: float) -> Counter[int]:
    """How many of `times` fall in each tenth of the interval (their place in it, not when)."""
    return Counter(int((t - NOW).total_seconds() % interval / interval * 10) for t in times)


def test_feeds_stored_together_are_spread_over_the_interval(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """2,000 feeds imported at once were polled together, then each 30m +-10% later: every
    interval brought them due within minutes of each other, bursts of hundreds, then nothing."""
    paths = [f"/feed-{i}.rss" for i in range(200)]
    for path in paths:
        server.route(path, QUIET)
    svc = service([server.url(p) for p in paths], fetch={"concurrency": 16, "per_host": 16})
    assert svc.poll(force=False).feeds_polled == 200  # new feeds: polled at once
    first = [parse_iso(row["next_poll"]) for row in svc.store.feeds()]
    assert all(NOW < t <= NOW + timedelta(seconds=1.1 * 1800 + 60) for t in first)
    assert max(slices_of_interval(first, 1800).values()) <= 30  # no tenth holds over 15%
    # All due at once again (the service was down an hour): they stay spread.
    later = NOW + timedelta(hours=1)
    assert svc.poll(later, force=False).feeds_polled == 200
    second = [parse_iso(row["next_poll"]) for row in svc.store.feeds()]
    assert all(later < t <= later + timedelta(seconds=1.1 * 1800 + 60) for t in second)
    assert max(slices_of_interval(second, 1800).values()) <= 30


def test_a_healthy_feed_is_polled_once_an_interval(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """Spread over the interval, a feed still keeps its pace: one poll per interval."""
    server.route("/feed.rss", QUIET)
    svc = service([{"url": server.url("/feed.rss"), "interval": "10m"}])
    svc.poll(force=False)
    slot = parse_iso(svc.feed_row("/feed.rss")["next_poll"])
    for n in range(1, 4):  # each poll a little late, as the tick finds it
        assert svc.poll(slot + timedelta(seconds=20), force=False).feeds_polled == 1
        after = parse_iso(svc.feed_row("/feed.rss")["next_poll"])
        assert after - slot == timedelta(minutes=10), n
        slot = after


def test_local_file_feeds_and_json_feed(service: Callable[..., Service]) -> None:
    svc = service([str(SAMPLES / name) for name in sorted(p.name for p in SAMPLES.iterdir())])
    summary = svc.poll()
    assert summary.errors == [] and summary.feeds_polled == 4
    assert summary.new_articles == svc.store.count("articles") == 30
    titles = {f["title"] for f in svc.store.feeds()}
    assert titles == {"Border Watch", "The Coastal Herald", "Nord Actu", "Wire Digest"}


def delays(error_count: int, seeds: range = range(200), **kwargs: object) -> list[float]:
    values = []
    for seed in seeds:
        when = next_poll_time(
            kwargs.get("interval", 600.0),  # type: ignore[arg-type]
            error_count,
            NOW,
            kwargs.get("max_backoff", 86400.0),  # type: ignore[arg-type]
            kwargs.get("retry_after"),  # type: ignore[arg-type]
            rng=random.Random(seed),
            phase=kwargs.get("phase"),  # type: ignore[arg-type]
        )
        values.append((when - NOW).total_seconds())
    return values


def test_backoff_doubles_with_each_failure() -> None:
    for errors in range(1, 6):
        base = 600 * 2**errors
        values = delays(errors)
        assert all(0.9 * base <= v <= 1.1 * base for v in values), errors
        # Jitter spreads feeds that failed together, on both sides of the base delay.
        assert min(values) < base < max(values)
        assert len(set(values)) > 100


def test_backoff_is_capped_at_max_backoff() -> None:
    values = delays(12, max_backoff=3600.0)
    assert all(0.9 * 3600 <= v <= 3600 for v in values)
    assert len(set(values)) > 100  # still spread below the cap


def test_interval_longer_than_max_backoff_is_kept_while_healthy() -> None:
    values = delays(0, interval=7 * 86400.0, max_backoff=86400.0)
    # Spread over the interval (the feed's slot), not capped at max_backoff.
    assert all(0.1 * 7 * 86400 <= v <= 1.1 * 7 * 86400 for v in values)
    assert sum(v > 86400 for v in values) > 180


def test_a_healthy_feed_waits_for_its_slot() -> None:
    """Its place in the interval (phase), at least a tenth of the interval away."""
    slot = {p: delays(0, range(1), interval=600.0, phase=p)[0] for p in (0.5, 0.15, 0.05)}
    assert slot == pytest.approx({0.5: 300.0, 0.15: 90.0, 0.05: 630.0})  # NOW is 12:00


def test_retry_after_wins_over_a_shorter_backoff() -> None:
    assert min(delays(1, retry_after=5000.0)) >= 5000
    assert max(delays(1, retry_after=5000.0, max_backoff=3000.0)) <= 3000


def test_same_seed_same_schedule() -> None:
    assert delays(3, range(5)) == delays(3, range(5))


def test_many_failures_do_not_overflow_the_backoff() -> None:
    assert all(0.9 * 86400 <= v <= 86400 for v in delays(5000, range(10)))


def test_retry_after_counts_from_the_answer_not_from_the_start_of_the_cycle(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """One `now` served a whole cycle: a feed answering 429 minutes into a long cycle was
    asked again minutes before the time its server gave, and its last poll read as earlier
    than it was."""
    server.route("/slow.rss", RSS, delay=2.5)
    server.route("/busy.rss", b"busy", status=429, headers={"Retry-After": "600"})
    svc = service([server.url("/slow.rss"), server.url("/busy.rss")], fetch={"concurrency": 1})
    svc.poll()
    busy = svc.feed_row("/busy.rss")
    assert parse_iso(busy["last_polled"]) >= NOW + timedelta(seconds=2)  # stored to the second
    assert parse_iso(busy["next_poll"]) >= NOW + timedelta(seconds=602)


def test_a_feed_read_on_the_storing_thread_counts_its_poll_from_its_answer_too(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """A body read after the fetch, on the thread that stores (no reader processes, or a cycle
    of few feeds), lost the time of its answer: its last and next poll counted from the start
    of the cycle, however late in it the feed answered."""
    server.route("/slow.rss", RSS, delay=1.5)
    svc = service([server.url("/slow.rss")])
    assert svc.poll().new_articles == RSS_ITEMS
    row = svc.feed_row("/slow.rss")
    assert parse_iso(row["last_polled"]) >= NOW + timedelta(seconds=1)
    assert parse_iso(row["last_success"]) >= NOW + timedelta(seconds=1)


def test_one_hosts_feeds_are_fetched_two_at_a_time(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """Politeness: the sections of one newspaper were fetched fetch.concurrency (8) at once."""
    urls = []
    for i in range(6):
        server.route(f"/section{i}.rss", RSS, delay=0.3)
        urls.append(server.url(f"/section{i}.rss"))
    svc = service(urls, fetch={"concurrency": 8})
    assert svc.poll().feeds_polled == 6
    assert server.most_in_flight == 2


def test_a_host_that_answers_nothing_in_time_is_asked_twice_a_cycle_not_for_every_feed(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """A big outlet's server that stopped answering stalled an NGO's cycle of 1,880 feeds
    (375 still waiting after ten minutes): its 100 sections two at a time, each to the
    deadline, and the fetch threads waiting for its turn held every other feed. After two
    fetches of a host run out of time, with no answer from it, its other feeds fail at once,
    saying why."""
    for i in range(6):
        server.route(f"/hung{i}.xml", RSS, delay=10.0)
    server.route("/other.xml", RSS)
    hung = [server.url(f"/hung{i}.xml") for i in range(6)]
    other = server.url("/other.xml").replace("127.0.0.1", "localhost")  # another host
    svc = service([*hung, other], fetch={"per_host": 2, "concurrency": 4, "deadline": "1s"})

    summary = svc.poll()

    asked = sum(len(server.requests_to(f"/hung{i}.xml")) for i in range(6))
    # Not 6 deadlines two at a time: the two asked first, and the one that took the host's
    # turn as the first of them ran out of time, when the second had not yet.
    assert asked in (2, 3)
    assert summary.feeds_polled == 7 and len(summary.errors) == 6
    assert svc.feed_row("/other.xml")["items"] == RSS_ITEMS
    rows = [svc.feed_row(f"/hung{i}.xml") for i in range(6)]
    told = sorted(row["last_error"] for row in rows)
    assert told[:asked] == ["deadline of 1s exceeded"] * asked, told
    skipped = (
        "not asked: 127.0.0.1 answered none of its feeds asked before in this poll in time"
        " (deadline of 1s exceeded)"
    )
    assert told[asked:] == [skipped] * (6 - asked), told
    assert all(row["error_count"] == 1 for row in rows)  # asked again at their next poll


def test_a_host_that_answered_is_asked_for_each_of_its_slow_feeds(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """A host with a feed or two too slow (a heavy search feed) but that answers the others
    is not taken for one that answers nothing: each of its feeds is asked."""
    server.route("/quick.xml", RSS)
    for i in range(3):
        server.route(f"/slow{i}.xml", RSS, delay=10.0)
    urls = [server.url("/quick.xml"), *(server.url(f"/slow{i}.xml") for i in range(3))]
    svc = service(urls, fetch={"per_host": 2, "concurrency": 4, "deadline": "1s"})

    svc.poll()

    assert [len(server.requests_to(f"/slow{i}.xml")) for i in range(3)] == [1, 1, 1]
    assert svc.feed_row("/quick.xml")["items"] == RSS_ITEMS


def answered_after(svc: Service, **options: object) -> tuple[CycleSummary, dict[str, float]]:
    """A forced poll, and the seconds from its start to each feed's answer, by URL."""
    answered: dict[str, float] = {}

    def done(outcome: pipeline.PollOutcome) -> None:
        answered[outcome.feed.url] = outcome.answered_after

    summary = poll_due(svc.store, svc.session, svc.config, None, NOW, done, True, **options)
    return summary, answered


def test_a_slow_hosts_feeds_hold_no_thread_from_the_other_hosts_feeds(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """A big publisher's hundreds of sections, each answered in most of the deadline: the
    fetch threads waiting for its turn held every other host's feeds, overdue by minutes. Its
    feeds still go fetch.per_host at a time; the other host's are fetched at once beside them."""
    with serving(LoopbackServer()) as quick:
        for i in range(8):
            server.route(f"/section{i}.xml", QUIET, delay=0.6)
            quick.route(f"/feed{i}.xml", QUIET)
        slow = [server.url(f"/section{i}.xml") for i in range(8)]
        fast = [quick.url(f"/feed{i}.xml").replace("127.0.0.1", "localhost") for i in range(8)]
        svc = service([*slow, *fast], fetch={"per_host": 2, "concurrency": 4})

        summary, answered = answered_after(svc)

    assert summary.feeds_polled == 16 and summary.errors == []
    # Before: the last of them behind three of the publisher's turns, 1.8 s; now all before
    # the publisher's first answer (0.6 s), whatever the machine's load.
    assert max(answered[url] for url in fast) < min(answered[url] for url in slow), answered
    assert server.most_in_flight == 2
    assert min(answered[url] for url in slow[-2:]) > 3 * 0.6  # the last two after three turns


def test_a_body_trickled_past_the_deadline_is_that_feeds_failure_and_holds_no_other_feed(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """Headers at once, then a few bytes at a time: every read is quick, and only the fetch's
    own deadline ends it. Each such feed fails at the deadline, saying so (the host, answering
    none in time, is then asked nothing more in the cycle), and the other host's feeds are
    fetched at once, where they waited a deadline for the trickling host's turns."""
    with serving(LoopbackServer()) as quick:
        for i in range(4):
            server.route(f"/section{i}.xml", RSS, drip=0.05)  # 16 bytes each 50 ms: 40 s
            quick.route(f"/feed{i}.xml", QUIET)
            quick.route(f"/more{i}.xml", QUIET)
        slow = [server.url(f"/section{i}.xml") for i in range(4)]
        fast = [
            quick.url(f"/{name}{i}.xml").replace("127.0.0.1", "localhost")
            for name in ("feed", "more")
            for i in range(4)
        ]
        svc = service([*slow, *fast], fetch={"per_host": 2, "concurrency": 4, "deadline": "1s"})

        summary, answered = answered_after(svc)

    assert summary.feeds_polled == 12 and len(summary.errors) == 4
    # All before the first trickled feed is cut (1 s), where they waited for its turn.
    assert max(answered[url] for url in fast) < min(answered[url] for url in slow), answered
    told = sorted(svc.feed_row(f"/section{i}.xml")["last_error"] for i in range(4))
    # The two asked first, and the one that took the host's turn as the first of them ran out
    # of time (test_a_host_that_answers_nothing_in_time_is_asked_twice_a_cycle...).
    asked = sum(len(server.requests_to(f"/section{i}.xml")) for i in range(4))
    assert asked in (2, 3)
    assert told[:asked] == ["deadline of 1s exceeded"] * asked, told
    assert all(error.startswith("not asked: 127.0.0.1 answered none") for error in told[asked:])
    assert all(answered[url] < 2 * 1 + 1 for url in slow)  # each cut at its deadline
    assert all(svc.feed_row(url)["last_error"] is None for url in fast)


def test_a_cycle_starts_no_fetch_after_max_cycle_and_the_next_takes_those_left_first(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """A feed that comes due during a cycle waits for its end: one host's hundreds of slow
    feeds made that an hour. With max_cycle, the feeds not started by then are left due, and
    the next cycle, which also takes what came due meanwhile, asks them first."""
    for i in range(6):
        server.route(f"/section{i}.xml", QUIET, delay=0.7)
    svc = service([server.url(f"/section{i}.xml") for i in range(6)], fetch={"per_host": 1})

    started = time.monotonic()
    first = poll_due(svc.store, svc.session, svc.config, None, NOW, max_cycle=1.0)
    took = time.monotonic() - started

    assert first.feeds_polled == 2  # started at 0 and 0.7 s, not at 1.4 s
    assert first.left == Counter({"127.0.0.1": 4}) and first.errors == []
    assert took < 1.0 + 0.7 + 0.5  # the last feed started, then no more
    later = NOW + timedelta(seconds=5)
    assert [f.url.rsplit("/", 1)[1] for f in svc.store.due_feeds(later, 1800)] == [
        f"section{i}.xml" for i in range(2, 6)
    ]
    second = poll_due(svc.store, svc.session, svc.config, None, later, max_cycle=1.0)
    assert second.feeds_polled == 2 and second.left.total() == 2
    asked = [r.path for r in server.requests]
    assert asked == [f"/section{i}.xml" for i in range(4)]  # none twice, those left first


def test_a_stopping_service_fetches_no_feed_still_waiting_for_its_hosts_turn(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """A code review: at a stop, leaving the fetch pool waited for every feed queued behind
    its host's turn, each fetched to its deadline: 20 slow feeds of one host held a SIGTERM
    past systemd's 60 s. Those not started are not fetched; the poll ends with the one under
    way, its feeds due at the next start."""
    for i in range(6):
        server.route(f"/slow{i}.xml", RSS, delay=1.0)
    svc = service(
        [server.url(f"/slow{i}.xml") for i in range(6)],
        fetch={"per_host": 1, "concurrency": 6, "deadline": "5s"},
    )
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()  # SIGTERM while the first feed is fetched

    summary = poll_due(svc.store, svc.session, svc.config, None, NOW, force=True, stop=stop)

    asked = sum(len(server.requests_to(f"/slow{i}.xml")) for i in range(6))
    assert asked == 1  # the feed under way, not the five waiting for the host
    assert summary.new_articles == 0  # the stop came before anything was stored
    assert all(row["last_polled"] is None for row in svc.store.feeds())  # all due again


def test_a_cycle_ended_by_ctrl_c_fetches_no_feed_still_waiting_for_its_hosts_turn(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """`vigie once` took 33 s to exit after Ctrl+C (a code review): the feeds queued behind
    their host's turn were each fetched before the pool could be left."""
    for i in range(6):
        server.route(f"/slow{i}.xml", RSS, delay=0.5)
    svc = service(
        [server.url(f"/slow{i}.xml") for i in range(6)],
        fetch={"per_host": 1, "concurrency": 6, "deadline": "5s"},
    )

    def interrupted(outcome: object) -> None:
        raise KeyboardInterrupt  # Ctrl+C as the first feed is stored

    with pytest.raises(KeyboardInterrupt):
        poll_due(svc.store, svc.session, svc.config, None, NOW, interrupted, True)

    asked = sum(len(server.requests_to(f"/slow{i}.xml")) for i in range(6))
    assert asked <= 2  # the first, and the one that took the host's turn as it ended
