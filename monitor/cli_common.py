"""Pieces every CLI module shares: consoles, the --config option, one-line operator errors, log
lines that say which feed, rule or delivery and why, and the database opened (and locked) so
that a path it cannot use names config.toml's key, its feeds and subscribers in step with
config.toml (open_store)."""

from __future__ import annotations

import contextlib
import difflib
import logging
import re
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape as rich_escape
from rich.table import Table
from rich.text import Text

from .config import Config, line_of_key, load_config, parse_duration, resolve_feed_url
from .deliver import dispatch
from .deliver.email import check_outbox
from .errors import ConfigError, DatabaseOpenError, OutboxError, RuleError, VigieError
from .pipeline import SLOT_MARGIN
from .pipeline import outcome_log as feed_outcomes
from .scheduler import database_lock, service_pid, service_running
from .store import RulesInForce, Store, why_not_writable
from .text import BIDI_CONTROLS, ESCAPE_SEQUENCE, HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN

log = logging.getLogger(__name__)
# emoji=False: feed text and operator input shown as written, not ":fire:" read as 🔥.
console = Console(highlight=False, emoji=False)
err_console = Console(stderr=True, highlight=False, emoji=False)
# Tables piped to less or grep are not folded to 80 columns (URLs cut into pieces no one could
# copy): this wide, and in a terminal its width.
PIPED_WIDTH = 200


def print_table(table: Table) -> None:
    """A table on stdout: folded to fit a terminal, left long when piped."""
    if console.is_terminal:
        console.print(table)
    else:
        Console(highlight=False, emoji=False, width=max(console.width, PIPED_WIDTH)).print(table)


def config_option(func: Callable) -> Callable:
    """Every command takes --config PATH (default ./config.toml, or $VIGIE_CONFIG)."""
    return click.option(
        "--config",
        "config_path",
        default="config.toml",
        show_default=True,
        envvar="VIGIE_CONFIG",
        show_envvar=True,
        type=click.Path(),  # a folder: load_config says so, exiting 1 (2 is status's problems)
        help="Configuration file.",
    )(func)


# The structured keys (STYLE.md habit 16) a log line shows after its message, when it has them.
LOG_KEYS = (
    "feed_id",
    "feed_url",
    "article_id",
    "rule_id",
    "delivery_id",
    "error",
    "rule_file",
    "line",
)


class ContextFormatter(logging.Formatter):
    """`time LEVEL logger: message feed_id=3 feed_url='https://...' error='HTTP 500'`: the
    message, then the structured keys the record carries, so that "feed failed" says which
    feed and why."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        pairs = [f"{key}={getattr(record, key)!r}" for key in LOG_KEYS if hasattr(record, key)]
        return " ".join([super().formatMessage(record), *pairs])


VIGIE_LOGGER = "monitor"  # the parent of every Vigie module's logger


def configure_logging(verbose: bool) -> None:
    """`vigie run`'s log on stderr, INFO and up; with --verbose, Vigie's own DEBUG lines too
    (the cycles that brought nothing). Other libraries stay at INFO even then: APScheduler's
    "Looking for jobs to run" and tzlocal's /etc/timezone, two or three DEBUG lines a second,
    buried those cycles. APScheduler's executor logs two INFO lines per job run, every delivery
    tick (tens of thousands a day): its warnings (a missed run, a job that raised) only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ContextFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger(VIGIE_LOGGER).setLevel(logging.DEBUG if verbose else logging.NOTSET)
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
    logging.getLogger("apscheduler.scheduler").addFilter(_worth_logging)


def _worth_logging(record: logging.LogRecord) -> bool:
    """APScheduler's lines but three kinds: a poll longer than the tick, which the next tick
    finds running and skips (the point of max_instances=1, not news worth a warning every
    tick), and each job's "Adding job tentatively" and "Added job" at start (Vigie's own
    start line says what runs)."""
    message = record.getMessage()
    return not (
        "maximum number of running instances" in message
        or message.startswith(("Adding job tentatively", "Added job"))
    )


