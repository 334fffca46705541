"""Hostile servers on loopback: bombs, endless and trickling bodies, redirect loops, lies about
content types, HTML instead of feeds, empty answers and storms of 500 and 503.

What a user can rely on, and each test shows: every fetch ends by its deadline plus one second
with a one-line error recorded on the feed, memory stays within a small multiple of max_bytes
however large the server says or makes the body, and the other feeds are polled as usual.
Slow cases run concurrently, so the deadline is paid once.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import time
import tracemalloc
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import SAMPLES, LoopbackServer, fetch_config

from monitor import pipeline
from monitor.config import load_config
from monitor.fetch import fetch_feed, make_session
from monitor.pipeline import poll_due
from monitor.records import Feed, FetchResult
from monitor.store import Store, parse_iso

DEADLINE = 1.0
MAX_BYTES = 1_000_000
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RSS = (SAMPLES / "coastal-herald.rss").read_bytes()
ATOM = (SAMPLES / "nord-actu.atom").read_bytes()
JSON_FEED = (SAMPLES / "border-watch.json").read_bytes()
RDF = (SAMPLES / "wire-digest.rdf").read_bytes()
TIMED_OUT = f"deadline of {DEADLINE:g}s exceeded"
TOO_LARGE = f"body larger than {MAX_BYTES} bytes"


@functools.cache
def zeros_compressed(size: int, wbits: int) -> bytes:
    """`size` zero bytes compressed (wbits 31: gzip, 15: zlib "deflate"): about 1000 to 1."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = b"\0" * (1 << 20)
    parts = [compressor.compress(block) for _ in range(size >> 20)]
    return b"".join(parts) + compressor.flush()


BOMB = 128 << 20  # 128 MB once decompressed, about 130 KB on the wire


def fetch(url: str, **config: object) -> tuple[FetchResult, float]:
    """One fetch with the short test limits; returns the result and the seconds it took."""
    cfg = fetch_config(deadline=DEADLINE, max_bytes=MAX_BYTES, **config)
    started = time.monotonic()
    result = fetch_feed(make_session(cfg), Feed(id=1, url=url), cfg)
    return result, time.monotonic() - started


def fetch_measuring_memory(url: str, **config: object) -> tuple[FetchResult, float, int]:
    tracemalloc.start()
    try:
        result, took = fetch(url, **config)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, took, peak


def endless(piece: bytes) -> Callable[[], itertools.repeat[bytes]]:
    return lambda: itertools.repeat(piece)


@dataclass(frozen=True)
class Hostile:
    """A hostile route and the error a fetch of it must end with."""

    path: str
    error: str
    setup: Callable[[LoopbackServer, str], object]


def _loop(server: LoopbackServer, path: str, hops: int = 30) -> None:
    for i in range(hops):
        server.redirect(f"{path}/{i}", f"{path}/{(i + 1) % hops}", status=302)


def _slow_hops(server: LoopbackServer, path: str) -> None:
    for i in range(10):  # ten hops of 0.3 s each: every hop is quick, the chain is not
        server.route(f"{path}/{i}", status=302, headers={"Location": f"{path}/{i + 1}"}, delay=0.3)
    server.route(f"{path}/10", RSS)


HOSTILE = [
    Hostile(  # one byte a second: each read succeeds, the body would take hours
        "/trickle", TIMED_OUT, lambda s, p: s.route(p, RSS, drip=1.0, drip_size=1)
    ),
    Hostile(  # a chunked body that never ends, slowly: never reaches max_bytes
        "/endless-slow", TIMED_OUT, lambda s, p: s.route(p, stream=endless(b"x" * 512), drip=0.02)
    ),
    Hostile(  # a chunked body that never ends, fast
        "/endless-fast", TOO_LARGE, lambda s, p: s.route(p, stream=endless(b"<item>" * 1500))
    ),
    Hostile(  # header lines, one every 50 ms
        "/slow-headers", TIMED_OUT, lambda s, p: s.route(p, RSS, header_drip=0.05)
    ),
    Hostile(  # accepts the connection, never answers
        "/hang", TIMED_OUT, lambda s, p: s.route(p, RSS, delay=30)
    ),
    Hostile(
        "/gzip-bomb",
        TOO_LARGE,
        lambda s, p: s.route(p, zeros_compressed(BOMB, 31), headers={"Content-Encoding": "gzip"}),
    ),
    Hostile("/loop", "more than 5 redirects", lambda s, p: _loop(s, p)),
    Hostile("/slow-hops", TIMED_OUT, lambda s, p: _slow_hops(s, p)),
    Hostile(
        "/error", "HTTP 500 Internal Server Error", lambda s, p: s.route(p, b"oops", status=500)
    ),
]


def start_path(hostile: Hostile) -> str:
    return hostile.path + ("/0" if hostile.path in ("/loop", "/slow-hops") else "")


