"""Polling 1,000 feeds on loopback: Vigie side by side with a plain requests + feedparser loop.

The feeds (bench.newsgen: real headlines and sentences, 20 items of about 700 bytes each) are
served by bench.feedserver, another process. Four passes, each measured for Vigie (its default
settings and rules, storing to SQLite) and for the plain loop (`requests.get` then
`feedparser.parse`, one feed after the other, nothing stored):

1. first poll: every item is new to Vigie (20,000 articles matched, grouped and stored);
2. changed: every feed answers 200 with a new body holding 2 new items, as a news feed does
   between two polls (the other 18 items are the ones Vigie stored the last time);
3. 304: every feed honours Vigie's If-None-Match (the plain loop sends none and gets 200);
4. unchanged body: the same bytes again, without validators.

For the passes where nothing changed (304, unchanged body), a third line, "requests alone", runs
the same requests with `Session.get` on a keep-alive requests.Session (conditional for the 304
pass) and does nothing else: what requests costs called the usual way. Vigie sends through the
session's adapter without Session.get's per-call merging of settings (netguard.send), so it
can cost less than this line while doing more.

CPU milliseconds per feed are the client's own (Vigie's process, all threads, plus its worker
processes that read and match changed feeds, polling.processes; the plain loop and "requests
alone" run in a process of their own that imports nothing of Vigie, bench.baselines, so they get
none of the feedparser settings monitor.parse makes); the server's CPU is read from it and
reported with its throughput when driven alone by a minimal asyncio client, to show it is not the
bottleneck.

Usage: python -m bench.polling [--feeds N] [--quick] [--rows PATH]
"""

from __future__ import annotations

import asyncio
import atexit
import resource
import socket
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from bench.baselines import in_own_process, measure
from bench.report import Row, emit, quick
from monitor.config import load_config
from monitor.fetch import make_session
from monitor.pipeline import poll_due
from monitor.readers import ReaderPool
from monitor.rules.files import load_rules
from monitor.store import Store

ROOT = Path(__file__).resolve().parent.parent
ITEMS = 20
NEW_PER_CHANGE = 2
CPU_TARGET_MS = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """bench.feedserver in its own process."""

    def __init__(self, feeds: int) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.feedserver", str(self.port), str(feeds)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"
        self.base = f"http://127.0.0.1:{self.port}"
        self.control = requests.Session()
        atexit.register(self.close)  # also when the benchmark fails half-way

    def get(self, path: str) -> str:
        return self.control.get(self.base + path, timeout=60).text

    def cpu(self) -> float:
        return float(self.get("/cpu"))

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait()


async def _client(port: int, paths: list[str], etags: dict[str, str], connections: int) -> None:
    """A minimal keep-alive HTTP client: as little client work as possible per request."""
    pending = list(reversed(paths))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while pending:
            path = pending.pop()
            extra = f"If-None-Match: {etags[path]}\r\n" if path in etags else ""
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{extra}\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length, etag = 0, None
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
                elif name.lower() == b"etag":
                    etag = value.strip().decode()
            if length:
                await reader.readexactly(length)
            if etag:
                etags[path] = etag
        writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))


def server_alone(
    server: Server, paths: list[str], etags: dict[str, str] | None = None
) -> tuple[float, float]:
    """(requests per second, server CPU ms per request), driven by the minimal client with 8
    connections; with `etags`, every request is conditional (and the server answers 304)."""
    cpu = server.cpu()
    known = etags if etags is not None else {}
    wall, _ = measure(lambda: asyncio.run(_client(server.port, paths, known, 8)))
    return len(paths) / wall, (server.cpu() - cpu) / len(paths) * 1000


def plain_loop(base: str, count: int) -> tuple[float, float]:
    """(wall, CPU seconds) of the plain loop, in a process of its own that imports nothing of
    Vigie (bench.baselines): no setting or cache of Vigie's can help or hinder it."""
    return in_own_process("plain-loop", base, str(count))


def requests_alone(base: str, count: int, conditional: bool) -> tuple[float, float]:
    """(wall, CPU seconds) of the same requests with one keep-alive Session, nothing else, in a
    process of its own; with `conditional`, each sends the ETag its feed answered with (learnt
    first, not measured)."""
    return in_own_process(
        "requests-alone", base, str(count), *(["--conditional"] if conditional else [])
    )


def main() -> None:
    count = int(sys.argv[sys.argv.index("--feeds") + 1]) if "--feeds" in sys.argv else 1000
    if quick() and "--feeds" not in sys.argv:
        count = 300
    server = Server(count)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows = run(server, count, Path(tmp))
    finally:
        server.close()
    emit(rows)


