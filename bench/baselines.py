"""The baselines Vigie is compared with, each run in a process of its own that imports nothing of
Vigie: plain requests and feedparser, called as any feed reader calls them.

Importing monitor.parse changes feedparser's module settings (its XML driver list, a cache of
base URIs): a baseline in a process where Vigie is loaded would be helped by them, and would no
longer show what a plain loop costs. So the benchmarks start this module instead:

    python -m bench.baselines plain-loop BASE COUNT        requests.get + feedparser.parse
    python -m bench.baselines requests-alone BASE COUNT [--conditional]
    python -m bench.baselines parse FILE...                 feedparser.parse over the files

Each prints two numbers: wall and CPU seconds of the measured loop (for `parse`: wall seconds
and the number of items parsed).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import feedparser
import requests

ROOT = Path(__file__).resolve().parent.parent


def measure(func: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) spent in func."""
    wall, cpu = time.perf_counter(), time.process_time()
    func()
    return time.perf_counter() - wall, time.process_time() - cpu


def in_own_process(*args: str) -> tuple[float, float]:
    """Run one baseline (the arguments of this module's command line) and return its two
    numbers."""
    run = subprocess.run(
        [sys.executable, "-m", "bench.baselines", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    first, second = run.stdout.split()
    return float(first), float(second)


def _plain_loop(base: str, count: int) -> tuple[float, float]:
    urls = [f"{base}/feed/{i}.xml" for i in range(count)]

    def loop() -> None:
        for url in urls:
            feedparser.parse(requests.get(url, timeout=30).content)

    return measure(loop)


def _requests_alone(base: str, count: int, conditional: bool) -> tuple[float, float]:
    session = requests.Session()
    session.trust_env = False  # as Vigie's: no proxy or .netrc lookups in the environment
    urls = [f"{base}/feed/{i}.xml" for i in range(count)]
    headers: list[dict[str, str]] = [{} for _ in urls]
    if conditional:
        for url, sent in zip(urls, headers, strict=True):
            sent["If-None-Match"] = session.get(url, timeout=30).headers["ETag"]

    def loop() -> None:
        for url, sent in zip(urls, headers, strict=True):
            session.get(url, headers=sent, timeout=30)  # reads the whole body

    return measure(loop)


def _parse(paths: list[str]) -> tuple[float, int]:
    bodies = [Path(path).read_bytes() for path in paths]
    start, items = time.perf_counter(), 0
    for body in bodies:
        items += len(feedparser.parse(body).entries)
    return time.perf_counter() - start, items


def main() -> None:
    command, *args = sys.argv[1:]
    if command == "plain-loop":
        print(*_plain_loop(args[0], int(args[1])))
    elif command == "requests-alone":
        print(*_requests_alone(args[0], int(args[1]), "--conditional" in args))
    elif command == "parse":
        print(*_parse(args))
    else:
        raise SystemExit(f"unknown baseline {command!r}: see python -m bench.baselines' docstring")


if __name__ == "__main__":
    main()
