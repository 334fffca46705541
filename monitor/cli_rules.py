"""`vigie rules check`, and what `rules test` and `rules backtest` share: the rules loaded,
the index of the rules tried, the feeds that carry an article."""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

import click
from rich.text import Text

from .cli_common import (
    config_option,
    console,
    did_you_mean,
    err_console,
    open_database,
    rules_in_force,
)
from .config import Config, load_config
from .errors import ConfigError, RuleError, VigieError
from .language import detect_language
from .records import Article, Evidence, Match
from .rules.document import Document
from .rules.files import RuleSet, load_rules
from .rules.index import RuleIndex, compile_rule
from .rules.model import Rule
from .rules.parser import QuerySyntaxError
from .store import Store
from .text import (
    counted,
    normalise_space,
)


@click.group()
def rules() -> None:
    """Check, test and backtest rule files."""


def _print_problem(problem: RuleError, kind: str) -> None:
    console = err_console
    colour = "red" if kind == "error" else "yellow"
    console.print(Text.assemble((f"{kind}: ", colour), str(problem)), soft_wrap=True)
    if problem.pointer():
        console.print(problem.pointer(), markup=False, highlight=False)


@rules.command("check")
@config_option
def rules_check(config_path: str) -> None:
    """Validate every rule file: syntax, unknown entities, duplicate ids, too-broad rules."""
    try:
        config = load_config(config_path)
    except VigieError as e:
        err_console.print(f"error: {e}", markup=False, soft_wrap=True)
        sys.exit(1)
    loaded = load_rules(config.rules.paths)
    if not loaded.files and not loaded.errors:  # a folder with none (a missing path is an error)
        paths = ", ".join(map(str, config.rules.paths))
        loaded.errors.append(RuleError(paths, 0, 0, "no rule files (*.toml) found (rules.paths)"))
    try:  # the stored articles and feeds, when there is a database, tell more
        if loaded.ok and config.database.exists():
            loaded.warnings.extend(_broad_on_stored_articles(loaded, config))
        if loaded.ok:
            for key, message in config.delivery.undeliverable(loaded.rules):
                loaded.warnings.append(RuleError(config_path, 0, 0, f"{key}: {message}"))
            loaded.warnings.extend(_scoped_to_unknown_feeds(loaded, config))
    except ConfigError as e:  # storage.database names something that is not a database
        err_console.print(f"error: {e}", markup=False, soft_wrap=True)
        sys.exit(1)
    for error in loaded.errors:
        _print_problem(error, "error")
    for warning in loaded.warnings:
        _print_problem(warning, "warning")
    counts = (
        (len(loaded.files), "rule file"),
        (len(loaded.rules), "rule"),
        (len(loaded.entities), "entity"),
        (len(loaded.errors), "error"),
        (len(loaded.warnings), "warning"),
    )
    files, *others = (counted(n, noun) for n, noun in counts)
    console.print(f"{files}: {', '.join(others)}")
    if loaded.errors:
        _say_what_stays_in_force(config)
        sys.exit(1)


def _say_what_stays_in_force(config: Config) -> None:
    """Files that do not load change nothing in a running service (`vigie status` says the
    same): "4 rules, 1 error" was read as the service having lost a rule."""
    if not config.database.exists():
        return
    try:
        store = open_database(config)
    except VigieError:  # not a database: the errors above are what this command is for
        return
    try:
        in_force = rules_in_force(store, config.database)
    finally:
        store.close()
    if in_force is not None:
        console.print(
            f"The running service keeps the {counted(in_force.rules, 'rule')} it loaded at"
            f" {in_force.loaded:%Y-%m-%d %H:%M} UTC until these files load.",
            soft_wrap=True,
        )


