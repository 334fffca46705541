"""Shared fixtures: a real HTTP server on loopback, tmp config files, a tmp database.

The server is the standard library's ThreadingHTTPServer in a daemon thread. Tests program it with
routes (`server.route("/feed.xml", body=...)`) and read back what it received (`server.requests`),
so conditional GET, redirects, errors, slowness and compression are exercised over real sockets.

The delivery servers' fixtures (`smtp`, `receiver`) and the identity tests' `services` live beside
what they serve, in the support modules registered below.
"""

from __future__ import annotations

import gzip as gzip_module
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from monitor.config import FetchConfig
from monitor.store import Store

pytest_plugins = ("delivery_support", "identity_support")

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "feeds"


@dataclass
class Route:
    """What the server answers on one path.

    `bodies` are served in turn, one per request, the last one repeating. With `etag` or
    `last_modified` set, a request carrying the matching validator gets 304. `delay` sleeps before
    the status line; `drip` sends the body in pieces of `drip_size` bytes, sleeping `drip` seconds
    between them; `header_drip` sends 200 header lines, sleeping that long between them. `stream`
    makes the body chunked (HTTP/1.1 Transfer-Encoding: chunked), one chunk per piece the
    function's iterable yields (it may never end), sleeping `drip` seconds between chunks.
    """

    status: int = 200
    bodies: list[bytes] = field(default_factory=lambda: [b""])
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    gzip: bool = False
    delay: float = 0.0
    drip: float = 0.0
    drip_size: int = 16
    header_drip: float = 0.0
    stream: Callable[[], Iterable[bytes]] | None = None
    served: int = 0

    def next_body(self) -> bytes:
        body = self.bodies[min(self.served, len(self.bodies) - 1)]
        self.served += 1
        return body


@dataclass(frozen=True)
class Received:
    """One request the server saw."""

    path: str
    headers: dict[str, str]  # names lower-cased


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # storms of concurrent fetches; the default backlog is 5


class _ServerV6(_Server):
    address_family = socket.AF_INET6


