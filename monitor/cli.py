"""The `vigie` command line (also `python service.py`). Parses arguments, calls the modules,
prints with rich. Operator errors (VigieError) are printed as one line, never a traceback."""

from __future__ import annotations

import json
import logging
import signal
import threading
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from .cli_common import (
    command_logging,
    config_option,
    configure_logging,
    console,
    err_console,
    escape,
    highlighted,
    locked_database,
    open_database,
    operator_errors,
)
from .cli_deliver import add_delivery_commands, deliver_after_poll
from .config import Config, load_config, resolve_feed_url
from .deliver.dispatch import sync_subscribers
from .errors import ConfigError, RuleError, VigieError
from .fetch import make_session
from .pipeline import CycleSummary, PollOutcome, poll_due
from .readers import ReaderPool
from .retention import prune_expired
from .rules.files import RuleBook
from .rules.stats import HEURISTIC, TermStats
from .scheduler import log_undeliverable, run_service
from .store import Store
from .store.articles import fts_words

log = logging.getLogger(__name__)


def open_store(config: Config) -> Store:
    """The configured database, its feeds in step with config.toml: those it lists are added or
    updated, those it no longer lists are retired (no longer polled, their articles kept)."""
    store = open_database(config)
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
            now=now,
        )
    for url in store.retire_config_feeds({feed.url for feed in config.feeds}, now):
        log.info("feed no longer in config.toml: retired", extra={"feed_url": url})
    sync_subscribers(store, config.delivery, now)  # before polling: new matches are theirs
    return store


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


def load_rulebook(config: Config) -> RuleBook:
    """Rules for a service start: refuse to start on a broken rule file, naming every error."""
    book = RuleBook(config.rules.paths, lambda: stored_term_stats(config.database))
    book.reload_if_changed()
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
    log_undeliverable(config.delivery, book)
    return book


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vigie")
def main() -> None:
    """Vigie: polls news feeds, matches your rules, keeps what matters."""


@main.command()
@config_option
@click.option(
    "-v", "--verbose", is_flag=True, help="Log debug details, each scheduler job run included."
)
@operator_errors
def run(config_path: str, verbose: bool) -> None:
    """Run the service until Ctrl+C or SIGTERM: poll due feeds, reload edited rules."""
    configure_logging(verbose)
    config = load_config(config_path)
    with locked_database(config):
        store = open_store(config)
        book = load_rulebook(config)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        run_service(config, store, make_session(config.fetch), book, stop)
        store.close()


@main.command()
@config_option
@operator_errors
def once(config_path: str) -> None:
    """Poll every feed once, store and match what is new, print a summary, then deliver:
    each subscriber's digest (an .eml in the outbox folder without SMTP) and the webhooks."""
    config = load_config(config_path)
    with locked_database(config), command_logging():
        store = open_store(config)
        book = load_rulebook(config)
        total = len(store.feeds())
        session = make_session(config.fetch)
        now = datetime.now(UTC)
        with ReaderPool(config.polling.processes) as readers:
            if console.is_terminal:
                with Progress(
                    TextColumn("polling"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.description}"),
                    console=console,
                    transient=True,
                ) as progress:
                    task = progress.add_task("", total=total)

                    def advance(outcome: PollOutcome) -> None:
                        progress.update(task, advance=1, description=outcome.feed.name or "")

                    summary = poll_due(
                        store, session, config, book.index, now, advance, True, readers=readers
                    )
            else:
                summary = poll_due(
                    store, session, config, book.index, now, force=True, readers=readers
                )
        print_summary(summary, store, config)
        deliver_after_poll(config, store, book.index, now)
        prune_expired(store, config.retention, now)
        store.close()


def print_summary(summary: CycleSummary, store: Store, config: Config) -> None:
    console.print(
        f"Polled {summary.feeds_polled} feeds ({summary.feeds_unchanged} unchanged): "
        f"{summary.new_articles} new articles, {summary.updated_articles} updated, "
        f"{summary.new_matches} new matches, {len(summary.errors)} errors.",
        soft_wrap=True,
    )
    for url, error in summary.errors:
        console.print(f"  [red]error[/] {escape(url)}: {escape(error)}", soft_wrap=True)
    # soft_wrap: a path or URL cut by hard line breaks cannot be copied or grepped.
    console.print(
        f"Database: {escape(str(config.database))} ({store.count('articles')} articles, "
        f"{store.count('matches')} matches)",
        soft_wrap=True,
    )


@main.group()
def feeds() -> None:
    """List, add, import and export feeds."""


