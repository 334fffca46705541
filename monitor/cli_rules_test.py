"""`vigie rules test`: try a rule, a draft query or every rule on a text, a file, a page, a
feed or a stored article, with the words that made it match or why it did not."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import click

from .cli_common import (
    config_option,
    did_you_mean,
    err_console,
    feed_addresses,
    open_database,
    operator_errors,
)
from .cli_rules import Carriers, as_polled, index_for
from .cli_rules_results import Tried, print_tried
from .config import Config, load_config
from .errors import ConfigError, FetchError, VigieError
from .extract import extract_page
from .fetch import fetch_feed, make_session
from .parse import parse_feed
from .records import Article, Feed, Match
from .rules.why import came_near, why_not
from .text import (
    NotUtf8Error,
    base_language,
    html_to_text,
    language_code,
    read_utf8,
    without_lone_surrogates,
)


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
        yield _page_article(text.encode("utf-8"), path.resolve().as_uri(), str(path))
        return
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
        return [_page_article(result.body, url, url)]
    return parse_feed(result.body, result.headers, url)[1]


def _page_article(html: bytes, url: str, guid: str) -> Article:
    """An article page as a `full_text` feed's item is matched: its main text, under its
    headline. The whole page's text (menus, other headlines, the footer) matched rules that
    polling would not, under the browser tab's title. A page without main text is tested
    whole, and the tester told."""
    page = extract_page(html, url, title=True)
    if page.text:
        return Article(
            feed_id=0,
            guid=guid,
            url=url,
            title=page.title,
            content=page.text,
            language=page.language,
        )
    err_console.print(
        f"warning: {url}: no main text found on the page: its whole text is tested, menus"
        " and links included",
        markup=False,
        soft_wrap=True,
    )
    text = html_to_text(html.decode("utf-8", errors="replace"))
    title, _, body = text.strip().partition("\n")
    return Article(feed_id=0, guid=guid, url=url, title=title.strip(), content=body.strip())


@click.command("test")
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
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="Of several items (a feed), list every one that does not match, with why: not only"
    " those the rule came near.",
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
    every: bool,
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
        index = index_for(config, rule_id, query)
        feed = _feed_tried(config, feed_wanted, url)
        # An article not stored: no feed's tags, but those of the feed it is tried as.
        carriers = Carriers({0: feed.tags} if feed else {}, {})
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
            carriers = Carriers.of_articles(store, articles)
        if feed is not None:
            articles = [_as_an_item_of(feed, a) for a in articles]
        matched_any = 0
        if code is not None:
            articles = [a if a.id is not None else replace(a, language=code) for a in articles]
        single = bool(rule_id or query)
        tried = []
        for article in map(as_polled, articles):
            matches, mentions = carriers.match(index, article)
            matched_any += bool(matches)
            # One rule that does not match: which of its parts the article lacks.
            doc = carriers.document(article) if single and not matches else None
            why = why_not(index.rules[0], doc) if doc is not None else []
            if as_json:
                result = _result_json(article, matches, rule_id or query)
                if why:
                    result["why_not"] = why
                click.echo(json.dumps(result, ensure_ascii=False))
                continue
            if feed is None and article.id is None and _out_of_feed_scope(why):
                why.append("(--feed NAME tries it as an item of that feed)")
            if code is None and any(_UNTOLD in line for line in why):
                why.append(
                    "(--language CODE says it, as in --language fr: a line or two"
                    " may be too short to tell)"
                )
            near = doc is not None and came_near(index.rules[0], doc)
            tried.append(Tried(article, matches, why, near))
        if not as_json:
            print_tried(tried, single, every)
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
                "no feed in config.toml or the database has that name, id or address"
                + did_you_mean(wanted, _feed_names(config)),
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
    addresses = feed_addresses(wanted, config)
    rows = []
    found, found_at = None, len(addresses)
    if config.database.exists():
        store = open_database(config)
        try:
            rows = store.feeds()
            for at, address in enumerate(addresses):  # the first address that names one
                if (row := store.find_feed(address)) is not None:
                    found, found_at = row, at
                    break
        finally:
            store.close()
        rows = [found, *rows] if found else rows
    listed_urls = [listed.url for listed in config.feeds]
    listed_at = min((addresses.index(u) for u in listed_urls if u in addresses), default=found_at)
    if found is not None and found_at < listed_at and found["config_url"] not in listed_urls:
        # A feed added by hand at the address the path names from here, before the one
        # config.toml has at the address it names from config.toml's folder (feed_addresses).
        return _stored_as_polled(found)
    for listed in config.feeds:
        if listed.url in addresses or (by_name and wanted == listed.name):
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
        if {row["url"], row["config_url"], row["added_url"]} & set(addresses) or (
            by_name and (wanted in (row["name"], row["title"]) or wanted == str(row["id"]))
        ):
            return _stored_as_polled(row)
    return None


def _stored_as_polled(row: dict) -> Feed:
    """A stored feed as the poller uses it: name (else title), tags, language."""
    tags = tuple(json.loads(row["tags"] or "[]"))
    name = row["name"] or row["title"] or ""
    return Feed(0, row["url"], name, tags=tags, language=row["language"] or "")


def _feed_names(config: Config) -> set[str]:
    """The names and titles of the feeds config.toml and the database know, for a
    did-you-mean: `rules check` had one for a misspelt feed, `rules test --feed` none."""
    names = {feed.name for feed in config.feeds if feed.name}
    if config.database.exists():
        store = open_database(config)
        try:
            names |= {n for row in store.feeds() for n in (row["name"], row["title"]) if n}
        finally:
            store.close()
    return names


_UNTOLD = "the article is in no language that could be told"  # said by rules.why


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
