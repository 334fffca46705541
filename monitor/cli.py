"""The `vigie` command line (also `python service.py`). Parses arguments, calls the modules,
prints with rich. Operator errors (VigieError) are printed as one line, never a traceback."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from . import __version__
from .cli_common import (
    ago,
    check_digest_outbox,
    command_logging,
    config_option,
    configure_logging,
    console,
    escape,
    locked_database,
    open_database,
    open_store,
    operator_errors,
    plain,
    rules_in_force,
)
from .cli_deliver import add_delivery_commands, deliver_after_poll, undelivered
from .config import Config, load_config, parse_duration
from .errors import ConfigError, RuleError
from .fetch import make_session
from .health import Health, assess
from .pipeline import CycleSummary, PollOutcome, poll_due
from .readers import ReaderPool
from .retention import prune_expired
from .rules import native
from .rules.files import RuleBook, RuleSet, file_stamps, load_rules
from .rules.stats import HEURISTIC, TermStats
from .scheduler import (
    log_undeliverable,
    record_rule_files_read,
    record_rules_in_force,
    run_service,
    service_running,
    stop_on_signal,
)
from .store import RuleFilesRead, Store, parse_iso
from .store.restore import read_backup, restore_database
from .text import counted


def term_stats(store: Store) -> TermStats:
    """Word frequencies of the stored articles, once there are enough to mean something."""
    frequencies, documents = store.term_frequencies()
    return TermStats(frequencies, documents) if documents >= 200 else HEURISTIC


def stored_term_stats(database: Path) -> TermStats:
    """term_stats on a connection of its own: rule files are reloaded on a scheduler thread
    while a poll may be inside a transaction on the service's connection, and one connection
    used by two threads at once can fail the poll's commit ("SQL statements in progress")."""
    store = Store(database)
    try:
        return term_stats(store)
    finally:
        store.close()


def load_rulebook(config: Config, store: Store) -> RuleBook:
    """Rules for a service start: refuse to start on a broken rule file, naming every error;
    those that load are recorded in `store` as the rules in force (for `vigie status`)."""
    book = RuleBook(config.rules.paths, lambda: stored_term_stats(config.database))
    book.reload_if_changed()
    record_rule_files_read(store, book)
    if book.last_errors:
        first = book.last_errors[0]
        more = (
            f" (and {len(book.last_errors) - 1} more; run `vigie rules check`)"
            if len(book.last_errors) > 1
            else ""
        )
        raise RuleError(
            first.path, first.line, first.column, first.message + more, first.source_line
        )
    record_rules_in_force(store, book, datetime.now(UTC))
    log_undeliverable(config.delivery, book)
    return book


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vigie")
def main() -> None:
    """Vigie: polls news feeds, matches your rules, keeps what matters."""


@main.command()
@config_option
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Log every poll cycle, those that brought nothing included.",
)
@operator_errors
def run(config_path: str, verbose: bool) -> None:
    """Run the service until Ctrl+C or SIGTERM: poll due feeds, reload edited rules."""
    configure_logging(verbose)
    config = load_config(config_path)
    config.require_secrets()
    with locked_database(config):
        check_digest_outbox(config)  # once the database is known to be usable
        store = open_store(config, holding_lock=True)
        book = load_rulebook(config, store)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, stop_on_signal(stop))
        run_service(config, store, make_session(config.fetch), book, stop)
        store.close()


