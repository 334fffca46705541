"""The long-running service: APScheduler fires jobs; all state lives in SQLite.

The scheduler only triggers. Which feed is due is a column in the database, so a restart neither
forgets a feed nor polls them all at once; the rules are re-read when their files change. The
same holds for delivery: which digest is due and which message waits for a retry are rows, so a
restart after downtime sends each due digest once, not once per missed slot.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import requests
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from . import __version__
from .config import Config
from .config_delivery import DeliveryConfig
from .deliver.dispatch import dispatch_webhooks, has_rule_of, labels_of, send_due_digests
from .deliver.unsubscribe import UnsubscribeServer
from .errors import AlreadyRunningError, ConfigError, DatabaseOpenError, VigieError
from .fetch import make_session
from .pipeline import CycleSummary, poll_due
from .readers import ReaderPool
from .retention import prune_expired
from .rules.files import RuleBook
from .store import RuleFilesRead, RulesInForce, Store, prepare_database
from .text import counted

log = logging.getLogger(__name__)


def stop_on_signal(stop: threading.Event) -> Callable[..., None]:
    """A signal handler that sets `stop` from another thread: the handler runs on the main
    thread, which may be inside stop.wait() holding the Event's lock, and setting it there
    would wait for that lock for good."""

    def handler(*_: object) -> None:
        threading.Thread(target=stop.set, name="stop", daemon=True).start()

    return handler


@contextmanager
def database_lock(database: Path) -> Iterator[None]:
    """Hold an exclusive lock beside the database, so two services never poll the same data."""
    lock_path = database.with_name(database.name + ".lock")
    prepare_database(database)  # an unusable path is refused before a lock is left beside it
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise DatabaseOpenError(
            str(database), f"cannot create the lock file {lock_path}: {e.strerror or e}"
        ) from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise AlreadyRunningError(
                f"{database}: already in use by Vigie (pid {owner}); stop it first or use "
                "another database"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def service_running(database: Path) -> bool:
    """Whether a `vigie run` (or `once`) holds the database now. The lock is tried and let go
    at once: a command that held it while it did its work was, for that time, taken for a
    running service by `once`, `run` and `digest send`."""
    lock_path = database.with_name(database.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return False  # no lock file: never run here
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing lets go of the lock, if it was taken
    return False


def service_pid(database: Path) -> int | None:
    """The process id that the `vigie run` (or `once`) holding the database wrote in its lock
    file; None when none holds it (or, for an instant at its start, before it wrote it)."""
    lock_path = database.with_name(database.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        written = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(written) if written.isdigit() else None
    finally:
        os.close(fd)
    return None


def record_rules_in_force(store: Store, rulebook: RuleBook, now: datetime) -> None:
    """Write down the rules just brought into force, for `vigie status`: once an edit breaks
    the files on disk, they no longer say what the service matches with."""
    loaded = rulebook.in_force
    if loaded is not None:
        store.record_rules_in_force(
            RulesInForce(
                pid=os.getpid(),
                loaded=now,
                files=len(loaded.files),
                rules=len(loaded.compiled),
                disabled=len(loaded.rules) - len(loaded.compiled),
            )
        )


def record_rule_files_read(store: Store, rulebook: RuleBook) -> None:
    """Write down the rule files as the rulebook's last load read them and how many errors
    they had, for `vigie status`, which then need not compile every rule to find them."""
    store.record_rule_files_read(
        RuleFilesRead(
            version=__version__,
            paths=tuple(map(str, rulebook.paths)),
            files=rulebook.files_read,
            errors=len(rulebook.last_errors),
        )
    )


def keep_long_lived() -> None:
    """Leave the objects alive now, the compiled rules above all, out of future garbage
    collections. A full collection walks every tracked object: with 10k rules loaded it took
    0.2 s, with 100k rules 1.4 s, and ingesting 26,000 articles ran ten of them, each time
    for rules that live until the next reload (4% of the ingest's time at 10k rules).

    Frozen objects are still freed by reference counting when dropped (the rule index holds
    no reference cycles); only cycles among them would wait. So the previous freeze is undone
    first, letting the rules just replaced be collected, and the freeze follows a collection,
    so nothing that is already garbage is kept."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def reload_rules_job(
    rulebook: RuleBook, delivery: DeliveryConfig | None = None, database: Path | None = None
) -> None:
    """Load edited rule files; new rules in force are kept out of garbage collections,
    recorded in `database` for `vigie status` (with the files read, whether they loaded or
    not), and what subscribers and webhooks follow that they no longer have is logged."""
    read_before = rulebook.files_read
    came_in = rulebook.reload_if_changed()
    if came_in:
        keep_long_lived()
    if database is not None and rulebook.files_read != read_before:  # loaded, or tried to
        # A connection of its own: the poll job's may be inside a feed's transaction.
        with storage_trouble_pauses("recording the rules in force", None):
            store = Store(database)
            try:
                if came_in:
                    record_rules_in_force(store, rulebook, datetime.now(UTC))
                record_rule_files_read(store, rulebook)
            finally:
                store.close()
    if came_in and delivery is not None:
        log_undeliverable(delivery, rulebook)


