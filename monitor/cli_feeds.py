"""`vigie feeds`: list, add, remove, import and export the feeds the database polls."""

from __future__ import annotations

import dataclasses
import json
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.table import Table

from .cli_common import (
    ago,
    config_option,
    console,
    err_console,
    escape,
    open_store,
    operator_errors,
    print_table,
    stored_feed,
)
from .config import (
    Config,
    feed_tag,
    feed_tags,
    line_of_key,
    load_config,
    resolve_feed_url,
)
from .errors import ConfigError, VigieError
from .netguard import AddressPolicy, known_refusal
from .store import Store, parse_iso
from .text import counted, language_code, one_line, printable


@click.group()
def feeds() -> None:
    """List, add, remove, import and export feeds."""


@feeds.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Also retired feeds (dropped from config.toml, removed).",
)
@click.option(
    "--failing",
    is_flag=True,
    help="Only the feeds whose last poll failed, most failed polls in a row first.",
)
@click.option("--tag", "tags", multiple=True, help="Only the feeds with this tag (repeatable).")
@operator_errors
def feeds_list(
    config_path: str, as_json: bool, show_all: bool, failing: bool, tags: tuple[str, ...]
) -> None:
    """Feeds with their last status, last success, items, errors, next poll, interval and
    tags."""
    config = load_config(config_path)
    with _feeds_of(config) as store:
        rows = store.feeds(include_retired=show_all)
        _say_config_drift(store.feeds() if show_all else rows, config)
        copies = store.copies_by_feed()
    total = len(rows)
    rows = _chosen(rows, failing, tags)
    rows = [{**row, "copies": copies.get(row["id"], 0)} for row in rows]
    if as_json:
        click.echo(json.dumps(list(map(feed_json, rows)), indent=2, ensure_ascii=False))
        return
    # Narrow terminals fold a URL or an error onto more lines rather than cutting it to
    # "http://…" (the failing feed must be readable); times are relative, "3h ago", short.
    table = Table(box=box.SIMPLE_HEAD)
    # (least, most); the interval and tags, so that an operator sees what `feeds add` changed.
    widths = {"name": (6, 18), "url": (12, None), "status": (6, 40), "tags": (4, 20)}
    columns = ("id", "name", "url", "status", "success", "items", "fails", "next", "every", "tags")
    for column in columns:
        least, most = widths.get(column, (None, None))
        table.add_column(
            column,
            overflow="fold",
            no_wrap=column not in widths,
            min_width=least,
            max_width=most,
        )
    now = datetime.now(UTC)
    for row in rows:
        status = str(row["last_status"] or "-")
        if row["last_error"]:
            status = f"[red]{escape(row['last_error'])}[/]"
        if row["retired"]:
            why = "not in config.toml" if row["source"] == "config" else "feeds remove"
            status = f"[yellow]retired {row['retired'][:10]}[/] ({why})"
        table.add_row(
            str(row["id"]),
            escape(row["name"] or row["title"] or ""),
            escape(row["url"]),
            status,
            _ago(row["last_success"], now) if row["last_success"] else "never",
            _items(row),
            str(row["error_count"] or 0),
            "-" if row["retired"] else _next(row["next_poll"], now),
            _every(row["interval"] or config.polling.interval),
            escape(",".join(json.loads(row["tags"] or "[]"))),
        )
    if rows or not (failing or tags):
        print_table(table)
    if failing or tags:  # on stderr, so that the table alone goes to a pipe
        chosen = " ".join(["--failing"] * failing + [f"--tag {escape(t)}" for t in tags])
        err_console.print(f"{counted(len(rows), 'feed')} of {total:,} ({chosen})", soft_wrap=True)


def _chosen(rows: list[dict], failing: bool, tags: tuple[str, ...]) -> list[dict]:
    """The feeds `feeds list --failing` and `--tag` keep: among 2,000 feeds, the 100 failing
    ones were 4,000 lines of a table away (`vigie status` sent the operator there). Failing as
    `vigie status` counts it: the last poll failed; most failed polls in a row first."""
    if tags:
        wanted = {feed_tag(tag) for tag in tags}
        rows = [row for row in rows if wanted & set(json.loads(row["tags"] or "[]"))]
    if failing:
        rows = [row for row in rows if row["error_count"] and row["last_error"]]
        rows.sort(key=lambda row: -row["error_count"])  # stable: by id within a count
    return rows


