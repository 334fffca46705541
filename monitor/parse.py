"""Feed bytes -> Article records: RSS 0.9x/1.0/2.0 and Atom via feedparser, JSON Feed by hand.

No I/O: feedparser gets the bytes and the response headers and never fetches a URL itself.

Dates: published falls back to updated, then to `now` (the time the item was first seen); a date
more than a day in the future is treated as unreliable and replaced by `now`. updated is the
feed's own or None: a researcher could not tell "never updated" from "updated at publication"
when it fell back to published. All dates are UTC.
"""

from __future__ import annotations

import calendar
import copy
import email.utils
import functools
import io
import json
import re
import threading
import time
import xml.sax
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
import feedparser.mixin
import nh3
from feedparser.util import FeedParserDict

from . import delta
from .errors import FeedParseError
from .records import Article, evolve
from .text import (
    base_language,
    html_to_text,
    normalise_space,
    one_line,
    url_shown_safely,
    without_lone_surrogates,
)

_FUTURE_SLACK = timedelta(days=1)
_MAX_FIELD = 200_000  # characters kept per text field; a megabyte title is cut, not stored whole
_MAX_TITLE = 1_000
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HTML_START = re.compile(
    rb"(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.I | re.S
)
# A character reference or a JSON escape naming a UTF-16 surrogate: alone (not half of a pair
# JSON combines), it is a character no encoder accepts, so SQLite, hashing and printing fail.
_SURROGATE_REFERENCE = re.compile(
    rb"&#(?:[xX]0*[dD][89a-fA-F][0-9a-fA-F]{2}|0*(?:5529[6-9]|55[3-9]\d\d|56\d{3}|57[0-2]\d\d"
    rb"|573[0-3]\d|5734[0-3]));"
)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _replace_lone_surrogates(doc: Any) -> None:
    """Every lone surrogate in the strings of a decoded JSON document made U+FFFD, in place
    (with a stack, not recursion: the document may be nested as deep as json allows)."""
    stack = [doc] if isinstance(doc, dict | list) else []
    while stack:
        node = stack.pop()
        pairs = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(pairs):
            if isinstance(value, str):
                node[key] = without_lone_surrogates(value)
            elif isinstance(value, dict | list):
                stack.append(value)


# feedparser asks xml.sax for the libxml2 driver before expat on every parse. Its Python bindings
# are never installed here, and the failed import searched sys.path on each parse, under the import
# lock the fetch threads share: a fifth of the time of parsing a feed of two new items. Expat
# alone also keeps parsing the same wherever Vigie runs (libxml2's maintainers advise dropping
# the driver: feedparser issue 506).
feedparser.api.PREFERRED_XML_PARSERS = []


_REMEMBERED_URI_CHARS = 2_000  # longer arguments are worked out each time, not kept


def _remember_base_uris() -> None:
    """feedparser works out the base URI again at every element's start tag (an element may carry
    xml:base): make_safe_absolute_uri(base, base), a urljoin and a scheme check, the same answer
    every time: with it remembered, parse_feed takes 0.82 of the time on generated feeds, on
    real publishers' feeds and on the BBC snapshots. The function is pure, so its answers are
    remembered per (base, relative) pair, for arguments of ordinary URL length only: a feed
    cannot make the cache hold megabytes. Only the start tag's call is cached (feedparser.mixin's
    name for it); links in item text, each different, are resolved as before. The output is
    unchanged (tests/test_parse.py compares it on every shared feed). A feedparser without the
    function is left as it is."""
    function = getattr(feedparser.mixin, "make_safe_absolute_uri", None)
    if not callable(function) or hasattr(function, "__wrapped__"):
        return
    remembered = functools.lru_cache(maxsize=1024)(function)

    @functools.wraps(function)
    def make_safe_absolute_uri(base: str, rel: str | None = None) -> str:
        if len(base or "") + len(rel or "") > _REMEMBERED_URI_CHARS:
            return function(base, rel)
        return remembered(base, rel)

    make_safe_absolute_uri.cache_info = remembered.cache_info  # type: ignore[attr-defined]
    make_safe_absolute_uri.cache_clear = remembered.cache_clear  # type: ignore[attr-defined]
    feedparser.mixin.make_safe_absolute_uri = make_safe_absolute_uri