@main.command()
@config_option
@operator_errors
def once(config_path: str) -> None:
    """Poll every feed once, store and match what is new, print a summary, then deliver:
    each subscriber's digest (an .eml in the outbox folder without SMTP) and the webhooks."""
    config = load_config(config_path)
    config.require_secrets()
    with locked_database(config), command_logging():
        check_digest_outbox(config)  # before polling: the digest would wait for retries
        store = open_store(config, holding_lock=True)
        book = load_rulebook(config, store)
        total = len(store.feeds())
        session = make_session(config.fetch)
        now = datetime.now(UTC)
        with ReaderPool(config.polling.processes) as readers:
            if console.is_terminal:
                with Progress(
                    TextColumn("polling"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.description}", markup=False),  # a feed's name
                    console=console,
                    transient=True,
                ) as progress:
                    task = progress.add_task("", total=total)

                    def advance(outcome: PollOutcome) -> None:
                        progress.update(task, advance=1, description=plain(outcome.feed.name or ""))

                    summary = poll_due(
                        store, session, config, book.index, now, advance, True, readers=readers
                    )
            else:
                summary = poll_due(
                    store, session, config, book.index, now, force=True, readers=readers
                )
        print_summary(summary)
        sent = deliver_after_poll(config, store, book.index, now)
        pruned = prune_expired(store, config.retention, now)
        print_database(store, config, pruned)
        store.close()
    if undelivered(sent):
        raise SystemExit(2)  # as `vigie status` does: subscribers are missing news


def print_summary(summary: CycleSummary) -> None:
    console.print(
        f"Polled {counted(summary.feeds_polled, 'feed')} ({summary.feeds_unchanged:,} unchanged): "
        f"{counted(summary.new_articles, 'new article')}, {summary.updated_articles:,} updated, "
        f"{counted(summary.new_matches, 'new match')}, {counted(len(summary.errors), 'error')}.",
        soft_wrap=True,
    )
    if summary.archive_articles:  # 52 new matches and a digest of 3 read as matches lost
        console.print(
            f"  {counted(summary.archive_articles, 'new article')} of new feeds' archives,"
            " older than delivery.backlog: matched and kept, not sent.",
            soft_wrap=True,
        )
    for url, error in summary.errors:
        console.print(f"  [red]error[/] {escape(url)}: {escape(error)}", soft_wrap=True)
    for url, until, error in summary.waiting:
        # A 410 waits too (polling.max_backoff): "its server asked for time" misread it.
        gone = error.startswith("HTTP 410")
        why = "gone, asked again from" if gone else "its server asked for time, until"
        when = parse_iso(until)
        shown = f"{when:%Y-%m-%d %H:%M} UTC" if when else until  # as deliveries' retry times
        console.print(
            f"  [yellow]not polled[/] {escape(url)}: {why} {escape(shown)} ({escape(error)})",
            soft_wrap=True,
        )


def print_database(store: Store, config: Config, pruned: int) -> None:
    """What the database holds once retention has pruned (the counts an operator checks)."""
    expired = f"; {pruned:,} older than storage.retention pruned" if pruned else ""
    # Matches a correction withdrew are kept, but no longer match: counted apart.
    withdrawn = store.withdrawn_matches()
    matches = counted(store.count("matches") - withdrawn, "match")
    if withdrawn:
        matches += f" and {withdrawn:,} withdrawn"
    # soft_wrap: a path or URL cut by hard line breaks cannot be copied or grepped.
    console.print(
        f"Database: {escape(str(config.database))} ({counted(store.count('articles'), 'article')}, "
        f"{matches}{expired})",
        soft_wrap=True,
    )


from .cli_articles import articles  # noqa: E402
from .cli_feeds import feeds  # noqa: E402
from .cli_rules import rules  # noqa: E402  (registers the `rules` group)
from .cli_rules_backtest import rules_backtest  # noqa: E402
from .cli_rules_test import rules_test  # noqa: E402

rules.add_command(rules_test)
rules.add_command(rules_backtest)
main.add_command(articles)
main.add_command(feeds)
main.add_command(rules)
add_delivery_commands(main)  # the `digest` and `deliveries` groups


