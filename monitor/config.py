"""Load config.toml into frozen, typed objects. Nothing else in Vigie reads TOML or the environment.

Every setting is declared once as data (`Setting`: key, kind, default, help), so validation, the
documentation test and error messages share one source. Errors name the file, the key path and what
was expected, e.g. `config.toml: feeds[3].interval: expected a duration like "15m", got "fast"`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .text import ASCII_LOWER, NotUtf8Error, language_code, one_line, printable, read_utf8

if TYPE_CHECKING:
    from .config_delivery import DeliveryConfig

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 0}
_LONGEST_DURATION = 100 * 365 * 86400
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 1024,
    "mib": 2**20,
    "gib": 2**30,
}


# Query parameters that say how a reader arrived, not what they read. A name ending in "*" is a
# prefix. Compared case-insensitively. Operators may replace the list: identity.tracking_params.
DEFAULT_TRACKING_PARAMS: tuple[str, ...] = (
    "utm_*",  # Google Analytics campaign tags, everywhere
    "fbclid",  # Facebook
    "gclid",  # Google Ads
    "dclid",
    "gbraid",
    "wbraid",
    "msclkid",  # Microsoft Ads
    "yclid",  # Yandex
    "twclid",  # X/Twitter
    "igshid",  # Instagram
    "mc_cid",  # Mailchimp
    "mc_eid",
    "_ga",
    "_gl",
    "ns_*",  # BBC (ns_mchannel, ns_source, ns_campaign, ns_linkname)
    "ito",  # BBC
    "at_*",  # BBC/AT Internet (at_medium, at_campaign)
    "xtor",  # AT Internet: Le Monde, franceinfo (also in fragments, which are dropped)
    "cmp",  # The Guardian (CMP=share_btn_tw)
    "ocid",  # MSN
    "smid",  # New York Times share links
    "smtyp",
    "ref_src",  # X/Twitter embeds
    "ref_url",
    "mkt_tok",  # Marketo
    "oly_anon_id",  # Omeda
    "oly_enc_id",
    "vero_id",
    "wt.mc_id",  # Webtrends
    "__twitter_impression",
)


@dataclass(frozen=True)
class Setting:
    """One documented setting: `section.key`, its kind, default and one line of help."""

    key: str
    kind: str  # duration | size | int | ratio | bool | str | path | list[str] | processes
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("storage.database", "path", "data/vigie.db", "SQLite database file"),
    Setting(
        "fetch.user_agent",
        "str",
        "Vigie/0.1 (+https://github.com/vigie-news/vigie)",
        "User-Agent sent to publishers",
    ),
    Setting("fetch.connect_timeout", "duration", "10s", "time allowed to open a connection"),
    Setting("fetch.deadline", "duration", "30s", "total time allowed for one download"),
    Setting(
        "fetch.max_bytes", "size", "10MB", "largest body accepted, counted after decompression"
    ),
    Setting("fetch.max_redirects", "int", 5, "redirect hops followed before giving up"),
    Setting("fetch.concurrency", "int", 8, "feeds fetched at the same time"),
    Setting("fetch.per_host", "int", 2, "feeds of one host fetched at the same time"),
    Setting(
        "fetch.allow_private",
        "bool",
        False,
        "allow fetching loopback, private and link-local addresses",
    ),
    Setting(
        "fetch.allow_hosts",
        "list[str]",
        [],
        "host names or IP networks allowed even when not public",
    ),
    Setting("polling.interval", "duration", "30m", "default time between two polls of a feed"),
    Setting("polling.tick", "duration", "30s", "how often the scheduler looks for due feeds"),
    Setting("polling.max_backoff", "duration", "24h", "longest wait after repeated failures"),
    Setting(
        "polling.max_cycle",
        "duration",
        "1m",
        "time after which a poll cycle of `vigie run` starts no more fetches: the feeds not "
        "started are polled first by the next cycle, which starts at once",
    ),
    Setting(
        "polling.processes",
        "processes",
        "auto",
        'worker processes that parse, sketch and match changed feeds: "auto" (one per CPU when '
        "there are several), a number, or 0 for none (all in the polling process)",
    ),
    Setting("rules.paths", "list[str]", ["rules"], "rule files or folders of *.toml rule files"),
    Setting("rules.reload", "duration", "10s", "how often `vigie run` checks rule files for edits"),
    # Identity (docs/identity.md): retention, full text, canonical URLs and stories.
    Setting(
        "storage.retention",
        "duration or 0",
        "90d",
        "articles, matches and story sketches older than this are pruned; 0 keeps everything",
    ),
    Setting(
        "fetch.page_concurrency", "int", 4, "article pages fetched at once for full_text feeds"
    ),
    Setting(
        "identity.tracking_params",
        "list[str]",
        list(DEFAULT_TRACKING_PARAMS),
        'query parameters removed from article URLs; "utm_*" is a prefix',
    ),
    Setting(
        "identity.story_threshold",
        "ratio",
        0.5,
        "text overlap (0-1) from which two articles are one story",
    ),
    Setting(
        "identity.story_window",
        "duration",
        "7d",
        "how far back a new article looks for other copies of its story",
    ),
    # Delivery (docs/delivery.md): [smtp] and [delivery]; [[subscribers]] and [[webhooks]] below.
    Setting("smtp.host", "str", "", "SMTP server; empty writes digests as .eml files instead"),
    Setting("smtp.port", "port", 587, "SMTP port: 587 for starttls, 465 for tls, 25 for none"),
    Setting("smtp.security", "str", "starttls", "starttls, tls (implicit TLS) or none"),
    Setting("smtp.username", "str", "", "login name; empty sends without logging in"),
    Setting("smtp.password_env", "str", "", "environment variable that holds the SMTP password"),
    Setting("smtp.timeout", "duration", "30s", "time allowed for each exchange with the server"),
    Setting("smtp.from", "str", "Vigie <vigie@localhost>", "sender of digests"),
    Setting(
        "delivery.public_base_url",
        "str",
        "",
        "https address where one-click unsubscribe links point; empty: mailto only",
    ),
    Setting(
        "delivery.listen",
        "str",
        "",
        "host:port where `vigie run` answers unsubscribe links (behind public_base_url's "
        "https server); empty: not answered",
    ),
    Setting("delivery.outbox", "path", "outbox", "folder for .eml digests and previews"),
    Setting("delivery.tick", "duration", "5s", "how often `vigie run` looks for due deliveries"),
    Setting(
        "delivery.backlog",
        "duration or 0",
        "30d",
        "a feed's items published this long before now, when it is first read, are stored "
        "and matched but not sent (its archive, not news); 0 sends them all",
    ),
)

FEED_SETTINGS: tuple[Setting, ...] = (
    Setting("url", "str", None, "http(s) URL, file:// URL or path relative to config.toml"),
    Setting("name", "str", "", "display name (defaults to the feed's own title)"),
    Setting("interval", "duration", None, "time between polls (defaults to polling.interval)"),
    Setting("tags", "list[str]", [], "labels that rules can scope to"),
    Setting(
        "language", "str", "", "language code (en, fr) of every item, whatever the feed declares"
    ),
    Setting("full_text", "bool", False, "fetch each new item's page and match on its main text"),
    Setting(
        "backlog",
        "duration or 0",
        None,
        "delivery.backlog for this feed: 0 sends a fixed snapshot's items whatever their age",
    ),
)


@dataclass(frozen=True)
class FeedConfig:
    url: str
    name: str = ""
    interval: float | None = None
    tags: tuple[str, ...] = ()
    language: str = ""
    full_text: bool = False
    backlog: float | None = None  # seconds; None: delivery.backlog


@dataclass(frozen=True)
class FetchConfig:
    user_agent: str
    connect_timeout: float
    deadline: float
    max_bytes: int
    max_redirects: int
    concurrency: int
    allow_private: bool
    allow_hosts: tuple[str, ...]
    page_concurrency: int = 4
    per_host: int = 2


@dataclass(frozen=True)
class PollingConfig:
    interval: float
    tick: float
    max_backoff: float
    processes: int = 0  # worker processes reading changed feeds (monitor/readers.py)
    max_cycle: float = 60.0  # seconds a cycle of `vigie run` starts fetches for (poll_due)


@dataclass(frozen=True)
class RulesConfig:
    paths: tuple[Path, ...]
    reload: float


@dataclass(frozen=True)
class IdentityConfig:
    tracking_params: tuple[str, ...] = DEFAULT_TRACKING_PARAMS
    story_threshold: float = 0.5
    story_window: float = 7 * 86400.0


@dataclass(frozen=True)
class Config:
    path: Path
    database: Path
    fetch: FetchConfig
    polling: PollingConfig
    rules: RulesConfig
    feeds: tuple[FeedConfig, ...] = field(default=())
    delivery: DeliveryConfig = field(default_factory=lambda: _no_delivery())
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    retention: float = 90 * 86400.0  # seconds; 0 keeps everything

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def require_secrets(
        self, kinds: Collection[str] = ("digest", "webhook"), webhook: int | None = None
    ) -> None:
        """For commands that send: a ConfigError naming the first secret whose environment
        variable is not set (other commands run without them); `kinds`: what the command sends,
        digests (the SMTP password) or webhooks (their secrets); `webhook`: only the secret of
        the webhook at that place in the list."""
        for key, variable in self.delivery.missing_secrets():
            if ("digest" if key.startswith("smtp.") else "webhook") not in kinds:
                continue
            if webhook is not None and not key.startswith(f"webhooks[{webhook}]."):
                continue
            try:
                line = line_of_key(self.path.read_text(encoding="utf-8-sig"), key)
            except (OSError, UnicodeDecodeError):
                line = 0  # the file is gone or changed since: the key alone says where
            raise ConfigError(
                str(self.path),
                key,
                f"environment variable {variable} is not set or empty",
                None,
                line,
            )


_TABLE_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]")
_KEY_PATH = re.compile(r"([A-Za-z0-9_-]+)(?:\[(\d+)\])?(?:\.([A-Za-z0-9_-]+))?")


def line_of_key(text: str, key: str) -> int:
    """The line (1-based) of a ConfigError's key in config.toml's `text`: "fetch.deadline",
    "feeds[3].interval" (the fourth [[feeds]] table), "storage"; the table's header when the
    key is missing from it; 0 when not found. A line-by-line reading, as operators write
    config.toml (tomllib keeps no positions)."""
    parts = _KEY_PATH.fullmatch(key)
    if not parts:
        return 0
    table, index, name = parts.group(1), parts.group(2), parts.group(3)
    lines = text.splitlines()
    start, end, seen = 0, len(lines), -1
    for number, line in enumerate(lines, 1):
        header = _TABLE_HEADER.match(line)
        if not header:
            continue
        if start:
            end = number - 1
            break
        if header.group(2) != table:
            continue
        if index is None and header.group(1) == "[":
            start = number
        elif index is not None and header.group(1) == "[[":
            seen += 1
            if seen == int(index):
                start = number
    if not start:  # written at the top: `feeds = ...` or a dotted `fetch.deadline = ...`
        top = re.compile(rf"^\s*{re.escape(table)}\s*[.=]")
        for number, line in enumerate(lines, 1):
            if _TABLE_HEADER.match(line):
                break
            if top.match(line):
                return number
        return 0
    if name:
        wanted = re.compile(rf"^\s*([\"']?){re.escape(name)}\1\s*=")
        for number in range(start + 1, end + 1):
            if wanted.match(lines[number - 1]):
                return number
    return start


def parse_duration(value: Any) -> float | None:
    """'15m' -> 900.0. None when the value is not a duration. A number needs its unit, but for
    0: `retention = 90` meaning 90 seconds would prune every article within two minutes."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return 0.0 if value == 0 else None
    if isinstance(value, str) and (m := _DURATION.match(value)):
        if m.group(2) is None and float(m.group(1)) != 0:
            return None
        return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    return None