_remember_base_uris()


# An absolute http(s) URL of printable ASCII without params, query or fragment: one that
# urljoin gives back unchanged against any base (it only re-assembles what it split).
_PLAIN_ABSOLUTE_URI = re.compile(
    r"https?://[A-Za-z0-9.-]+(?::[0-9]*)?(?:/[!$&'()*+,\-./0-9:=@A-Z_a-z~%]*)?"
)


def _join_plain_uris_directly() -> None:
    """feedparser resolves every item's link and guid against the feed's base (a urljoin, which
    splits and re-assembles the URL), 9.6 µs each, about 4% of parse_feed's time on generated
    feeds. Item links are nearly always absolute already, and for those of _PLAIN_ABSOLUTE_URI
    the answer is the link itself, so they skip the join; anything else is joined by feedparser
    as before (tests/test_parse.py checks both answers agree, on every shared feed and on
    generated URLs). A feedparser without the function is left as it is."""
    function = getattr(feedparser.mixin, "_urljoin", None)
    if not callable(function) or hasattr(function, "__wrapped__"):
        return
    plain = _PLAIN_ABSOLUTE_URI.fullmatch

    @functools.wraps(function)
    def _urljoin(base: str, uri: str) -> str:
        return uri if plain(uri) else function(base, uri)

    feedparser.mixin._urljoin = _urljoin  # type: ignore[attr-defined]


_join_plain_uris_directly()


class _ContentParamsCopy:
    """Stands for the `copy` module inside feedparser.mixin, which uses it for one thing: a deep
    copy of the content parameters (type, language, base) at the end of each text element, four
    times an item. Those are a FeedParserDict of strings or None, and a new FeedParserDict of
    the same items is that deep copy at a tenth of the cost (parse_feed: 4% less time on
    generated feeds); anything else goes to copy.deepcopy as before."""

    @staticmethod
    def deepcopy(value: Any, memo: dict | None = None) -> Any:
        if type(value) is FeedParserDict and all(
            v is None or type(v) is str for v in value.values()
        ):
            return FeedParserDict(value)
        return copy.deepcopy(value, memo)


if getattr(feedparser.mixin, "copy", None) is copy:
    feedparser.mixin.copy = _ContentParamsCopy  # type: ignore[attr-defined]


# Items read from one feed document: news feeds list tens, archives a few hundred. A hostile
# feed of 50,000 matching items made as many alerts in one poll (a security review).
MAX_ITEMS = 1000


def newest_items(body: bytes, headers: dict[str, str], url: str) -> bytes:
    """`body` with only its MAX_ITEMS newest items when it has more: those at its start, or at
    its end when the items there are dated later (an archive or a podcast listing the oldest
    first). A contiguous end, so that the items a rolling feed drops at its other end never
    bring older ones into view, and polling's delta cuts the items this keeps. Cut from the
    bytes, before feedparser, which would read them all; a document whose items cannot be
    told apart is cut as it is parsed (`_newest_end`)."""
    count = delta.item_count(body)
    if count is None or count <= MAX_ITEMS:
        return body
    now = datetime.now(UTC)
    latest = []
    for sample in (range(_SAMPLED), range(count - _SAMPLED, count)):  # each end's few items
        try:
            _, parsed = _parse_feed(delta.only_items(body, sample), headers, url, 0, "", now)
        except FeedParseError:
            parsed = []
        # The parser gives an item it cannot date this very `now`.
        latest.append(max((a.published for a in parsed if a.published != now), default=None))
    return delta.only_items(body, _newest_end(count, *latest))


_SAMPLED = 5  # items read at each end of a long feed to tell which end is the newest


