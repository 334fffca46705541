"""Delivery settings of config.toml: [smtp], [delivery], [[subscribers]] and [[webhooks]].

Part of loading config.toml (monitor.config calls `load_delivery`), kept apart so each module does
one thing. Like every setting, these are data (`Setting`), validated once into frozen objects, and
an error names the file, the key path and what was expected. Secrets are never written in the
file: it names the environment variables that hold them, read here and nowhere else.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.headerregistry import Address
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .config import Setting, _convert, _section_values
from .errors import ConfigError

ARRAYS = ("subscribers", "webhooks")
PRIORITY_RANK = {"normal": 0, "urgent": 1}
SECURITY_PORTS = {"starttls": 587, "tls": 465, "none": 25}
WEBHOOK_MODES = ("per-match", "batched")
DIGEST_LANGUAGES = ("en", "fr")  # those deliver/wording.py has the words of

SUBSCRIBER_SETTINGS: tuple[Setting, ...] = (
    Setting("name", "str", None, "short unique name: letters, digits, . _ -"),
    Setting("email", "str", None, "address the digests go to"),
    Setting("rules", "list[str]", [], "rule ids followed"),
    Setting("tags", "list[str]", [], "rule tags followed (a match of any rule with one of them)"),
    Setting(
        "schedule",
        "str",
        "daily 08:00",
        'immediate, hourly, "daily HH:MM", "weekly mon HH:MM" or a cron expression',
    ),
    Setting("timezone", "str", "UTC", 'time zone of the schedule, e.g. "Europe/Paris"'),
    Setting("language", "str", "en", "language of the digest's own words and dates: en or fr"),
    Setting("min_priority", "str", "normal", "normal, or urgent for urgent rules only"),
    Setting("send_empty", "bool", False, "send a digest even when nothing matched"),
    Setting(
        "max_entries",
        "int",
        200,
        "most articles one digest shows (the most urgent and best-scored); the others are counted",
    ),
)

WEBHOOK_SETTINGS: tuple[Setting, ...] = (
    Setting("name", "str", None, "short unique name: letters, digits, . _ -"),
    Setting("url", "str", None, "http(s) URL the events are POSTed to"),
    Setting("secret_env", "str", None, "environment variable holding the whsec_... secret"),
    Setting("rules", "list[str]", [], "rule ids followed"),
    Setting("tags", "list[str]", [], "rule tags followed"),
    Setting("mode", "str", "per-match", "per-match (one event per article) or batched"),
    Setting("timeout", "duration", "15s", "time the endpoint has to answer"),
    Setting(
        "max_body",
        "size",
        "1MB",
        "largest batched body: a batch over it goes in several POSTs (Express accepts 100KB)",
    ),
    Setting(
        "withdrawals",
        "bool",
        False,
        "also send article.withdrawn when a correction undoes a match an event carried",
    ),
)

_NOT_IN_A_LINK = re.compile(r'[\s<>"\',]|=\?')  # of public_base_url (load_delivery)
_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]*\Z")  # \Z: "$" let a final newline in
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
# (lowest, highest, names) of the five cron fields; names count from `lowest`.
_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_CRON_ITEM = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?$")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str  # starttls | tls | none
    username: str
    timeout: float
    sender: str  # the From header, e.g. "Vigie <vigie@example.org>"
    password: str | None = field(default=None, repr=False)
    password_env: str = ""  # set, with password None: the variable is not set (see missing_secrets)

    @property
    def sender_address(self) -> str:
        return email.utils.parseaddr(self.sender)[1]


class RuleLike(Protocol):
    """What delivery settings are checked against: a rule's id, tags and whether it is on
    (monitor.rules.model.Rule, which this layer does not import)."""

    @property
    def id(self) -> str: ...
    @property
    def tags(self) -> tuple[str, ...]: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def priority(self) -> str: ...


@dataclass(frozen=True)
class SubscriberConfig:
    name: str
    email: str
    rules: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    schedule: str = "daily 08:00"  # as written, for messages
    cron: str | None = "0 8 * * *"  # None: immediate
    timezone: str = "UTC"
    language: str = "en"  # of the digest's words (DIGEST_LANGUAGES)
    min_priority: str = "normal"
    send_empty: bool = False
    max_entries: int = 200  # shown in one digest; the others are counted (a flood of matches)

    def follows(self, rule_id: str, tags: tuple[str, ...], priority: str) -> bool:
        wanted = rule_id in self.rules or any(tag in self.tags for tag in tags)
        return wanted and PRIORITY_RANK.get(priority, 0) >= PRIORITY_RANK[self.min_priority]

    @property
    def recipient(self) -> Address:
        """Who the digest is addressed to: `email` may be "Name <name@example.org>" or the bare
        address, which then takes the subscriber's name."""
        display, address = email.utils.parseaddr(self.email)
        return Address(display_name=display or self.name, addr_spec=address)