def _scoped_to_unknown_feeds(loaded: RuleSet, config: Config) -> list[RuleError]:
    """Rules scoped to a feed name or feed tag that neither config.toml nor the database has:
    a typo there keeps the rule from ever matching, without an error."""
    names = {f.name for f in config.feeds if f.name}
    tags = {t for f in config.feeds for t in f.tags}
    if config.database.exists():
        store = open_database(config)
        try:
            for row in store.feeds():
                names.update(n for n in (row["name"], row["title"]) if n)
                tags.update(json.loads(row["tags"] or "[]"))
        finally:
            store.close()
    found = []
    for rule in loaded.rules:
        scopes = (("feeds", rule.feeds, names), ("feed_tags", rule.feed_tags, tags))
        for key, values, known in scopes:
            found += [
                RuleError(
                    rule.path,
                    rule.line,
                    1,
                    f"rule {rule.id!r}.{key}: no feed in config.toml or the database has {v!r}"
                    + (
                        " (feeds takes a feed's name, not its address)"
                        if key == "feeds" and "://" in v
                        else did_you_mean(v, known)
                    ),
                )
                for v in values
                if v not in known
            ]
    return found


BROAD_SAMPLE = 500  # recent stored articles a rule is tried on by `rules check`
BROAD_SHARE = 0.5  # a rule matching more than this share of them is reported


def _broad_on_stored_articles(loaded: RuleSet, config: Config) -> list[RuleError]:
    """Rules that match most of the recently stored articles: almost certainly too broad."""
    store = open_database(config)
    try:
        sample = store.recent_articles(BROAD_SAMPLE)
        carriers = Carriers.of_articles(store, sample)
    finally:
        store.close()
    if len(sample) < 20:
        return []
    index = loaded.index()
    counts: dict[str, int] = {}
    for article in sample:
        for match in carriers.match(index, article)[0]:
            counts[match.rule_id] = counts.get(match.rule_id, 0) + 1
    warnings = []
    for compiled in loaded.compiled:
        rule, share = compiled.rule, counts.get(compiled.rule.id, 0) / len(sample)
        if share > BROAD_SHARE:
            warnings.append(
                RuleError(
                    rule.path,
                    rule.line,
                    1,
                    f"rule {rule.id!r} matches {share:.0%} of the {len(sample)} most recent stored "
                    "articles: it would alert on almost everything",
                )
            )
    return warnings


def loaded_rules(
    config: Config, strict: bool = True, only: Collection[str] | None = None
) -> RuleSet:
    """The rule files, loaded. Strict, any error stops the command; otherwise the rules that
    loaded are used and the first error is a warning: one broken rule, anywhere, kept an
    operator from trying another rule, or a --query, while writing it. `only`: the ids of
    the rules compiled, as load_rules takes them."""
    loaded = load_rules(config.rules.paths, only=only)
    if loaded.errors and strict:
        raise _first_error(loaded)
    if loaded.errors:
        _print_problem(_first_error(loaded), "warning")
        err_console.print(
            "  (the rules in error are left out here; `vigie rules check` lists every error)",
            markup=False,
        )
    return loaded


def _first_error(loaded: RuleSet) -> RuleError:
    first = loaded.errors[0]
    more = len(loaded.errors) - 1
    return RuleError(
        first.path,
        first.line,
        first.column,
        first.message + (f" (and {more} more; run `vigie rules check`)" if more else ""),
        first.source_line,
    )


