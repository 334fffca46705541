"""A loopback HTTP server for the benchmarks: many generated feeds, asyncio, one process.

Run as `python -m bench.feedserver PORT FEEDS`; it prints "ready" once listening. Feeds are
bench.newsgen's: `/feed/N.xml` is feed N's 20 newest items. Control requests switch every feed at
once:

- `/mode/validators`: answers carry ETag and Last-Modified, and a request whose If-None-Match
  names the current ETag gets 304 Not Modified (the default);
- `/mode/plain`: no validators, the whole body every time;
- `/advance/K`: every feed publishes K new items (its body changes; its oldest K items drop out);
- `/cpu`: this process's CPU seconds so far, so a client can measure the server's own cost.

Any POST is read and answered 204 No Content: the webhook receiver of `python -m bench.delivery`.

The standard library's ThreadingHTTPServer managed about 360 requests a second here, slower than
the clients it was meant to serve. This one parses requests by hand on asyncio streams, keeps
connections alive and caches each feed's rendered body until it changes: see the "server alone"
rows of `python -m bench.polling`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from email.utils import formatdate

from bench.newsgen import ITEMS_PER_FEED, rss


class Feeds:
    """Every feed's newest item number and its rendered body, built on first request."""

    def __init__(self, count: int, now: float) -> None:
        self.now = now
        self.heads = [ITEMS_PER_FEED] * count
        self.bodies: dict[int, tuple[int, bytes]] = {}
        self.validators = True

    def body(self, feed: int) -> bytes:
        head = self.heads[feed]
        cached = self.bodies.get(feed)
        if cached is None or cached[0] != head:
            cached = self.bodies[feed] = (head, rss(feed, head, self.now))
        return cached[1]

    def answer(self, path: str, headers: dict[bytes, bytes]) -> tuple[int, bytes, list[str]]:
        if path.startswith("/feed/"):
            feed = int(path[6:].split(".", 1)[0])
            if not 0 <= feed < len(self.heads):
                return 404, b"no such feed", []
            body = self.body(feed)
            extra = ["Content-Type: application/rss+xml; charset=utf-8"]
            if self.validators:
                etag = f'"{feed}-{self.heads[feed]}"'
                modified = formatdate(self.now + self.heads[feed], usegmt=True)
                extra += [f"ETag: {etag}", f"Last-Modified: {modified}"]
                if headers.get(b"if-none-match", b"").decode() == etag:
                    return 304, b"", extra
            return 200, body, extra
        if path == "/mode/validators" or path == "/mode/plain":
            self.validators = path.endswith("validators")
            return 200, b"ok", []
        if path.startswith("/advance/"):
            step = int(path.rsplit("/", 1)[1])
            self.heads = [head + step for head in self.heads]
            for feed in range(len(self.heads)):  # rendered now, not while a client measures
                self.body(feed)
            return 200, b"ok", []
        if path == "/cpu":
            return 200, repr(time.process_time()).encode(), []
        return 404, b"not found", []


_REASONS = {
    200: "OK",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
}


async def serve_connection(
    feeds: Feeds, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                break
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if len(parts) != 3:
                status, body, extra = 400, b"bad request", []
            elif parts[0] == b"POST":  # a webhook: read and accept it
                await reader.readexactly(int(headers.get(b"content-length", b"0")))
                status, body, extra = 204, b"", []
            else:
                status, body, extra = feeds.answer(parts[1].decode(), headers)
            close = headers.get(b"connection", b"").lower() == b"close"
            response = [f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}"]
            response += extra
            response.append(f"Content-Length: {len(body)}")
            if close:
                response.append("Connection: close")
            writer.write(("\r\n".join(response) + "\r\n\r\n").encode() + body)
            await writer.drain()
            if close:
                break
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main_async(port: int, count: int) -> None:
    feeds = Feeds(count, time.time())
    server = await asyncio.start_server(
        lambda r, w: serve_connection(feeds, r, w), "127.0.0.1", port, backlog=1024
    )
    for feed in range(count):  # render every body before the first client arrives
        feeds.body(feed)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    port = int(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    asyncio.run(main_async(port, count))


if __name__ == "__main__":
    main()
