"""Polling 1,000 feeds on loopback: Vigie side by side with a plain requests + feedparser loop.

Three passes: every feed changed (200 with a new body), every feed answering 304, and every feed
returning its unchanged body without validators. CPU milliseconds per feed (this process, all
threads; the server is another process) and feeds per second. The server is measured alone
first, so it is known not to be the bottleneck. Usage: python -m bench.polling [--feeds N]
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import requests

from monitor.config import load_config
from monitor.fetch import make_session
from monitor.pipeline import poll_due
from monitor.rules.files import load_rules
from monitor.store import Store

ROOT = Path(__file__).resolve().parent.parent
PASSES = (
    ("changed", "all changed (200)"),
    ("validators", "all 304"),
    ("plain", "unchanged body, no validators"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(func) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    func()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    feeds = int(sys.argv[sys.argv.index("--feeds") + 1]) if "--feeds" in sys.argv else 1000
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.feedserver", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    base = f"http://127.0.0.1:{port}"
    urls = [f"{base}/feed/{i}.xml" for i in range(feeds)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run(base, urls, Path(tmp))
    finally:
        server.terminate()
        server.wait()


def run(base: str, urls: list[str], tmp: Path) -> None:
    config_path = tmp / "config.toml"
    config_path.write_text(
        '[storage]\ndatabase = "vigie.db"\n[fetch]\nallow_private = true\nconcurrency = 16\n'
        f'[rules]\npaths = ["{ROOT / "rules"}"]\n',
        encoding="utf-8",
    )
    config = load_config(config_path)
    store = Store(config.database)
    now = datetime.now(UTC)
    for url in urls:
        store.upsert_feed(url, now=now)
    index = load_rules(config.rules.paths).index()
    session = make_session(config.fetch)
    plain = requests.Session()

    def server_alone() -> None:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda u: plain.get(u).content, urls))

    def plain_loop() -> None:
        for url in urls:
            feedparser.parse(requests.get(url, timeout=30).content)

    def vigie() -> None:
        summary = poll_due(store, session, config, index, datetime.now(UTC), force=True)
        assert not summary.errors, summary.errors[:3]

    n = len(urls)
    print(
        f"{n} feeds of ~10 KB on loopback; Vigie with concurrency 16, the default rules, "
        "storing to SQLite; the plain loop fetches and parses only"
    )
    print(f"{'pass':32} {'who':14} {'feeds/s':>9} {'CPU ms/feed':>12} {'wall s':>8}")
    for mode, title in PASSES:
        requests.get(f"{base}/mode/{mode}")
        if mode != "changed":
            vigie()  # prime validators and body hashes from this pass's bodies
        wall, cpu = measure(server_alone)
        print(f"{title:32} {'server alone':14} {n / wall:>9.0f} {'-':>12} {wall:>8.2f}")
        for who, func in (("plain loop", plain_loop), ("vigie", vigie)):
            wall, cpu = measure(func)
            print(
                f"{'':32} {who:14} {n / wall:>9.0f} {cpu / n * 1000:>12.2f} {wall:>8.2f}",
                flush=True,
            )
    store.close()


if __name__ == "__main__":
    main()