def _newest_end(count: int, start: datetime | None, end: datetime | None) -> slice:
    """Which MAX_ITEMS of `count` items are the newest, from the latest dates among the few at
    each end: the last ones when those at the end are dated later, else the first ones (as
    most feeds list them, and when the dates cannot tell: an item of the end undated, or dated
    ahead, no longer turned a feed the other way, a code review)."""
    if count <= MAX_ITEMS:
        return slice(0, count)
    oldest_first = start is not None and end is not None and end > start
    return slice(-MAX_ITEMS, None) if oldest_first else slice(0, MAX_ITEMS)


def parse_feed(
    body: bytes,
    headers: dict[str, str],
    url: str,
    feed_id: int = 0,
    feed_name: str = "",
    language: str = "",
    now: datetime | None = None,
) -> tuple[str, list[Article]]:
    """Parse a feed document. Returns (feed title, articles): of its MAX_ITEMS newest items
    when it has more (see newest_items). Raises FeedParseError when the bytes are not a feed at
    all; a feed with minor errors still yields its items.

    `language`, the operator's setting for the feed, wins over what the feed declares: blogs
    and CMSs declare their installation's default (`en-US`) over French items, which were then
    matched without French stemming or `languages = ["fr"]` rules, and lost."""
    body = newest_items(body, headers, url)
    title, articles = _parse_feed(body, headers, url, feed_id, feed_name, now or datetime.now(UTC))
    if language := base_language(language):
        articles = [a if a.language == language else evolve(a, language=language) for a in articles]
    return title, articles


