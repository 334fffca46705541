"""`vigie rules backtest`: run the rule files, or a draft query, over stored articles, and say
what an edit adds and removes, each article with the words that made it match."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import click
from rich.text import Text

from .cli_common import (
    config_option,
    console,
    err_console,
    open_database,
    operator_errors,
    parse_moment,
)
from .cli_rules import IDS_NAMED, Carriers, compiled_for, index_for, loaded_rules
from .config import load_config, parse_duration
from .deliver.outbox import queue_webhooks, queue_withdrawals
from .errors import VigieError
from .records import Evidence, Match
from .store import iso
from .text import counted, normalise_space


@click.command("backtest")
@click.argument("rule_id", required=False)
@click.option(
    "--query",
    "query",
    help='A query to run instead of the rule files\' rules, e.g. "small boat*" NEAR/5 drown*.',
)
@click.option(
    "--since",
    default="30d",
    show_default=True,
    help="From when, by time first seen: a date (2026-11-01), a time, or a duration ago"
    ' ("7d"); 0 for every stored article.',
)
@click.option(
    "--samples",
    type=click.IntRange(min=0),
    help="Sample titles per rule (3), or matches listed for --query (10).",
)
@click.option(
    "--apply",
    "apply_changes",
    is_flag=True,
    help="Replace the stored matches of these rules with the backtest's result.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@config_option
def rules_backtest(
    rule_id: str | None,
    query: str | None,
    since: str,
    samples: int | None,
    apply_changes: bool,
    as_json: bool,
    config_path: str,
) -> None:
    """Run rules over stored articles: counts, samples, and what would be added or removed.
    With --query, a query tried over the archive as a rule would be (nothing to apply)."""

    @operator_errors
    def body() -> None:
        if query is not None and (rule_id is not None or apply_changes):
            raise VigieError(
                "--query runs a query of its own: give it without a RULE_ID, and without --apply"
            )
        config = load_config(config_path)
        listed = samples if samples is not None else 10 if query is not None else 3
        now = datetime.now(UTC)
        # 0: every stored article, as storage.retention = 0 keeps every one.
        start = None if parse_duration(since) == 0 else parse_moment(since, now, "--since")
        # --apply with a file in error could store matches the service, keeping its last
        # good rules, does not make: it checks every rule.
        only = None if apply_changes else compiled_for(rule_id, query)
        loaded = loaded_rules(config, strict=apply_changes, only=only)
        # A rule named on the command line is tried even when disabled (see index_for), but
        # its matches are not stored: the service would not make them, yet deliver them.
        if apply_changes and any(r.id == rule_id and not r.enabled for r in loaded.rules):
            raise VigieError(
                f"rule {rule_id!r} is disabled in its file: --apply would store matches the "
                "service does not make; enable the rule first"
            )
        index = index_for(config, rule_id, query, loaded)
        store = open_database(config, must_exist=True)
        carriers = (
            Carriers.of(
                store,
                "al.article_id IN (SELECT id FROM articles WHERE first_seen >= ?)",
                [iso(start)],
            )
            if start
            else Carriers.of(store, "1", [])
        )
        rule_ids = [c.rule.id for c in index.rules]
        found: dict[str, dict[int, Match]] = {r: {} for r in rule_ids}
        titles: dict[int, str] = {}
        published: dict[int, datetime] = {}  # of those matched: samples are listed newest first
        article_ids = []
        # --apply rewrites those that changed: an entity edit reached old articles' matches,
        # while the mentions table kept the entities as they were when each was stored. Only
        # the changed are kept (a research archive holds millions of articles).
        mentions_of: dict[int, list] = {}
        for article in store.articles_since(start):
            article_ids.append(article.id)
            matches, mentions = carriers.match(index, article)
            if apply_changes:
                places = {(e.entity, e.field, e.start, e.end) for e in mentions if e.entity}
                if places != store.mention_places(article.id):  # type: ignore[arg-type]
                    mentions_of[article.id] = mentions  # type: ignore[index]
            for m in matches:
                found[m.rule_id][article.id] = m  # type: ignore[index]
                titles[article.id] = article.title  # type: ignore[index]
                published[article.id] = article.published or _UNDATED  # type: ignore[index]
        stored: dict[str, set[int]] = {r: set() for r in rule_ids}
        stored_words: dict[tuple[str, int], list[str]] = {}  # what a match going had matched
        for row in store.matches_for(rule_ids, start):
            stored[row["rule_id"]].add(row["article_id"])
            titles.setdefault(row["article_id"], row["title"])
            if row["article_id"] not in found[row["rule_id"]]:
                evidence = [Evidence(**e) for e in json.loads(row["evidence"] or "[]")]
                stored_words[row["rule_id"], row["article_id"]] = words_of(evidence)
        report = []
        for rid in rule_ids:
            now_ids = set(found[rid])
            newest = sorted(now_ids, key=lambda i: (published[i], i), reverse=True)
            report.append(
                {
                    "rule_id": rid,
                    "articles": len(article_ids),
                    "matches": len(now_ids),
                    "added": sorted(now_ids - stored[rid]),
                    "removed": sorted(stored[rid] - now_ids),
                    "samples": [
                        {"id": i, "title": titles[i], "words": words_of(found[rid][i].evidence)}
                        for i in newest[:listed]
                    ],
                }
            )
        if query is not None:  # nothing stored to compare with: what it matches, newest first
            [row] = report
            del row["added"], row["removed"]
            row["rule_id"] = "--query"
        if as_json:
            click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        elif query is not None:
            _print_query_backtest(report[0], len(article_ids), since)
        else:
            words = {
                (rid, i): words_of(m.evidence) for rid in rule_ids for i, m in found[rid].items()
            }
            _print_backtest(report, titles, words | stored_words, len(article_ids), since)
        if apply_changes:
            all_matches = [m for by_article in found.values() for m in by_article.values()]
            queued = 0
            with store.transaction():  # the matches and their webhook deliveries, or neither
                replaced = store.replace_matches(rule_ids, article_ids, all_matches, now)
                added, removed = replaced.new, replaced.removed
                webhooks = config.delivery.webhooks
                by_article: dict[int, list[Match]] = {}
                for match in added:
                    by_article.setdefault(match.article_id, []).append(match)
                for article_id, new in sorted(by_article.items()):
                    queued += queue_webhooks(store, webhooks, article_id, new, now)
                # Webhooks that asked for withdrawals are told of those the edit made, and of
                # matches it restored, as a correction's would be.
                changed: dict[int, tuple[list[str], list[str]]] = {}
                for article_id, rule in replaced.withdrawn:
                    changed.setdefault(article_id, ([], []))[0].append(rule)
                for article_id, rule in replaced.restored:
                    changed.setdefault(article_id, ([], []))[1].append(rule)
                for article_id, (gone, back) in sorted(changed.items()):
                    holding = [m for of_rule in found.values() if (m := of_rule.get(article_id))]
                    queued += queue_withdrawals(
                        store, webhooks, article_id, holding, gone, back, now
                    )
                for article_id, mentions in mentions_of.items():
                    store.replace_mentions(article_id, mentions)
            # With --json, stdout holds the report alone, for the script reading it.
            (err_console if as_json else console).print(
                f"Applied: stored matches of {counted(len(rule_ids), 'rule')} now follow the rule"
                f" files; {counted(len(added), 'new match')}, {removed} removed"
                + (f", {counted(queued, 'webhook delivery')} queued" if queued else "")
                + (
                    f"; the entity mentions of {counted(len(mentions_of), 'article')} now follow"
                    " today's entities."
                    if mentions_of
                    else "."
                ),
                markup=False,
                soft_wrap=True,
            )

    body()


def _print_stored(total: int, since: str) -> None:
    stored = counted(total, "stored article")
    seconds = parse_duration(since)
    if seconds == 0:
        console.print(f"{stored}, all of them", markup=False)
    elif seconds is None:  # a date or a time
        console.print(f"{stored} first seen since {since}", markup=False)
    else:
        console.print(f"{stored} first seen in the last {since}", markup=False)


def _print_query_backtest(row: dict, total: int, since: str) -> None:
    _print_stored(total, since)
    console.print(Text.assemble(("--query", "cyan"), f": {counted(row['matches'], 'match')}"))
    for sample in row["samples"]:
        console.print(
            _listed(f"  #{sample['id']} {sample['title']}", sample["words"]), soft_wrap=True
        )
    if row["matches"] > len(row["samples"]):
        more = row["matches"] - len(row["samples"])
        console.print(f"  and {more} more (--samples N lists more, --json)", markup=False)


def _print_backtest(
    report: list[dict],
    titles: dict[int, str],
    words: dict[tuple[str, int], list[str]],
    total: int,
    since: str,
) -> None:
    _print_stored(total, since)
    if len(report) == 1:
        _print_rule(report[0], titles, words)
        return
    # Of every rule: those that match nothing and had nothing stored in one line, at the end
    # (25 lines of "0 matches, +0 / -0" hid the 9 rules an edit changed); and of many rules,
    # those matching as stored counted there too: with 100,000 rules, the 3 an edit changed
    # were among 16,000 lines of samples.
    idle = [r["rule_id"] for r in report if not (r["matches"] or r["removed"])]
    same = [r for r in report if r["matches"] and not (r["added"] or r["removed"])]
    summed = len(same) > IDS_NAMED
    listed = [r for r in report if r["added"] or r["removed"] or (r["matches"] and not summed)]
    for row in listed:
        _print_rule(row, titles, words)
    if summed:
        if not listed:
            console.print("No rule matches other articles than its stored matches.", markup=False)
        matches = sum(r["matches"] for r in same)
        console.print(
            f"Matching as stored: {counted(len(same), 'rule')} ({counted(matches, 'match')}),"
            " not listed (`vigie rules backtest RULE` lists one, --json every one)",
            markup=False,
            soft_wrap=True,
        )
    if idle:
        named = ", ".join(idle) if len(idle) <= IDS_NAMED else counted(len(idle), "rule")
        console.print(f"No match, and none stored: {named}", markup=False, soft_wrap=True)


def _print_rule(row: dict, titles: dict[int, str], words: dict[tuple[str, int], list[str]]) -> None:
    """A rule's line, its samples, and the articles it adds and removes."""
    # soft_wrap: piped, a title cut at 80 columns went on at the start of the next line.
    console.print(
        Text.assemble(
            (row["rule_id"], "cyan"),
            f": {counted(row['matches'], 'match')}, ",
            (f"+{len(row['added'])}", "green"),
            " / ",
            (f"-{len(row['removed'])}", "red"),
            " compared with stored matches",
        ),
        soft_wrap=True,
    )
    for sample in row["samples"]:  # ids, for `vigie articles show ID`
        line = f"    #{sample['id']} {sample['title']}"
        console.print(_listed(line, sample["words"]), soft_wrap=True)
    for kind, ids in (("+", row["added"]), ("-", row["removed"])):
        for article_id in ids[:_CHANGES_LISTED]:
            line = f"  {kind} #{article_id} {titles.get(article_id, '')}"
            shown = _listed(line, words.get((row["rule_id"], article_id), []))
            console.print(shown, soft_wrap=True)
        if len(ids) > _CHANGES_LISTED:  # "+7" above five lines read as a miscount
            console.print(
                f"  {kind} and {len(ids) - _CHANGES_LISTED} more (--json lists them all)",
                markup=False,
            )


