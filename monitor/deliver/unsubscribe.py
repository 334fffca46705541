"""Unsubscribe links (RFC 8058 one-click), answered by `vigie run` at `delivery.listen`.

Each digest carries `public_base_url/unsubscribe/NAME/TOKEN`; the operator's https server
forwards /unsubscribe/ to `delivery.listen`. A GET shows a page with one button: mail scanners
and link previews open links, and must not unsubscribe anyone. A POST, the mail client's
one-click request or that button, records the unsubscription (Store.unsubscribe): no digest is
made or sent for the subscriber until `vigie digest resubscribe`. A wrong name or token is
"not found", either way, so the page tells nothing of who subscribes.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ..store import Store
from .digest import TEMPLATES

log = logging.getLogger(__name__)

_PATH = re.compile(r"^/unsubscribe/([^/?#]+)/([^/?#]+)/?(?:\?.*)?$")
_LARGEST_BODY = 4096  # a one-click POST carries "List-Unsubscribe=One-Click"


def _page(state: str, name: str = "") -> bytes:
    """The page for `state` (ask, done, unknown), from templates/unsubscribe.html."""
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined
    )
    return environment.get_template("unsubscribe.html").render(state=state, name=name).encode()


class UnsubscribeServer:
    """The unsubscribe page on `address`, in a thread of its own, until `close`."""

    def __init__(
        self,
        address: tuple[str, int],
        database: Path,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database, self.clock = database, clock
        self.httpd = ThreadingHTTPServer(address, _handler(self))
        self.httpd.daemon_threads = True
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

    def subscriber(self, name: str, token: str) -> bool:
        """Whether `token` is the subscriber's (compared in constant time)."""
        store = Store(self.database)
        try:
            state = store.subscriber_state(name)
        finally:
            store.close()
        return bool(state and state["token"] and hmac.compare_digest(state["token"], token))

    def unsubscribe(self, name: str) -> None:
        store = Store(self.database)
        try:
            store.unsubscribe(name, self.clock())
        finally:
            store.close()
        log.info("subscriber unsubscribed", extra={"subscriber": name})


def _handler(server: UnsubscribeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "Vigie"
        sys_version = ""
        timeout = 10  # seconds a connection may take to send its request: none holds a thread

        def log_message(self, format: str, *args: object) -> None:
            pass  # the service's log says who unsubscribed; addresses are not kept

        def do_GET(self) -> None:
            found = self._subscriber()
            if found:
                self._answer(200, _page("ask", found))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > _LARGEST_BODY:
                self._answer(413, b"")
                return
            self.rfile.read(length)
            found = self._subscriber()
            if found:
                server.unsubscribe(found)
                self._answer(200, _page("done", found))

        def _subscriber(self) -> str:
            """The subscriber the path names with their token, or "" (answered 404)."""
            match = _PATH.match(self.path)
            if match:
                name, token = unquote(match.group(1)), unquote(match.group(2))
                try:
                    if server.subscriber(name, token):
                        return name
                except Exception:  # the database unreadable: say so in the log, not the page
                    log.exception("unsubscribe page: could not read the subscribers")
                    self._answer(503, _page("unknown"))
                    return ""
            self._answer(404, _page("unknown"))
            return ""

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")
            self.end_headers()
            self.wfile.write(body)

    return Handler
