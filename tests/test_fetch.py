"""fetch_feed against a real HTTP server on loopback: validators, redirects, limits, the guard."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import SAMPLES, LoopbackServer, fetch_config

from monitor.fetch import body_hash, fetch_feed, make_session, parse_retry_after
from monitor.netguard import is_public_address
from monitor.records import Feed, FetchResult

RSS = (SAMPLES / "coastal-herald.rss").read_bytes()
ETAG = 'W/"coastal-42"'
MODIFIED = "Mon, 23 Nov 2026 18:40:00 GMT"


def fetch(url: str, config: dict[str, object] | None = None, **feed_state: object) -> FetchResult:
    """One fetch with the test FetchConfig (plus `config` overrides) of a feed in `feed_state`."""
    fetch_cfg = fetch_config(**(config or {}))
    feed = Feed(id=1, url=url, **feed_state)  # type: ignore[arg-type]
    return fetch_feed(make_session(fetch_cfg), feed, fetch_cfg)


def test_200_returns_body_validators_and_hash(server: LoopbackServer) -> None:
    server.route("/feed.xml", RSS, etag=ETAG, last_modified=MODIFIED)
    result = fetch(server.url("/feed.xml"))
    assert result.ok and result.status == 200
    assert result.body == RSS
    assert result.body_hash == body_hash(RSS)
    assert (result.etag, result.last_modified) == (ETAG, MODIFIED)
    assert not result.unchanged


def test_user_agent_from_config_is_sent(server: LoopbackServer) -> None:
    server.route("/feed.xml", RSS)
    fetch(server.url("/feed.xml"))
    assert server.requests_to("/feed.xml")[0].headers["user-agent"] == "Vigie-tests/1"


def test_validators_are_sent_back_exactly_as_received(server: LoopbackServer) -> None:
    server.route("/feed.xml", RSS, etag=ETAG, last_modified=MODIFIED)
    first = fetch(server.url("/feed.xml"))
    fetch(server.url("/feed.xml"), etag=first.etag, last_modified=first.last_modified)
    initial, conditional = server.requests_to("/feed.xml")
    assert "if-none-match" not in initial.headers
    assert "if-modified-since" not in initial.headers
    assert conditional.headers["if-none-match"] == ETAG
    assert conditional.headers["if-modified-since"] == MODIFIED


def test_304_skips_parsing(server: LoopbackServer) -> None:
    server.route("/feed.xml", RSS, etag=ETAG)
    result = fetch(server.url("/feed.xml"), etag=ETAG, body_hash="previous")
    assert result.status == 304
    assert result.ok and result.unchanged
    assert result.body is None
    # The stored validators and hash are kept, not erased by an answer without a body.
    assert result.etag == ETAG
    assert result.body_hash == "previous"


def test_last_modified_alone_gives_304(server: LoopbackServer) -> None:
    server.route("/feed.xml", RSS, last_modified=MODIFIED)
    result = fetch(server.url("/feed.xml"), last_modified=MODIFIED)
    assert result.status == 304 and result.unchanged and result.body is None
    assert result.last_modified == MODIFIED


def test_changed_etag_gets_a_full_body(server: LoopbackServer) -> None:
    server.route("/feed.xml", RSS, etag='"v2"')
    result = fetch(server.url("/feed.xml"), etag='"v1"')
    assert result.status == 200 and result.body == RSS and result.etag == '"v2"'


def test_same_body_without_validators_is_unchanged(server: LoopbackServer) -> None:
    server.route("/feed.xml", RSS)
    result = fetch(server.url("/feed.xml"), body_hash=body_hash(RSS))
    assert result.status == 200
    assert result.ok and result.unchanged and result.body is None
    other = fetch(server.url("/feed.xml"), body_hash=body_hash(b"an older body"))
    assert not other.unchanged and other.body == RSS


def test_gzip_body_is_decompressed(server: LoopbackServer) -> None:
    server.route("/feed.xml", RSS, gzip=True)
    result = fetch(server.url("/feed.xml"))
    assert server.requests_to("/feed.xml")[0].headers["accept-encoding"].startswith("gzip")
    assert result.ok and result.body == RSS
    assert result.body_hash == body_hash(RSS)


def test_body_over_max_bytes_is_an_error(server: LoopbackServer) -> None:
    server.route("/big.xml", b"<rss>" + b"x" * 5000 + b"</rss>")
    result = fetch(server.url("/big.xml"), config={"max_bytes": 1000})
    assert result.error == "body larger than 1000 bytes"
    assert result.body is None


def test_max_bytes_counts_after_decompression(server: LoopbackServer) -> None:
    bomb = b"<rss>" + b"\0" * 2_000_000 + b"</rss>"
    server.route("/bomb.xml", bomb, gzip=True)
    assert len(gzip.compress(bomb)) < 100_000
    result = fetch(server.url("/bomb.xml"), config={"max_bytes": 100_000})
    assert result.error == "body larger than 100000 bytes"


def test_redirect_chain_is_followed(server: LoopbackServer) -> None:
    server.redirect("/a", "/b", status=302)
    server.redirect("/b", "/c", status=302)
    server.route("/c", RSS)
    result = fetch(server.url("/a"))
    assert result.ok and result.body == RSS
    assert result.url == server.url("/c")
    assert result.permanent_url is None  # temporary redirects do not move the feed


def test_cookie_set_on_a_redirect_is_sent_to_the_next_hop(server: LoopbackServer) -> None:
    # Some publishers' consent or load-balancer pages set a cookie and redirect to the feed.
    server.route(
        "/a", status=302, headers={"Location": server.url("/b"), "Set-Cookie": "consent=yes"}
    )
    server.route("/b", RSS)
    result = fetch(server.url("/a"))
    assert result.ok and result.body == RSS
    assert "cookie" not in server.requests_to("/a")[0].headers
    assert server.requests_to("/b")[0].headers["cookie"] == "consent=yes"


def test_cookies_are_not_kept_from_one_fetch_to_the_next(server: LoopbackServer) -> None:
    """The service's one session kept every cookie a feed set, for ever, and sent them all
    back: a hostile feed's hundred 60 KB cookies grew it by 6 MB a poll (security review)."""
    big = "x" * 4000
    server.route("/feed.rss", RSS, headers={"Set-Cookie": f"tracker={big}; Max-Age=86400"})
    fetch_cfg = fetch_config()
    session = make_session(fetch_cfg)
    feed = Feed(id=1, url=server.url("/feed.rss"))
    for _ in range(3):
        assert fetch_feed(session, feed, fetch_cfg).ok
    assert [r.headers.get("cookie") for r in server.requests_to("/feed.rss")] == [None] * 3
    assert len(session.cookies) == 0


