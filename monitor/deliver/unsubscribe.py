"""Unsubscribe links (RFC 8058 one-click), answered by `vigie run` at `delivery.listen`.

Each digest carries `public_base_url/unsubscribe/NAME/TOKEN`; the operator's https server
forwards /unsubscribe/ to `delivery.listen`, under the base URL's path when it has one
(`https://example.org/vigie`: /vigie/unsubscribe/...), with that path or without it (a reverse
proxy that strips it). A GET shows a page with one button: mail scanners
and link previews open links, and must not unsubscribe anyone. A POST, the mail client's
one-click request or that button, records the unsubscription (Store.unsubscribe): no digest is
made or sent for the subscriber until `vigie digest resubscribe`. A wrong name or token is
"not found", either way, so the page tells nothing of who subscribes.

The page must not become a way into the service: a connection has REQUEST_DEADLINE seconds in
all to send its request (a byte every few seconds kept it open for good), at most READING_AT_ONCE
are read at a time and MOST_AT_ONCE answered (the others get 503 at once), so that a few slow
connections cannot hold every answer back; every answer reads one shared connection to the
database rather than opening one.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import re
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from markupsafe import Markup

from ..store import Store
from .digest import environment

log = logging.getLogger(__name__)

_PATH = r"/unsubscribe/([^/?#]+)/([^/?#]+)/?(?:\?.*)?$"
_LARGEST_BODY = 4096  # a one-click POST carries "List-Unsubscribe=One-Click"
MOST_AT_ONCE = 16  # requests answered (the database read) at the same time
READING_AT_ONCE = 128  # connections whose request is being read at the same time
REQUEST_DEADLINE = 5.0  # seconds a connection has to send its whole request
_BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def _page(state: str, name: str = "", language: str = "en") -> bytes:
    """The page for `state` (ask, done, unknown, busy), from templates/unsubscribe.html, in
    the subscriber's language (English where the link names no subscriber)."""
    template = environment(True, language).get_template("unsubscribe.html")
    shown = Markup("<strong>{}</strong>").format(name)  # the name escaped, in bold
    return template.render(state=state, name=shown, language=language).encode()


class _Server(ThreadingHTTPServer):
    # server_close() waits for the answers under way (each bounded by REQUEST_DEADLINE): the
    # page's database closed under a click answered it 503 and kept them subscribed.
    daemon_threads = False
    request_queue_size = 64  # the default backlog of 5 refused bursts of honest clicks

    def handle_error(self, request: object, client_address: object) -> None:
        """A client gone mid-answer, or a request that broke the handler: one line in the
        service's log, not a traceback on its stderr."""
        error = sys.exc_info()[1]
        log.warning("unsubscribe page: a request failed (%s: %s)", type(error).__name__, error)


class UnsubscribeServer:
    """The unsubscribe page on `address`, in a thread of its own, until `close`."""

    def __init__(
        self,
        address: tuple[str, int],
        database: Path,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        languages: Mapping[str, str] | None = None,
        base_url: str = "",
        addresses: Mapping[str, str] | None = None,
    ) -> None:
        self.clock = clock
        # The links say base_url's path before /unsubscribe/: a proxy may pass it on or strip it.
        # Decoded, as request paths are: one written percent-encoded (d%C3%A9sabonnement, as
        # copied from a browser) is the same path, and was answered 404.
        prefix = unquote(urlsplit(base_url).path).rstrip("/")
        self.link_path = re.compile(f"^(?:{re.escape(prefix)})?{_PATH}" if prefix else f"^{_PATH}")
        self.languages = dict(languages or {})  # subscriber -> the language of their page
        # subscriber -> the address their page names: their config.toml name ("calais-ngo") is
        # the operator's, which they never saw.
        self.addresses = dict(addresses or {})
        self.store = Store(database)
        self._store_lock = threading.Lock()  # the connection serves one answer at a time
        self.turns = threading.BoundedSemaphore(MOST_AT_ONCE)
        self.reading = threading.BoundedSemaphore(READING_AT_ONCE)
        try:
            self.httpd = _Server(address, _handler(self))
        except BaseException:
            self.store.close()
            raise
        self.address = self.httpd.server_address[:2]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="unsubscribe", daemon=True
        )

    def start(self) -> UnsubscribeServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        with self._store_lock:
            self.store.close()

    def state(self, name: str, token: str) -> str:
        """ "ask" when `token` is the subscriber's (compared in constant time), "gone" when they
        unsubscribed already, "unknown" otherwise."""
        with self._store_lock:
            row = self.store.subscriber_state(name)
        # Bytes: compare_digest refuses a str with non-ASCII characters, and that error, for
        # names that exist only, told them apart from the others.
        given = token.encode("utf-8", "surrogatepass")
        if not (row and row["token"] and hmac.compare_digest(row["token"].encode(), given)):
            return "unknown"
        return "gone" if row["unsubscribed"] else "ask"

    def page(self, state: str, name: str) -> bytes:
        """The page for subscriber `name` in `state`, in their words, naming their address."""
        return _page(state, self.addresses.get(name, name), self.languages.get(name, "en"))

    def unsubscribe(self, name: str) -> None:
        with self._store_lock:
            self.store.unsubscribe(name, self.clock())
        log.info("subscriber unsubscribed", extra={"subscriber": name})