class LoopbackServer:
    """A programmable feed server on 127.0.0.1 (or `host`, e.g. "::1") with a random port."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Received] = []
        self.in_flight = 0  # requests being answered now
        self.most_in_flight = 0  # the most answered at once
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.host = host
        server_class = _ServerV6 if ":" in host else _Server
        self.httpd = server_class((host, 0), _handler_class(self))
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, client_address: None  # clients hang up on us
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def route(
        self,
        path: str,
        body: bytes | None = None,
        *,
        bodies: list[bytes] | None = None,
        status: int = 200,
        content_type: str = "application/rss+xml",
        headers: dict[str, str] | None = None,
        **options: object,
    ) -> Route:
        all_headers = {"Content-Type": content_type, **(headers or {})}
        route = Route(
            status=status,
            bodies=bodies if bodies is not None else [body or b""],
            headers=all_headers,
            **options,  # type: ignore[arg-type]
        )
        with self.lock:
            self.routes[path] = route
        return route

    def redirect(self, path: str, to: str, status: int = 301) -> Route:
        target = to if "://" in to else self.url(to)
        return self.route(path, status=status, headers={"Location": target})

    def requests_to(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


def _handler_class(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with server.lock:
                server.in_flight += 1
                server.most_in_flight = max(server.most_in_flight, server.in_flight)
            try:
                self._get()
            finally:
                with server.lock:
                    server.in_flight -= 1

        def _get(self) -> None:
            with server.lock:
                server.requests.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()})
                )
                route = server.routes.get(self.path)
            if route is None:
                self._send(404, {"Content-Type": "text/plain"}, b"not found")
                return
            if route.delay and server.stopping.wait(route.delay):
                return
            if self._not_modified(route):
                self._send(304, {k: v for k, v in route.headers.items() if k != "Content-Type"})
                return
            headers = dict(route.headers)
            if route.etag:
                headers["ETag"] = route.etag
            if route.last_modified:
                headers["Last-Modified"] = route.last_modified
            with server.lock:
                body = route.next_body()
            if route.gzip:
                body = gzip_module.compress(body)
                headers["Content-Encoding"] = "gzip"
            if route.stream is not None:
                self._stream(route, headers)
            elif route.header_drip:
                self._drip_headers(route, headers, body)
            elif route.drip:
                self._drip(route, headers, body)
            else:
                self._send(route.status, headers, body)

        def _not_modified(self, route: Route) -> bool:
            if route.status != 200:
                return False
            if route.etag and self.headers.get("If-None-Match") == route.etag:
                return True
            sent = self.headers.get("If-Modified-Since")
            return bool(route.last_modified and sent == route.last_modified and not route.etag)

        def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def _drip_headers(self, route: Route, headers: dict[str, str], body: bytes) -> None:
            """The status line at once, then header lines slowly: no single read times out."""
            self.wfile.write(b"HTTP/1.0 200 OK\r\n")
            for i in range(200):
                self.wfile.write(f"X-Slow-{i}: {i}\r\n".encode())
                self.wfile.flush()
                if server.stopping.wait(route.header_drip):
                    return
            self._send(route.status, headers, body)

        def _drip(self, route: Route, headers: dict[str, str], body: bytes) -> None:
            """Headers at once, then the body a few bytes at a time: each read is quick, the
            whole download is slow."""
            self.send_response(route.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            for start in range(0, len(body), route.drip_size):
                self.wfile.write(body[start : start + route.drip_size])
                self.wfile.flush()
                if server.stopping.wait(route.drip):
                    return

        def _stream(self, route: Route, headers: dict[str, str]) -> None:
            """A chunked body from `route.stream`, until it ends, the client hangs up or the
            server stops."""
            self.wfile.write(f"HTTP/1.1 {route.status} OK\r\n".encode())
            for name, value in {**headers, "Transfer-Encoding": "chunked"}.items():
                self.wfile.write(f"{name}: {value}\r\n".encode())
            self.wfile.write(b"\r\n")
            assert route.stream is not None
            for piece in route.stream():
                if piece:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                if server.stopping.is_set() or (route.drip and server.stopping.wait(route.drip)):
                    return
            self.wfile.write(b"0\r\n\r\n")

    return Handler


@contextmanager
def serving(srv: LoopbackServer) -> Iterator[LoopbackServer]:
    """The server answering until the block ends, then stopped, its slow answers cut short."""
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.stopping.set()
        srv.httpd.shutdown()
        srv.httpd.server_close()


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with serving(LoopbackServer()) as srv:
        yield srv


@pytest.fixture
def server6() -> Iterator[LoopbackServer]:
    """The same server on the IPv6 loopback address ::1; skips where IPv6 is unavailable."""
    try:
        srv = LoopbackServer("::1")
    except OSError as e:
        pytest.skip(f"no IPv6 loopback here: {e}")
    with serving(srv):
        yield srv


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch_config(**overrides: object) -> FetchConfig:
    """FetchConfig with short limits for tests; loopback allowed unless overridden."""
    values: dict[str, object] = {
        "user_agent": "Vigie-tests/1",
        "connect_timeout": 1.0,
        "deadline": 1.0,
        "max_bytes": 5_000_000,
        "max_redirects": 5,
        "concurrency": 4,
        "allow_private": True,
        "allow_hosts": (),
    }
    values.update(overrides)
    return FetchConfig(**values)  # type: ignore[arg-type]


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def render_config(
    feeds: list[dict[str, object]],
    *,
    database: str = "data/vigie.db",
    fetch: dict[str, object] | None = None,
    polling: dict[str, object] | None = None,
    rules: dict[str, object] | None = None,
    delivery: dict[str, object] | None = None,
) -> str:
    sections = {
        "storage": {"database": database},
        "fetch": {
            "deadline": "2s",
            "connect_timeout": "1s",
            "allow_private": True,
            **(fetch or {}),
        },
        "polling": {"interval": "30m", "tick": "1s", "max_backoff": "24h", **(polling or {})},
        "rules": {"paths": [], **(rules or {})},
        # The tests' feeds are fixed snapshots (the samples, ../shared/corpora): sent whatever
        # their age, unless a test asks for delivery.backlog.
        "delivery": {"backlog": "0", **(delivery or {})},
    }
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    for feed in feeds:
        lines.append("[[feeds]]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in feed.items())
        lines.append("")
    return "\n".join(lines)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a config.toml in tmp_path (loopback allowed, short deadlines); returns its path.

    `feeds` are dicts of [[feeds]] keys; a string is taken as a url."""

    def write(
        feeds: Sequence[dict[str, object] | str] = (),
        name: str = "config.toml",
        **sections: object,
    ) -> Path:
        tables = [{"url": f} if isinstance(f, str) else f for f in feeds]
        path = tmp_path / name
        path.write_text(render_config(tables, **sections), encoding="utf-8")  # type: ignore[arg-type]
        return path

    return write


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store(tmp_path / "vigie.db")
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def shared_corpora() -> Path:
    """../shared/corpora beside the repository; tests that need it skip when it is absent."""
    path = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    if not path.is_dir():
        pytest.skip(f"real-world corpora not found at {path} (clone shared/ beside the repo)")
    return path