@main.command()
@config_option
@click.option(
    "--stale",
    default="30m",
    show_default=True,
    help="How long a feed may be due without being polled before that is a problem.",
)
@click.option(
    "--since",
    default="7d",
    show_default=True,
    help="How far back deliveries that failed or died count as problems.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@operator_errors
def status(config_path: str, stale: str, since: str, as_json: bool) -> None:
    """Whether Vigie is doing its job: polling, rule files, digests and webhooks. Exits with
    status 2 when something needs an operator (for cron or a monitoring system), 0 when not."""
    config = load_config(config_path)
    limits = {
        name: _duration_option(name, value)
        for name, value in (("--stale", stale), ("--since", since))
    }
    store = open_database(config, must_exist=True)
    try:
        loaded = _rules_for_status(config, store)
        if not loaded.files and not loaded.errors:
            paths = ", ".join(map(str, config.rules.paths))
            error = RuleError(paths, 0, 0, "no rule files (*.toml) found (rules.paths)")
            loaded.errors.append(error)
        enabled = sum(rule.enabled for rule in loaded.rules)
        in_force = rules_in_force(store, config.database)
        health = assess(
            store,
            now=datetime.now(UTC),
            running=service_running(config.database),
            stale=limits["--stale"],
            since=limits["--since"],
            rule_files=in_force.files if in_force else len(loaded.files),
            rules=in_force.rules if in_force else enabled,
            rule_errors=loaded.errors,
            webhooks={(hook.name, hook.url) for hook in config.delivery.webhooks},
            subscribers=[subscriber.name for subscriber in config.delivery.subscribers],
            unfollowed=[
                message
                for _, message in (config.delivery.undeliverable(loaded.rules) if loaded.ok else ())
            ],
            disk_free=shutil.disk_usage(config.database.resolve().parent).free,
            retention=config.retention,
            rules_loaded=in_force.loaded if in_force else None,
            rules_disabled=in_force.disabled if in_force else len(loaded.rules) - enabled,
        )
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(health_json(health, config.database), indent=2, ensure_ascii=False))
    else:
        print_health(health, config.database, since)
    if not health.healthy:
        raise SystemExit(2)


def _rules_for_status(config: Config, store: Store) -> RuleSet:
    """The rule files, their queries compiled only when the latest load of every rule (by
    `vigie run` or `once`) did not read them as they are now, or found errors: compiling
    100,000 rules took 30 s of each `vigie status`, run from cron every quarter of an hour,
    to find what the service had found seconds before."""
    paths = config.rules.paths
    read = store.rule_files_read()
    unchanged = RuleFilesRead(__version__, tuple(map(str, paths)), file_stamps(paths), 0)
    return load_rules(paths, only=() if read == unchanged else None)


def _duration_option(name: str, value: str) -> timedelta:
    seconds = parse_duration(value)
    if not seconds or seconds > 100 * 365 * 86400:
        raise ConfigError(name, "", 'expected a duration like "30m", "12h" or "7d"', value)
    return timedelta(seconds=seconds)


def print_health(health: Health, database: Path, since: str) -> None:
    now = health.checked
    verdict = (
        "[green]healthy[/]"
        if health.healthy
        else f"[red]{counted(len(health.problems), 'problem')}[/]"
    )
    console.print(f"Vigie at {escape(str(database))}: {verdict}", soft_wrap=True)
    last = ago(health.last_polled, now) if health.last_polled else "never"
    overdue = f"{health.overdue} overdue" if health.overdue else "none overdue"
    sent = " and ".join(counted(health.delivered[kind], kind) for kind in ("digest", "webhook"))
    lines = [
        ("service", "running" if health.running else "not running"),
        ("polling", f"{counted(health.feeds, 'feed')}, last poll {last}, {overdue}"),
        ("failing", counted(len(health.failing), "feed") if health.failing else "none"),
        (
            "articles",
            f"{health.articles:,} stored, newest "
            + (ago(health.newest_article, now) if health.newest_article else "never")
            + (f", oldest {ago(health.oldest_article, now)}" if health.oldest_article else "")
            + "; "
            + (
                f"each kept {_days(health.retention)} after first seen (storage.retention)"
                if health.retention
                else 'kept for ever (storage.retention = "0")'
            ),
        ),
        ("rules", _rules_line(health)),
        ("matcher", _matcher_line()),
        (
            "deliveries",
            f"last {since}: {sent} sent, {health.undelivered_total:,} failed or dead; "
            f"{health.retrying:,} retrying now"
            + "".join(
                # The reason is the endpoint's answer: "[/]" in it broke the whole status.
                f"; webhook {escape(repr(e['name']))} paused until"
                f" {e['paused_until'][:16].replace('T', ' ')} UTC ({escape(e['pause_reason'])})"
                for e in health.paused
            ),
        ),
    ]
    if health.disk_free is not None:
        lines.append(("disk", f"{health.disk_free / 1e9:,.1f} GB free"))
    for label, text in lines:
        console.print(f"  {label:<11} {text}", soft_wrap=True, highlight=False)
        if label == "failing":
            print_failing(health)
    if health.problems:
        console.print("problems:")
        for problem in health.problems:
            console.print(f"  - {escape(problem)}", soft_wrap=True, highlight=False)


