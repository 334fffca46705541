"""Real `vigie` processes for the crash tests: started on a config, waited on, killed with
SIGKILL or stopped with SIGTERM, and their database read while they run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import REPO
from delivery_support import SECRET, SECRET_ENV


def start_vigie(config: Path, log: Path, command: str) -> subprocess.Popen:
    """`vigie <command> --config <config>` in the config's folder, with the webhook secret in its
    environment; its output is appended to `log`."""
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, str(REPO / "service.py"), command, "--config", str(config)],
            cwd=config.parent,
            env={**os.environ, SECRET_ENV: SECRET},
            stdout=out,
            stderr=out,
        )


@contextmanager
def running(config: Path, log: Path, command: str) -> Iterator[subprocess.Popen]:
    """A `vigie` process (start_vigie) that is killed on the way out if the test left it
    running, so a failed test leaves no process behind."""
    process = start_vigie(config, log, command)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def kill(process: subprocess.Popen) -> None:
    """SIGKILL: the process dies wherever it is, with nothing cleaned up."""
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=10) == -signal.SIGKILL


def stop(process: subprocess.Popen, log: Path) -> None:
    """SIGTERM, as an operator stops the service: it must finish what it does and exit 0."""
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, log.read_text()[-5000:]


def wait_until(
    condition: Callable[[], bool], what: str, log: Path, limit: float = 30, pause: float = 0.02
) -> None:
    """Check `condition` every `pause` seconds; fail with the end of the log after `limit`."""
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}; log:\n{log.read_text()[-5000:]}")
        time.sleep(pause)


def rows(database: Path, sql: str) -> list[tuple]:
    """`sql` on a read-only connection, closed again: safe while a process writes the file
    (sqlite3.OperationalError until the process has created it)."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()