def words_of(evidence: Sequence[Evidence]) -> list[str]:
    """The words that made a match, each once, as first written (an entity's context words,
    and words inside words already shown, such as the protest of counter-protest, left out):
    what a backtest line shows beside a title, so that an analyst sees why an article is
    added without a `rules test` of each."""
    words: dict[str, str] = {}
    reach: dict[str, int] = {}  # evidence comes in reading order: a word inside one shown
    for e in evidence:
        if e.term.endswith(" context") or e.end <= reach.get(e.field, -1):
            continue
        reach[e.field] = e.end
        words.setdefault(normalise_space(e.text).casefold(), normalise_space(e.text))
    return list(words.values())


def _listed(line: str, words: list[str]) -> Text:
    """A backtest line, its matched words after it in brackets, dim: "+ #205 The Women's
    March…  [held, protested]"; removed ones show what they had matched."""
    shown = ", ".join(words[:_WORDS_SHOWN]) + (", …" if len(words) > _WORDS_SHOWN else "")
    text = Text(line)
    if shown:
        text.append(f"  [{shown}]", style="dim")
    return text


_WORDS_SHOWN = 4  # of a backtest line
_CHANGES_LISTED = 5  # added and removed articles listed per rule
_UNDATED = datetime.min.replace(tzinfo=UTC)  # an article without a date: listed after the dated
