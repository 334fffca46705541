"""`vigie backup`: a whole, consistent copy of the database, taken while the service writes, from
which a restored Vigie carries on without losing or sending again anything."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from delivery_support import write_delivery_config

from monitor.cli import main
from monitor.scheduler import database_lock


def vigie(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = write_delivery_config(
        tmp_path, subscribers=[{"name": "desk", "email": "desk@n.test", "tags": ["calais"]}]
    )
    assert vigie("once", "--config", path).exit_code == 0
    return path


def rows(database: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(database) as db:
        found = db.execute(sql).fetchall()
    db.close()
    return found


def test_a_backup_taken_mid_write_holds_what_was_committed_and_nothing_half_done(
    config: Path, tmp_path: Path
) -> None:
    database = tmp_path / "data" / "vigie.db"
    articles = rows(database, "SELECT id, title FROM articles ORDER BY id")
    writer = sqlite3.connect(database, isolation_level=None)  # as the service, mid-poll
    # Committed, and still in the WAL beside the file (a copy of the file alone misses it).
    writer.execute("UPDATE articles SET title = 'revised' WHERE id = ?", [articles[-1][0]])
    articles[-1] = (articles[-1][0], "revised")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE articles SET title = 'half-written' WHERE id = ?", [articles[0][0]])
    writer.execute("DELETE FROM matches")
    try:
        result = vigie("backup", tmp_path / "copy.db", "--config", config)
    finally:
        writer.execute("COMMIT")
        writer.close()
    assert result.exit_code == 0, result.output
    assert f"{len(articles)} articles" in result.output
    copy = tmp_path / "copy.db"
    assert rows(copy, "SELECT id, title FROM articles ORDER BY id") == articles
    assert rows(copy, "SELECT count(*) FROM matches")[0][0] > 0
    assert not list(tmp_path.glob("copy.db.*"))  # no partial file or WAL left beside it


def test_a_restored_backup_carries_on_without_storing_or_sending_again(
    config: Path, tmp_path: Path
) -> None:
    database = tmp_path / "data" / "vigie.db"
    assert vigie("backup", tmp_path, "--config", config).exit_code == 0
    [copy] = tmp_path.glob("vigie-*.db")
    sent = sorted((tmp_path / "outbox").iterdir())
    # The disk is lost; the operator restores the copy (docs/operations.md).
    for path in tmp_path.joinpath("data").glob("vigie.db*"):
        path.unlink()
    shutil.copy(copy, database)
    result = vigie("once", "--config", config)
    assert result.exit_code == 0, result.output
    assert "0 new articles" in result.output
    assert sorted((tmp_path / "outbox").iterdir()) == sent  # no digest written again


def test_a_backup_never_overwrites_a_file(config: Path, tmp_path: Path) -> None:
    existing = tmp_path / "old.db"
    existing.write_bytes(b"yesterday's backup")
    result = CliRunner().invoke(main, ["backup", str(existing), "--config", str(config)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: backup: {existing} exists already: name a new file, or a folder"
    )
    assert existing.read_bytes() == b"yesterday's backup"


def test_a_backup_into_a_folder_clears_what_killed_backups_left(
    config: Path, tmp_path: Path
) -> None:
    """A backup killed mid-copy left its .partial file for good: dated names never recur."""
    folder = tmp_path / "backups"
    folder.mkdir()
    killed, writing, other = (
        folder / "vigie-20261201-030000.db.partial",
        folder / "vigie-20261204-120000.db.partial",  # another backup, writing now
        folder / "notes.db.partial",  # not Vigie's
    )
    for path in (killed, writing, other):
        path.write_bytes(b"half a copy")
    two_hours_ago = time.time() - 7200
    for path in (killed, other):
        os.utime(path, (two_hours_ago, two_hours_ago))
    assert vigie("backup", folder, "--config", config).exit_code == 0
    assert not killed.exists() and writing.exists() and other.exists()
    assert len(list(folder.glob("vigie-*.db"))) == 1


def test_a_backup_to_a_missing_folder_is_a_one_line_error(config: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["backup", str(tmp_path / "nowhere" / "x.db"), "--config", str(config)]
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: backup: a path in an existing folder")


def test_a_restore_keeps_what_it_replaces_and_gives_no_id_again(
    config: Path, tmp_path: Path
) -> None:
    """Restored by hand, the database gave again, to other articles, the ids given after the
    backup: a webhook consumer keying on article ids was told one article was another."""
    database = tmp_path / "data" / "vigie.db"
    assert vigie("backup", tmp_path / "b.db", "--config", config).exit_code == 0
    (highest,) = rows(database, "SELECT max(id) FROM articles")[0]
    extra = tmp_path / "extra.rss"
    extra.write_text(
        "<rss version='2.0'><channel><title>Extra</title><item><guid>x1</guid>"
        "<title>Harbour fête draws crowds</title></item></channel></rss>"
    )
    text = config.read_text()
    config.write_text(f'{text}[[feeds]]\nurl = "{extra}"\nname = "Extra"\n')
    vigie("once", "--config", config)
    (after,) = rows(database, "SELECT max(id) FROM articles")[0]
    assert after == highest + 1  # given after the backup

    result = vigie("restore", tmp_path / "b.db", "--config", config)
    assert result.exit_code == 0, result.output
    [kept] = tmp_path.joinpath("data").glob("vigie.db.replaced-*[0-9]")
    assert rows(kept, "SELECT max(id) FROM articles")[0][0] == after  # kept, not lost
    assert f"New articles are numbered from {after + 1}" in result.output
    assert vigie("once", "--config", config).exit_code == 0  # the extra item again
    assert rows(database, "SELECT id FROM articles WHERE guid LIKE '%x1'") == [(after + 1,)]


def test_a_restored_database_keeps_the_owner_and_mode_of_the_one_it_replaces(
    config: Path, tmp_path: Path
) -> None:
    """`vigie restore` run as root left a database owned by root, 0644: the service's user could
    no longer write it and `vigie run` stopped (at the time, with a traceback). The restored
    file takes the replaced one's mode, and, when root restores it, its owner (here nobody's;
    only root can give a file away, so a user checks the mode alone)."""
    database = tmp_path / "data" / "vigie.db"
    assert vigie("backup", tmp_path / "b.db", "--config", config).exit_code == 0
    database.chmod(0o600)
    owner = (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    if os.geteuid() == 0:
        os.chown(database, *owner)
    assert vigie("restore", tmp_path / "b.db", "--config", config).exit_code == 0
    restored = database.stat()
    assert (restored.st_uid, restored.st_gid) == owner
    assert restored.st_mode & 0o777 == 0o600


def test_a_restore_after_the_disk_is_lost_leaves_room_for_the_ids_given_since(
    config: Path, tmp_path: Path
) -> None:
    assert vigie("backup", tmp_path / "b.db", "--config", config).exit_code == 0
    (highest,) = rows(tmp_path / "data" / "vigie.db", "SELECT max(id) FROM articles")[0]
    for path in tmp_path.joinpath("data").glob("vigie.db*"):
        path.unlink()
    result = vigie("restore", tmp_path / "b.db", "--config", config)
    assert result.exit_code == 0, result.output
    next_id = int(result.output.split("numbered from ")[1].split(".")[0].replace(",", ""))
    assert next_id > highest + 1000


def test_restore_refuses_while_the_service_runs_and_what_is_no_backup(
    config: Path, tmp_path: Path
) -> None:
    assert vigie("backup", tmp_path / "b.db", "--config", config).exit_code == 0
    with database_lock(tmp_path / "data" / "vigie.db"):
        result = CliRunner().invoke(
            main, ["restore", str(tmp_path / "b.db"), "--config", str(config)]
        )
    assert result.exit_code == 1 and "already in use by Vigie" in result.output
    junk = tmp_path / "notes.txt"
    junk.write_text("not a database")
    result = CliRunner().invoke(main, ["restore", str(junk), "--config", str(config)])
    assert result.exit_code == 1 and result.output.startswith(f"error: {junk}: ")
    assert not list(tmp_path.joinpath("data").glob("vigie.db.replaced-*"))  # nothing moved
