"""Real servers on loopback for the delivery tests, and a config writer for them.

`SmtpServer` is aiosmtpd in its own thread; tests program its replies per message (`replies`) or
per recipient (`refuse`) and read back what it accepted (`messages`). `Receiver` is a webhook
endpoint on the standard library's ThreadingHTTPServer; tests program its answers (`answers`) and
every request it saw is kept with its raw body and headers, so a test verifies each with the
standardwebhooks library exactly as a consumer would.

The `smtp` and `receiver` fixtures are registered by conftest.py (pytest_plugins).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from conftest import REPO, SAMPLES
from standardwebhooks.webhooks import Webhook

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
SECRET_ENV = "VIGIE_TEST_WEBHOOK_SECRET"
SAMPLE_FEEDS = [
    {"url": str(SAMPLES / "coastal-herald.rss"), "name": "The Coastal Herald"},
    {"url": str(SAMPLES / "nord-actu.atom"), "name": "Nord Actu", "language": "fr"},
    {"url": str(SAMPLES / "wire-digest.rdf"), "name": "Wire Digest"},
    {"url": str(SAMPLES / "border-watch.json"), "name": "Border Watch"},
]
ALL_TAGS = ["migrants", "calais", "police-violence", "prosecutions"]
# A subscriber sent each match at once, as most delivery tests need one.
IMMEDIATE_DESK = {
    "name": "desk",
    "email": "desk@newsroom.test",
    "tags": ALL_TAGS,
    "schedule": "immediate",
}


def hook_to(receiver: Receiver, tags: list[str] = ALL_TAGS, name: str = "bot") -> dict[str, Any]:
    """A [[webhooks]] entry posting to `receiver`, its secret in SECRET_ENV."""
    return {"name": name, "url": receiver.url(), "secret_env": SECRET_ENV, "tags": tags}


# The headers of a digest email, all of them: feed text must never add one.
DIGEST_HEADERS = {
    "subject",
    "from",
    "to",
    "date",
    "message-id",
    "list-id",
    "list-unsubscribe",
    "auto-submitted",
    "mime-version",
    "content-type",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


def write_delivery_config(
    folder: Path,
    *,
    subscribers: list[dict[str, Any]] = (),  # type: ignore[assignment]
    webhooks: list[dict[str, Any]] = (),  # type: ignore[assignment]
    smtp: dict[str, Any] | None = None,
    delivery: dict[str, Any] | None = None,
    feeds: list[dict[str, Any]] | None = None,
) -> Path:
    """config.toml in `folder`: the sample feeds, the bundled rules, loopback allowed. Feeds
    are fixed snapshots (the samples and pages of other dates): delivery.backlog is 0 unless
    `delivery` sets it."""
    sections: dict[str, dict[str, Any]] = {
        "storage": {"database": "data/vigie.db"},
        "fetch": {"allow_private": True, "deadline": "2s", "connect_timeout": "1s"},
        "rules": {"paths": [str(REPO / "rules")]},
        "delivery": {"outbox": "outbox", "backlog": "0", **(delivery or {})},
    }
    if smtp is not None:
        sections["smtp"] = smtp
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
    for array, tables in (
        ("feeds", SAMPLE_FEEDS if feeds is None else feeds),
        ("subscribers", subscribers),
        ("webhooks", webhooks),
    ):
        for table in tables:
            lines.append(f"[[{array}]]")
            lines += [f"{key} = {_toml(value)}" for key, value in table.items()]
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# SMTP ----------------------------------------------------------------------------------------


@dataclass
class Accepted:
    sender: str
    recipients: list[str]
    data: bytes


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201, N802
        reply = self.server.refuse.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        message = Accepted(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        with self.server.lock:
            reply = self.server.replies.pop(0) if self.server.replies else "250 Message accepted"
            self.server.attempts += 1
            self.server.received.append(message)
            hold, self.server.hold = self.server.hold, None
        while hold is not None and not hold.is_set():  # the whole message is here; no reply yet
            await asyncio.sleep(0.02)
        if reply.startswith("250"):
            with self.server.lock:
                self.server.messages.append(message)
        return reply


class SmtpServer:
    """aiosmtpd on 127.0.0.1. `replies`: DATA answers in turn (then 250); `refuse`: RCPT answers
    per address; `hold`: the next message is received whole, then not answered until it is set.
    `received` is every message sent to it, `messages` those it accepted."""

    def __init__(self) -> None:
        self.replies: list[str] = []
        self.refuse: dict[str, str] = {}
        self.hold: threading.Event | None = None
        self.received: list[Accepted] = []
        self.messages: list[Accepted] = []
        self.attempts = 0
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def smtp_settings(self) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "security": "none",
            "timeout": "5s",
            "from": "Vigie <vigie@vigie.test>",
        }


# Webhooks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    peer: tuple = ()  # the sender's (address, port): one per TCP connection
    answered: int = 200  # the status the endpoint answered it with

    @property
    def accepted(self) -> bool:
        """Whether the endpoint took it (2xx): what a consumer handled."""
        return 200 <= self.answered < 300

    def verify(self, secret: str = SECRET) -> Any:
        """What a consumer does: raises WebhookVerificationError unless signed with `secret`."""
        return Webhook(secret).verify(self.body, self.headers)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    hold: threading.Event | None = None  # answer only once set (or the server stops)


class Receiver:
    """A webhook endpoint on loopback. `answers` are used in turn, then 200."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.requests: list[Request] = []
        self.connections: list[socket.socket] = []  # those accepted, for `down` to close
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._listen(0)
        self.port = self.httpd.server_address[1]

    def _listen(self, port: int) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _receiver_handler(self))
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, client_address: None
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def down(self) -> None:
        """Its host down: connections to its port are refused until `up`, and those kept
        alive are closed (an answer it was holding is given up)."""
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self.connections.clear()

    def up(self) -> None:
        """Back up on the same port, the requests seen before kept."""
        self.stopping.clear()
        self._listen(self.port)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, count: int, limit: float = 20) -> None:
        end = time.monotonic() + limit
        while len(self.requests) < count:
            if time.monotonic() > end:
                raise AssertionError(f"{len(self.requests)} requests, expected {count}")
            time.sleep(0.02)