def test_each_hostile_server_ends_by_its_deadline_with_a_clear_error(
    server: LoopbackServer,
) -> None:
    for hostile in HOSTILE:
        hostile.setup(server, hostile.path)
    with ThreadPoolExecutor(len(HOSTILE)) as pool:
        outcomes = list(
            pool.map(
                lambda h: fetch(
                    server.url(start_path(h)), max_redirects=30 if "hops" in h.path else 5
                ),
                HOSTILE,
            )
        )
    for hostile, (result, took) in zip(HOSTILE, outcomes, strict=True):
        assert result.error == hostile.error, hostile.path
        assert result.body is None
        assert took < DEADLINE + 1, (hostile.path, took)


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", lambda: zeros_compressed(BOMB, 31)),
        ("deflate", lambda: zeros_compressed(BOMB, 15)),
        ("gzip, gzip", lambda: gzip.compress(zeros_compressed(BOMB, 31))),  # 128 MB in 600 B
    ],
)
def test_a_compression_bomb_is_cut_at_max_bytes_in_bounded_memory(
    server: LoopbackServer, encoding: str, body: Callable[[], bytes]
) -> None:
    server.route("/bomb.xml", body(), headers={"Content-Encoding": encoding})
    result, took, peak = fetch_measuring_memory(server.url("/bomb.xml"))
    assert result.error == TOO_LARGE
    assert took < DEADLINE + 1
    assert peak < 3 * MAX_BYTES, f"{peak:,} bytes held for a {MAX_BYTES:,} byte limit"


def test_a_bomb_on_a_redirect_is_not_read(server: LoopbackServer) -> None:
    """The redirect's own body is never decompressed: the fetch goes on to the next hop."""
    server.route(
        "/moved",
        zeros_compressed(BOMB, 31),
        status=302,
        headers={"Content-Encoding": "gzip", "Location": server.url("/feed.xml")},
    )
    server.route("/feed.xml", RSS)
    result, took, peak = fetch_measuring_memory(server.url("/moved"))
    assert result.ok and result.body == RSS
    assert took < DEADLINE + 1
    assert peak < 3 * MAX_BYTES, f"{peak:,} bytes held for a {MAX_BYTES:,} byte limit"