def run(server: Server, count: int, tmp: Path) -> list[Row]:
    config_path = tmp / "config.toml"
    config_path.write_text(
        # The 1000 feeds stand for feeds of many hosts: fetch.per_host as high as concurrency.
        '[storage]\ndatabase = "vigie.db"\n[fetch]\nallow_private = true\nper_host = 8\n'
        f'[rules]\npaths = ["{ROOT / "rules"}"]\n',
        encoding="utf-8",
    )
    config = load_config(config_path)
    store = Store(config.database)
    start = datetime.now(UTC)
    paths = [f"/feed/{i}.xml" for i in range(count)]
    urls = [server.base + path for path in paths]
    for url in urls:
        store.upsert_feed(url, now=start)
    index = load_rules(config.rules.paths).index()
    session = make_session(config.fetch)
    readers = ReaderPool(config.polling.processes)
    clock = [start]

    def vigie() -> None:
        clock[0] += timedelta(hours=1)  # every feed is due again (interval 30 min, ±10%)
        summary = poll_due(store, session, config, index, clock[0], readers=readers)
        assert summary.feeds_polled == count and not summary.errors, summary.errors[:3]

    def vigie_measured() -> tuple[float, float]:
        """(wall, CPU seconds of this process and of the reader processes) of one pass."""
        workers = readers.cpu_seconds()
        wall, cpu = measure(vigie)
        return wall, cpu + readers.cpu_seconds() - workers

    print(
        f"{count} feeds of {ITEMS} items (~{len(requests.get(urls[0]).content) // 1000} KB) on "
        f"loopback. Vigie: concurrency {config.fetch.concurrency}, {config.polling.processes} "
        "reader processes, the rules in rules/, storing to SQLite. Plain loop: requests.get + "
        "feedparser.parse, one feed after the other."
    )
    print(
        f"{'pass':40} {'who':14} {'feeds/s':>8} {'CPU ms/feed':>12} {'wall s':>7} {'vs plain':>9}"
    )
    rows: list[Row] = []
    etags: dict[str, str] = {}
    alone_200 = server_alone(server, paths, etags)  # unconditional; keeps each ETag
    alone_304 = server_alone(server, paths, etags)  # conditional: every answer is a 304
    for title, prepare in (
        ("first poll: 20 new items per feed", None),
        (f"changed: {NEW_PER_CHANGE} new items of 20 per feed", f"/advance/{NEW_PER_CHANGE}"),
        ("304 Not Modified", None),
        ("unchanged body, no validators", "/mode/plain"),
    ):
        if prepare:
            server.get(prepare)
        if prepare == "/mode/plain":
            vigie()  # forget the validators (this answer has none) before measuring
        alone = alone_304 if title.startswith("304") else alone_200
        print(
            f"{title:40} {'server alone':14} {alone[0]:>8.0f} {alone[1]:>12.2f} "
            f"{count / alone[0]:>7.2f}  (server CPU)"
        )
        vigie_wall, vigie_cpu = vigie_measured()
        plain_wall, plain_cpu = plain_loop(server.base, count)
        lines = [("vigie", vigie_wall, vigie_cpu), ("plain loop", plain_wall, plain_cpu)]
        floor = None
        if title.startswith(("304", "unchanged")):
            floor = requests_alone(server.base, count, conditional=title.startswith("304"))
            lines.append(("requests alone", *floor))
        for who, wall, cpu in lines:
            speed = f"{plain_wall / wall:>8.2f}x" if who == "vigie" else ""
            print(
                f"{'':40} {who:14} {count / wall:>8.0f} {cpu / count * 1000:>12.2f} "
                f"{wall:>7.2f} {speed:>9}",
                flush=True,
            )
        rows += pass_rows(title, count, alone, vigie_wall, vigie_cpu, plain_wall, plain_cpu)
        if title.startswith("first"):
            # Every article of the pass is new: what a first cycle after a large OPML import
            # holds at its peak (the articles read ahead of storing; a cycle's changes were
            # kept to its end, 387 MB at 2,000 feeds against 190 since).
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{'':40} {'vigie':14} peak memory of the service process {peak:.0f} MB")
            rows.append(Row("polling", f"{count:,} feeds, {title}", "peak MB", peak))
        if floor is not None:
            rows.append(
                Row(
                    "polling",
                    f"{count:,} feeds, {title}",
                    "CPU ms/feed",
                    vigie_cpu / count * 1000,
                    floor[1] / count * 1000,
                    "requests alone",
                    higher_is_better=False,
                )
            )
    readers.close()
    store.close()
    return rows


def pass_rows(
    title: str,
    count: int,
    alone: tuple[float, float],
    vigie_wall: float,
    vigie_cpu: float,
    plain_wall: float,
    plain_cpu: float,
) -> list[Row]:
    case = f"{count:,} feeds, {title}"
    changed = title.startswith("changed")
    skipped = title.startswith(("304", "unchanged"))
    vigie_ms, plain_ms = vigie_cpu / count * 1000, plain_cpu / count * 1000
    speed = Row(
        "polling",
        case,
        "feeds/s",
        count / vigie_wall,
        count / plain_wall,
        "plain loop",
        ">= 2x plain" if changed else "",
        (plain_wall / vigie_wall >= 2) if changed else None,
    )
    cpu_target = f"<= {CPU_TARGET_MS:g}" if skipped else "<= plain" if changed else ""
    cpu_met = vigie_ms <= CPU_TARGET_MS if skipped else (vigie_ms <= plain_ms) if changed else None
    cpu = Row(
        "polling",
        case,
        "CPU ms/feed",
        vigie_ms,
        plain_ms,
        "plain loop",
        cpu_target,
        cpu_met,
        higher_is_better=False,
    )
    server = Row("polling", case, "server alone, req/s", alone[0], baseline_name="(no client)")
    return [speed, cpu, server]


if __name__ == "__main__":
    main()