def _parse_feed(
    body: bytes,
    headers: dict[str, str],
    url: str,
    feed_id: int,
    feed_name: str,
    now: datetime,
) -> tuple[str, list[Article]]:
    content_type = headers.get("content-type", "").lower()
    # The bytes decide over the label: servers send RSS as application/json, JSON as text/html.
    stripped = body.removeprefix(b"\xef\xbb\xbf").lstrip()[:1]
    if stripped == b"{" or ("json" in content_type and stripped != b"<"):
        return _parse_json_feed(body, url, feed_id, feed_name, now)
    # feedparser's own sanitiser and relative-URI resolver each parse every item's HTML again
    # in Python (the resolver: a seventh of parse_feed's time on real publishers' feeds).
    # sanitise_html does both in nh3, in one pass, against the base feedparser reports.
    # A stream, not bytes: given bytes, feedparser first tries them as a file name to open,
    # so a body naming a local file would be read from the disk.
    # A character reference to a lone UTF-16 surrogate (&#xD800;) made feedparser's loose
    # parser raise UnicodeEncodeError: the whole feed was lost on every poll.
    body = _SURROGATE_REFERENCE.sub(b"&#xFFFD;", body)
    try:
        parsed = feedparser.parse(
            io.BytesIO(body),
            response_headers={**headers, "content-location": url},
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except UnicodeError as e:  # the same in an encoding the reference check cannot see
        raise FeedParseError(url, f"not a feed: {_short(e)}") from None
    version = parsed.get("version", "")
    if not version and not parsed.entries:
        if _HTML_START.match(body[:512]):  # feedparser's own reason ("<unknown>:2:0: syntax
            reason = "an HTML page (its <link rel=alternate> may name the feed)"
        elif stripped == b"[":  # error", "no Content-type specified") said nothing useful
            reason = "JSON, but not a JSON Feed (an object with a jsonfeed.org version)"
        else:
            reason = _short(
                parsed.get("bozo_exception") or "no RSS, Atom or JSON Feed document found"
            )
        raise FeedParseError(url, f"not a feed: {reason}")
    broken = parsed.get("bozo_exception")
    if not parsed.entries and isinstance(broken, xml.sax.SAXException):
        # Cut off, or broken before its first item: it read as a healthy feed with no news.
        raise FeedParseError(url, f"broken XML, no item could be read: {_short(broken)}")
    channel = parsed.feed
    title = one_line(html_to_text(channel.get("title", "")))[:_MAX_TITLE]
    language = base_language(channel.get("language"))
    articles = [
        _from_feedparser(entry, url, feed_id, feed_name or title, language, now)
        for entry in parsed.entries[_newest_end(len(parsed.entries), *_entry_dates(parsed, now))]
    ]
    return title, [a for a in articles if a is not None]


# Entries are read as the plain dicts they are. FeedParserDict.get goes through feedparser's
# aliases and raises KeyError inside for each field an item lacks, and for `updated_parsed`
# it falls back to `published_parsed` with a DeprecationWarning (a fallback feedparser says it
# will remove; the dates fall back here, in _from_feedparser).
_get = dict.get


def _from_feedparser(
    entry: Any, feed_url: str, feed_id: int, feed_name: str, language: str, now: datetime
) -> Article | None:
    link = _get(entry, "link", "") or ""
    guid = _get(entry, "id", "") or link
    # The guid made for an item without one hashes the title as it was before titles were
    # made one line, so that such items stored then are still recognised.
    title_text = _text(_get(entry, "title", ""))
    title = one_line(title_text)[:_MAX_TITLE]
    summary_html = _get(entry, "summary", "") or ""
    # The longest content, and the base its relative links resolve against (xml:base, else the
    # feed's address).
    content_detail = max(_get(entry, "content", []), key=_html_length, default={})
    content_html = _get(content_detail, "value", "") or ""
    base = _get(content_detail if content_html else _get(entry, "summary_detail") or {}, "base")
    summary = _text(summary_html)
    content = _text(content_html)
    if content == summary:
        content = ""
    if not guid:
        guid = _fallback_guid(title_text[:_MAX_TITLE], summary)
    if not (title or summary or content):
        return None
    published = _date(_get(entry, "published_parsed"), now)
    updated = _date(_get(entry, "updated_parsed"), now)
    authors = tuple(_get(a, "name", "") for a in _get(entry, "authors", []) if _get(a, "name"))
    if not authors and _get(entry, "author"):
        authors = (entry["author"],)
    categories = tuple(_get(t, "term", "") for t in _get(entry, "tags", []) if _get(t, "term"))
    item_language = base_language(_entry_language(entry) or language)
    return Article(
        feed_id=feed_id,
        guid=guid[:2000],
        url=_web_link(feed_url, link),
        title=title,
        summary=summary[:_MAX_FIELD],
        content=content[:_MAX_FIELD],
        content_html=sanitise_html(content_html or summary_html, base or feed_url),
        published=published or updated or now,
        updated=updated,  # None when the feed gives none, not made up
        authors=tuple(_text(a)[:200] for a in authors),
        language=item_language,
        categories=tuple(_text(c)[:200] for c in categories),
        feed_name=feed_name,
    )


def _html_length(detail: Any) -> int:
    return len(_get(detail, "value", "") or "")


def _entry_language(entry: Any) -> str:
    for key in ("content", "summary_detail", "title_detail"):
        detail = _get(entry, key)
        if isinstance(detail, list):
            detail = detail[0] if detail else None
        if detail and _get(detail, "language"):
            return detail["language"]
    return ""


def _parse_json_feed(
    body: bytes, url: str, feed_id: int, feed_name: str, now: datetime
) -> tuple[str, list[Article]]:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FeedParseError(url, f"not a feed: invalid JSON ({_short(e)})") from None
    except RecursionError:  # [[[[... a few hundred kilobytes deep
        raise FeedParseError(url, "not a feed: JSON nested too deeply") from None
    if _SURROGATE_ESCAPE.search(body):
        _replace_lone_surrogates(doc)
    version = doc.get("version", "") if isinstance(doc, dict) else ""
    if not isinstance(version, str) or not version.startswith("https://jsonfeed.org/version/"):
        raise FeedParseError(url, "not a feed: JSON without a jsonfeed.org version")
    items = doc.get("items", [])
    if not isinstance(items, list):
        raise FeedParseError(url, "JSON Feed items is not a list")
    if len(items) > MAX_ITEMS:
        start, end = (_latest_json_date(few, now) for few in (items[:_SAMPLED], items[-_SAMPLED:]))
        items = items[_newest_end(len(items), start, end)]
    title = one_line(_text(str(doc.get("title", ""))))[:_MAX_TITLE]
    language = base_language(str(doc.get("language") or ""))
    feed_authors = _json_authors(doc)
    articles = []
    for item in items:
        if not isinstance(item, dict):
            continue
        content_html = str(item.get("content_html") or "")
        content = (
            _text(content_html)
            if content_html
            else normalise_space(str(item.get("content_text") or ""))
        )
        summary = _text(str(item.get("summary") or ""))
        title_text = _text(str(item.get("title") or ""))[:_MAX_TITLE]
        item_title = one_line(title_text)
        link = str(item.get("url") or item.get("external_url") or "")
        guid = str(item.get("id") or link or _fallback_guid(title_text, summary or content))
        if not (item_title or summary or content):
            continue
        published = _json_date(item.get("date_published"), now)
        updated = _json_date(item.get("date_modified"), now)
        tags = item.get("tags") if isinstance(item.get("tags"), list) else []
        articles.append(
            Article(
                feed_id=feed_id,
                guid=guid[:2000],
                url=_web_link(url, link),
                title=item_title,
                summary=summary[:_MAX_FIELD],
                content=content[:_MAX_FIELD],
                # Relative links resolve against the item's page, else the feed's address.
                content_html=sanitise_html(
                    content_html or _paragraphs_html(content), _web_link(url, link) or url
                ),
                published=published or updated or now,
                updated=updated,  # None when the feed gives none, not made up
                authors=_json_authors(item) or feed_authors,
                language=base_language(str(item.get("language") or language)),
                # Cleaned as RSS and Atom's are: control characters reached the database.
                categories=tuple(one_line(_text(str(t)))[:200] for t in tags),
                feed_name=feed_name or title,
            )
        )
    return title, articles


def _json_authors(obj: dict) -> tuple[str, ...]:
    authors = obj.get("authors") or ([obj["author"]] if isinstance(obj.get("author"), dict) else [])
    if not isinstance(authors, list):
        return ()
    return tuple(
        one_line(_text(str(a.get("name"))))[:200]
        for a in authors
        if isinstance(a, dict) and a.get("name")
    )


def _json_date(value: Any, now: datetime) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _sane(parsed.astimezone(UTC), now)


# Zone names that feeds write in RFC 822 dates though RFC 822 does not define them, and that
# feedparser reads as UTC: a French feed's "22:55:00 CET" was stored an hour late, in the future.
# Only names with one meaning in news feeds (not IST, nor CST, which feedparser reads as US
# Central).
_ZONE_OFFSETS = {
    "cet": "+0100",
    "cest": "+0200",
    "wet": "+0000",
    "west": "+0100",
    "eet": "+0200",
    "eest": "+0300",
    "bst": "+0100",
    "msk": "+0300",
    "sast": "+0200",
    "jst": "+0900",
    "hkt": "+0800",
    "sgt": "+0800",
    "aest": "+1000",
    "aedt": "+1100",
    "nzst": "+1200",
    "nzdt": "+1300",
}
_ZONE_NAME = re.compile(r"\s([A-Za-z]{3,4})\s*$")


def _date_in_named_zone(value: str) -> time.struct_time | None:
    """A date handler for feedparser (tried before its own): an RFC 822 date ending in one of
    _ZONE_OFFSETS's names, as UTC; None for any other, which feedparser's handlers then read."""
    found = _ZONE_NAME.search(value)
    offset = _ZONE_OFFSETS.get(found.group(1).lower()) if found else None
    if offset is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(f"{value[: found.start(1)]}{offset}")
        return when.utctimetuple()
    except (TypeError, ValueError, OverflowError):
        return None


feedparser.registerDateHandler(_date_in_named_zone)


def _latest_json_date(items: list, now: datetime) -> datetime | None:
    """The latest date among JSON Feed items, their publication's or else their update's."""
    dates = (
        _json_date(item.get("date_published"), now) or _json_date(item.get("date_modified"), now)
        for item in items
        if isinstance(item, dict)
    )
    return max((d for d in dates if d is not None), default=None)


def _entry_dates(parsed: FeedParserDict, now: datetime) -> tuple[datetime | None, ...]:
    """The latest dates among a parsed document's few first and few last entries (None:
    undated), their publication's or else their update's."""
    entries = parsed.entries

    def latest(few: list) -> datetime | None:
        dates = (
            _date(_get(e, "published_parsed"), now) or _date(_get(e, "updated_parsed"), now)
            for e in few
        )
        return max((d for d in dates if d is not None), default=None)

    return latest(entries[:_SAMPLED]), latest(entries[-_SAMPLED:])


def _date(struct: time.struct_time | None, now: datetime) -> datetime | None:
    if not struct:
        return None
    try:
        return _sane(datetime.fromtimestamp(calendar.timegm(struct), UTC), now)
    except (OverflowError, ValueError, OSError):
        return None


def _sane(when: datetime, now: datetime) -> datetime | None:
    """Dates in the future (beyond a day of clock skew) or before 1990 are not trusted."""
    if when > now + _FUTURE_SLACK or when.year < 1990:
        return None
    return when


def _web_link(base: str, link: str) -> str:
    """The item's absolute http(s) address, or "": a javascript:, data: or file: link, or one
    with control characters, is not an article's address, and webhook consumers may show it."""
    if not link or _CONTROL_CHARS.search(link):
        return ""
    absolute = url_shown_safely(urljoin(base, link))
    return absolute[:2000] if urlsplit(absolute).scheme.lower() in ("http", "https") else ""


def _text(html: str) -> str:
    return html_to_text(html or "")


def _paragraphs_html(text: str) -> str:
    from html import escape

    return "".join(f"<p>{escape(p)}</p>" for p in text.split("\n\n") if p)


def _fallback_guid(title: str, summary: str) -> str:
    import hashlib

    return "sha1:" + hashlib.sha1(f"{title}\n{summary}".encode()).hexdigest()


_ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "cite",
    "code",
    "dd",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "small",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
}
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "abbr": {"title"}}


