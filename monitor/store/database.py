"""The Store: every query and write, in transactions.

SQLite runs in WAL mode with synchronous=NORMAL: a committed transaction survives a crash of the
process (SIGKILL included); after a power cut the last transactions before the crash may be lost,
never half-applied. Each poll of a feed is one transaction: articles, matches and feed state commit
together or not at all.

Storage returns only what is new: callers never ask "have I seen this?".
"""

from __future__ import annotations

import contextlib
import os
import pwd
import sqlite3
import threading
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from ..bands import BandIndex
from ..errors import DatabaseOpenError
from .articles import ArticleQueries
from .exports import ExportQueries
from .feeds import FeedQueries
from .matches import MatchQueries
from .outbox import OutboxQueries
from .pruning import PruningQueries
from .schema import migrations
from .search import SearchQueries
from .service import ServiceQueries
from .stories import StoryQueries

SQLITE_HEADER = b"SQLite format 3\x00"


# How many connections this process has open to each database (by its real path). POSIX
# releases every lock a process holds on a file when the process closes any descriptor of that
# file: reading the header of an open database with Python (prepare_database) released the
# SQLite locks of the service's own connections, and another `vigie` command then took itself
# for the database's last user, checkpointed and deleted the WAL the service was writing to
# (whose writes were then lost or, at the next stop, corrupted the file).
_connections: Counter[str] = Counter()
_connections_lock = threading.Lock()


def _connected(path: Path, change: int = 0) -> int:
    key = os.path.realpath(path)
    with _connections_lock:
        _connections[key] += change
        return _connections[key]


class _TakingTurns:
    """A lock granted in the order it was asked for. The service's threads (the poll storing
    feed after feed, the digest and webhook jobs) each have a connection; left to SQLite's
    busy handler, which retries after sleeps of up to 100 ms, a job waited in vain while the
    poll committed and began again in between, and failed with "database is locked" after
    busy_timeout, tick after tick, for as long as a long poll lasted."""

    def __init__(self) -> None:
        self._turns = threading.Condition()
        self._waiting: deque[object] = deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        me = object()
        with self._turns:
            self._waiting.append(me)
            ready = self._turns.wait_for(lambda: not self._held and self._waiting[0] is me, timeout)
            if not ready:
                self._waiting.remove(me)
                self._turns.notify_all()
                return False
            self._waiting.popleft()
            self._held = True
            return True

    def release(self) -> None:
        with self._turns:
            self._held = False
            self._turns.notify_all()


def _foreign_tables(path: Path) -> list[str]:
    """The tables of a SQLite file that Vigie never made (none for an empty file or a Vigie
    database): a storage.database pointed at another program's file got Vigie's tables. A
    file that cannot be read so is left to the connection to report."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    try:
        tables = sorted(
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        )
        if (
            "_sqlite_migrations" in tables
            and conn.execute(
                "SELECT 1 FROM _sqlite_migrations WHERE migration_set = 'vigie' LIMIT 1"
            ).fetchone()
        ):
            return []
        return tables
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def _busy() -> sqlite3.OperationalError:
    """The error SQLite gives when its write lock stays taken past busy_timeout, named as it
    names it: the service's jobs pause on SQLITE_BUSY (scheduler.storage_trouble_pauses), and
    logged a traceback every 30 s for this one, which had no name."""
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
    error.sqlite_errorname = "SQLITE_BUSY"  # type: ignore[attr-defined]
    return error


def _file_identity(path: Path) -> tuple[int, int] | None:
    """The file at `path` (device, inode), or None when there is none."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


_write_turns: dict[str, _TakingTurns] = {}

# How long a write waits for its turn among this process's threads, then for SQLite's lock
# (which other processes may hold): a poll storing a large feed holds it for a few seconds.
WRITE_WAIT = 30.0


def _turns_of(path: Path) -> _TakingTurns:
    key = os.path.realpath(path)
    with _connections_lock:
        return _write_turns.setdefault(key, _TakingTurns())


