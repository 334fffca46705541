"""`make bench`: run every benchmark in one go and write bench/results.md with the machine."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

BENCHMARKS = [
    ("Rule pack quality (precision and recall per tag)", "bench.rule_quality"),
    ("Matching throughput", "bench.matching"),
]
OPTIONAL = ["bench.identity", "bench.extraction", "bench.polling", "bench.ingest", "bench.delivery"]


def main() -> None:
    root = Path(__file__).resolve().parent
    modules = list(BENCHMARKS) + [
        (name, name) for name in OPTIONAL if (root / f"{name.split('.')[1]}.py").exists()
    ]
    sections = []
    for title, module in modules:
        print(f"== {title} ({module})", flush=True)
        run = subprocess.run([sys.executable, "-m", module], capture_output=True, text=True)
        output = (run.stdout + run.stderr).strip()
        print(output, flush=True)
        sections.append(f"## {title}\n\n`python -m {module}`\n\n```\n{output}\n```\n")
    packages = ", ".join(
        f"{p} {version(p)}" for p in ("feedparser", "lark", "PyStemmer", "sqlite-utils")
    )
    header = (
        "# Benchmark results\n\n"
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{platform.processor() or 'unknown CPU'}, Python {platform.python_version()}; "
        f"{packages}.\nNumbers are from one run; compare the ratios within a table, not "
        "absolute times across machines.\n\n"
    )
    (root / "results.md").write_text(header + "\n".join(sections), encoding="utf-8")
    print(f"written {root / 'results.md'}")


if __name__ == "__main__":
    main()