def parse_interval(value: Any) -> float:
    """A duration of more than 0 and at most a century, as `interval` settings take (`feeds add
    --interval`); raises ValueError saying what was expected."""
    return _convert("duration", value)


def parse_size(value: Any) -> int | None:
    """'10MB' -> 10_000_000. None when the value is not a size. A number needs its unit, as
    a duration does: `max_bytes = 5` meant 5 bytes, and refused every feed."""
    if isinstance(value, str) and (m := _SIZE.match(value)):
        size = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
        return size if size > 0 else None  # "0B" would refuse every body
    return None


_EXPECTED = {
    "duration": 'expected a duration like "15m"',
    "duration or 0": 'expected a duration like "15m", or 0',
    "size": 'expected a size like "10MB", with its unit',
    "int": "expected a whole number from 1 to 1000",
    "port": "expected a port number from 1 to 65535",
    "ratio": "expected a number above 0 and at most 1, like 0.5",
    "bool": "expected true or false",
    "str": "expected a string",
    "path": "expected a file path",
    "list[str]": "expected a list of strings",
    "processes": 'expected "auto" or a whole number of processes (0 for none)',
}


def _convert(kind: str, value: Any) -> Any:
    """Convert one raw TOML value; raise ValueError when it is not of the kind."""
    converted: Any
    if kind in ("duration", "duration or 0"):
        converted = parse_duration(value)
        # 0 only where it means "none": a timeout of 0 failed every fetch with a traceback.
        if converted == 0 and kind == "duration":
            raise ValueError('expected a duration like "15m", more than 0')
        # Past a century, dates overflowed: a traceback at every poll.
        if converted is not None and converted > _LONGEST_DURATION:
            raise ValueError('expected a duration like "15m", at most 100 years')
    elif kind == "size":
        converted = parse_size(value)
    elif kind in ("int", "port"):
        highest = 65535 if kind == "port" else 1000  # 10**9 threads were accepted
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value <= highest
        converted = value if ok else None
    elif kind == "processes":
        if value == "auto":
            cpus = os.cpu_count() or 1
            value = cpus if cpus > 1 else 0
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        converted = value if ok else None
    elif kind == "ratio":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1
        converted = float(value) if ok else None
    elif kind == "bool":
        converted = value if isinstance(value, bool) else None
    elif kind in ("str", "path"):
        converted = value if isinstance(value, str) and (kind == "str" or value) else None
    elif kind == "list[str]":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        converted = tuple(value) if ok else None
    else:  # pragma: no cover - a bug in SETTINGS
        raise AssertionError(kind)
    if converted is None:
        raise ValueError(_EXPECTED[kind])
    return converted