def prepare_database(path: Path) -> None:
    """Make the database's folder and check that `path` can be a database: a missing or empty
    file (SQLite starts it), or a SQLite file. Raises DatabaseOpenError saying why not, before
    anything is created beside it (the service's lock file included). A database this process
    has connections to is not looked at again: it is one, and opening it would drop its locks."""
    if _connected(path):
        return
    if path.is_dir():
        raise DatabaseOpenError(str(path), "it is a folder")
    try:
        with path.open("rb") as existing:
            header = existing.read(len(SQLITE_HEADER))
    except (FileNotFoundError, NotADirectoryError):  # the folder's turn, below
        header = b""
    except OSError as e:
        raise DatabaseOpenError(str(path), f"cannot be read: {e.strerror or e}") from e
    if header and header != SQLITE_HEADER:
        raise DatabaseOpenError(str(path), "it is not a SQLite database")
    if header:
        foreign = _foreign_tables(path)
        if foreign:  # before WAL mode, migrations and a lock file change another program's
            raise DatabaseOpenError(
                str(path),
                f"not a Vigie database: it holds other tables ({', '.join(foreign[:5])}); give"
                " Vigie a file of its own",
            )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as e:
        raise DatabaseOpenError(str(path), f"{path.parent} is a file, not a folder") from e
    except OSError as e:
        raise DatabaseOpenError(
            str(path), f"cannot create the folder {path.parent}: {e.strerror or e}"
        ) from e


def why_not_writable(path: Path) -> str:
    """What keeps this process from writing the database at `path`, for an operator: which of
    the database, its -wal and -shm files and its folder it may not write, and what to do.
    SQLite says only "attempt to write a readonly database", and it makes the -wal and -shm
    files as read-only as the database it found: a database given back its write access
    after a restore run as root still failed, on its -shm."""
    real = path.resolve()
    parts = [real, *(real.with_name(real.name + end) for end in ("-wal", "-shm")), real.parent]
    blocked = [part for part in parts if os.path.lexists(part) and not os.access(part, os.W_OK)]
    read_only = [str(part) for part in blocked if _on_read_only_file_system(part)]
    denied = [str(part) for part in blocked if str(part) not in read_only]
    found = []
    if denied:
        verb = "is" if len(denied) == 1 else "are"
        found.append(f"{', '.join(denied)} {verb} not writable by user {_user()}")
    if read_only:
        verb = "is" if len(read_only) == 1 else "are"
        found.append(f"{', '.join(read_only)} {verb} on a read-only file system")
    advice = (
        "give the user that runs Vigie write access to the database, its -wal and -shm files"
        f" and its folder {real.parent}"
    )
    return "; ".join([*found, advice])