@feeds.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Also retired feeds (dropped from config.toml, removed).",
)
@operator_errors
def feeds_list(config_path: str, as_json: bool, show_all: bool) -> None:
    """Feeds with their last status, last success, items, errors and next poll."""
    config = load_config(config_path)
    store = open_store(config)
    rows = store.feeds(include_retired=show_all)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table("id", "name", "url", "status", "last success", "items", "errors", "next poll")
    for row in rows:
        status = str(row["last_status"] or "-")
        if row["last_error"]:
            status = f"[red]{escape(row['last_error'])}[/]"
        if row["retired"]:
            why = "not in config.toml" if row["source"] == "config" else "feeds remove"
            status = f"[yellow]retired {row['retired']}[/] ({why})"
        table.add_row(
            str(row["id"]),
            escape(row["name"] or row["title"] or ""),
            escape(row["url"]),
            status,
            row["last_success"] or "never",
            str(row["items"] or 0),
            str(row["error_count"] or 0),
            "-" if row["retired"] else row["next_poll"] or "-",
        )
    console.print(table)


@feeds.command("add")
@click.argument("url")
@click.option("--name", default=None, help="Display name.")
@click.option("--interval", default=None, help='Time between polls, e.g. "15m".')
@click.option("--tag", "tags", multiple=True, help="A tag rules can scope to (repeatable).")
@config_option
@operator_errors
def feeds_add(
    url: str, name: str | None, interval: str | None, tags: tuple[str, ...], config_path: str
) -> None:
    """Add a feed to the database (http(s) URL or local path). Adding a feed it already has
    changes only the options given, and says what changed."""
    from .config import parse_duration

    config = load_config(config_path)
    seconds = None
    if interval is not None:
        seconds = parse_duration(interval)
        if seconds is None:
            raise ConfigError("--interval", "", 'expected a duration like "15m"', interval)
    try:
        resolved = resolve_feed_url(url, Path.cwd())
    except ValueError as e:
        raise ConfigError("URL", "", str(e), url) from None
    if resolved in {feed.url for feed in config.feeds}:
        console.print(
            f"{escape(resolved)} is listed in {escape(str(config.path))}: its settings there "
            "apply; nothing changed",
            soft_wrap=True,
        )
        return
    store = open_store(config)
    added = store.add_feed(
        resolved,
        name=name,
        interval=seconds,
        tags=tags or None,
        source="cli",
        now=datetime.now(UTC),
    )
    if added.created:
        said = "polled on the next cycle"
    elif added.revived:
        said = "retired before, polled again from the next cycle"
    else:
        said = "already existed"
    changes = ", ".join(
        f"{key} {_setting(key, before)} -> {_setting(key, after)}"
        for key, (before, after) in added.changes.items()
    )
    if not added.created:
        said += f"; changed {changes}" if changes else "; nothing changed"
    console.print(f"Feed {added.id}: {escape(resolved)} ({escape(said)})", soft_wrap=True)


@feeds.command("remove")
@click.argument("feed")
@config_option
@operator_errors
def feeds_remove(feed: str, config_path: str) -> None:
    """Stop polling a feed added with `feeds add` or `feeds import`. FEED is its URL, the
    path it was added as, or its id in `feeds list`. Its articles, matches and deliveries are
    kept (`feeds list --all` shows it) and `feeds add` brings it back. A feed config.toml lists
    is removed by deleting it there."""
    config = load_config(config_path)
    store = open_store(config)
    row = _stored_feed(store, feed)
    if row is None:
        raise ConfigError(
            "FEED", "", "expected the URL, path or id of a stored feed (vigie feeds list)", feed
        )
    url = row["url"]
    listed = {f.url for f in config.feeds}
    if url in listed or row["config_url"] in listed:  # it would be back at the next start
        raise ConfigError(
            str(config.path), "feeds", "lists this feed: delete it there to stop polling it", url
        )
    if row["retired"] is not None:
        console.print(
            f"Feed {row['id']}: {escape(url)} was retired on {row['retired']}; nothing changed",
            soft_wrap=True,
        )
        return
    store.retire_feed(row["id"], datetime.now(UTC))
    articles = store.feed_article_count(row["id"])
    console.print(
        f"Feed {row['id']}: {escape(url)} retired: no longer polled; its {articles} articles "
        "are kept",
        soft_wrap=True,
    )