def _rules_line(health: Health) -> str:
    """The rules in force and the errors of the files on disk: while a service runs, the files
    may hold an edit that did not load, and their count ("4 rules") is not what it matches with
    (its last good 5)."""
    rules = counted(health.rules, "rule")
    disabled = f" (and {health.rules_disabled:,} disabled)" if health.rules_disabled else ""
    files = counted(health.rule_files, "file")
    errors = counted(len(health.rule_errors), "error")
    if health.rules_loaded is not None:
        when = ago(health.rules_loaded, health.checked)
        when = "just now" if when == "now" else when
        broken = ", which are not loaded" if health.rule_errors else ""
        return (
            f"{rules} in force{disabled} from {files}, loaded {when};"
            f" {errors} in the files on disk{broken}"
        )
    if health.running:  # a service that has not said (yet) what it loaded
        return f"{rules}{disabled} in {files} on disk, {errors}"
    return f"{rules}{disabled} in {files}, {errors}"


def _matcher_line() -> str:
    """Whether this install matches with the C extension's loops or their Python versions,
    which cost about three times as much: an install without a C compiler says nothing of it."""
    if native.NATIVE:
        return "C loops (monitor/rules/_native.c)"
    return (
        "Python loops, about a third of the speed: the C extension was not built when Vigie was"
        " installed (no C compiler or Python headers); install them and reinstall Vigie"
    )


def _days(seconds: float) -> str:
    days = seconds / 86400
    if days >= 1 and days == int(days):
        return f"{int(days)} day{'s' * (days != 1)}"
    hours = seconds / 3600
    return f"{hours:g} hour{'s' * (hours != 1)}" if hours >= 1 else f"{seconds:g} s"


def print_failing(health: Health) -> None:
    """The feeds failing now, most failed polls first: the ten an operator looks at first."""
    for feed in health.failing[:10]:
        success = ago(feed.last_success, health.checked) if feed.last_success else "never"
        console.print(
            f"    {escape(feed.name)}: {escape(feed.error)} ({counted(feed.errors, 'failed poll')}"
            f" in a row, last success {success})",
            soft_wrap=True,
            highlight=False,
        )
    if len(health.failing) > 10:
        console.print(f"    and {len(health.failing) - 10} more (`vigie feeds list --failing`)")


def health_json(health: Health, database: Path) -> dict:
    def when(moment: datetime | None) -> str | None:  # to the second, as stored times are
        return moment.replace(microsecond=0).isoformat() if moment else None

    return {
        "database": str(database),
        "healthy": health.healthy,
        "problems": list(health.problems),
        "checked": when(health.checked),
        "service_running": health.running,
        "disk_free_bytes": health.disk_free,
        "feeds": health.feeds,
        "feeds_overdue": health.overdue,
        "last_polled": when(health.last_polled),
        "failing_feeds": [
            {
                "name": f.name,
                "url": f.url,
                "error": f.error,
                "failed_polls": f.errors,
                "last_success": when(f.last_success),
            }
            for f in health.failing
        ],
        "articles": health.articles,
        "newest_article": when(health.newest_article),
        "oldest_article": when(health.oldest_article),
        "retention_seconds": health.retention,
        "rule_files": health.rule_files,
        "rules": health.rules,
        "rules_disabled": health.rules_disabled,
        "rules_loaded": when(health.rules_loaded),
        "rule_errors": [str(e) for e in health.rule_errors],
        "matcher": "c" if native.NATIVE else "python",
        "sent": health.delivered,
        "retrying": health.retrying,
        "failed_or_dead": health.undelivered_total,
        "disabled_webhooks": [dict(e) for e in health.disabled],
        "paused_webhooks": [dict(e) for e in health.paused],
    }


