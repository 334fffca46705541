"""`vigie articles`: search stored articles, show everything stored about one, export those
that matched."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import sys
from datetime import UTC, datetime
from typing import Any

import click
from rich.text import Text

from .cli_common import (
    ago,
    config_option,
    console,
    did_you_mean,
    err_console,
    escape,
    highlighted,
    open_store,
    operator_errors,
    parse_moment,
    plain,
    print_evidence,
    stored_feed,
)
from .config import Config, load_config, parse_duration
from .deliver.payload import highlighted as split_highlights
from .errors import SearchQueryError, VigieError
from .rules.compile import LOOKS_LIKE_PRES, OPERATOR_WORDS
from .store import Store, parse_iso
from .store.search import fts_words
from .text import counted


@click.group()
def articles() -> None:
    """Search stored articles; show one with its matches and deliveries; export the matched."""


@articles.command("search")
@click.argument("query")
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most articles shown.",
)
@click.option(
    "--since",
    default=None,
    help='Only articles published since: a date (2026-11-01), a time, or a duration ago ("7d").',
)
@click.option(
    "--stem",
    is_flag=True,
    help="Every unquoted word in all its forms, as word~ (a rule's stem = true).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@config_option
@operator_errors
def articles_search(
    query: str, limit: int, since: str | None, stem: bool, as_json: bool, config_path: str
) -> None:
    """Full-text search over stored articles, best first. The query is SQLite FTS5's, not the
    rule language: words, "phrases", OR, and NOT between two terms (calais NOT football),
    and as in rules, word~ or "a phrase"~ for every form of a word by the article's language
    (slap~: slapped, slapping); `vigie rules test --article ID` tries a rule on a stored
    article."""
    config = load_config(config_path)
    if not any(c.isalnum() for c in query):  # '*' got SQLite's "unknown special query"
        raise VigieError(f"search query {query!r}: nothing to search for: give a word")
    start = parse_moment(since, datetime.now(UTC), "--since") if since is not None else None
    for word, meant in _operator_words(query):
        err_console.print(
            f"{word} is searched as a word, not taken as an operator: write {meant}"
            f' (operators are English words in capitals; quote "{word}" to search for the word)',
            markup=False,
        )
    store = open_store(config, must_exist=True)
    try:
        try:
            stemmed = store.search_stemmed(query, limit, start, stem_all=stem)
        except SearchQueryError as e:
            raise SearchQueryError(query, _search_mistake(query) or e.reason) from None
        if stemmed is not None:
            rows, total = stemmed
        else:
            rows, total = _search_as_written(store, query, limit, start)
        other_forms = _other_forms(store, query, start) if not rows and not stem else 0
    finally:
        store.close()
    if total > len(rows):
        err_console.print(
            f"{len(rows)} of {total} articles shown, the best first (--limit shows more)",
            markup=False,
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for row in rows:
        console.print(
            f"[bold]{escape(row['title'])}[/] [dim]#{row['id']} "
            f"{escape(row['feed_name'])} "
            f"{row['published'] or ''}[/]"
        )
        console.print(f"  {escape(row['url'])}", soft_wrap=True)
        # Blank lines of the text left the snippet in pieces under its title.
        console.print(Text("  ").append(highlighted(" ".join(row["snippet"].split()))))
    if not rows:
        console.print("No article matches.")
    if other_forms:
        have = "has" if other_forms == 1 else "have"
        err_console.print(
            f"{counted(other_forms, 'article')} {have} other forms of these words:"
            " search with --stem, or word~ for one word",
            markup=False,
        )


def _search_as_written(
    store: Store, query: str, limit: int, start: datetime | None
) -> tuple[list[dict[str, Any]], int]:
    """(the best `limit` articles, how many there are) for a query FTS5 reads as it is."""
    searched = query
    try:
        rows = store.search_articles(query, limit, start)
    except sqlite3.OperationalError as e:
        # Everyday words that FTS5 reads as syntax (pepper-spray, l'immigration) are
        # searched as words; only a query that is not even that is an error.
        searched = fts_words(query)
        try:
            rows = store.search_articles(searched, limit, start)
        except sqlite3.OperationalError:
            raise VigieError(f"search query {query!r}: {_search_mistake(query) or e}") from None
        err_console.print(f"searched as words: {searched}", markup=False)
    # Results stopped at --limit without a word: a researcher took 20 for all there were.
    total = store.search_count(searched, start) if len(rows) == limit else len(rows)
    return rows, total


def _other_forms(store: Store, query: str, start: datetime | None) -> int:
    """How many articles the query finds with every unquoted word stemmed (0 for one it
    cannot read so): a search for `expulsion` that finds nothing where "expulsions" is."""
    try:
        found = store.search_stemmed(query, 1, start, stem_all=True)
    except SearchQueryError:
        return 0
    return found[1] if found else 0


def _operator_words(query: str) -> list[tuple[str, str]]:
    """The words of a query outside quotes that an operator meant as AND, OR, NOT or NEAR, and
    what to write instead, as rules check warns of them: `OQTF OU rétention` searched for the
    word "ou" beside both and found nothing, without a word of why (a French analyst's review)."""
    unquoted = _QUOTED.sub(" ", query).replace("(", " ").replace(")", " ")
    found = {}
    for word in unquoted.split():
        meant = OPERATOR_WORDS.get(word) or (
            "NEAR(a b, 5)" if LOOKS_LIKE_PRES.match(word) else None
        )
        if meant:
            found[word] = meant
    return list(found.items())


_QUOTED = re.compile(r'"[^"]*"?')


def _search_mistake(query: str) -> str | None:
    """What is wrong with a query FTS5 refused, in its terms (its own message was `fts5:
    syntax error near ""` for most of them)."""
    pieces = query.replace("(", " ( ").replace(")", " ) ").split()
    if pieces[0] in ("AND", "OR", "NOT"):
        return f"{pieces[0]} goes between two terms (calais NOT football), not first"
    if pieces[-1] in ("AND", "OR", "NOT"):
        return f"{pieces[-1]} at the end: give a term after it (calais {pieces[-1]} football)"
    for before, after in zip(pieces, pieces[1:], strict=False):
        if before in ("AND", "OR", "NOT") and after in ("AND", "OR", "NOT", ")"):
            return f"{before} {after}: give a term after {before}"
    if pieces.count("(") > pieces.count(")"):
        return "a parenthesis is not closed"
    if pieces.count("(") < pieces.count(")"):
        return "a parenthesis is closed that was not opened"
    return None


@articles.command("show")
@click.argument("article_id", type=int)
@click.option(
    "--text", "with_text", is_flag=True, help="Also print its summary and text, as stored."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (text included).")
@config_option
@operator_errors
def articles_show(article_id: int, with_text: bool, as_json: bool, config_path: str) -> None:
    """Everything stored about article ARTICLE_ID (the `#id` of `articles search`, webhooks'
    `article.id`): its revisions, the other outlets of its story, the rules it matched and the
    words that made each match, the entities it names, and the digests and webhooks that
    carried it; with --text, its summary and text too. To try today's rules on it:
    `vigie rules test --article ARTICLE_ID`."""
    store = open_store(load_config(config_path), must_exist=True)
    try:
        record = store.article_record(article_id)
    finally:
        store.close()
    if record is None:
        raise VigieError(
            f"no article {article_id} in the database (pruned, or never stored):"
            " `vigie articles search WORDS` gives articles' ids"
        )
    if as_json:
        click.echo(json.dumps(record, indent=2, ensure_ascii=False))
        return
    _print_record(record, datetime.now(UTC), with_text)


def _print_record(record: dict[str, Any], now: datetime, with_text: bool = False) -> None:
    def when(value: str | None) -> str:
        moment = parse_iso(value)
        if moment is None:
            return "-"
        return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({ago(moment, now)})"

    console.print(f"[bold]{escape(record['title'] or '(untitled)')}[/] [dim]#{record['id']}[/]")
    console.print(f"  {escape(record['url'])}", soft_wrap=True)
    console.print(f"  {escape(record['feed'])} · language {record['language'] or '-'}")
    console.print(f"  published {when(record['published'])}")
    console.print(f"  first seen {when(record['first_seen'])}")
    if record["full_text_error"]:
        console.print(f"  full text not fetched: {escape(record['full_text_error'])}")
    if not with_text:
        sizes = f"{len(record['summary']):,} and {len(record['content']):,} characters"
        console.print(f"  summary and text: {sizes} [dim](--text shows them)[/]")
    if len(record["revisions"]) > 1:
        console.print(f"  {len(record['revisions'])} revisions (the outlet edited it):")
        for rev in record["revisions"]:
            console.print(f"    {rev['revision']}. {escape(rev['title'])} [dim]{rev['seen']}[/]")
    for copy in record["carried_by"]:
        since = copy["first_seen"]
        console.print(f"  also carried by {escape(copy['feed'])} [dim]since {since}[/]")
    story = record["story"]
    if story:
        console.print(f"  story #{record['story_id']}, with {len(story)} other article(s):")
        for other in story:
            console.print(f"    #{other['id']} {escape(other['feed'])}: {escape(other['title'])}")

    console.print()
    if not record["matches"]:
        console.print("Matched no rule.")
    for match in record["matches"]:
        tags = f" [{', '.join(match['tags'])}]" if match["tags"] else ""
        flags = " URGENT" if match["priority"] == "urgent" else ""
        state = ""
        if match["withdrawn_revision"]:
            state = (
                f"  withdrawn: revision {match['withdrawn_revision']} no longer matches;"
                f" the words below are revision {match['evidence_revision']}'s"
            )
        elif match["backlog"]:
            state = "  archive: read with the feed the first time, not sent"
        console.print(
            Text.assemble(
                "Matched ",
                (match["rule_id"], "cyan"),
                plain(tags),
                (flags, "bold red"),
                f"  score {match['score']:g}  {when(match['matched_at'])}",
                (state, "magenta"),
            ),
            soft_wrap=True,
        )
        console.print(Text("    ").append(highlighted(match["snippet"])), soft_wrap=True)
        print_evidence((e["term"], e["field"], e["text"]) for e in match["evidence"])
    if with_text:
        for label, field in (("Summary", "summary"), ("Text", "content")):
            console.print()
            console.print(f"[bold]{label}[/]")
            # As stored, but not a terminal's controls (text stored before they were dropped)
            console.print(Text(plain(record[field]) or "(none)"), soft_wrap=True)
    if record["mentions"]:
        named = ", ".join(f"{entity} ×{n}" for entity, n in record["mentions"].items())
        console.print(f"Entities: {escape(named)}")

    console.print()
    if not record["deliveries"]:
        console.print("Carried by no digest or webhook.")
    for d in record["deliveries"]:
        status = (
            f"sent {when(d['sent'])}"
            if d["status"] == "sent"
            else f"{d['status']}, made {when(d['created'])}"
        )
        error = f"  last error: {escape(d['last_error'])}" if d["last_error"] else ""
        # As `deliveries list` names it: an article.withdrawn event is not the match again.
        kind = f"{d['kind']} ({d['event'].removeprefix('article.')})" if d["event"] else d["kind"]
        console.print(
            f"Delivery #{d['id']} {kind} to {escape(d['target'])}: {status}"
            f" [dim](rules {escape(' '.join(d['rules']))})[/]{error}",
            soft_wrap=True,
        )


_CSV_COLUMNS = (
    "article_id", "story_id", "published", "dated", "first_seen", "feed", "outlets", "language",
    "title", "url", "rule_id", "tags", "priority", "score", "withdrawn_revision", "backlog",
    "words", "snippet",
)  # fmt: skip


@articles.command("export")
@click.option(
    "--since",
    default="30d",
    show_default=True,
    help='From when: a date (2026-11-01), a time, or a duration ago ("7d"); 0 for all.',
)
@click.option(
    "--until", default=None, help="Until when (not included): a date, a time or a duration ago."
)
@click.option(
    "--by",
    type=click.Choice(["published", "first-seen"]),
    default="published",
    show_default=True,
    help="Which time --since and --until look at: the outlet's, or when Vigie first saw it.",
)
@click.option("--rule", "rule_ids", multiple=True, help="Only this rule's matches (repeatable).")
@click.option(
    "--tag", "tags", multiple=True, help="Only matches of rules with this tag (repeatable)."
)
@click.option(
    "--feed",
    "feeds",
    multiple=True,
    help="Only articles this feed carried (stories it ran): its name, title, id or address"
    " (repeatable).",
)
@click.option(
    "--language",
    "languages",
    multiple=True,
    help='Only articles in this language: "fr" (fr-CA too), "en" (repeatable).',
)
@click.option(
    "--withdrawn", is_flag=True, help="Also matches that a later revision of the article undid."
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="JSON Lines, an article a line with its matches; or CSV, a match a row.",
)
@click.option(
    "--stories",
    is_flag=True,
    help="A story a line (or CSV row) instead: once however many outlets ran it, with the"
    " rules of its matches and its matched articles' ids; --since and --until look at when"
    " it broke.",
)
@click.option(
    "--excel",
    is_flag=True,
    help="CSV for Excel: starts with a byte order mark, without which Excel shows accents"
    " garbled (é as Ã©).",
)
@config_option
@operator_errors
def articles_export(
    since: str,
    until: str | None,
    by: str,
    rule_ids: tuple[str, ...],
    tags: tuple[str, ...],
    feeds: tuple[str, ...],
    languages: tuple[str, ...],
    withdrawn: bool,
    output_format: str,
    stories: bool,
    excel: bool,
    config_path: str,
) -> None:
    """Write the stored articles that matched, with their matches and the words that made each
    match, to standard output: for a spreadsheet, a notebook or an archive. Undated items
    have `dated` false (their `published` is when Vigie first saw them); `outlets` are the
    other feeds that carried the same article; `story_id` groups the copies of one event.
    With --stories, the stories that matched instead, a story once however many outlets ran
    it."""
    if excel and output_format != "csv":
        raise VigieError("--excel is for --format csv: a JSON Lines file is read by programs")
    now = datetime.now(UTC)
    start = None if parse_duration(since) == 0 else parse_moment(since, now, "--since")
    end = parse_moment(until, now, "--until") if until is not None else None
    config = load_config(config_path)
    store = open_store(config, must_exist=True)
    try:
        feed_ids = [_stored_feed_id(store, config, feed) for feed in feeds]
    except VigieError:
        store.close()
        raise
    exported = matched = 0
    # UTF-8 whatever the terminal's or the locale's encoding (Windows writes a redirected
    # stdout in its ANSI code page): a French or Arabic title stopped the export halfway with
    # a UnicodeEncodeError, and a file's encoding must not depend on where it was made.
    sys.stdout.flush()
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="", write_through=True)
    try:
        query = store.matched_stories if stories else store.matched_articles
        found = query(
            start,
            end,
            by="first_seen" if by == "first-seen" else "published",
            rule_ids=rule_ids,
            tags=tags,
            withdrawn=withdrawn,
            feed_ids=feed_ids,
            languages=languages,
        )
        if output_format == "csv":
            if excel:
                out.write("\ufeff")  # how Excel knows a CSV file is UTF-8
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(_STORY_CSV_COLUMNS if stories else _CSV_COLUMNS)
        for record in found:
            exported += 1
            if stories:
                matched += len(record["matched_article_ids"])
            else:
                matched += len(record["matches"])
                for match in record["matches"]:
                    match["snippet"], match["highlights"] = split_highlights(match["snippet"])
                del record["feed_id"]
            if output_format == "jsonl":
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            elif stories:
                writer.writerow([_inert(cell) for cell in _story_csv_cells(record)])
            else:
                writer.writerows(_csv_rows(record))
        stored_rules, stored_tags = store.matched_rules_and_tags() if rule_ids or tags else ((), ())
        unknown = [f"rule {r!r}" for r in rule_ids if r not in stored_rules]
        unknown += [f"tag {t!r}" for t in tags if t not in stored_tags]
    finally:
        store.close()
        out.detach()  # sys.stdout stays open
    for name in unknown:
        # A mistyped --rule or --tag (or "Calais" for "calais") exported nothing, silently,
        # as if nothing had matched.
        err_console.print(
            f"warning: no stored match has {name} (names are compared exactly, case included)",
            markup=False,
        )
    if stories:
        said = f"{counted(exported, 'story')} ({counted(matched, 'matched article')})"
    else:
        said = f"{counted(exported, 'article')}, {counted(matched, 'match')}"
    err_console.print(f"{said} exported", markup=False)


def _stored_feed_id(store: Store, config: Config, given: str) -> int:
    """The id of the stored feed --feed names (stored_feed): an error, with a did-you-mean,
    when none has it."""
    found = stored_feed(store, config, given)
    if found is None:
        rows = store.feeds(include_retired=True)
        names = {name for row in rows for name in (row["name"], row["title"]) if name}
        raise VigieError(
            f"--feed {given!r}: no stored feed has that name, title, id or address"
            + did_you_mean(given, names)
        )
    return found["id"]


def _csv_rows(article: dict[str, Any]) -> list[list[Any]]:
    """A row per match: a spreadsheet's filters and pivot tables work on rows."""
    return [[_inert(cell) for cell in _csv_cells(article, match)] for match in article["matches"]]


# A cell a spreadsheet reads as a formula: a feed's title "=HYPERLINK(...)" would run as one
# when the export is opened (OWASP's CSV injection). A leading ' makes it text, shown as is.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert(cell: Any) -> Any:
    return "'" + cell if isinstance(cell, str) and cell.startswith(_FORMULA_START) else cell


_STORY_CSV_COLUMNS = (
    "story_id", "first_published", "dated", "last_updated", "first_seen", "last_seen",
    "first_article_id", "feed", "title", "url", "articles", "outlet_count", "outlets", "rules",
    "tags", "matched_article_ids",
)  # fmt: skip


def _story_csv_cells(story: dict[str, Any]) -> list[Any]:
    """A story's row: its JSON Lines record, each list in one cell (outlets, whose names may
    have spaces, separated by "; ", as an article's outlets; the others by spaces)."""
    return [
        ("; " if column == "outlets" else " ").join(map(str, value))
        if isinstance(value := story[column], list)
        else value
        for column in _STORY_CSV_COLUMNS
    ]


def _csv_cells(article: dict[str, Any], match: dict[str, Any]) -> list[Any]:
    return [
        article["id"],
        article["story_id"],
        article["published"],
        article["dated"],
        article["first_seen"],
        article["feed"],
        "; ".join(article["outlets"]),
        article["language"],
        article["title"],
        article["url"],
        match["rule_id"],
        " ".join(match["tags"]),
        match["priority"],
        match["score"],
        match["withdrawn_revision"],
        match["backlog"],
        "; ".join(dict.fromkeys(e["text"] for e in match["evidence"])),
        match["snippet"],
    ]
