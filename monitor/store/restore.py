"""Restore a backup (`vigie backup`) in place of the database, keeping what it replaces.

A restored database gave again, to other articles, the article and story ids given after the
backup: webhook consumers keying on them were told one article was another. The ids continue
from the highest the replaced database gave when it can still be read; when it is gone with
its disk, from the backup's highest plus a margin: twice the articles a day the backup's last
30 days saw, for every day since it was taken, and 1,000 more.
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import stat
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ..errors import DatabaseOpenError
from .database import highest_id
from .rows import iso, parse_iso

ID_TABLES = ("articles", "stories")  # whose ids reach webhook consumers


@dataclass(frozen=True)
class Restored:
    articles: int  # in the backup
    backed_up: datetime | None  # the newest article's first sight in it
    replaced: Path | None  # where the database it replaced now is
    next_ids: dict[str, int]  # table -> the first id the restored database gives


@dataclass(frozen=True)
class Backup:
    path: Path
    articles: int
    backed_up: datetime | None  # the newest article's first sight in it
    highest: dict[str, int]  # table -> the highest id it gave


def restore_database(database: Path, backup: Backup, now: datetime) -> Restored:
    """Put a copy of `backup` (read_backup) at `database`; the database there before, with its
    WAL, is moved beside it (`vigie.db.replaced-20261204-210500`). Call holding the database's
    lock."""
    articles, backed_up, highest = backup.articles, backup.backed_up, backup.highest
    replaced_highest = _highest_ids(database) if database.exists() else None
    if replaced_highest is not None:
        start = {t: max(highest[t], replaced_highest[t]) for t in ID_TABLES}
    else:
        margin = _margin(backup.path, backed_up, now)
        start = {t: highest[t] + margin for t in ID_TABLES}
    replaced, owner = None, _owner_of(database)
    if database.exists():
        replaced = database.with_name(f"{database.name}.replaced-{now:%Y%m%d-%H%M%S}")
        for suffix in ("", "-wal", "-shm"):  # the WAL goes with its file, by name
            old = database.with_name(database.name + suffix)
            if old.exists():
                os.replace(old, replaced.with_name(replaced.name + suffix))
    partial = database.with_name(database.name + ".restoring")
    shutil.copyfile(backup.path, partial)
    _give(partial, owner)
    conn = sqlite3.connect(partial)
    try:
        with conn:
            conn.executemany(
                "INSERT OR REPLACE INTO id_high_water (name, last) VALUES (?, ?)",
                list(start.items()),
            )
    finally:
        conn.close()
    os.replace(partial, database)
    return Restored(articles, backed_up, replaced, {t: n + 1 for t, n in start.items()})


def _owner_of(database: Path) -> os.stat_result | None:
    """The database's owner and mode, for the copy that replaces it; its folder's when there
    is none (the service made the folder)."""
    for place in (database, database.parent):
        try:
            return place.stat()
        except OSError:
            continue
    return None


def _give(path: Path, owner: os.stat_result | None) -> None:
    """`path` with the owner and mode of `owner` (a stat): a restore run as root left a
    database owned by root, which the service's user could no longer write. Only root can
    give a file away; another user's copy keeps the mode alone."""
    if owner is None:
        return
    if stat.S_ISREG(owner.st_mode):
        os.chmod(path, stat.S_IMODE(owner.st_mode))
    if os.geteuid() == 0:
        os.chown(path, owner.st_uid, owner.st_gid)


def read_backup(backup: Path) -> Backup:
    """What a Vigie backup holds; DatabaseOpenError when it is not one, or is damaged."""
    try:
        conn = sqlite3.connect(f"{backup.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise DatabaseOpenError(str(backup), f"cannot be read: {e}") from None
    try:
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise DatabaseOpenError(str(backup), "damaged: SQLite's quick_check fails")
        articles, newest = conn.execute("SELECT count(*), max(first_seen) FROM articles").fetchone()
        return Backup(backup, articles, parse_iso(newest), _highest(conn))
    except sqlite3.DatabaseError as e:
        raise DatabaseOpenError(str(backup), f"not a Vigie database or backup ({e})") from None
    finally:
        conn.close()


def _highest_ids(database: Path) -> dict[str, int] | None:
    """The highest ids the database gave (None when it cannot be read: the backup's, with a
    margin, stand in)."""
    try:
        conn = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return _highest(conn)
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def _highest(conn: sqlite3.Connection) -> dict[str, int]:
    return {table: highest_id(conn, table) for table in ID_TABLES}


def _margin(backup: Path, backed_up: datetime | None, now: datetime) -> int:
    """Ids the lost database may have given since the backup: twice its rate of the 30 days
    before it, for each day since, and 1,000 more."""
    if backed_up is None:
        return 1000
    conn = sqlite3.connect(f"{backup.resolve().as_uri()}?mode=ro", uri=True)
    try:
        (recent,) = conn.execute(
            "SELECT count(*) FROM articles WHERE first_seen >= ?",
            [iso(backed_up - timedelta(days=30))],
        ).fetchone()
    finally:
        conn.close()
    days = max(1.0, (now - backed_up).total_seconds() / 86400)
    return 1000 + math.ceil(2 * recent / 30 * days)