@contextmanager
def _feeds_of(config: Config) -> Iterator[Store]:
    """The database, for commands that show its feeds. Before there is one, a throwaway
    database holding the feeds config.toml lists, with a note: a mistyped storage.database
    made its folders and an empty database, and every feed showed as never polled."""
    if config.database.exists() or config.database.parent.is_file():
        store = open_store(config)  # (a path under a file is refused as such)
        try:
            yield store
        finally:
            store.close()
        return
    err_console.print(
        f"note: no database at {escape(str(config.database))} yet (vigie once or vigie run"
        " creates it): these are the feeds config.toml lists",
        soft_wrap=True,
    )
    with tempfile.TemporaryDirectory(prefix="vigie-") as folder:
        store = open_store(dataclasses.replace(config, database=Path(folder) / "vigie.db"))
        try:
            yield store
        finally:
            store.close()


def _items(row: dict) -> str:
    """Articles stored from the feed, and its items that were copies of another feed's: a feed
    duplicating others (a section of an outlet's main feed) showed 0 and looked broken."""
    stored = str(row["items"] or 0)
    return f"{stored} +{counted(row['copies'], 'copy')}" if row["copies"] else stored


def _ago(stamp: str, now: datetime) -> str:
    return ago(parse_iso(stamp), now)  # type: ignore[arg-type]


