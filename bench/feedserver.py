"""A loopback feed server for benchmarks: many generated feeds, with or without validators.

Run as `python -m bench.feedserver PORT FEEDS`; GET /mode/NAME switches every feed at once:
`changed` (a new body per request, with validators), `validators` (the same body, ETag and
Last-Modified honoured with 304), `plain` (the same body, no validators).
"""

from __future__ import annotations

import sys
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = [
    "council",
    "police",
    "harbour",
    "ferry",
    "storm",
    "budget",
    "court",
    "migrants",
    "football",
    "rail",
    "strike",
    "school",
    "hospital",
    "election",
    "minister",
    "village",
    "coast",
    "museum",
    "festival",
    "farmers",
    "fishing",
    "port",
]


def feed_body(feed: int, version: int, items: int = 20) -> bytes:
    """An RSS 2.0 document of about 10 KB; `version` changes the newest item."""
    entries = []
    for i in range(items):
        n = version + i if i == 0 else i
        words = " ".join(WORDS[(feed + n + k) % len(WORDS)] for k in range(40))
        entries.append(
            f"<item><title>Feed {feed} item {n}: {WORDS[(feed + n) % len(WORDS)]}</title>"
            f"<link>https://news{feed}.example.org/{n}</link><guid>f{feed}-{n}</guid>"
            f"<pubDate>{formatdate(1_790_000_000 + n * 600, usegmt=True)}</pubDate>"
            f"<description>{words}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>Feed {feed}</title><link>https://news{feed}.example.org/</link>"
        + "".join(entries)
        + "</channel></rss>"
    ).encode()


class State:
    mode = "changed"
    version = 0
    bodies: dict[int, bytes] = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/mode/"):
            State.mode = self.path.rsplit("/", 1)[1]
            State.version += 1
            State.bodies.clear()
            return self._send(200, b"ok", {})
        feed = int(self.path.rsplit("/", 1)[1].split(".")[0])
        if State.mode == "changed":
            State.version += 1
            body = feed_body(feed, State.version)
        else:
            body = State.bodies.setdefault(feed, feed_body(feed, State.version))
        headers = {"Content-Type": "application/rss+xml"}
        if State.mode != "plain":
            etag = f'"{feed}-{State.version}"'
            headers["ETag"] = etag
            headers["Last-Modified"] = formatdate(1_790_000_000, usegmt=True)
            if State.mode == "validators" and self.headers.get("If-None-Match") == etag:
                return self._send(304, b"", headers)
        self._send(200, body, headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


def main() -> None:
    port = int(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
