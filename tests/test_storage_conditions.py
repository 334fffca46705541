"""What an operator sees when the machine, not Vigie, is wrong: a database that this user may
not write (a restore run as root, a backup tool's copy put back read-only), an outbox folder
that cannot take a digest, a write lock another process holds. The conditions are real, and
met by root too (what CI runs as), whom file modes do not stop: for a database, file modes for
a user and a read-only bind mount for root; for the outbox, a file where its folder should
be; for the lock, another process holding it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REPO
from delivery_support import IMMEDIATE_DESK, SECRET, SECRET_ENV, Vigie, write_delivery_config

from monitor.cli import main


def vigie(*args: str | Path) -> subprocess.CompletedProcess:
    """A `vigie` command in a process of its own, as an operator runs it: a failed command
    leaves no connection open in the test's process (nor a mount busy)."""
    return subprocess.run(
        [sys.executable, str(REPO / "service.py"), *map(str, args)],
        env={**os.environ, SECRET_ENV: SECRET},
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single `error:` line a command printed, exiting 1, with no traceback."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """A file or folder read-only to this process for real, then writable again: its mode for
    a user; for root a read-only bind mount of it on itself (skipped where mount is refused)."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    bind = subprocess.run(["mount", "--bind", path, path], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"root, and mount refused: {bind.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", path], check=True)
        yield
    finally:
        subprocess.run(["umount", "--lazy", path], check=True)  # busy or not


@pytest.fixture
def config(tmp_path: Path) -> Path:
    desk = {"name": "desk", "email": "desk@n.test", "tags": ["calais"]}
    path = write_delivery_config(tmp_path, subscribers=[desk])
    assert vigie("once", "--config", path).returncode == 0
    return path


def test_a_database_this_user_may_not_write_is_one_error_line_naming_it(
    config: Path, tmp_path: Path
) -> None:
    """A database put back read-only (a restore run as root) stopped `once` and `run` with
    SQLite's traceback, "attempt to write a readonly database", naming no file."""
    database = tmp_path / "data" / "vigie.db"
    with read_only(database):
        for command in ("once", "run"):
            line = one_error_line(vigie(command, "--config", config))
            assert "storage.database" in line and "cannot be written" in line, line
            assert str(database) in line, line
            assert "not writable by user" in line or "on a read-only file system" in line, line
            assert "-wal and -shm" in line, line  # what else to give the service's user
    # As the line says: the -wal and -shm too, which SQLite made as read-only as it found the
    # database (for a user; root's were made writable).
    for made in (tmp_path / "data").glob("vigie.db-*"):
        made.chmod(0o644)
    assert vigie("once", "--config", config).returncode == 0  # given back: it runs again


def test_a_database_folder_this_user_may_not_write_is_named(config: Path, tmp_path: Path) -> None:
    """With no -wal and -shm beside it (the last command took them away), a database in a
    folder it may not write cannot be opened: SQLite said "unable to open database file"."""
    folder = tmp_path / "data"
    assert not (folder / "vigie.db-wal").exists()
    with read_only(folder):
        line = one_error_line(vigie("status", "--config", config))
    assert "storage.database" in line and str(folder) in line, line
    assert "not writable by user" in line or "on a read-only file system" in line, line


def test_digests_the_outbox_cannot_take_are_a_problem_until_it_takes_them(
    tmp_path: Path,
) -> None:
    """A service whose outbox folder could not take a digest (a full disk, a folder made
    unwritable or replaced) logged a warning at each one, and `vigie status` said "healthy",
    exit 0, with "2 retrying now": nothing told the operator's monitoring until, four hours
    of retries later, the digests were dead. The folder here is a file (a real condition root
    meets too)."""
    config = write_delivery_config(tmp_path, subscribers=[IMMEDIATE_DESK])
    outbox = tmp_path / "outbox"
    outbox.write_text("")  # `rm -r outbox; touch outbox`: a file where the folder should be
    service = Vigie(config, datetime.now(UTC))
    try:
        service.poll(datetime.now(UTC))
        [waiting] = service.send_digests(datetime.now(UTC))
        assert waiting.status == "pending"

        def status() -> tuple[int, list[str]]:
            result = CliRunner().invoke(main, ["status", "--config", str(config), "--json"])
            return result.exit_code, json.loads(result.output)["problems"]

        code, problems = status()
        assert code == 2, problems
        [problem] = problems
        assert f"digest #{waiting.delivery_id} to 'desk'" in problem, problem
        assert f"delivery.outbox ({outbox}: it is a file, not a folder)" in problem, problem
        outbox.unlink()  # mended: the digest is written at its next attempt
        later = datetime.now(UTC) + timedelta(minutes=10)
        assert [s.status for s in service.send_digests(later)] == ["sent"]
        assert status() == (0, [])
    finally:
        service.close()


def test_a_digest_waits_for_the_outbox_as_long_as_it_takes_and_goes_once_it_is_mended(
    tmp_path: Path,
) -> None:
    """A digest the outbox folder could not take used up its retries as a mail server down
    does (1 min, 5 min, 15 min, 1 h, 3 h) and was dead four hours later: a disk full for a
    night left every digest of it dead, to be retried by hand one by one; and once the folder
    was mended, those still waiting waited for their next retry, up to three hours. It is
    tried every minute for as long as it takes."""
    config = write_delivery_config(tmp_path, subscribers=[IMMEDIATE_DESK])
    outbox = tmp_path / "outbox"
    outbox.write_text("")  # a file where the folder should be: a real condition, root or not
    start = datetime.now(UTC)
    service = Vigie(config, start)
    try:
        service.poll(start)
        for hours in (0, 0.04, 0.14, 0.5, 2, 6, 10):  # each after the retry before it was due
            [tried] = service.send_digests(start + timedelta(hours=hours))
            assert tried.status == "pending", tried
        outbox.unlink()  # mended
        [written] = service.send_digests(start + timedelta(hours=10, seconds=61))
        assert written.status == "sent" and Path(written.detail).parent == outbox
    finally:
        service.close()


CALAIS_ITEM = (
    "<item><guid>{guid}</guid><title>Calais: migrants' camp cleared again ({guid})</title>"
    "<description>Police cleared the migrants' camp near Calais at dawn.</description></item>"
)


def test_while_the_outbox_cannot_take_digests_one_is_tried_a_minute_and_all_go_once_mended(
    tmp_path: Path,
) -> None:
    """Each waiting digest was tried on its own schedule, each failure a warning in the log:
    a day of immediate digests waiting was as many attempts and lines each time. The others
    wait with the one tried, and go together, in the first run after the folder is mended."""
    feed = tmp_path / "feed.rss"

    def publish(*guids: str) -> None:
        items = "".join(CALAIS_ITEM.format(guid=guid) for guid in guids)
        feed.write_text(f"<rss version='2.0'><channel><title>Nord</title>{items}</channel></rss>")

    publish("a")
    config = write_delivery_config(
        tmp_path, subscribers=[IMMEDIATE_DESK], feeds=[{"url": str(feed), "name": "Nord"}]
    )
    outbox = tmp_path / "outbox"
    outbox.write_text("")  # a file where the folder should be: a real condition, root or not
    start = datetime.now(UTC)
    service = Vigie(config, start)

    def attempts(seconds: float) -> list[str]:
        return [s.status for s in service.send_digests(start + timedelta(seconds=seconds))]

    try:
        service.poll(start)
        assert attempts(0) == ["pending"]
        publish("a", "b")  # news: a second digest, due at once
        service.poll(start + timedelta(seconds=10))
        assert attempts(10) == ["pending"]  # the new one; the first waits with it
        assert attempts(30) == []
        assert attempts(75) == ["pending"]  # a minute on: one tried, one line, not both
        outbox.unlink()  # mended: the next run writes them all
        assert attempts(140) == ["sent", "sent"]
        assert len(list(outbox.glob("*.eml"))) == 2
        outbox.rename(tmp_path / "moved")  # broken again: a new digest waits, then mended
        outbox.write_text("")
        publish("a", "b", "c")
        service.poll(start + timedelta(seconds=150))
        assert attempts(150) == ["pending"]
        outbox.unlink()
        publish("a", "b", "c", "d")
        service.poll(start + timedelta(seconds=160))
        assert attempts(160) == ["sent"]  # news written: the one waiting is not left behind
        assert attempts(165) == ["sent"]
    finally:
        service.close()


def test_a_database_another_process_holds_locked_is_said_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`sqlite3 vigie.db 'BEGIN EXCLUSIVE;'` left open (or a backup tool's lock): each job
    logged "the database could not be written (SQLITE_BUSY: database is locked)", which did
    not say that another process held it, nor what to look for."""
    from monitor import scheduler
    from monitor.store import database

    monkeypatch.setattr(database, "WRITE_WAIT", 0.5)  # the lock is waited for 30 s otherwise
    config = write_delivery_config(tmp_path, subscribers=[IMMEDIATE_DESK])
    service = Vigie(config, datetime.now(UTC))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('BEGIN EXCLUSIVE'); print('held', flush=True); time.sleep(60)",
            str(service.config.database),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        stopping = threading.Event()
        stopping.set()  # the job's pause after the error ends at once
        with caplog.at_level("ERROR"):
            scheduler.digest_job(service.store, service.config, service.book, stopping)
    finally:
        holder.kill()
        holder.wait()
        service.close()
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("digests: the database could not be written (SQLITE_BUSY"), line
    assert "another process holds its write lock" in line, line
    assert not [r for r in caplog.records if r.exc_info]