def log_undeliverable(delivery: DeliveryConfig, rulebook: RuleBook) -> None:
    """Warn of what subscribers and webhooks follow that the rules in force cannot deliver
    (DeliveryConfig.undeliverable): a misspelt or renamed tag delivers nothing, and nothing
    else would say so."""
    rules = rulebook.index.rules if rulebook.index is not None else []
    for key, message in delivery.undeliverable(c.rule for c in rules):
        log.warning("%s: %s", key, message, extra={"config_key": key})


# Seconds a job waits after the database refused a write (disk full, read-only, I/O error).
STORAGE_PAUSE = 60
# SQLite's names for what the machine, not Vigie, got wrong (sqlite3 errors' sqlite_errorname).
_STORAGE_TROUBLE = ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN",
                    "SQLITE_BUSY", "SQLITE_LOCKED")  # fmt: skip
# What each means for the operator, and where to look: SQLite's "database is locked" did not
# say that another process held it, nor "disk I/O error" where to look.
_STORAGE_HINTS = {
    "SQLITE_FULL": "its disk is full: free some space, but not its -wal or -shm files",
    "SQLITE_READONLY": "the user that runs Vigie may not write it, its -wal, -shm or folder",
    "SQLITE_IOERR": "its disk is failing or full: see the system's log",
    "SQLITE_CANTOPEN": "its file or folder was moved, or may no longer be written",
    # Or this service's own jobs waiting their turn behind one that waits for that process
    # (store.database._busy), or behind a poll storing for longer than store.WRITE_WAIT.
    "SQLITE_BUSY": "another process holds its write lock (an sqlite3 shell, a backup tool?)",
    "SQLITE_LOCKED": "another process holds its write lock (an sqlite3 shell, a backup tool?)",
}


@contextmanager
def storage_trouble_pauses(job: str, stop: threading.Event | None) -> Iterator[None]:
    """A database that cannot be written is an operator's problem, not a bug: one line at
    ERROR, not a traceback at every tick, and the job waits STORAGE_PAUSE (or until the
    service stops) before its next run, rather than fetching every feed, or sending every
    webhook whose success it cannot record, again at each tick."""
    try:
        yield
    except sqlite3.Error as e:
        name = getattr(e, "sqlite_errorname", "")
        if not name.startswith(_STORAGE_TROUBLE):
            raise
        hint = next(text for trouble, text in _STORAGE_HINTS.items() if name.startswith(trouble))
        log.error(
            "%s: the database could not be written (%s: %s): %s; trying again in %ds",
            job,
            name,
            e,
            hint,
            STORAGE_PAUSE,
        )
        if stop is not None:
            stop.wait(STORAGE_PAUSE)


DATABASE_WATCH = 5  # seconds between checks that the database file is still there