def _stored_feed(store: Store, given: str) -> dict[str, Any] | None:
    """The stored feed `feeds remove` was given: by id, by URL, or by the path `feeds add`
    resolved from the current folder."""
    row = store.feed_row(int(given)) if given.isdigit() else None
    row = row or store.find_feed(given)
    if row is None:
        try:
            row = store.find_feed(resolve_feed_url(given, Path.cwd()))
        except ValueError:
            return None
    return row


def _setting(key: str, value: Any) -> str:
    """A feed setting as `feeds add` prints a change to it."""
    if key == "interval":
        return "default" if value is None else f"{value:g}s"
    return json.dumps(value, ensure_ascii=False)


@feeds.command("import")
@click.argument("opml", type=click.Path(exists=True, dir_okay=False))
@config_option
@operator_errors
def feeds_import(opml: str, config_path: str) -> None:
    """Add every http(s) feed of an OPML file that is not known yet; known feeds are left as
    they are. Other addresses (file://, ...) are skipped: a subscription list from elsewhere
    must not make Vigie read local files."""
    config = load_config(config_path)
    store = open_store(config)
    try:
        tree = ET.parse(opml)
    except ET.ParseError as e:
        raise ConfigError(opml, "", f"not a valid OPML file: {e}") from None
    added, known = 0, 0
    seen: set[str] = set()
    skipped: list[tuple[str, str]] = []
    now = datetime.now(UTC)
    for outline in tree.iter("outline"):
        url = (outline.get("xmlUrl") or "").strip()
        if not url:
            continue
        if not url.lower().startswith(("http://", "https://")) or not _fetchable(url):
            skipped.append((url, "not an http(s) URL"))
            continue
        if url in seen:  # the first entry of a feed listed twice is the one imported
            skipped.append((url, "listed twice in this file"))
            continue
        seen.add(url)
        row = store.find_feed(url)
        if row is not None and row["retired"] is None:
            known += 1
            continue
        title = outline.get("title") or outline.get("text") or None
        store.add_feed(url, name=title, source="opml", now=now)
        added += 1
    console.print(
        f"Imported {added} new feeds from {escape(opml)}"
        + (f"; {known} already known, left as they were" if known else ""),
        soft_wrap=True,
    )
    for url, reason in skipped:
        console.print(f"Skipped {escape(url)}: {reason}", soft_wrap=True)


def _fetchable(url: str) -> bool:
    try:
        resolve_feed_url(url, Path.cwd())
    except ValueError:
        return False
    return True


@feeds.command("export")
@config_option
@operator_errors
def feeds_export(config_path: str) -> None:
    """Print every feed as OPML 2.0."""
    config = load_config(config_path)
    store = open_store(config)
    opml = ET.Element("opml", version="2.0")
    head = ET.SubElement(opml, "head")
    ET.SubElement(head, "title").text = "Vigie feeds"
    body = ET.SubElement(opml, "body")
    for row in store.feeds():
        title = row["name"] or row["title"] or row["url"]
        ET.SubElement(body, "outline", type="rss", text=title, title=title, xmlUrl=row["url"])
    ET.indent(opml)
    click.echo(ET.tostring(opml, encoding="unicode", xml_declaration=True))


@main.group()
def articles() -> None:
    """Search stored articles."""


@articles.command("search")
@click.argument("query")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@config_option
@operator_errors
def articles_search(query: str, limit: int, as_json: bool, config_path: str) -> None:
    """Full-text search over stored articles (SQLite FTS5 syntax: words, "phrases", OR, NOT)."""
    import sqlite3

    config = load_config(config_path)
    store = open_store(config)
    try:
        rows = store.search_articles(query, limit)
    except sqlite3.OperationalError as e:
        # Everyday words that FTS5 reads as syntax (pepper-spray, l'immigration) are searched
        # as words; only a query that is not even that is an error.
        try:
            rows = store.search_articles_as_words(query, limit)
        except sqlite3.OperationalError:
            raise VigieError(f"search query {query!r}: {e}") from None
        err_console.print(f"searched as words: {fts_words(query)}", markup=False)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for row in rows:
        console.print(
            f"[bold]{escape(row['title'])}[/] [dim]#{row['id']} "
            f"{escape(row['feed_name'] or row['feed_title'] or '')} "
            f"{row['published'] or ''}[/]"
        )
        console.print(f"  {escape(row['url'])}", soft_wrap=True)
        console.print(Text("  ").append(highlighted(row["snippet"])))
    if not rows:
        console.print("No article matches.")


from .cli_rules import rules  # noqa: E402  (registers the `rules` group)

main.add_command(rules)
add_delivery_commands(main)  # the `digest` and `deliveries` groups