@contextmanager
def command_logging() -> Iterator[None]:
    """Warnings of a command that polls or delivers once, on stderr as `vigie run` logs them.
    Each feed's and delivery's outcome is left out: the command prints a line for each, with
    its URL or target and the reason (`  error URL: HTTP 500`, `Digest #1 ... will retry: ...`)."""
    summarised = {feed_outcomes.name, dispatch.outcome_log.name}
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(ContextFormatter())
    handler.addFilter(lambda record: record.name not in summarised)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


def operator_errors(func: Callable) -> Callable:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RuleError as e:
            err_console.print(f"[red]error:[/] {escape(str(e))}", soft_wrap=True)
            if e.pointer():
                err_console.print(e.pointer(), markup=False)
            sys.exit(1)
        except VigieError as e:
            err_console.print(f"[red]error:[/] {escape(str(e))}", soft_wrap=True)
            sys.exit(1)
        except sqlite3.OperationalError as e:
            name = getattr(e, "sqlite_errorname", "")
            if name.startswith("SQLITE_READONLY"):
                err_console.print(
                    f"[red]error:[/] {escape(_read_only(e, kwargs.get('config_path')))}",
                    soft_wrap=True,
                )
                sys.exit(1)
            if name.startswith(("SQLITE_FULL", "SQLITE_IOERR")):
                # A full disk (or a failing one): an operator's problem, not a traceback.
                hint = (
                    "free some space on its disk"
                    if name == "SQLITE_FULL"
                    else "its disk is full or failing: see the system's log"
                )
                err_console.print(
                    f"[red]error:[/] the database could not be written ({escape(str(e))}): "
                    f"{hint}, and run again; what was stored before is kept",
                    soft_wrap=True,
                )
                sys.exit(1)
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            # Another process (`vigie run` storing a very large poll, an sqlite3 shell left in
            # a transaction) held the write lock for longer than a write waits
            # (store.WRITE_WAIT): nothing was written. "another vigie process" sent an operator
            # looking for a vigie process while an sqlite3 shell held it.
            err_console.print(
                "[red]error:[/] the database stayed busy (another process holds its write lock:"
                " a vigie command, an sqlite3 shell, a backup tool?); nothing was changed: try"
                " again in a moment",
                soft_wrap=True,
            )
            sys.exit(1)

    return wrapper


def _read_only(error: sqlite3.Error, config_path: str | None) -> str:
    """A database this user may not write (a restore run as root, a copy put back read-only):
    which of its files, and what to do. SQLite's traceback named none."""
    try:
        config = load_config(config_path or "config.toml")
    except VigieError:  # read by the command already, and edited since
        return (
            f"the database cannot be written ({error}): give the user that runs Vigie write"
            " access to storage.database, its -wal and -shm files and its folder"
        )
    return (
        f"{config.path}: storage.database: the database cannot be written ({error}):"
        f" {why_not_writable(config.database)}; what it holds is kept"
    )


@contextmanager
def database_errors(config: Config) -> Iterator[None]:
    """A database that cannot be opened or created is a configuration error: it names the
    config file, storage.database and why the path cannot be used."""
    try:
        yield
    except DatabaseOpenError as e:
        raise ConfigError(
            str(config.path),
            "storage.database",
            f"expected a SQLite database file that can be opened or created ({e.reason})",
            str(config.database),
        ) from e


@contextmanager
def outbox_config_errors(config: Config) -> Iterator[None]:
    """An outbox folder that cannot be written into is a configuration error: it names the
    config file, delivery.outbox, the folder and why (a traceback, before)."""
    try:
        yield
    except OutboxError as e:
        raise ConfigError(
            str(config.path),
            "delivery.outbox",
            f"expected a folder Vigie can write digests and previews into ({e.reason})",
            e.path,
            line_of_key(config.path.read_text(encoding="utf-8-sig"), "delivery.outbox")
            if config.path.exists()
            else 0,
        ) from e