def watch_database_job(store: Store, stop: threading.Event, lost: threading.Event) -> None:
    """Stop the service when its database file is deleted or replaced: it went on polling and
    sending into a file no one could read, and after a restart sent everything again, under
    new webhook ids."""
    if not store.still_on_disk() and not lost.is_set():
        lost.set()
        log.error("%s was deleted or replaced while the service ran: stopping", store.path)
        stop.set()


def poll_job(
    store: Store,
    session: requests.Session,
    config: Config,
    rulebook: RuleBook,
    readers: ReaderPool | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Poll the due feeds, a cycle of at most polling.max_cycle at a time, the next at once
    while one left feeds. A feed that comes due during a cycle waits for its end, and one slow
    host's hundreds of feeds can make that an hour (300 sections of 25 s, two at a time)."""
    while True:
        summary = _poll_cycle(store, session, config, rulebook, readers, stop)
        if not (summary.left and summary.feeds_polled) or (stop is not None and stop.is_set()):
            return


def _poll_cycle(
    store: Store,
    session: requests.Session,
    config: Config,
    rulebook: RuleBook,
    readers: ReaderPool | None,
    stop: threading.Event | None,
) -> CycleSummary:
    now = datetime.now(UTC)
    summary = CycleSummary()
    with storage_trouble_pauses("polling", stop):
        summary = poll_due(
            store,
            session,
            config,
            rulebook.index,
            now,
            readers=readers,
            stop=stop,
            max_cycle=config.polling.max_cycle,
        )
        if summary.feeds_polled:
            log.log(
                _level_of(summary),
                "polled %s: %s, %d updated, %s, %s%s",
                counted(summary.feeds_polled, "feed"),
                counted(summary.new_articles, "new article"),
                summary.updated_articles,
                counted(summary.new_matches, "new match"),
                counted(len(summary.errors), "error"),
                _left_of(summary),
            )
        if stop is None or not stop.is_set():  # a stop waits for no pruning
            prune_expired(store, config.retention, now)  # on the poll's connection, after it
    return summary


def _left_of(summary: CycleSummary) -> str:
    """'; 260 feeds left for the next cycle (polling.max_cycle), of slow.example (250), ...':
    the hosts whose feeds could not all be polled within a cycle, most first."""
    if not summary.left:
        return ""
    hosts = ", ".join(f"{host or 'files'} ({n:,})" for host, n in summary.left.most_common(3))
    more = ", ..." if len(summary.left) > 3 else ""
    left = counted(summary.left.total(), "feed")
    return f"; {left} left for the next cycle (polling.max_cycle), of {hosts}{more}"


def _level_of(summary: CycleSummary) -> int:
    """INFO for a cycle that brought anything (an article, a revision, a match, an error) or
    left feeds for the next; DEBUG (`vigie run --verbose`) for one that did not: at every tick
    of a quiet day, thousands of lines a day said nothing."""
    news = summary.new_articles or summary.updated_articles or summary.new_matches
    return logging.INFO if news or summary.errors or summary.left else logging.DEBUG


def digest_job(
    store: Store, config: Config, rulebook: RuleBook, stop: threading.Event | None = None
) -> None:
    """Send due digests: which subscriber is due, and what waits for a retry, is in SQLite."""
    with storage_trouble_pauses("digests", stop):
        send_due_digests(
            store, config.delivery, labels_of(rulebook.index), datetime.now(UTC), stop=stop
        )


def webhook_job(
    store: Store,
    session: requests.Session,
    config: Config,
    rulebook: RuleBook,
    stop: threading.Event | None = None,
) -> None:
    """Dispatch webhooks: what is due (new, or waiting for a retry) is in SQLite."""
    index = rulebook.index
    with storage_trouble_pauses("webhooks", stop):
        dispatch_webhooks(
            store,
            session,
            config.delivery,
            labels_of(index),
            datetime.now(UTC),
            stop=stop,
            has_rule=has_rule_of(index),
        )


def _unsubscribe_server(config: Config) -> UnsubscribeServer | None:
    """The unsubscribe page at delivery.listen, started; a ConfigError when it cannot listen."""
    delivery = config.delivery
    if delivery.listen is None:
        if delivery.public_base_url and delivery.subscribers:
            log.warning(
                "digests carry unsubscribe links to %s/unsubscribe/, but delivery.listen is "
                "empty: nothing in Vigie answers them",
                delivery.public_base_url,
            )
        return None
    try:
        languages = {s.name: s.language for s in delivery.subscribers}
        addresses = {s.name: s.recipient.addr_spec for s in delivery.subscribers}
        server = UnsubscribeServer(
            delivery.listen,
            config.database,
            languages=languages,
            base_url=delivery.public_base_url,
            addresses=addresses,
        ).start()
    except OSError as e:
        host, port = delivery.listen
        raise ConfigError(
            str(config.path),
            "delivery.listen",
            f"cannot listen there ({e.strerror or e})",
            f"{host}:{port}",
        ) from None
    log.info("unsubscribe links answered at %s:%d", *server.address)
    return server


def run_service(
    config: Config,
    store: Store,
    session: requests.Session,
    rulebook: RuleBook,
    stop: threading.Event,
) -> None:
    """Run until `stop` is set (the CLI sets it on SIGINT or SIGTERM), then stop cleanly."""
    unsubscribe = _unsubscribe_server(config)
    scheduler = BackgroundScheduler(timezone=UTC)
    readers = ReaderPool(config.polling.processes)
    now = datetime.now(UTC)
    keep_long_lived()  # the rules loaded at start, the service's own objects
    scheduler.add_job(
        reload_rules_job,
        IntervalTrigger(seconds=config.rules.reload),
        args=(rulebook, config.delivery, config.database),
        id="reload-rules",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        poll_job,
        IntervalTrigger(seconds=config.polling.tick),
        id="poll-feeds",
        args=(store, session, config, rulebook, readers, stop),
        next_run_time=now,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
    # Delivery jobs run beside polling, each on its own connection (SQLite serialises writers).
    delivery_stores = [Store(config.database), Store(config.database)]
    for job, job_id, args in (
        (digest_job, "send-due-digests", (delivery_stores[0], config, rulebook, stop)),
        (
            webhook_job,
            "dispatch-webhooks",
            (delivery_stores[1], make_session(config.fetch), config, rulebook, stop),
        ),
    ):
        scheduler.add_job(
            job,
            IntervalTrigger(seconds=config.delivery.tick),
            id=job_id,
            args=args,
            next_run_time=now,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
    lost = threading.Event()
    scheduler.add_job(
        watch_database_job,
        IntervalTrigger(seconds=DATABASE_WATCH),
        args=(store, stop, lost),
        id="watch-database",
        max_instances=1,
        coalesce=True,
    )
    # Counted before the jobs start: from then on `store` is the poll job's alone (a query on
    # this thread, under sqlite-utils' own savepoint, once ended a poll's transaction under it).
    feeds = len(store.feeds())
    scheduler.start()
    log.info(
        "vigie running: %s, %s; press Ctrl+C to stop",
        counted(feeds, "feed"),
        counted(len(rulebook.index or []), "rule"),
    )
    try:
        # Waits of half a second, not one for good: a signal landing as this thread enters a
        # wait is handled only when it runs Python code again, and waiting for good it never did
        # (a concurrency review: 22 of 60 services SIGTERMed at their start never stopped).
        while not stop.wait(0.5):
            pass
    finally:
        log.info("stopping: waiting for the current poll to finish")
        if unsubscribe is not None:
            unsubscribe.close()
        scheduler.shutdown(wait=True)
        readers.close()
        for delivery_store in delivery_stores:
            delivery_store.close()
    if lost.is_set():
        raise VigieError(
            f"{config.database}: deleted or replaced while the service ran; it stopped so"
            " that nothing more went into a file no one can read. Restore the file, or start"
            " again with a new, empty database (everything matched is then sent again)"
        )