def test_more_redirects_than_max_redirects_is_an_error(server: LoopbackServer) -> None:
    server.redirect("/a", "/b", status=302)
    server.redirect("/b", "/c", status=302)
    server.route("/c", RSS)
    result = fetch(server.url("/a"), config={"max_redirects": 1})
    assert result.error == "more than 1 redirects"
    assert server.requests_to("/c") == []


def test_redirect_loop_is_an_error(server: LoopbackServer) -> None:
    server.redirect("/a", "/b", status=302)
    server.redirect("/b", "/a", status=302)
    result = fetch(server.url("/a"), config={"max_redirects": 3})
    assert result.error == "more than 3 redirects"


def test_301_sets_permanent_url(server: LoopbackServer) -> None:
    server.redirect("/old.xml", "/new.xml", status=301)
    server.route("/new.xml", RSS)
    result = fetch(server.url("/old.xml"))
    assert result.ok and result.body == RSS
    assert result.permanent_url == server.url("/new.xml")


def test_permanent_url_stops_at_the_first_temporary_hop(server: LoopbackServer) -> None:
    server.redirect("/old.xml", "/moved.xml", status=301)
    server.redirect("/moved.xml", "/today.xml", status=302)
    server.route("/today.xml", RSS)
    result = fetch(server.url("/old.xml"))
    assert result.ok
    assert result.permanent_url == server.url("/moved.xml")


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_status_is_an_error(server: LoopbackServer, status: int) -> None:
    server.route("/feed.xml", b"oops", status=status)
    result = fetch(server.url("/feed.xml"))
    assert result.status == status
    assert result.error is not None and result.error.startswith(f"HTTP {status}")
    assert result.body is None


def test_unrouted_path_is_404(server: LoopbackServer) -> None:
    result = fetch(server.url("/missing.xml"))
    assert result.error == "HTTP 404 Not Found"


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_reported(server: LoopbackServer, status: int) -> None:
    server.route("/feed.xml", b"slow down", status=status, headers={"Retry-After": "3600"})
    result = fetch(server.url("/feed.xml"))
    assert result.error is not None and result.error.startswith(f"HTTP {status}")
    assert result.retry_after == 3600


def test_retry_after_http_date() -> None:
    now = 1_800_000_000.0
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 120))
    assert parse_retry_after(when, now=now) == pytest.approx(120)
    assert parse_retry_after("120") == 120
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_slow_server_hits_the_deadline(server: LoopbackServer) -> None:
    server.route("/slow.xml", RSS, delay=10)
    started = time.monotonic()
    result = fetch(server.url("/slow.xml"), config={"deadline": 1.0})
    assert result.error == "deadline of 1s exceeded"
    assert time.monotonic() - started < 1.0 + 2


