"""A task for a reader process in tests/test_readers.py, importable by the fork server."""

from __future__ import annotations

import os
import re
from pathlib import Path


def held_for_minutes(pid_file: str) -> None:
    """Say which process this is, then hold the interpreter in one C call for minutes (a
    pattern that backtracks catastrophically): no other thread of the process runs meanwhile,
    while signal handlers still do (the regular expression engine checks for them)."""
    Path(pid_file).write_text(str(os.getpid()))
    re.match(r"(a+)+$", "a" * 64 + "b")