def _receiver_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # no 40 ms stall between the headers and the body

        def log_message(self, format: str, *args: object) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            with receiver.lock:
                receiver.connections.append(self.connection)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if len(body) < length:  # the sender died mid-request: no server would take it
                self.close_connection = True
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            with receiver.lock:
                answer = receiver.answers.pop(0) if receiver.answers else Answer()
                receiver.requests.append(
                    Request(self.path, headers, body, self.client_address, answer.status)
                )
            if answer.delay and receiver.stopping.wait(answer.delay):
                return
            if answer.hold is not None:
                while not (answer.hold.is_set() or receiver.stopping.is_set()):
                    answer.hold.wait(0.05)
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    return Handler


def start(thing: SmtpServer | Receiver) -> Callable[[], None]:
    """Start a server; returns its stop function."""
    if isinstance(thing, SmtpServer):
        thing.controller.start()
        return thing.controller.stop
    thing.thread.start()

    def stop() -> None:
        thing.stopping.set()
        thing.httpd.shutdown()
        thing.httpd.server_close()

    return stop


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """An SMTP server on loopback, stopped when the test ends."""
    server = SmtpServer()
    stop = start(server)
    yield server
    stop()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A webhook endpoint, with the webhook secret in the environment as SECRET_ENV."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    endpoint = Receiver()
    stop = start(endpoint)
    yield endpoint
    stop()


# A Vigie over the sample feeds ---------------------------------------------------------------


class Vigie:
    """A config's database, polled with the bundled rules, and the delivery jobs, with time as
    a parameter. Subscribers are registered at `now` before anything is polled, as the CLI does."""

    def __init__(self, config_path: Path, now: datetime) -> None:
        from monitor.cli import load_rulebook
        from monitor.config import load_config
        from monitor.deliver.dispatch import labels_of, sync_subscribers
        from monitor.fetch import make_session
        from monitor.store import Store

        self.config = load_config(config_path)
        self.store = Store(self.config.database)
        for feed in self.config.feeds:
            self.store.upsert_feed(feed.url, name=feed.name, language=feed.language, now=now)
        sync_subscribers(self.store, self.config.delivery, now)
        self.book = load_rulebook(self.config, self.store)
        self.labels = labels_of(self.book.index)
        self.session = make_session(self.config.fetch)

    def poll(self, now: datetime) -> Any:
        from monitor.pipeline import poll_due

        return poll_due(self.store, self.session, self.config, self.book.index, now, force=True)

    def send_digests(self, now: datetime, seed: int = 1) -> list[Any]:
        from monitor.deliver.dispatch import send_due_digests

        return send_due_digests(
            self.store, self.config.delivery, self.labels, now, random.Random(seed)
        )

    def dispatch(self, now: datetime, seed: int = 1) -> list[Any]:
        from monitor.deliver.dispatch import dispatch_webhooks, has_rule_of

        return dispatch_webhooks(
            self.store,
            self.session,
            self.config.delivery,
            self.labels,
            now,
            random.Random(seed),
            has_rule=has_rule_of(self.book.index),
        )

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self.store.db.execute(sql, params).fetchall()

    def close(self) -> None:
        self.store.close()