@main.command()
@click.argument("destination", type=click.Path(path_type=Path))
@config_option
@operator_errors
def backup(destination: Path, config_path: str) -> None:
    """Copy the database to DESTINATION, a new file or a folder (which gets a dated copy):
    whole and consistent even while `vigie run` writes to it, and compacted."""
    config = load_config(config_path)
    if destination.is_dir():
        _forget_killed_backups(destination)
        destination = destination / f"vigie-{datetime.now(UTC):%Y%m%d-%H%M%S}.db"
    if destination.exists() or destination.is_symlink():
        raise ConfigError(
            "backup", "", f"{destination} exists already: name a new file, or a folder"
        )
    if not destination.parent.is_dir():
        raise ConfigError("backup", "", "a path in an existing folder", str(destination))
    store = open_database(config, must_exist=True)
    try:
        started = time.perf_counter()
        try:
            store.backup_to(destination)
        except sqlite3.Error as e:  # a full disk, a folder it may not write to
            raise ConfigError(
                "backup", "", f"a place the copy can be written ({e})", str(destination)
            ) from None
        elapsed = time.perf_counter() - started
    finally:
        store.close()
    # Read back as it is, without opening it as a Store (which would migrate and change it).
    copy = sqlite3.connect(f"{destination.resolve().as_uri()}?mode=ro", uri=True)
    try:
        check = copy.execute("PRAGMA quick_check").fetchone()[0]
        articles = copy.execute("SELECT count(*) FROM articles").fetchone()[0]
    finally:
        copy.close()
    if check != "ok":
        raise ConfigError("backup", "", "a copy that passes SQLite's quick_check", check)
    size = destination.stat().st_size / 1e6
    console.print(
        f"Backed up {escape(str(config.database))} to {escape(str(destination))}: "
        f"{counted(articles, 'article')}, {size:.1f} MB, in {elapsed:.1f} s",
        soft_wrap=True,
    )


def _forget_killed_backups(folder: Path) -> None:
    """Delete the half-written copies that killed backups left in `folder`: dated names never
    come again, so each stayed for good, and could be taken for a backup. A copy being written
    now is left alone: its file changes as VACUUM INTO writes it."""
    for partial in folder.glob("vigie-*.db.partial"):
        with contextlib.suppress(OSError):  # gone already, or not ours to delete
            if time.time() - partial.stat().st_mtime > _STALE_PARTIAL:
                partial.unlink()


_STALE_PARTIAL = 3600  # seconds without a write


@main.command()
@click.argument("backup_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
@operator_errors
def restore(backup_path: Path, config_path: str) -> None:
    """Put BACKUP_PATH (made by `vigie backup`) in place of the database; `vigie run` must be
    stopped. The database it replaces is kept beside it, and the ids it gave to articles and
    stories are not given again (webhook consumers key on them)."""
    config = load_config(config_path)
    now = datetime.now(UTC)
    backup = read_backup(backup_path)  # refused when it is no Vigie backup, before anything moves
    with locked_database(config):  # refused while a service holds the database
        done = restore_database(config.database, backup, now)
    backed_up = ago(done.backed_up, now) if done.backed_up else "no article"
    console.print(
        f"Restored {escape(str(backup_path))} ({counted(done.articles, 'article')}, newest seen"
        f" {backed_up}) as {escape(str(config.database))}.",
        soft_wrap=True,
    )
    if done.replaced is not None:
        console.print(f"The database it replaced is {escape(str(done.replaced))}.", soft_wrap=True)
    console.print(
        f"New articles are numbered from {done.next_ids['articles']:,}. What came after the"
        " backup is not in it: see docs/operations.md (Backups).",
        soft_wrap=True,
    )