def _every(seconds: float) -> str:
    """An interval as config.toml writes it: "30m", "1h", "90s"."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g}{unit}"
    return f"{seconds:g}s"


def _next(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "-"
    return _ago(stamp, now) if parse_iso(stamp) > now else "due"  # type: ignore[operator]


def _say_config_drift(polled: list[dict], config: Config) -> None:
    """With `vigie run` holding the database, config.toml's feeds are not applied (see
    open_store): say which edits wait for its restart."""
    wanted = {feed.url for feed in config.feeds}
    from_config = {row["config_url"] or row["url"] for row in polled if row["source"] == "config"}
    known = from_config | {row["url"] for row in polled}
    waiting = sorted(wanted - known)
    dropped = sorted(from_config - wanted)
    for urls, what in (
        (waiting, "listed in config.toml, polled once the running service restarts"),
        (dropped, "no longer in config.toml, polled until the running service restarts"),
    ):
        for url in urls:
            err_console.print(f"note: {escape(url)}: {what}", soft_wrap=True)


# What `feeds list --json` gives scripts: the feed's settings and state (its validators too,
# to see why a server answers 304), not the hashes polling keeps for itself.
FEED_JSON_KEYS = (
    "id", "url", "name", "title", "tags", "interval", "language", "full_text", "source",
    "added", "retired", "last_polled", "last_success", "last_status", "last_error",
    "error_count", "items", "copies", "next_poll", "etag", "last_modified",
)  # fmt: skip


def feed_json(row: dict) -> dict:
    """A stored feed as scripts read it: tags a list, full_text a boolean, interval in seconds
    (null: polling.interval)."""
    found = {key: row[key] for key in FEED_JSON_KEYS}
    found["tags"] = json.loads(row["tags"] or "[]")
    found["full_text"] = bool(row["full_text"])
    return found


@feeds.command("add")
@click.argument("url")
@click.option("--name", default=None, help="Display name.")
@click.option("--interval", default=None, help='Time between polls, e.g. "15m".')
@click.option("--tag", "tags", multiple=True, help="A tag rules can scope to (repeatable).")
@click.option(
    "--language",
    default=None,
    help="Language of every item, e.g. fr, whatever the feed declares (as in config.toml).",
)
@click.option(
    "--full-text/--no-full-text",
    "full_text",
    default=None,
    help="Fetch each item's article page for its whole text (as full_text in config.toml).",
)
@config_option
@operator_errors
def feeds_add(
    url: str,
    name: str | None,
    interval: str | None,
    tags: tuple[str, ...],
    language: str | None,
    full_text: bool | None,
    config_path: str,
) -> None:
    """Add a feed to the database (http(s) URL or local path). Adding a feed it already has
    changes only the options given, and says what changed."""
    from .config import parse_interval

    code = language_code(language) if language is not None else None
    if language is not None and code is None:
        raise ConfigError("--language", "", "expected a language code like fr or en", language)
    config = load_config(config_path)
    seconds = None
    if interval is not None:
        try:
            seconds = parse_interval(interval)
        except ValueError as e:
            raise ConfigError("--interval", "", str(e), interval) from None
    try:
        resolved = resolve_feed_url(url, Path.cwd())
    except ValueError as e:
        raise ConfigError("URL", "", str(e), url) from None
    if resolved.startswith("file://") and Path(url.removeprefix("file://")).is_dir():
        raise ConfigError("URL", "", "a feed file, not a folder: add its files one by one", url)
    if resolved.startswith("file://") and not Path(url.removeprefix("file://")).is_file():
        # "example.org/feed.xml" was taken for a file of that name, to fail at every poll.
        raise ConfigError(
            "URL",
            "",
            "no such file here; a web feed needs its whole address, like"
            f" https://{url.removeprefix('file://').lstrip('/')}",
            url,
        )
    try:
        cleaned_tags = feed_tags(tags)
    except ValueError as e:
        raise ConfigError("--tag", "", str(e), "") from None
    listed = {feed.url for feed in config.feeds}
    store = open_store(config)
    stored = store.find_feed(resolved)
    # A feed config.toml lists may be stored at the address it moved to (a 301): found there,
    # it is still config.toml's, and its settings there apply.
    if resolved in listed or (stored is not None and stored["config_url"] in listed):
        as_listed = "" if resolved in listed else f" as {escape(stored['config_url'])}"
        console.print(
            f"{escape(resolved)} is listed in {escape(str(config.path))}{as_listed}: its "
            "settings there apply; nothing changed",
            soft_wrap=True,
        )
        return
    added = store.add_feed(
        resolved,
        name=one_line(printable(name)) if name is not None else None,
        interval=seconds,
        tags=cleaned_tags or None,
        language=code,
        full_text=full_text,
        source="cli",
        default_interval=config.polling.interval,
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
    _warn_if_refused(resolved, config)


@feeds.command("remove")
@click.argument("feed")
@config_option
@operator_errors
def feeds_remove(feed: str, config_path: str) -> None:
    """Stop polling a feed added with `feeds add` or `feeds import`. FEED is its URL, the
    path it was added as, or its id in `feeds list`. Its articles, matches and deliveries are
    kept (`feeds list --all` shows it) and `feeds add` brings it back. A feed config.toml lists
    (as a path there too) is removed by deleting it there."""
    config = load_config(config_path)
    store = open_store(config)
    row = stored_feed(store, config, feed, by_name=False)
    if row is None:
        raise ConfigError(
            "FEED", "", "expected the URL, path or id of a stored feed (vigie feeds list)", feed
        )
    url = row["url"]
    listed = {f.url for f in config.feeds}
    if url in listed or row["config_url"] in listed:  # it would be back at the next start
        index = next(i for i, f in enumerate(config.feeds) if f.url in (url, row["config_url"]))
        line = line_of_key(config.path.read_text(encoding="utf-8-sig"), f"feeds[{index}].url")
        where = f"{config.path}:{line}" if line else str(config.path)
        raise VigieError(
            f"{url} is listed in {where} (feeds[{index}]): delete it there to stop polling it"
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
    root = _opml_root(opml)
    added, known, revived = 0, 0, 0
    seen: set[str] = set()
    skipped: list[tuple[str, str]] = []
    imported: list[str] = []  # each checked against the network guard at the end
    now = datetime.now(UTC)
    for outline, folders in _opml_outlines(root):
        url = _attribute(outline, "xmlUrl")
        if not url:
            if _meant_as_feed(outline):
                skipped.append((_outline_label(outline), "no xmlUrl (a feed address)"))
            continue
        address = _web_address(url)
        if address is None:
            skipped.append((url, "not an http(s) URL"))
            continue
        if address in seen:  # the first entry of a feed listed twice is the one imported
            skipped.append((url, "listed twice in this file"))
            continue
        seen.add(address)
        url = address
        row = store.find_feed(url)
        if row is not None and row["retired"] is None:
            known += 1
            continue
        # One line, no control characters: a title over lines wrote a fake section, entry
        # and link into the plain-text digest of every article of that feed.
        title = one_line(printable(outline.get("title") or outline.get("text") or "")) or None
        store.add_feed(url, name=title, tags=_opml_tags(outline, folders), source="opml", now=now)
        imported.append(url)
        if row is None:
            added += 1
        else:  # retired (removed, or taken out of config.toml): polled again, as feeds add does
            revived += 1
    console.print(
        f"Imported {added:,} new feeds from {escape(opml)}"
        + (f"; {revived:,} retired feeds polled again" if revived else "")
        + (f"; {known:,} already known, left as they were" if known else ""),
        soft_wrap=True,
    )
    for url, reason in skipped:
        console.print(f"Skipped {escape(url)}: {reason}", soft_wrap=True)
    for url in imported:
        _warn_if_refused(url, config)


def _warn_if_refused(url: str, config: Config) -> None:
    """Say at once that the network guard will refuse a feed just added, and what lets it
    through: `feeds add http://127.0.0.1:...` said "polled on the next cycle", and the refusal
    came only at poll time. The feed stays added: the config may change. Only what needs no
    lookup is checked (netguard.known_refusal); a name is checked when polled."""
    policy = AddressPolicy(config.fetch.allow_private, config.fetch.allow_hosts)
    refusal = known_refusal(url, policy)
    if refusal is not None:
        err_console.print(
            f"warning: {escape(url)} will be refused when polled under "
            f"{escape(str(config.path))}: {escape(refusal)}",
            soft_wrap=True,
        )


def _opml_root(opml: str) -> ET.Element:
    """The <opml> element of the file, or a ConfigError saying why it is not one."""
    try:
        root = ET.parse(opml).getroot()
    except ET.ParseError as e:
        raise ConfigError(opml, "", f"not a valid OPML file: {e}") from None
    if root.tag != "opml":  # an RSS file, say: "Imported 0 new feeds" misled
        raise ConfigError(
            opml, "", f"not an OPML file: its root element is <{root.tag}>, not <opml>"
        )
    return root


def _attribute(outline: ET.Element, name: str) -> str:
    """An outline's attribute, its name in any case, stripped: some exporters write xmlurl
    or XMLURL, and their feeds were skipped without a word."""
    wanted = name.lower()
    found = (value for key, value in outline.attrib.items() if key.lower() == wanted)
    return next(found, "").strip()


def _meant_as_feed(outline: ET.Element) -> bool:
    """Whether an outline without a feed address was meant as a feed (a website's htmlUrl,
    or type="rss"), which the import must say it skipped; a folder (it holds outlines) or a
    note is not one."""
    if outline.find("outline") is not None:
        return False
    return bool(_attribute(outline, "htmlUrl")) or _attribute(outline, "type").lower() == "rss"


def _outline_label(outline: ET.Element) -> str:
    """How a skip line names an outline that has no feed address: its title, and its
    website's address if it has one."""
    title = one_line(printable(outline.get("title") or outline.get("text") or ""))
    site = _attribute(outline, "htmlUrl")
    named = f'"{title}"' if title else "an untitled outline"
    return f"{named} ({site})" if site else named