def _on_read_only_file_system(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid with no name (a container's)
        return str(os.geteuid())


def highest_id(conn: sqlite3.Connection, table: str) -> int:
    """The largest id `table` (articles, stories) ever gave, pruned or not (schema.m010)."""
    return conn.execute(
        f"SELECT max(coalesce((SELECT max(id) FROM [{table}]), 0), "
        "coalesce((SELECT last FROM id_high_water WHERE name = ?), 0))",
        [table],
    ).fetchone()[0]


class Store(
    FeedQueries,
    ArticleQueries,
    SearchQueries,
    MatchQueries,
    StoryQueries,
    ExportQueries,
    PruningQueries,
    OutboxQueries,
    ServiceQueries,
):
    """A Vigie database on disk. Opening it applies any pending migrations."""

    def __init__(self, path: str | Path) -> None:
        """Raises DatabaseOpenError when `path` cannot hold a database (see prepare_database)."""
        self.path = Path(path)
        prepare_database(self.path)
        # One connection, used by one thread at a time (the CLI, or the one scheduler job that
        # owns this Store: each job has its own, and the rule reload opens its own), so it may
        # be created on one thread and used on another.
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False)
        except sqlite3.Error as e:  # what prepare_database cannot foresee (permissions, ...)
            raise DatabaseOpenError(str(self.path), str(e)) from e
        self.db = sqlite_utils.Database(conn)
        try:
            # The first statement reads the file's header: where a damaged file shows.
            self.db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as e:
            conn.close()
            reason = str(e)
            name = getattr(e, "sqlite_errorname", "")
            if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")):
                reason += f": {why_not_writable(self.path)}"  # a WAL it may not make or open
            raise DatabaseOpenError(str(self.path), reason) from e
        _connected(self.path, +1)
        self._open = True
        self._file = _file_identity(self.path)
        # Found once: resolving the path walks it with a system call a folder, and a poll
        # cycle opens a transaction a feed.
        self._turns = _turns_of(self.path)
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute(f"PRAGMA busy_timeout={int(WRITE_WAIT * 1000)}")
        # 32 MB of page cache instead of SQLite's 2 MB: the indexes a poll looks up (guids,
        # canonical URLs, band keys) stay in memory instead of being read back from the OS.
        self.db.execute("PRAGMA cache_size=-32000")
        migrations.apply(self.db)
        # The story window's band index (monitor/bands.py), kept by monitor/stories.py: built
        # from the stored sketches on first use, and dropped when a transaction rolls back
        # (it may hold keys of articles that are no longer there, under ids that will return).
        self.story_bands: BandIndex | None = None

    def still_on_disk(self) -> bool:
        """Whether the database's path still names the file this Store opened: deleted or
        replaced under a running service, its writes would go to a file no one can read."""
        return _file_identity(self.path) == self._file

    def close(self) -> None:
        self.db.close()
        if self._open:
            self._open = False
            _connected(self.path, -1)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; nested, a savepoint. Begun IMMEDIATE: the write lock is taken at once
        (waiting up to busy_timeout), so a transaction that reads and then writes cannot fail
        because another connection (the delivery jobs have their own) wrote in between. Not
        `with conn:`, under which sqlite-utils' execute() commits each statement on its own.
        This process's connections take turns first (_TakingTurns)."""
        conn = self.db.conn
        if conn.in_transaction:
            try:
                with self.db.atomic():
                    yield
            except BaseException:
                self.story_bands = None
                raise
            return
        turns = self._turns
        if not turns.acquire(WRITE_WAIT):
            raise _busy()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                conn.rollback()
                self.story_bands = None
                raise
            try:
                conn.commit()
            except BaseException:  # a full disk at COMMIT: SQLite rolled back, the bands too
                self.story_bands = None
                if conn.in_transaction:  # SQLite may leave it open after some such errors
                    with contextlib.suppress(sqlite3.Error):  # the COMMIT's error is the news
                        conn.rollback()
                raise
        finally:
            turns.release()

    def backup_to(self, destination: Path) -> None:
        """A copy of the database as one moment left it, compacted, safe to take while the
        service writes: VACUUM INTO reads a single snapshot (copying the file misses what the
        WAL beside it holds, and can catch a page half-written). Written under a temporary
        name and renamed, so that `destination` is only ever a whole copy."""
        partial = destination.with_name(destination.name + ".partial")
        partial.unlink(missing_ok=True)
        try:
            self.db.conn.execute("VACUUM INTO ?", [str(partial)])
            os.replace(partial, destination)
        finally:
            partial.unlink(missing_ok=True)

    def make_durable(self) -> None:
        """Make every commit so far, this connection's or another's, survive a power cut.

        Under synchronous=NORMAL a commit reaches the WAL file but not the disk until the next
        checkpoint: a power cut can take the last seconds of commits back. Delivery calls this
        before sending what it read, or a power cut could take back articles and deliveries
        already sent, then give their ids to other articles and send the news again under new
        webhook-ids (a crash review's snapshot test: 67 of 334 articles sent twice, 55 article
        ids naming two articles). One fsync of the WAL, as a checkpoint starts with, without
        waiting on readers as a checkpoint may."""
        real = self.path.resolve()  # SQLite writes the WAL beside the file a symlink names
        wal = real.with_name(real.name + "-wal")
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:
            return  # no WAL: every commit is in the database file, synced by its checkpoint
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def data_version(self) -> int:
        """A number that changes when another connection commits (SQLite's data_version)."""
        return self.db.conn.execute("PRAGMA data_version").fetchone()[0]

    def next_id(self, table: str) -> int:
        """The id of a new row of `table` (articles, stories): one more than the largest ever
        given, pruned or not (schema.m010). Call in the transaction that inserts it."""
        return highest_id(self.db.conn, table) + 1

    def keep_high_water(self, table: str) -> None:
        """Remember the largest id of `table` before deleting rows of it, for next_id."""
        self.db.conn.execute(
            "INSERT OR REPLACE INTO id_high_water (name, last) VALUES (?, ?)",
            [table, self.next_id(table) - 1],
        )

    def count(self, table: str) -> int:
        return self.db[table].count
