"""`make bench`: run every benchmark, print one summary table, and write bench/results.md with the
machine, the versions, the table and each benchmark's own output.

Each benchmark runs in its own process (so none inherits another's caches or threads) and hands
its headline numbers back as bench.report.Row records. Usage: python -m bench [--quick]
"""

from __future__ import annotations

import contextlib
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench.report import Row, load, number

BENCHMARKS = [
    ("Polling 1,000 feeds on loopback", "bench.polling"),
    ("Ingest end to end", "bench.ingest"),
    ("Matching throughput", "bench.matching"),
    ("Rule reload at 100,000 rules", "bench.reload"),
    ("Delivery: digests and webhooks", "bench.delivery"),
    ("Story sketches: cost and grouping", "bench.identity"),
    ("Full-text extraction quality", "bench.extraction"),
    ("Rule pack quality (precision and recall per tag)", "bench.rule_quality"),
]
PACKAGES = (
    "feedparser",
    "requests",
    "sqlite-utils",
    "nh3",
    "lark",
    "PyStemmer",
    "rensa",
    "numpy",
    "py3langid",
    "jinja2",
)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} CPUs"


def cpu_ticks() -> list[int] | None:
    """The machine's CPU time by kind since boot (/proc/stat: user, nice, system, idle, iowait,
    irq, softirq, steal, ...), or None where there is no /proc."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            return [int(n) for n in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def steal_note(before: list[int] | None, after: list[int] | None) -> str:
    """How much CPU the hypervisor gave to other guests during the run, as a share of the time
    the CPUs were busy or stolen. On a shared virtual machine it is one visible cause of absolute
    figures moving between runs, not the only one: neighbours also share caches, and a run with
    little steal can still be slow."""
    if not before or not after or len(before) < 8 or len(after) < 8:
        return ""
    delta = [b - a for a, b in zip(before, after, strict=False)]
    idle = delta[3] + delta[4]
    busy = sum(delta[:8]) - idle
    if busy <= 0:
        return ""
    return f" CPU steal (time the hypervisor ran other guests) {delta[7] / busy:.0%} of busy time."


def versions() -> str:
    found = []
    for name in PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            found.append(f"{name} {version(name)}")
    return f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; " + ", ".join(
        found
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| area | case | measure | Vigie | baseline | vs baseline | target | met |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        baseline = f"{number(r.baseline)} ({r.baseline_name})" if r.baseline else r.baseline_name
        ratio = f"{r.ratio:.2f}x" if r.ratio else ""
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(
            f"| {r.area} | {r.case} | {r.measure} | {number(r.vigie)} | {baseline} | {ratio} "
            f"| {r.target} | {met} |"
        )
    return "\n".join(lines)


def main() -> None:
    root = Path(__file__).resolve().parent
    flags = ["--quick"] if "--quick" in sys.argv else []
    load_before = os.getloadavg()
    ticks_before = cpu_ticks()
    rows: list[Row] = []
    sections = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for title, module in BENCHMARKS:
            print(f"== {title} ({module})", flush=True)
            rows_file = Path(tmp) / f"{module}.json"
            start = time.perf_counter()
            run = subprocess.run(
                [sys.executable, "-m", module, *flags, "--rows", str(rows_file)],
                cwd=root.parent,
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - start
            output = (run.stdout + run.stderr).strip()
            if run.returncode:
                output += f"\n(exit status {run.returncode})"
            print(output, flush=True)
            rows += load(rows_file)
            command = " ".join(["python -m", module, *flags])
            sections.append(f"## {title}\n\n`{command}` ({seconds:.0f} s)\n\n```\n{output}\n```\n")
    summary = table(rows)
    print("\n" + summary)
    load_after = os.getloadavg()
    steal = steal_note(ticks_before, cpu_ticks())
    header = (
        "# Benchmark results\n\n"
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC{' with --quick' if flags else ''} in "
        f"{time.perf_counter() - started:.0f} s on {machine()}; {versions()}.\n"
        f"Load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after.{steal}\n\n"
        "Numbers are from one run. Compare the ratios within a row (Vigie and its baseline ran "
        "side by side, on the same machine, minutes apart), not absolute times across machines. "
        "`vs baseline` is how many times better Vigie did (above 1: better).\n\n"
    )
    (root / "results.md").write_text(
        header + summary + "\n\n" + "\n".join(sections), encoding="utf-8"
    )
    print(f"written {root / 'results.md'}")


if __name__ == "__main__":
    main()