def small_bomb(size: int) -> bytes:
    """`size` zero bytes once decoded twice as "deflate, deflate", in a few kilobytes: raw
    deflate of zeros, one fully flushed block repeated (a compressor gives the same bytes for
    each), deflated again. Cheap to build, unlike compressing gigabytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(b"\0" * (1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    outer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return outer.compress(block * (size >> 20)) + outer.flush()


@pytest.mark.parametrize("status", [302, 404])
def test_a_short_bomb_on_a_redirect_or_an_error_is_not_decompressed(
    server: LoopbackServer, status: int
) -> None:
    """A short redirect or error body is read to keep the connection, but as sent: decoded,
    these 2 GB of zeros in under 64 KB cost seconds of CPU past the deadline."""
    bomb = small_bomb(2 << 30)
    assert len(bomb) < 64 * 1024
    headers = {"Content-Encoding": "deflate, deflate", "Location": server.url("/feed.xml")}
    server.route("/moved", bomb, status=status, headers=headers)
    server.route("/feed.xml", RSS)
    result, took, peak = fetch_measuring_memory(server.url("/moved"))
    assert result.ok if status == 302 else result.error == "HTTP 404 Not Found"
    assert took < DEADLINE + 1


def test_an_endless_chunked_body_is_cut_at_max_bytes_in_bounded_memory(
    server: LoopbackServer,
) -> None:
    server.route("/endless.xml", stream=endless(b"<item>" + b"x" * 8000 + b"</item>"))
    result, took, peak = fetch_measuring_memory(server.url("/endless.xml"))
    assert result.error == TOO_LARGE
    assert took < DEADLINE + 1
    assert peak < 3 * MAX_BYTES


def test_a_30_hop_redirect_loop_stops_at_max_redirects(server: LoopbackServer) -> None:
    _loop(server, "/loop")
    result, took = fetch(server.url("/loop/0"))
    assert result.error == "more than 5 redirects"
    assert len(server.requests) == 6  # the first request and five hops, then it gave up
    many, _ = fetch(server.url("/loop/0"), max_redirects=40)
    assert many.error == "more than 40 redirects"  # round the loop more than once, then stop
    assert took < DEADLINE + 1


def test_a_flood_of_headers_is_an_error(server: LoopbackServer) -> None:
    server.route("/headers.xml", RSS, header_drip=0.0001)  # 200 header lines at once
    result, took = fetch(server.url("/headers.xml"))
    assert result.error is not None and "more than 100 headers" in result.error
    assert "\n" not in result.error and took < DEADLINE + 1


# A poll cycle in a storm ---------------------------------------------------------------------


def storm(server: LoopbackServer) -> tuple[dict[str, str], dict[str, bytes]]:
    """Routes for a storm: {path: error expected on the feed}, {path: good feed served}."""
    failing: dict[str, str] = {}
    for hostile in HOSTILE:
        hostile.setup(server, hostile.path)
        failing[start_path(hostile)] = hostile.error
    for i in range(20):
        server.route(f"/down/{i}", b"<h1>Internal Server Error</h1>", status=500)
        failing[f"/down/{i}"] = "HTTP 500 Internal Server Error"
    for i in range(10):
        server.route(f"/busy/{i}", b"busy", status=503, headers={"Retry-After": "7200"})
        failing[f"/busy/{i}"] = "HTTP 503 Service Unavailable"
    challenge = (
        b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
        b"<p>Checking your browser before accessing the site.</p><script>go()</script>"
        b"</body></html>"
    )
    server.route("/challenge", challenge, content_type="text/html", status=200)
    failing["/challenge"] = "not a feed: "
    server.route("/empty", b"", content_type="application/rss+xml")
    failing["/empty"] = "not a feed: no RSS, Atom or JSON Feed document found"
    server.route("/png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, content_type="image/png")
    failing["/png"] = "not a feed: "
    good = {
        "/rss-as-json": RSS,  # served with the wrong content types: the bytes decide
        "/atom-as-text": ATOM,
        "/json-as-html": JSON_FEED,
        "/rdf-as-octets": RDF,
    }
    types = ["application/json", "text/plain", "text/html", "application/octet-stream"]
    for (path, body), content_type in zip(good.items(), types, strict=True):
        server.route(path, body, content_type=content_type)
    return failing, good


def test_a_storm_of_failing_and_hostile_feeds_leaves_the_good_ones_polled(
    server: LoopbackServer, write_config: Callable[..., Path]
) -> None:
    failing, good = storm(server)
    config = load_config(
        write_config(
            [server.url(path) for path in [*failing, *good]],
            # Feeds of many hosts in the world, of one here: per_host as high as concurrency.
            fetch={
                "deadline": "1s",
                "max_bytes": "1MB",
                "concurrency": len(failing) + 8,
                "per_host": len(failing) + 8,
            },
        )
    )
    store = Store(config.database)
    try:
        for feed in config.feeds:
            store.upsert_feed(feed.url, now=NOW)
        session = make_session(config.fetch)
        started = time.monotonic()
        summary = poll_due(store, session, config, None, NOW)
        took = time.monotonic() - started
        feeds = {row["url"].split(str(server.port), 1)[1]: row for row in store.feeds()}

        assert summary.feeds_polled == len(failing) + len(good)
        assert took < DEADLINE + 1 + 1  # every fetch at once; parsing and storing after
        for path in good:
            row = feeds[path]
            assert (row["last_error"], row["last_status"]) == (None, 200), path
            assert row["items"] > 0
        assert store.count("articles") == sum(feeds[p]["items"] for p in good)
        for path, error in failing.items():
            row = feeds[path]
            assert row["last_error"].startswith(error), (path, row["last_error"])
            assert "\n" not in row["last_error"]
            assert row["error_count"] == 1 and row["last_success"] is None
            assert parse_iso(row["next_poll"]) > NOW + timedelta(minutes=50)  # backed off
        for i in range(10):
            assert parse_iso(feeds[f"/busy/{i}"]["next_poll"]) >= NOW + timedelta(hours=2)

        # The good feeds come due again on their interval; the failing ones wait their backoff.
        requests_before = len(server.requests)
        later = poll_due(store, session, config, None, NOW + timedelta(minutes=34))
        assert later.feeds_polled == len(good) and later.errors == []
        assert len(server.requests) - requests_before == len(good)
    finally:
        store.close()


def test_a_feed_that_trips_a_bug_is_recorded_and_the_other_feeds_are_stored(
    server: LoopbackServer, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug no test foresaw, triggered by one feed's bytes (simulated here), is recorded on
    that feed and backed off like any failure; the cycle goes on and stores the other feeds."""
    server.route("/good.xml", RSS)
    server.route("/trips-a-bug.xml", ATOM)
    parse = pipeline.parse_feed

    def buggy(body: bytes, headers: dict[str, str], url: str, *args: object) -> object:
        if url.endswith("/trips-a-bug.xml"):
            raise ValueError("unforeseen\ninput")
        return parse(body, headers, url, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "parse_feed", buggy)
    config = load_config(write_config([server.url("/trips-a-bug.xml"), server.url("/good.xml")]))
    store = Store(config.database)
    try:
        for feed in config.feeds:
            store.upsert_feed(feed.url, now=NOW)
        summary = poll_due(store, make_session(config.fetch), config, None, NOW)
        rows = {row["url"].rsplit("/", 1)[1]: row for row in store.feeds()}
    finally:
        store.close()
    assert summary.feeds_polled == 2
    assert rows["good.xml"]["items"] > 0 and rows["good.xml"]["last_error"] is None
    bug = rows["trips-a-bug.xml"]
    assert bug["last_error"] == "internal error: ValueError: unforeseen input"
    assert bug["error_count"] == 1 and parse_iso(bug["next_poll"]) > NOW + timedelta(minutes=50)