def test_trickling_body_hits_the_deadline(server: LoopbackServer) -> None:
    # 16 bytes every 50 ms: every read is quick, the whole body would take about 20 s.
    server.route("/trickle.xml", RSS[:6000], drip=0.05)
    started = time.monotonic()
    result = fetch(server.url("/trickle.xml"), config={"deadline": 1.0})
    assert result.error == "deadline of 1s exceeded"
    assert result.body is None
    assert time.monotonic() - started < 1.0 + 2


def test_trickling_headers_hit_the_deadline(server: LoopbackServer) -> None:
    # A header line every 50 ms: each read returns quickly, the headers would take 10 s.
    server.route("/slow-headers.xml", RSS, header_drip=0.05)
    started = time.monotonic()
    result = fetch(server.url("/slow-headers.xml"), config={"deadline": 1.0})
    assert result.error == "deadline of 1s exceeded"
    assert time.monotonic() - started < 1.0 + 1


def test_a_name_server_that_does_not_answer_is_cut_at_the_connect_timeout(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Looking the host up came before any socket the deadline's watchdog could cut: a name
    server that never answered held a fetch for 20 s under a 5 s deadline (security review).
    The system's resolver is replaced here, as no name server can be made to hang on loopback."""
    server.route("/feed.xml", RSS)
    looked_up = socket.getaddrinfo

    def resolver(host: str, *args: object, **kwargs: object) -> object:
        if host == "hanging.example":
            time.sleep(5)  # a name server that never answers, as far as a fetch is concerned
        return looked_up("127.0.0.1" if host.endswith(".example") else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    started = time.monotonic()
    result = fetch(f"http://hanging.example:{server.port}/feed.xml", {"deadline": 3.0})
    assert time.monotonic() - started < 1.0 + 0.5  # the connect timeout, not 5 s
    assert result.error == ("connection failed: the name lookup gave no answer within 1s"), (
        result.error
    )
    # A name that answers is connected to at the address it gives, as before.
    assert fetch(f"http://answering.example:{server.port}/feed.xml").body == RSS


def test_closed_port_is_a_connection_error(closed_port: int) -> None:
    result = fetch(f"http://127.0.0.1:{closed_port}/feed.xml")
    assert result.status == 0
    assert result.error is not None and result.error.startswith("connection failed:")
    assert "\n" not in result.error


def test_guard_refuses_loopback_unless_allowed(server: LoopbackServer) -> None:
    server.route("/feed.xml", RSS)
    result = fetch(server.url("/feed.xml"), config={"allow_private": False})
    assert result.error.startswith(
        "refused to connect to non-public address 127.0.0.1 (fetch.allow_hosts"
    )
    assert result.body is None
    assert server.requests_to("/feed.xml") == []


def test_allow_hosts_network_permits_loopback(server: LoopbackServer) -> None:
    server.route("/feed.xml", RSS)
    result = fetch(
        server.url("/feed.xml"), config={"allow_private": False, "allow_hosts": ("127.0.0.0/8",)}
    )
    assert result.ok and result.body == RSS


def test_guard_checks_every_redirect_hop(server: LoopbackServer) -> None:
    # "localhost" is allowed by name; its redirect to the bare address 127.0.0.1 is not.
    server.route("/feed.xml", RSS)
    server.redirect("/moved", "/feed.xml", status=302)
    config = {"allow_private": False, "allow_hosts": ("localhost",)}
    direct = fetch(f"http://localhost:{server.port}/feed.xml", config=config)
    assert direct.ok and direct.body == RSS
    redirected = fetch(f"http://localhost:{server.port}/moved", config=config)
    assert redirected.error.startswith(
        "refused to connect to non-public address 127.0.0.1 (fetch.allow_hosts"
    )


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("10.1.2.3", False),
        ("192.168.1.1", False),
        ("172.16.0.1", False),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::7f00:1", False),
        ("2002:7f00:1::", False),
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),
        ("2001:4860:4860::8888", True),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_file_url_is_read_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "dossier é" / "feed.rss"
    path.parent.mkdir()
    path.write_bytes(RSS)
    result = fetch(path.as_uri())
    assert result.ok and result.body == RSS
    again = fetch(path.as_uri(), body_hash=result.body_hash)
    assert again.unchanged and again.body is None


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    result = fetch((tmp_path / "nope.rss").as_uri())
    assert result.error == "cannot read file: No such file or directory"


class _KeepAliveHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, as publishers' servers answer: 304 to a known ETag, a
    redirect from /old, 404 elsewhere; each request's client address is recorded."""

    protocol_version = "HTTP/1.1"
    peers: list[tuple[str, int]]  # set per test

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.peers.append(self.client_address)
        if self.path == "/old":
            self.send_response(302)
            self.send_header("Location", "/feed.xml")
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"moved on\n")
        elif self.path == "/feed.xml" and self.headers.get("If-None-Match") == ETAG:
            self.send_response(304)
            self.send_header("ETag", ETAG)
            self.end_headers()
        else:
            body = b"<html>not here</html>"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_polls_of_one_host_reuse_one_connection() -> None:
    """A 304, a redirect or an error leaves the connection open for the next feed of the same
    host: cheaper for Vigie, politer to the publisher."""
    peers: list[tuple[str, int]] = []
    handler = type("Handler", (_KeepAliveHandler,), {"peers": peers})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        config = fetch_config()
        session = make_session(config)
        results = [
            fetch_feed(session, Feed(id=1, url=f"{base}{path}", etag=ETAG), config)
            for path in ("/feed.xml", "/old", "/missing.xml", "/feed.xml")
        ]
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert [r.status for r in results] == [304, 304, 404, 304]
    assert results[0].unchanged and results[2].error == "HTTP 404 Not Found"
    assert len(peers) == 5
    assert len(set(peers)) == 1  # one connection for all five requests