# The base address of the HTML being cleaned, per thread (fetch threads parse at once).
_BASE = threading.local()


def _absolute(url: str) -> str | None:
    """nh3's hook for a relative link or image: resolved against the base of the HTML being
    cleaned, kept as it is without one, dropped when it resolves to other than http(s)."""
    base = getattr(_BASE, "url", "")
    if not base:
        return url
    try:
        resolved = urljoin(base, url)
    except ValueError:  # "//[" and other addresses urllib cannot read: a traceback, else
        return None
    return resolved if resolved.startswith(("http://", "https://")) else None


# Built once: nh3.clean() builds its sanitiser on every call, five times the cost of cleaning a
# feed item's summary with a ready one.
_CLEANER = nh3.Cleaner(
    tags=_ALLOWED_TAGS,
    attributes=_ALLOWED_ATTRIBUTES,
    url_schemes={"http", "https"},
    link_rel="noopener noreferrer nofollow",
    url_relative=_absolute,
)


def sanitise_html(html: str, base: str = "") -> str:
    """Display-safe HTML: nh3's allow-list, http(s) links only, links open without referrer;
    relative links resolved against `base` (a digest shows the HTML far from its site)."""
    if not html:
        return ""
    _BASE.url = base
    try:
        return _CLEANER.clean(html[:_MAX_FIELD])
    finally:
        _BASE.url = ""


def _short(reason: object) -> str:
    text = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
    return text[:200]
