"""`vigie rules check | test | backtest`: operator tools to try rules before they go live."""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from .cli_common import (
    config_option,
    console,
    err_console,
    highlighted,
    open_database,
    operator_errors,
    parse_moment,
    plain,
    print_evidence,
)
from .config import Config, load_config, parse_duration, resolve_feed_url
from .deliver.outbox import queue_webhooks
from .errors import ConfigError, FetchError, RuleError, VigieError
from .fetch import fetch_feed, make_session
from .language import detect_language
from .parse import parse_feed
from .records import Article, Evidence, Feed, Match
from .rules.document import Document
from .rules.files import RuleSet, load_rules
from .rules.index import RuleIndex, compile_rule
from .rules.model import Rule
from .rules.parser import QuerySyntaxError
from .rules.why import why_not
from .store import Store, iso
from .text import (
    NotUtf8Error,
    base_language,
    counted,
    html_to_text,
    language_code,
    normalise_space,
    read_utf8,
    without_lone_surrogates,
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
        sys.exit(1)


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
                    + _did_you_mean(v, known),
                )
                for v in values
                if v not in known
            ]
    return found


def _did_you_mean(value: str, known: set[str]) -> str:
    """' (did you mean 'Rivers Daily'?)' for a name or tag nearly one that is known (in
    another case, or a letter or two off), as an unknown entity gets; else ''."""
    choices = sorted(known)
    close = [k for k in choices if k.casefold() == value.casefold()]
    close = close or difflib.get_close_matches(value, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


BROAD_SAMPLE = 500  # recent stored articles a rule is tried on by `rules check`
BROAD_SHARE = 0.5  # a rule matching more than this share of them is reported


def _broad_on_stored_articles(loaded: RuleSet, config: Config) -> list[RuleError]:
    """Rules that match most of the recently stored articles: almost certainly too broad."""
    store = open_database(config)
    try:
        sample = store.recent_articles(BROAD_SAMPLE)
        carriers = _Carriers.of_articles(store, sample)
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


def _loaded_rules(config: Config, strict: bool = True) -> RuleSet:
    """The rule files, loaded. Strict, any error stops the command; otherwise the rules that
    loaded are used and the first error is a warning: one broken rule, anywhere, kept an
    operator from trying another rule, or a --query, while writing it."""
    loaded = load_rules(config.rules.paths)
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
class _Carriers:
    """What a stored article is matched with, as when it was polled: its feed's tags, and the
    names and tags of the other feeds that carry it too, or rules scoped by `feeds` or
    `feed_tags` would seem to match nothing (or less than the service matched)."""

    tags: dict[int, tuple[str, ...]]  # feed id -> its tags
    others: dict[int, tuple[tuple[str, ...], tuple[str, ...]]]  # article id -> names, tags

    @classmethod
    def of(cls, store: Store, where: str, params: Sequence[Any]) -> _Carriers:
        """For the stored articles `where` selects (Store.carriers_of), those being matched:
        not every alias ever stored (300,000 of them made `rules check` 2.4 times as slow)."""
        rows = store.feeds(include_retired=True)  # their stored articles are matched too
        tags = {row["id"]: tuple(json.loads(row["tags"] or "[]")) for row in rows}
        return cls(tags, store.carriers_of(where, params))

    @classmethod
    def of_articles(cls, store: Store, articles: Sequence[Article]) -> _Carriers:
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


def _as_polled(article: Article) -> Article:
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


def _index_for(
    config: Config, rule_id: str | None, query: str | None, loaded: RuleSet | None = None
) -> RuleIndex:
    loaded = loaded or _loaded_rules(config, strict=False)
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
            known = ", ".join(sorted(r.id for r in loaded.rules))
            raise VigieError(f"no rule with id {rule_id!r} (known: {known})")
        return RuleIndex(chosen, loaded.entities, loaded.stats, loaded.cache)
    return loaded.index()


def _query_error(query: str, error: QuerySyntaxError) -> RuleError:
    """A problem in --query, located as in a rule file (the line, a caret under the column)."""
    lines = query.splitlines()
    line = lines[error.line - 1] if 0 < error.line <= len(lines) else ""
    return RuleError("--query", error.line, error.column, error.message, line)


def _articles_from_file(path: Path) -> Iterable[Article]:
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        unread: set[str] = set()  # keys no article has: "lang" for "language" was dropped unsaid
        for number, line in enumerate(_utf8_text(path).splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(
                    str(path), f"line {number}", f"expected a JSON object ({e.msg})"
                ) from None
            if not isinstance(item, dict):
                raise ConfigError(str(path), f"line {number}", "expected a JSON object", item)
            unknown = sorted(set(item) - {*_ARTICLE_KEYS, "id"} - unread)
            if unknown:
                unread.update(unknown)
                err_console.print(
                    f"warning: {path}: line {number}: {', '.join(unknown)} not read (an article"
                    f" has {', '.join(_ARTICLE_KEYS)} and id)",
                    markup=False,
                    soft_wrap=True,
                )
            fields = {key: item.get(key) or "" for key in _ARTICLE_KEYS}
            for key, value in fields.items():
                if not isinstance(value, str):
                    raise ConfigError(
                        str(path), f"line {number}: {key}", "expected a string", value
                    )
            fields = {key: without_lone_surrogates(value) for key, value in fields.items()}
            guid = without_lone_surrogates(str(item.get("id", number)))
            yield Article(feed_id=0, guid=guid, **fields)
        return
    raw = path.read_bytes()
    if path.suffix.lower() in _FEED_SUFFIXES or _looks_like_a_feed(raw):
        # A saved feed: each item is an article, as polling reads them (not one text of XML).
        yield from parse_feed(raw, {}, path.resolve().as_uri())[1]
        return
    text = _utf8_text(path)
    if path.suffix.lower() in (".html", ".htm"):
        text = html_to_text(text)
    title, _, body = text.strip().partition("\n")
    yield Article(
        feed_id=0,
        guid=str(path),
        url=path.resolve().as_uri(),
        title=title.strip(),
        content=body.strip(),
    )


def _utf8_text(path: Path) -> str:
    """A tested file's text, or the error a config or rule file saved in another encoding
    gets: decoded with replacement, its accents became U+FFFD and it matched nothing."""
    try:
        return read_utf8(path)
    except NotUtf8Error as e:
        raise ConfigError(str(path), "", f"cannot be read: {e}", line=e.line) from None


_ARTICLE_KEYS = ("url", "title", "summary", "content", "language")  # of a JSON Lines article
_FEED_SUFFIXES = (".xml", ".rss", ".atom", ".rdf")


def _looks_like_a_feed(raw: bytes) -> bool:
    start = raw[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf:rdf"))


def _articles_from_url(url: str, config: Config) -> list[Article]:
    result = fetch_feed(make_session(config.fetch), Feed(id=0, url=url), config.fetch)
    if result.error or result.body is None:
        raise FetchError(url, result.error or "empty response")
    content_type = result.headers.get("content-type", "")
    if "html" in content_type:
        text = html_to_text(result.body.decode("utf-8", errors="replace"))
        title, _, body = text.partition("\n")
        return [Article(feed_id=0, guid=url, url=url, title=title, content=body)]
    return parse_feed(result.body, result.headers, url)[1]


@rules.command("test")
@click.argument("rule_id", required=False)
@click.option("--query", "-q", help="Try this query instead of a rule from the files.")
@click.option("--text", "text", help="Article text to test (first line is the title).")
@click.option(
    "--file",
    "file_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A text or HTML file, a saved feed (each item tested), or a JSON Lines file.",
)
@click.option(
    "--url",
    help="A feed or article page to fetch and test (a configured feed's with its name and tags).",
)
@click.option("--article", "article_id", type=int, help="A stored article's id.")
@click.option(
    "--feed",
    "feed_wanted",
    metavar="NAME_OR_URL",
    help="Test as items of this feed (config.toml's or the database's): its name and tags, for"
    " rules scoped with feeds or feed_tags.",
)
@click.option(
    "--language",
    "-l",
    help="The articles' language (fr, en), when it is not detected: a short text may not be.",
)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON Lines.")
@config_option
def rules_test(
    rule_id: str | None,
    query: str | None,
    text: str | None,
    file_path: Path | None,
    url: str | None,
    article_id: int | None,
    feed_wanted: str | None,
    language: str | None,
    as_json: bool,
    config_path: str,
) -> None:
    """Show whether a rule (or every enabled rule) matches an article, and why."""

    @operator_errors
    def body() -> int:
        sources = [s for s in (text, file_path, url, article_id) if s is not None]
        if len(sources) != 1:
            raise VigieError("give exactly one of --text, --file, --url or --article")
        if rule_id and query:
            raise VigieError("give a RULE_ID or --query, not both")
        if feed_wanted is not None and article_id is not None:
            raise VigieError(
                "--feed is for --text, --file or --url: a stored article is tried with the feeds"
                " that carry it"
            )
        code = language_code(language) if language is not None else None
        if language is not None and code is None:
            raise ConfigError("--language", "", "expected a language code like fr or en", language)
        config = load_config(config_path)
        index = _index_for(config, rule_id, query)
        feed = _feed_tried(config, feed_wanted, url)
        # An article not stored: no feed's tags, but those of the feed it is tried as.
        carriers = _Carriers({0: feed.tags} if feed else {}, {})
        if text is not None:
            title, _, rest = text.partition("\n")
            articles: list[Article] = [
                Article(feed_id=0, guid="text", url="", title=title, content=rest)
            ]
        elif file_path is not None:
            articles = list(_articles_from_file(file_path))
        elif url is not None:
            articles = _articles_from_url(url, config)
        else:
            store = open_database(config, must_exist=True)
            found = store.article(article_id)  # type: ignore[arg-type]
            if found is None:
                raise VigieError(f"no stored article with id {article_id}")
            articles = [found]
            carriers = _Carriers.of_articles(store, articles)
        if feed is not None:
            articles = [_as_an_item_of(feed, a) for a in articles]
        matched_any = 0
        if code is not None:
            articles = [a if a.id is not None else replace(a, language=code) for a in articles]
        single = bool(rule_id or query)
        for article in map(_as_polled, articles):
            matches, mentions = carriers.match(index, article)
            matched_any += bool(matches)
            # One rule that does not match: which of its parts the article lacks.
            why = (
                why_not(index.rules[0], carriers.document(article))
                if single and not matches
                else []
            )
            if as_json:
                result = _result_json(article, matches, rule_id or query)
                if why:
                    result["why_not"] = why
                click.echo(json.dumps(result, ensure_ascii=False))
            else:
                _print_result(article, matches, single=single)
                if feed is None and article.id is None and _out_of_feed_scope(why):
                    why.append("(--feed NAME tries it as an item of that feed)")
                for line in why:
                    console.print(Text("  ").append(line, style="dim"), soft_wrap=True)
        return 0 if matched_any else 1

    sys.exit(body())


def _feed_tried(config: Config, wanted: str | None, url: str | None) -> Feed | None:
    """The feed whose items the tested articles are tried as: --feed's, else the configured
    feed --url fetches (a rule scoped to its name or tags was "out of scope" for every item)."""
    if wanted is None:
        feed = _feed_named(config, url, by_name=False) if url is not None else None
    else:
        feed = _feed_named(config, wanted)
        if feed is None:
            raise ConfigError(
                "--feed",
                "",
                "no feed in config.toml or the database is named so or has that address",
                wanted,
            )
    if feed is not None:
        tags = f" (tags: {', '.join(feed.tags)})" if feed.tags else ""
        shown = f"tried as items of feed {feed.name or feed.url!r}{tags}"
        err_console.print(shown, markup=False, soft_wrap=True)
    return feed


def _feed_named(config: Config, wanted: str, by_name: bool = True) -> Feed | None:
    """The feed config.toml or the database has under this name (or title), or at this
    address, as the poller uses it: name (else title), tags, language. None when neither has
    it. The database is read, not created, nor brought in step with config.toml."""
    try:
        address = resolve_feed_url(wanted, Path.cwd())
    except ValueError:
        address = wanted
    rows = []
    if config.database.exists():
        store = open_database(config)
        try:
            rows = store.feeds()
            found = store.find_feed(address)
        finally:
            store.close()
        rows = [found, *rows] if found else rows
    for listed in config.feeds:
        if listed.url == address or (by_name and wanted == listed.name):
            row = next((r for r in rows if listed.url in (r["config_url"], r["url"])), None)
            title = row["title"] if row else ""
            return Feed(
                0,
                listed.url,
                listed.name or title or "",
                tags=listed.tags,
                language=listed.language,
            )
    for row in rows:
        if address in (row["url"], row["config_url"], row["added_url"]) or (
            by_name and wanted in (row["name"], row["title"])
        ):
            tags = tuple(json.loads(row["tags"] or "[]"))
            name = row["name"] or row["title"] or ""
            return Feed(0, row["url"], name, tags=tags, language=row["language"] or "")
    return None


def _out_of_feed_scope(why: list[str]) -> bool:
    """Whether the one rule tried was out of scope for want of a feed (`feeds`, `feed_tags`)."""
    scopes = ("out of scope: the rule is for the feeds", "out of scope: the rule is for feeds")
    return bool(why) and why[0].startswith(scopes)


def _as_an_item_of(feed: Feed, article: Article) -> Article:
    """The article as polling `feed` gives it: the feed's name (a saved feed's items have its
    own title), and its language setting, which wins over the declared one (parse_feed)."""
    language = base_language(feed.language) or article.language
    return replace(article, feed_id=0, feed_name=feed.name or article.feed_name, language=language)


def _result_json(article: Article, matches: list[Match], asked: str | None) -> dict:
    return {
        "title": article.title,
        "url": article.url,
        "matched": bool(matches),
        "matches": [
            {
                "rule_id": m.rule_id,
                "tags": list(m.tags),
                "priority": m.priority,
                "score": m.score,
                "snippet": m.snippet,
                "evidence": [e._asdict() for e in m.evidence],
            }
            for m in matches
        ],
    }


def _print_result(article: Article, matches: list[Match], single: bool) -> None:
    title = plain(article.title) or "(untitled)"
    if not matches:
        console.print(Text.assemble(("no match  ", "dim"), title))
        return
    console.print(Text.assemble(("MATCH  ", "bold green"), (title, "bold")))
    for match in matches:
        tags = f" [{', '.join(match.tags)}]" if match.tags else ""
        flag = " URGENT" if match.priority == "urgent" else ""
        console.print(
            Text.assemble(
                "  ", (match.rule_id, "cyan"), tags, (flag, "bold red"), f"  score {match.score:g}"
            )
        )
        console.print(Text("    ").append(highlighted(match.snippet)), soft_wrap=True)
        print_evidence((e.term, e.field, e.text) for e in match.evidence)


@rules.command("backtest")
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
        # good rules, does not make.
        loaded = _loaded_rules(config, strict=apply_changes)
        # A rule named on the command line is tried even when disabled (see _index_for), but
        # its matches are not stored: the service would not make them, yet deliver them.
        if apply_changes and any(r.id == rule_id and not r.enabled for r in loaded.rules):
            raise VigieError(
                f"rule {rule_id!r} is disabled in its file: --apply would store matches the "
                "service does not make; enable the rule first"
            )
        index = _index_for(config, rule_id, query, loaded)
        store = open_database(config, must_exist=True)
        carriers = (
            _Carriers.of(
                store,
                "al.article_id IN (SELECT id FROM articles WHERE first_seen >= ?)",
                [iso(start)],
            )
            if start
            else _Carriers.of(store, "1", [])
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
        for row in store.matches_for(rule_ids, start):
            stored[row["rule_id"]].add(row["article_id"])
            titles.setdefault(row["article_id"], row["title"])
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
                    "samples": [{"id": i, "title": titles[i]} for i in newest[:listed]],
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
            _print_backtest(report, titles, len(article_ids), since)
        if apply_changes:
            all_matches = [m for by_article in found.values() for m in by_article.values()]
            queued = 0
            with store.transaction():  # the matches and their webhook deliveries, or neither
                added, removed = store.replace_matches(rule_ids, article_ids, all_matches, now)
                by_article: dict[int, list[Match]] = {}
                for match in added:
                    by_article.setdefault(match.article_id, []).append(match)
                for article_id, new in sorted(by_article.items()):
                    queued += queue_webhooks(store, config.delivery.webhooks, article_id, new, now)
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
        console.print(f"  #{sample['id']} {sample['title']}", markup=False, soft_wrap=True)
    if row["matches"] > len(row["samples"]):
        more = row["matches"] - len(row["samples"])
        console.print(f"  and {more} more (--samples N lists more, --json)", markup=False)


def _print_backtest(report: list[dict], titles: dict[int, str], total: int, since: str) -> None:
    _print_stored(total, since)
    # soft_wrap: piped, a title cut at 80 columns went on at the start of the next line.
    for row in report:
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
            console.print(f"    #{sample['id']} {sample['title']}", markup=False, soft_wrap=True)
        for kind, ids in (("+", row["added"]), ("-", row["removed"])):
            for article_id in ids[:_CHANGES_LISTED]:
                line = f"  {kind} #{article_id} {titles.get(article_id, '')}"
                console.print(line, markup=False, soft_wrap=True)
            if len(ids) > _CHANGES_LISTED:  # "+7" above five lines read as a miscount
                console.print(
                    f"  {kind} and {len(ids) - _CHANGES_LISTED} more (--json lists them all)",
                    markup=False,
                )


_CHANGES_LISTED = 5  # added and removed articles listed per rule
_UNDATED = datetime.min.replace(tzinfo=UTC)  # an article without a date: listed after the dated
