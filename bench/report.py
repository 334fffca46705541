"""Rows of the summary table that `make bench` prints: each benchmark hands its headline numbers
to bench/__main__.py through a JSON file named by `--rows PATH`."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    """One measure, Vigie beside its baseline from the same run."""

    area: str  # polling, ingest, matching, delivery
    case: str  # what was run
    measure: str  # with its unit, e.g. "feeds/s"
    vigie: float
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""  # what the issue asks, e.g. "<= 2"
    met: bool | None = None
    higher_is_better: bool = True

    @property
    def ratio(self) -> float | None:
        """How many times better Vigie is than the baseline (above 1: better)."""
        if not self.baseline or not self.vigie:
            return None
        ratio = self.vigie / self.baseline
        return ratio if self.higher_is_better else 1 / ratio


def quick() -> bool:
    return "--quick" in sys.argv


def emit(rows: list[Row]) -> None:
    """Write the rows where `--rows PATH` says, when it says."""
    if "--rows" in sys.argv:
        path = Path(sys.argv[sys.argv.index("--rows") + 1])
        path.write_text(json.dumps([asdict(r) for r in rows]), encoding="utf-8")


def load(path: Path) -> list[Row]:
    if not path.exists():
        return []
    return [Row(**row) for row in json.loads(path.read_text(encoding="utf-8"))]


def number(value: float | None) -> str:
    """Three significant figures, at most two decimals: 0.12, 1.7, 42.3, 1,234."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