@dataclass(frozen=True)
class Carriers:
    """What a stored article is matched with, as when it was polled: its feed's tags, and the
    names and tags of the other feeds that carry it too, or rules scoped by `feeds` or
    `feed_tags` would seem to match nothing (or less than the service matched)."""

    tags: dict[int, tuple[str, ...]]  # feed id -> its tags
    others: dict[int, tuple[tuple[str, ...], tuple[str, ...]]]  # article id -> names, tags

    @classmethod
    def of(cls, store: Store, where: str, params: Sequence[Any]) -> Carriers:
        """For the stored articles `where` selects (Store.carriers_of), those being matched:
        not every alias ever stored (300,000 of them made `rules check` 2.4 times as slow)."""
        rows = store.feeds(include_retired=True)  # their stored articles are matched too
        tags = {row["id"]: tuple(json.loads(row["tags"] or "[]")) for row in rows}
        return cls(tags, store.carriers_of(where, params))

    @classmethod
    def of_articles(cls, store: Store, articles: Sequence[Article]) -> Carriers:
        ids = [a.id for a in articles if a.id is not None]
        return cls.of(store, f"al.article_id IN ({','.join('?' * len(ids))})", ids)

    def match(self, index: RuleIndex, article: Article) -> tuple[list[Match], list[Evidence]]:
        return index.match(article, *self._feeds(article))

    def document(self, article: Article) -> Document:
        """The article as the matcher reads it, with the feeds that carry it."""
        return Document(article, *self._feeds(article))

    def _feeds(self, article: Article) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(the tags of every feed that carries it, the names of those but its own)."""
        tags = self.tags.get(article.feed_id, ())
        names, more = self.others.get(article.id or 0, ((), ()))
        if not names:
            return tags, ()
        return tuple(dict.fromkeys((*tags, *more))), names


def as_polled(article: Article) -> Article:
    """The article's text as polling leaves it (spacing, composed accents: see
    normalise_space) and its language, declared or else detected: rules see the same article
    here as in the service."""
    if article.id is not None:
        return article  # stored: polled already
    title, summary, content = map(
        normalise_space, (article.title, article.summary, article.content)
    )
    article = replace(article, title=title, summary=summary, content=content)
    return article if article.language else replace(article, language=detect_language(article.text))


def compiled_for(rule_id: str | None, query: str | None) -> frozenset[str] | None:
    """The rules a command trying `rule_id` or `query` compiles (None: every rule): a draft
    query needs the entities alone, one rule itself alone."""
    if query is not None:
        return frozenset()
    return frozenset({rule_id}) if rule_id is not None else None


def index_for(
    config: Config, rule_id: str | None, query: str | None, loaded: RuleSet | None = None
) -> RuleIndex:
    loaded = loaded or loaded_rules(config, strict=False, only=compiled_for(rule_id, query))
    if query is not None:
        rule = Rule(id="query", query=query, name="--query", stem=False)
        try:
            compiled = compile_rule(rule, loaded.entities)
        except QuerySyntaxError as e:
            raise _query_error(query, e) from None
        # What `rules check` would warn of (`near/5` searched as a word...): said before the
        # "no match" it explains.
        for warning in compiled.warnings:
            _print_problem(_query_error(query, warning), "warning")
        return RuleIndex([compiled], loaded.entities)
    if rule_id is not None:
        # A rule named on the command line is tried even when its file disables it.
        chosen = [
            compile_rule(replace(r, enabled=True), loaded.entities, loaded.stats, loaded.cache)
            for r in loaded.rules
            if r.id == rule_id
        ]
        if not chosen and loaded.errors:  # maybe in a file, or the rule, that did not load
            raise _first_error(loaded)
        if not chosen:
            raise _no_such_rule(rule_id, {r.id for r in loaded.rules})
        return RuleIndex(chosen, loaded.entities, loaded.stats, loaded.cache)
    return loaded.index()


IDS_NAMED = 20  # rule ids an unknown one is listed with; more: the closest, and how many


def _no_such_rule(rule_id: str, known: set[str]) -> VigieError:
    """A mistyped rule id, with the ids there are: all of them when few; else the closest
    (a typo among 100,000 rules printed their 100,000 ids, 1.4 MB on one line)."""
    if len(known) <= IDS_NAMED:
        return VigieError(f"no rule with id {rule_id!r} (known: {', '.join(sorted(known))})")
    return VigieError(
        f"no rule with id {rule_id!r} among the {len(known):,} rules in the files"
        + did_you_mean(rule_id, known)
    )


def _query_error(query: str, error: QuerySyntaxError) -> RuleError:
    """A problem in --query, located as in a rule file (the line, a caret under the column)."""
    lines = query.splitlines()
    line = lines[error.line - 1] if 0 < error.line <= len(lines) else ""
    return RuleError("--query", error.line, error.column, error.message, line)
