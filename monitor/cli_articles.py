"""`vigie articles`: search stored articles, and show everything stored about one."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

import click
from rich.text import Text

from .cli_common import (
    ago,
    config_option,
    console,
    err_console,
    escape,
    highlighted,
    open_store,
    operator_errors,
    plain,
    print_evidence,
)
from .config import load_config
from .errors import VigieError
from .store import parse_iso
from .store.articles import fts_words


@click.group()
def articles() -> None:
    """Search stored articles; show one with its matches and deliveries."""


@articles.command("search")
@click.argument("query")
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most articles shown.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@config_option
@operator_errors
def articles_search(query: str, limit: int, as_json: bool, config_path: str) -> None:
    """Full-text search over stored articles, best first. The query is SQLite FTS5's, not the
    rule language: words, "phrases", OR, and NOT between two terms (calais NOT football);
    `vigie rules test --article ID` tries a rule on a stored article."""
    config = load_config(config_path)
    if not any(c.isalnum() for c in query):  # '*' got SQLite's "unknown special query"
        raise VigieError(f"search query {query!r}: nothing to search for: give a word")
    store = open_store(config, must_exist=True)
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
        # Blank lines of the text left the snippet in pieces under its title.
        console.print(Text("  ").append(highlighted(" ".join(row["snippet"].split()))))
    if not rows:
        console.print("No article matches.")


@articles.command("show")
@click.argument("article_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@config_option
@operator_errors
def articles_show(article_id: int, as_json: bool, config_path: str) -> None:
    """Everything stored about article ARTICLE_ID (the `#id` of `articles search`, webhooks'
    `article.id`): its revisions, the other outlets of its story, the rules it matched and the
    words that made each match, the entities it names, and the digests and webhooks that
    carried it. To try today's rules on it: `vigie rules test --article ARTICLE_ID`."""
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
    _print_record(record, datetime.now(UTC))


def _print_record(record: dict[str, Any], now: datetime) -> None:
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
            state = f"  withdrawn: revision {match['withdrawn_revision']} no longer matches"
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
        console.print(
            f"Delivery #{d['id']} {d['kind']} to {escape(d['target'])}: {status}"
            f" [dim](rules {escape(' '.join(d['rules']))})[/]{error}",
            soft_wrap=True,
        )