def raw_server(answer: bytes) -> tuple[str, socket.socket]:
    """A server on loopback that answers every request with `answer`, bytes as they are."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed
            with connection:
                connection.recv(65536)
                connection.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/feed.xml", listener


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 500 \x1b[2J\x1b[32mALL GOOD\x1b[0m\r\nContent-Length: 0\r\n\r\n",
        b"\x1b]0;pwned\x07 \x9b2J not http\r\n\r\n",
    ],
)
def test_a_servers_escape_sequences_never_reach_the_error(answer: bytes) -> None:
    """The error is stored, listed by `feeds list` and logged: a hostile server's escape codes
    would clear the operator's screen, fake output or retitle the window."""
    url, listener = raw_server(answer)
    try:
        result = fetch(url)
    finally:
        listener.close()
    assert result.error
    assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in result.error), repr(result.error)
    assert "[2J" not in result.error and "[32m" not in result.error  # the whole sequence goes
    assert "]0;" not in result.error


def test_a_redirect_to_a_malformed_address_is_an_error_not_a_bug(server: LoopbackServer) -> None:
    server.route("/feed.xml", b"", status=301, headers={"Location": "http://[::1"})
    result = fetch(server.url("/feed.xml"))
    assert result.error == "redirect to a malformed address: http://[::1"


def test_the_terminal_gets_no_control_characters_from_stored_text() -> None:
    from monitor.cli_common import escape

    assert escape("HTTP 500 \x1b[2J\x9bALL GOOD\x07\tand\nmore") == "HTTP 500 ALL GOOD\tand\nmore"


class _HandBackHandler(BaseHTTPRequestHandler):
    """Keep-alive: /a is a short redirect to `elsewhere` (its connection goes back to the
    pool), /b a feed that takes 1.5 s to send."""

    protocol_version = "HTTP/1.1"
    elsewhere = ""  # set per test

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/a":
            self.send_response(301)
            self.send_header("Location", self.elsewhere)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = (SAMPLES / "coastal-herald.rss").read_bytes()[:4000]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for start in range(0, len(body), 400):
            self.wfile.write(body[start : start + 400])
            self.wfile.flush()
            time.sleep(0.15)

    def log_message(self, *args: object) -> None:
        pass


def test_a_fetchs_deadline_never_cuts_a_connection_it_handed_back_to_the_pool(
    server: LoopbackServer,
) -> None:
    """A code review: a redirect's connection went back to the pool while its fetch went on;
    another fetch of that host took it, and the first fetch's deadline cut it under the
    second ("IncompleteRead" long before the second's own deadline)."""
    server.route("/slow", b" " * 100_000, drip=0.1, drip_size=1)  # past the first's deadline
    _HandBackHandler.elsewhere = server.url("/slow")
    host = ThreadingHTTPServer(("127.0.0.1", 0), _HandBackHandler)
    host.daemon_threads = True
    threading.Thread(target=host.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{host.server_address[1]}"
    session = make_session(fetch_config(deadline=1.0))
    results: dict[str, FetchResult] = {}

    def first() -> None:
        results["a"] = fetch_feed(session, Feed(id=1, url=base + "/a"), fetch_config(deadline=1.0))

    def second() -> None:
        time.sleep(0.3)  # once the first's redirect handed its connection back
        results["b"] = fetch_feed(session, Feed(id=2, url=base + "/b"), fetch_config(deadline=5.0))

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
    finally:
        host.shutdown()
        host.server_close()
    assert results["a"].error == "deadline of 1s exceeded"
    assert results["b"].error is None and results["b"].status == 200