@dataclass(frozen=True)
class WebhookConfig:
    name: str
    url: str
    # "" when secret_env is not set (see missing_secrets); several space-separated, rotating
    secret: str = field(repr=False)
    rules: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    mode: str = "per-match"
    timeout: float = 15.0
    secret_env: str = ""
    max_body: int = 1_000_000  # bytes of a batched body (see payload.payload)
    withdrawals: bool = False  # article.withdrawn events (outbox.queue_withdrawals)

    def follows(self, rule_id: str, tags: tuple[str, ...]) -> bool:
        return rule_id in self.rules or any(tag in self.tags for tag in tags)


@dataclass(frozen=True)
class DeliveryConfig:
    outbox: Path = Path("outbox")
    public_base_url: str = ""
    listen: tuple[str, int] | None = None  # where `vigie run` answers unsubscribe links
    tick: float = 5.0
    # On a feed's first read, items published this long before now are not sent (0: all)
    backlog: float = 30 * 86400.0
    smtp: SmtpConfig | None = None  # None: digests are written as .eml files into `outbox`
    from_header: str = "Vigie <vigie@localhost>"
    subscribers: tuple[SubscriberConfig, ...] = ()
    webhooks: tuple[WebhookConfig, ...] = ()

    def subscriber(self, name: str) -> SubscriberConfig | None:
        return next((s for s in self.subscribers if s.name == name), None)

    def missing_secrets(self) -> list[tuple[str, str]]:
        """(config key, variable) for each secret whose environment variable is not set. Only
        commands that send need them (see Config.require_secrets): `rules check` or
        `feeds list` run in a shell without the service's environment."""
        missing = []
        if self.smtp and self.smtp.password_env and self.smtp.password is None:
            missing.append(("smtp.password_env", self.smtp.password_env))
        for i, hook in enumerate(self.webhooks):
            if not hook.secret:
                missing.append((f"webhooks[{i}].secret_env", hook.secret_env))
        return missing

    def undeliverable(self, rules: Iterable[RuleLike]) -> list[tuple[str, str]]:
        """(config key, message) for each rule id or tag a subscriber or webhook follows that no
        enabled rule of `rules` has, and each subscriber whose min_priority none of the rules
        it follows reaches: either delivers nothing, and nothing else would say so."""
        enabled = [r for r in rules if r.enabled]
        ids, tags = {r.id for r in enabled}, {t for r in enabled for t in r.tags}
        found: list[tuple[str, str]] = []
        for kind, followers in (("subscribers", self.subscribers), ("webhooks", self.webhooks)):
            for i, follower in enumerate(followers):
                where, name = f"{kind}[{i}]", follower.name
                found += [
                    (f"{where}.rules", f"{name} follows rule {r!r}, which no enabled rule is")
                    for r in follower.rules
                    if r not in ids
                ]
                found += [
                    (f"{where}.tags", f"{name} follows tag {t!r}, which no enabled rule has")
                    for t in follower.tags
                    if t not in tags
                ]
        for i, subscriber in enumerate(self.subscribers):
            followed = [r for r in enabled if subscriber.follows(r.id, r.tags, "urgent")]
            if followed and not any(subscriber.follows(r.id, r.tags, r.priority) for r in followed):
                found.append(
                    (
                        f"subscribers[{i}].min_priority",
                        f"{subscriber.name} takes only {subscriber.min_priority} matches, and"
                        f" none of the rules it follows is {subscriber.min_priority}",
                    )
                )
        return found

    def webhook(self, name: str) -> WebhookConfig | None:
        return next((w for w in self.webhooks if w.name == name), None)


def parse_schedule(text: str) -> str | None:
    """A schedule as written -> a five-field cron expression (standard numbering: 0 is Sunday),
    or None for `immediate`. Raises ValueError with what was expected."""
    words = text.strip().lower().split()
    if words == ["immediate"]:
        return None
    if words == ["hourly"]:
        return "0 * * * *"
    if len(words) == 2 and words[0] == "daily" and (t := _TIME.match(words[1])):
        return f"{int(t.group(2))} {int(t.group(1))} * * *"
    if len(words) == 3 and words[0] == "weekly" and (t := _TIME.match(words[2])):
        if words[1][:3] not in _DAYS:
            raise ValueError(f'expected a day like mon, tue, ... sun, not "{words[1]}"')
        return f"{int(t.group(2))} {int(t.group(1))} * * {words[1][:3]}"
    if len(words) == 5:
        for (name, low, high, names), value in zip(_CRON_FIELDS, words, strict=True):
            _check_cron_field(name, value, low, high, names)
        return " ".join(words)
    raise ValueError(
        'expected immediate, hourly, "daily 08:00", "weekly mon 08:00" or a cron expression '
        'like "0 8 * * 1-5"'
    )