def _handler(server: UnsubscribeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_DEADLINE  # each read; the whole request has REQUEST_DEADLINE too

        def version_string(self) -> str:
            return "Vigie"

        def log_message(self, format: str, *args: object) -> None:
            pass  # the service's log says who unsubscribed; addresses are not kept

        def handle_one_request(self) -> None:
            if not server.reading.acquire(blocking=False):
                self._busy()
                return
            # A byte every few seconds met no per-read timeout: the request as a whole is cut
            # off at the deadline (its socket shut, so the read under way ends).
            self._deadline = threading.Timer(REQUEST_DEADLINE, self._cut_off)
            self._deadline.daemon = True
            self._deadline.start()
            try:
                super().handle_one_request()
            finally:
                self._deadline.cancel()
                server.reading.release()

        def _cut_off(self) -> None:
            with contextlib.suppress(OSError):  # closed already
                self.connection.shutdown(socket.SHUT_RDWR)

        def _busy(self) -> None:
            # Not read further, not parsed: a bare answer, and the connection closed.
            self.wfile.write(_BUSY)
            self.close_connection = True

        def _answering(self) -> bool:
            """The request read in full: no more deadline; an answering turn, or a 503."""
            self._deadline.cancel()
            if server.turns.acquire(blocking=False):
                return True
            self._busy()
            return False

        def do_GET(self) -> None:
            if not self._answering():
                return
            try:
                name, state = self._subscriber()
                if state != "unknown":
                    self._answer(200, server.page(state, name))
            finally:
                server.turns.release()

        def do_POST(self) -> None:
            length = self.headers.get("Content-Length") or "0"
            if not length.isdigit():
                self._answer(400, _page("unknown"))
                return
            if int(length) > _LARGEST_BODY:
                self._answer(413, _page("unknown"))
                return
            self.rfile.read(int(length))
            if not self._answering():
                return
            try:
                self._unsubscribe()
            finally:
                server.turns.release()

        def _unsubscribe(self) -> None:
            name, state = self._subscriber()
            if state == "ask":
                try:
                    server.unsubscribe(name)
                except Exception:  # the database busy past its wait: say so, change nothing
                    log.exception("unsubscribe page: could not record it")
                    self._answer(503, server.page("busy", name))  # in their language
                    return
                state = "done"
            if state != "unknown":
                self._answer(200, server.page(state, name))

        def _other(self) -> None:
            self._answer(405, _page("unknown"), allow="GET, POST")

        do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other  # noqa: N815

        def _subscriber(self) -> tuple[str, str]:
            """(name, state) of the subscriber the path names with their token; a path that
            names none is answered 404 here."""
            # Matched decoded: a base URL's path with an accent (/désabonnement) arrives
            # percent-encoded, as clients send it. Names and tokens hold no % of their own.
            match = server.link_path.match(unquote(self.path))
            if match:
                name, token = match.group(1), match.group(2)
                try:
                    state = server.state(name, token)
                except Exception:  # the database unreadable: said in the log, not the page
                    log.exception("unsubscribe page: could not read the subscribers")
                    self._answer(503, _page("busy"))
                    return "", "unknown"
                if state != "unknown":
                    return name, state
            self._answer(404, _page("unknown"))
            return "", "unknown"

        def _answer(self, status: int, body: bytes, allow: str = "") -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")
            if allow:
                self.send_header("Allow", allow)
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.close_connection = True

    return Handler