def check_digest_outbox(config: Config) -> None:
    """For commands that write digests (`run`, `once`, `digest send`): with no SMTP server,
    the outbox folder made and writable, or a ConfigError before anything is polled or
    claimed. Commands that never write there (`rules check`...) do not look at it."""
    if config.delivery.smtp is None and config.delivery.subscribers:
        with outbox_config_errors(config):
            check_outbox(config.delivery.outbox)


def open_database(config: Config, *, must_exist: bool = False) -> Store:
    """The configured database, or a ConfigError saying why its path cannot be used. With
    `must_exist`, for commands that only look at what is stored: a mistyped storage.database
    made its folders and an empty database, and the command reported that nothing was there."""
    # (Under a file, the path is refused as such, below.)
    if must_exist and not config.database.exists() and not config.database.parent.is_file():
        raise ConfigError(
            str(config.path),
            "storage.database",
            "no database there yet (vigie once or vigie run creates it)",
            str(config.database),
            line_of_key(config.path.read_text(encoding="utf-8-sig"), "storage.database")
            if config.path.exists()
            else 0,
        )
    with database_errors(config):
        return Store(config.database)


@contextmanager
def locked_database(config: Config) -> Iterator[None]:
    """Hold the database lock (scheduler.database_lock); an unusable path is a ConfigError."""
    with database_errors(config), database_lock(config.database):
        yield


def highlighted(snippet: str) -> Text:
    """A snippet with its ⟦marked⟧ words in bold yellow, for the terminal."""
    out = Text()
    for i, part in enumerate(re.split(f"[{HIGHLIGHT_OPEN}{HIGHLIGHT_CLOSE}]", snippet)):
        out.append(plain(part), style="bold yellow" if i % 2 else "")
    return out


def print_evidence(found: Iterable[tuple[str, str, str]], indent: str = "    ") -> None:
    """Each query term's words as found, field by field: `police in content: police, Police`;
    `found` holds (term, field, text) in reading order."""
    words: dict[tuple[str, str], list[str]] = {}
    for term, field, text in found:
        words.setdefault((term, field), []).append(text)
    for (term, field), texts in words.items():
        console.print(
            Text.assemble(
                indent,
                (plain(term), "yellow"),
                f" in {field}: ",
                plain(", ".join(dict.fromkeys(texts))),
            ),
            soft_wrap=True,
        )


def ago(moment: datetime, now: datetime) -> str:
    """'3h ago', 'in 12m', 'in 57s', 'now': a time relative to `now`, in its largest unit,
    short enough for a table in a narrow terminal ("now" for a retry 57 s away read as due)."""
    seconds = (moment - now).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if abs(seconds) >= size:
            amount = f"{int(abs(seconds) // size)}{unit}"
            return f"in {amount}" if seconds > 0 else f"{amount} ago"
    return "now"


def escape(text: str) -> str:
    """Text for the terminal: rich's markup escaped, and control characters other than line
    breaks and tabs dropped (a feed's error stored before they were dropped at the source,
    a title: an escape sequence could clear the screen or fake output)."""
    return rich_escape(plain(text))


def plain(text: str) -> str:
    """Text for a rich Text object (not read as markup): control characters other than line
    breaks and tabs, C1's included, and whole escape sequences dropped."""
    return _TERMINAL_CONTROL.sub("", ESCAPE_SEQUENCE.sub("", text))


_TERMINAL_CONTROL = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{BIDI_CONTROLS}]")


def rules_in_force(store: Store, database: Path) -> RulesInForce | None:
    """The rules the service holding `database` recorded as in force; None when none holds it,
    or when the record is an earlier service's (the one holding it is still loading its own)."""
    pid = service_pid(database)
    recorded = store.rules_in_force() if pid is not None else None
    return recorded if recorded is not None and recorded.pid == pid else None