def _opml_outlines(root: ET.Element) -> Iterator[tuple[ET.Element, tuple[str, ...]]]:
    """Every outline of an OPML file in the file's order, with the names of the folders it is
    in, outermost first. Feed readers (Feedly, Inoreader, NetNewsWire, Miniflux) export each
    folder as an outline holding its feeds' outlines; its name is how their user sorted them.
    A loop, not recursion: a file nested thousands deep must not end in a traceback."""
    pending: list[tuple[ET.Element, tuple[str, ...]]] = [(root, ())]
    while pending:
        element, folders = pending.pop()
        if element.tag == "outline":
            yield element, folders
            if not _attribute(element, "xmlUrl"):  # a folder, not a feed that has children
                folders = (*folders, element.get("title") or element.get("text") or "")
        pending.extend((child, folders) for child in reversed(element))


def _opml_tags(outline: ET.Element, folders: tuple[str, ...]) -> tuple[str, ...] | None:
    """A feed's tags from an OPML file: the folders it is in, then its `category` (OPML 2.0:
    comma-separated, each may be a /-path), cleaned as tags given any other way (feed_tag)."""
    categories = [part.strip().strip("/") for part in (outline.get("category") or "").split(",")]
    found = map(feed_tag, (*folders, *categories))
    return tuple(dict.fromkeys(tag for tag in found if tag)) or None


def _web_address(url: str) -> str | None:
    """An OPML entry's http(s) address as it is stored (resolve_feed_url: its scheme and host
    in lower case, so that case variants are one feed), or None for any other: a subscription
    list from elsewhere must not make Vigie read local files."""
    if not url.lower().startswith(("http://", "https://")):
        return None
    try:
        return resolve_feed_url(url, Path.cwd())
    except ValueError:
        return None


@feeds.command("export")
@config_option
@operator_errors
def feeds_export(config_path: str) -> None:
    """Print every feed as OPML 2.0."""
    config = load_config(config_path)
    opml = ET.Element("opml", version="2.0")
    head = ET.SubElement(opml, "head")
    ET.SubElement(head, "title").text = "Vigie feeds"
    body = ET.SubElement(opml, "body")
    with _feeds_of(config) as store:
        stored = store.feeds()
    for row in stored:
        title = row["name"] or row["title"] or row["url"]
        outline = ET.SubElement(
            body, "outline", type="rss", text=title, title=title, xmlUrl=row["url"]
        )
        tags = json.loads(row["tags"] or "[]")
        if tags:  # OPML's own place for them: rules scoped by feed_tags still match after import
            outline.set("category", ",".join(tags))
    ET.indent(opml)
    click.echo(ET.tostring(opml, encoding="unicode", xml_declaration=True))