def _section_values(raw: dict, name: str, path: str) -> dict[str, Any]:
    section = raw.get(name, {})
    if not isinstance(section, dict):
        raise ConfigError(path, name, "expected a table like [" + name + "]", section)
    known = {s.key.split(".", 1)[1] for s in SETTINGS if s.key.startswith(name + ".")}
    for key in section:
        if key not in known:
            raise ConfigError(
                path, f"{name}.{key}", f"unknown setting (known: {', '.join(sorted(known))})"
            )
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        section_name, key = setting.key.split(".", 1)
        if section_name != name:
            continue
        raw_value = section.get(key, setting.default)
        try:
            values[key] = _convert(setting.kind, raw_value)
        except ValueError as e:
            raise ConfigError(path, setting.key, str(e), raw_value) from None
    return values


def _feed(raw: Any, index: int, path: str) -> FeedConfig:
    where = f"feeds[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(path, where, "expected a table with at least url", raw)
    known = {s.key for s in FEED_SETTINGS}
    for key in raw:
        if key not in known:
            raise ConfigError(
                path, f"{where}.{key}", f"unknown setting (known: {', '.join(sorted(known))})"
            )
    if "url" not in raw:
        raise ConfigError(path, f"{where}.url", "is required: the address of the feed")
    values = {}
    for setting in FEED_SETTINGS:
        if setting.key not in raw:
            continue
        try:
            values[setting.key] = _convert(setting.kind, raw[setting.key])
        except ValueError as e:
            raise ConfigError(path, f"{where}.{setting.key}", str(e), raw[setting.key]) from None
    if "tags" in values:
        try:
            values["tags"] = feed_tags(values["tags"])
        except ValueError as e:
            raise ConfigError(path, f"{where}.tags", str(e), list(raw["tags"])) from None
    if values.get("language"):
        code = language_code(values["language"])
        if code is None:  # "english" would name no language an article or a rule is compared on
            raise ConfigError(
                path,
                f"{where}.language",
                'expected a language code such as "en" or "fr"',
                values["language"],
            )
        values["language"] = code
    return FeedConfig(**values)