def _check_cron_field(name: str, value: str, low: int, high: int, names: tuple[str, ...]) -> None:
    for item in value.split(","):
        m = _CRON_ITEM.match(item)
        if not m or (m.group(2) is not None and int(m.group(2)) == 0):
            raise ValueError(f'cron {name}: cannot read "{item}"')
        if m.group(1) == "*":
            continue
        numbers = []
        for bound in m.group(1).split("-"):
            number = names.index(bound) + low if bound in names else None
            if number is None and bound.isdigit():
                number = int(bound)
            if number is None or not low <= number <= high:
                raise ValueError(f'cron {name}: expected {low}-{high}, not "{bound}"')
            numbers.append(number)
        if numbers != sorted(numbers):
            raise ValueError(f'cron {name}: a range goes from low to high, not "{item}"')


def _item(raw: Any, where: str, path: str, settings: tuple[Setting, ...]) -> dict[str, Any]:
    """One [[subscribers]] or [[webhooks]] table: known keys, required ones present, typed."""
    if not isinstance(raw, dict):
        raise ConfigError(path, where, "expected a table", raw)
    known = {s.key for s in settings}
    for key in raw:
        if key not in known:
            raise ConfigError(
                path, f"{where}.{key}", f"unknown setting (known: {', '.join(sorted(known))})"
            )
    values: dict[str, Any] = {}
    for setting in settings:
        if setting.key not in raw and setting.default is None:
            raise ConfigError(path, f"{where}.{setting.key}", f"is required: {setting.help}")
        value = raw.get(setting.key, setting.default)
        try:
            values[setting.key] = _convert(setting.kind, value)
        except ValueError as e:
            raise ConfigError(path, f"{where}.{setting.key}", str(e), value) from None
    if not _NAME.match(values["name"]):
        raise ConfigError(
            path, f"{where}.name", "expected letters, digits, '.', '_' or '-'", values["name"]
        )
    if not values["rules"] and not values["tags"]:
        raise ConfigError(path, f"{where}.tags", "follows nothing: give rules, tags or both")
    return values


def _choice(value: str, choices: Any, path: str, key: str) -> str:
    if value not in choices:
        raise ConfigError(path, key, f"expected one of {', '.join(choices)}", value)
    return value


def _address(value: str, path: str, key: str) -> str:
    expected = 'expected an email address like "Name <name@example.org>"'
    address = email.utils.parseaddr(value)[1]
    if "\r" in value or "\n" in value or not _ADDRESS.match(address):
        raise ConfigError(path, key, expected)
    try:  # as a To header will hold it
        Address(addr_spec=address)
    except (ValueError, IndexError, HeaderParseError):
        raise ConfigError(path, key, expected, value) from None
    return value