def open_store(config: Config, *, holding_lock: bool = False, must_exist: bool = False) -> Store:
    """The configured database, its feeds in step with config.toml: those it lists are added or
    updated, those it no longer lists are retired (no longer polled, their articles kept).

    Not while `vigie run` holds the database (`holding_lock`: the caller is that service, or
    `once`): the service polls the feeds it found at its start, and config.toml edits take
    effect when it restarts, not when a command such as `feeds list` happens to run beside it
    (which also had to wait for the service's write lock)."""
    store = open_database(config, must_exist=must_exist)
    if holding_lock or not service_running(config.database):
        _sync_config(store, config)
    return store


def _sync_config(store: Store, config: Config) -> None:
    now = datetime.now(UTC)
    for feed in config.feeds:
        store.upsert_feed(
            feed.url,
            name=feed.name,
            interval=feed.interval,
            tags=feed.tags,
            language=feed.language,
            source="config",
            full_text=feed.full_text,
            default_interval=config.polling.interval,
            now=now,
        )
    for url in store.retire_config_feeds({feed.url for feed in config.feeds}, now):
        log.info("feed no longer in config.toml: retired", extra={"feed_url": url})
    # A shortened polling.interval applies to the feeds that follow it (those added by hand too).
    store.follow_default_interval(config.polling.interval * (1 + SLOT_MARGIN), now)
    dispatch.sync_subscribers(store, config.delivery, now)  # before polling: new matches are theirs


def feed_addresses(given: str, config: Config) -> list[str]:
    """The addresses a feed given on the command line may be stored under, in this order: as
    written (the URL `feeds list` shows), as `feeds add` reads it (relative to the current
    folder, as a path on a command line is), and as config.toml reads it (a path relative to
    its folder). A path copied from config.toml was refused by every command run from another
    folder, or compared as written and refused from any folder, while the file:// URL it
    stands for was taken. The current folder's comes first: read first beside config.toml,
    `feeds remove feeds/x.rss` run where `feeds add feeds/x.rss` had been found config.toml's
    own feeds/x.rss instead, and refused to remove it."""
    found = [given]
    for base in (Path.cwd(), config.path.parent):
        with contextlib.suppress(ValueError):  # not an address at all: a name
            found.append(resolve_feed_url(given, base))
    return list(dict.fromkeys(found))


def stored_feed(
    store: Store, config: Config, given: str, *, by_name: bool = True
) -> dict[str, Any] | None:
    """The stored feed (retired ones too: their articles stay) that a command's FEED or --feed
    names: its id in `feeds list`, its address (feed_addresses), else, `by_name`, its name or
    title. None when no stored feed has it."""
    # ASCII digits, at most 18: int() reads "²" or "١" as digits, SQLite refuses a larger one
    by_id = given.isascii() and given.isdigit() and len(given) <= 18
    if by_id and (row := store.feed_row(int(given))) is not None:
        return row
    for address in feed_addresses(given, config):
        if (row := store.find_feed(address)) is not None:
            return row
    if not by_name or not given:
        return None
    rows = store.feeds(include_retired=True)
    return next((row for row in rows if given in (row["name"], row["title"])), None)


def parse_moment(value: str, now: datetime, option: str) -> datetime:
    """'2026-11-20', '2026-11-20T08:00' (UTC unless an offset is given), or a duration ago
    ('24h'): what --since and --until take."""
    seconds = parse_duration(value)
    if seconds is not None:
        try:
            return now - timedelta(seconds=seconds)
        except OverflowError:
            raise ConfigError(
                option, "", "expected a duration of at most a few centuries", value
            ) from None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            option, "", 'expected a date like 2026-11-20, a time, or a duration like "24h"', value
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def did_you_mean(value: str, known: set[str]) -> str:
    """' (did you mean 'Rivers Daily'?)' for a name or tag nearly one that is known (in
    another case, or a letter or two off), as an unknown entity gets; else ''."""
    choices = sorted(known)
    close = [k for k in choices if k.casefold() == value.strip().casefold()]  # "UK " for "uk"
    close = close or difflib.get_close_matches(value, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