EMPTY_TAG = "expected a word rules can scope to, not nothing"


def feed_tag(tag: str) -> str:
    """A feed tag as rules compare it with their feed_tags: one line, without control
    characters or spaces around it, so that " uk" pasted, or an OPML folder's name over two
    lines, is the tag "uk" a rule scopes to. "" when nothing is left."""
    return one_line(printable(tag))


def feed_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """The tags given for a feed (config.toml, `feeds add --tag`), cleaned (feed_tag), each
    once. Raises ValueError(EMPTY_TAG) for a blank one, which no rule could scope to."""
    cleaned = tuple(map(feed_tag, tags))
    if not all(cleaned):
        raise ValueError(EMPTY_TAG)
    return tuple(dict.fromkeys(cleaned))


FEED_URL_EXPECTED = "expected an http(s):// URL with a host, a file:// URL or a local path"
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def resolve_feed_url(url: str, base_dir: Path) -> str:
    """Local paths become absolute file:// URLs, relative to `base_dir`; file:// URLs are
    kept, and http(s) ones with their scheme and host in lower case. Raises
    ValueError(FEED_URL_EXPECTED) for an address no poll could ever fetch (ftp://, an http
    URL without a host, an empty string), rather than letting the feed fail on every poll."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        # "http:/host/rss" is a mistyped URL, not a file name
        if not url.strip() or re.match(r"^https?:", url, re.IGNORECASE):
            raise ValueError(FEED_URL_EXPECTED)
        return (base_dir / url).resolve().as_uri()
    name = scheme.group(1).lower()
    if name == "file":
        return "file://" + url[len("file://") :]  # fetch_feed knows file:// in lower case
    try:
        host = urlsplit(url).hostname
    except ValueError:  # an unclosed [IPv6 bracket
        host = None
    if name not in ("http", "https") or not host:
        raise ValueError(FEED_URL_EXPECTED)
    return lower_scheme_and_host(url)


_AUTHORITY = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)([^/?#]*)")


def lower_scheme_and_host(url: str) -> str:
    """A feed's address with its scheme and host in lower case, its user, path and query as
    given. Scheme and host are case-insensitive (RFC 3986, 6.2.2.1): http://LOCALHOST/f.xml
    and http://localhost/f.xml are one feed, which was stored and polled twice; a path's case
    is the server's to decide. Only ASCII letters are lowered, as SQLite's lower() does, so
    that the store finds the addresses it kept before this the same way."""
    found = _AUTHORITY.match(url)
    if found is None:
        return url
    scheme, authority = found.groups()
    user, at, host = authority.rpartition("@")
    lowered = scheme.translate(ASCII_LOWER) + user + at + host.translate(ASCII_LOWER)
    return lowered + url[found.end() :]


def _no_delivery() -> DeliveryConfig:
    from .config_delivery import DeliveryConfig

    return DeliveryConfig()


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate config.toml. Raises ConfigError naming file, key and expectation."""
    config_path = Path(path)
    shown = str(path)
    try:
        text = read_utf8(config_path)
    except FileNotFoundError:
        raise ConfigError(
            shown, "", "file not found (pass --config PATH, or set VIGIE_CONFIG)"
        ) from None
    except NotUtf8Error as e:
        raise ConfigError(shown, "", f"cannot be read: {e}", line=e.line) from None
    except IsADirectoryError:
        raise ConfigError(shown, "", "is a folder: pass the config.toml file in it") from None
    except OSError as e:
        raise ConfigError(shown, "", f"cannot be read: {e}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(shown, "", f"not valid TOML: {e}") from None
    try:
        return _config_of(raw, config_path, shown)
    except ConfigError as e:
        raise e.at_line(line_of_key(text, e.key)) from None


def _config_of(raw: dict[str, Any], config_path: Path, shown: str) -> Config:
    # config_delivery builds on this module's settings and converters: imported here, not above.
    from .config_delivery import ARRAYS, load_delivery

    known_sections = {s.key.split(".")[0] for s in SETTINGS} | {"feeds", *ARRAYS}
    for key in raw:
        if key not in known_sections:
            raise ConfigError(
                shown, key, f"unknown section (known: {', '.join(sorted(known_sections))})"
            )
    base = config_path.resolve().parent
    storage = _section_values(raw, "storage", shown)
    fetch = _section_values(raw, "fetch", shown)
    polling = _section_values(raw, "polling", shown)
    rules = _section_values(raw, "rules", shown)
    identity = _section_values(raw, "identity", shown)
    raw_feeds = raw.get("feeds", [])
    if not isinstance(raw_feeds, list):
        raise ConfigError(
            shown, "feeds", "expected an array of tables written [[feeds]]", raw_feeds
        )
    feeds = []
    for i, raw_feed in enumerate(raw_feeds):
        feed = _feed(raw_feed, i, shown)
        try:
            url = resolve_feed_url(feed.url, base)
        except ValueError as e:
            raise ConfigError(shown, f"feeds[{i}].url", str(e), feed.url) from None
        # Listed twice, the last settings won, without a word (OPML import keeps the first).
        for j, earlier in enumerate(feeds):
            if earlier.url == url:
                raise ConfigError(
                    shown, f"feeds[{i}].url", f"already listed as feeds[{j}]", feed.url
                )
        feeds.append(
            FeedConfig(
                url=url,
                name=feed.name,
                interval=feed.interval,
                tags=feed.tags,
                language=feed.language,
                full_text=feed.full_text,
                backlog=feed.backlog,
            )
        )
    return Config(
        path=config_path.resolve(),
        database=base / storage["database"],
        fetch=FetchConfig(**fetch),
        polling=PollingConfig(**polling),
        rules=RulesConfig(paths=tuple(base / p for p in rules["paths"]), reload=rules["reload"]),
        feeds=tuple(feeds),
        delivery=load_delivery(raw, shown, base),
        identity=IdentityConfig(**identity),
        retention=storage["retention"],
    )