def _subscriber(raw: Any, index: int, path: str) -> SubscriberConfig:
    where = f"subscribers[{index}]"
    v = _item(raw, where, path, SUBSCRIBER_SETTINGS)
    try:
        cron = parse_schedule(v["schedule"])
    except ValueError as e:
        raise ConfigError(path, f"{where}.schedule", str(e), v["schedule"]) from None
    try:
        ZoneInfo(v["timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            path, f"{where}.timezone", 'expected a time zone like "Europe/Paris"', v["timezone"]
        ) from None
    if cron is None and v["send_empty"]:
        # An immediate digest goes when a match is made: "nothing matched" has no moment.
        raise ConfigError(path, f"{where}.send_empty", "expected false for an immediate schedule")
    return SubscriberConfig(
        name=v["name"],
        email=_address(v["email"], path, f"{where}.email"),
        rules=v["rules"],
        tags=v["tags"],
        schedule=v["schedule"],
        cron=cron,
        timezone=v["timezone"],
        language=_choice(v["language"], DIGEST_LANGUAGES, path, f"{where}.language"),
        min_priority=_choice(v["min_priority"], PRIORITY_RANK, path, f"{where}.min_priority"),
        send_empty=v["send_empty"],
        max_entries=v["max_entries"],
    )


def _webhook(raw: Any, index: int, path: str) -> WebhookConfig:
    where = f"webhooks[{index}]"
    v = _item(raw, where, path, WEBHOOK_SETTINGS)
    if not re.match(r"^https?://[^/\s]+", v["url"], re.IGNORECASE):
        raise ConfigError(path, f"{where}.url", "expected an http(s) URL", v["url"])
    key = f"{where}.secret_env"
    secret = " ".join(os.environ.get(v["secret_env"], "").split())
    # Several secrets, space-separated, while one replaces another: each signs every request,
    # so a consumer verifies with either (the rotation docs/delivery.md describes).
    for one in secret.split():
        try:
            if not one.startswith("whsec_"):
                raise ValueError
            decoded = base64.b64decode(one.removeprefix("whsec_"), validate=True)
        except (ValueError, binascii.Error):
            decoded = b""
        # The Standard Webhooks range; the secret is never shown. Unset, it is needed only to
        # send.
        if not 24 <= len(decoded) <= 64:
            raise ConfigError(
                path,
                key,
                f"{v['secret_env']} must hold whsec_ then 24 to 64 bytes in base64 (several,"
                " space-separated, while rotating)",
            )
    return WebhookConfig(
        name=v["name"],
        url=v["url"],
        secret=secret,
        rules=v["rules"],
        tags=v["tags"],
        mode=_choice(v["mode"], WEBHOOK_MODES, path, f"{where}.mode"),
        timeout=v["timeout"],
        secret_env=v["secret_env"],
        max_body=v["max_body"],
        withdrawals=v["withdrawals"],
    )


def _array(raw: dict, name: str, path: str) -> list[Any]:
    items = raw.get(name, [])
    if not isinstance(items, list):
        raise ConfigError(path, name, f"expected an array of tables written [[{name}]]", items)
    return items


def _unique(items: tuple[Any, ...], name: str, path: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.name in seen:
            raise ConfigError(path, f"{name}[{i}].name", "is used twice", item.name)
        seen.add(item.name)


def _smtp(raw: dict, path: str) -> SmtpConfig | None:
    values = _section_values(raw, "smtp", path)
    _choice(values["security"], SECURITY_PORTS, path, "smtp.security")
    _address(values["from"], path, "smtp.from")
    if not values["host"]:
        return None
    section = raw.get("smtp", {})
    password = None
    if values["password_env"]:
        password = os.environ.get(values["password_env"]) or None
    return SmtpConfig(
        host=values["host"],
        port=values["port"] if "port" in section else SECURITY_PORTS[values["security"]],
        security=values["security"],
        username=values["username"],
        timeout=values["timeout"],
        sender=values["from"],
        password=password,
        password_env=values["password_env"],
    )


def _listen(value: str, path: str) -> tuple[str, int]:
    """'127.0.0.1:8070' or '[::1]:8070' -> (host, port)."""
    host, _, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            path, "delivery.listen", 'expected a host and port, like "127.0.0.1:8070"', value
        )
    return host, int(port)


def load_delivery(raw: dict, path: str, base: Path) -> DeliveryConfig:
    """The delivery part of a parsed config.toml; `base` is the folder of the file."""
    values = _section_values(raw, "delivery", path)
    base_url = values["public_base_url"].rstrip("/")
    if base_url and not base_url.lower().startswith("https://"):
        # RFC 8058 one-click unsubscribe requires https.
        raise ConfigError(path, "delivery.public_base_url", "expected an https:// URL", base_url)
    if _NOT_IN_A_LINK.search(base_url):
        # Written into List-Unsubscribe as it is: a space or a "<" broke the link there, a
        # "," added one, and "=?...?=" read as an encoded word (a security review).
        raise ConfigError(
            path,
            "delivery.public_base_url",
            'expected a URL without spaces, quotes, <, >, "," or "=?"',
            base_url,
        )
    subscribers = tuple(_subscriber(s, i, path) for i, s in enumerate(_array(raw, ARRAYS[0], path)))
    webhooks = tuple(_webhook(w, i, path) for i, w in enumerate(_array(raw, ARRAYS[1], path)))
    _unique(subscribers, "subscribers", path)
    _unique(webhooks, "webhooks", path)
    return DeliveryConfig(
        outbox=base / values["outbox"],
        public_base_url=base_url,
        listen=_listen(values["listen"], path) if values["listen"] else None,
        tick=values["tick"],
        backlog=values["backlog"],
        smtp=_smtp(raw, path),
        from_header=_section_values(raw, "smtp", path)["from"],
        subscribers=subscribers,
        webhooks=webhooks,
    )
