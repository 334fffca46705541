"""Health: whether an unattended Vigie is doing its job, for `vigie status` and the monitoring
that runs it. A monitor that has stopped polling, that runs on rules other than those in its
files, or whose digests and webhooks fail, looks to its subscribers exactly like a quiet news
day; each of those is named here as a problem. Feeds that fail one by one are reported, not
counted as problems: among hundreds, one is nearly always down."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .errors import RuleError
from .records import NO_RETRY, Delivery
from .store import Store
from .store.rows import parse_iso
from .text import counted


@dataclass(frozen=True)
class FailingFeed:
    name: str
    url: str
    error: str
    errors: int  # failed polls in a row
    last_success: datetime | None


@dataclass(frozen=True)
class Health:
    checked: datetime
    running: bool  # a `vigie run` (or `once`) holds the database
    feeds: int  # polled (not retired)
    failing: tuple[FailingFeed, ...]  # most failed polls in a row first
    overdue: int  # feeds due for longer than the stale limit
    oldest_due: datetime | None  # the earliest due time among those
    last_polled: datetime | None
    articles: int
    newest_article: datetime | None
    # The rules in force: the running service's (as it recorded them, `rules_loaded`), else
    # what the files on disk hold. The errors are always those of the files on disk.
    rule_files: int
    rules: int  # that match (enabled); `rules_disabled` are in the files too
    rule_errors: tuple[RuleError, ...]
    unfollowed: tuple[str, ...]  # what subscribers and webhooks follow that no rule gives
    delivered: dict[str, int]  # kind -> sent since the window's start
    retrying: int
    undelivered: tuple[Delivery, ...]  # failed for good or dead in the window (newest 10)
    undelivered_total: int
    disabled: tuple[dict, ...]  # webhook endpoints disabled by a 410 Gone
    problems: tuple[str, ...]
    # Webhook endpoints that asked for a pause (429 or 503 with Retry-After): not a problem.
    paused: tuple[dict, ...] = ()
    disk_free: int | None = None  # bytes free on the database's file system
    oldest_article: datetime | None = None  # first seen: how far back the database reaches
    retention: float = 0  # seconds articles are kept (storage.retention); 0: for ever
    rules_loaded: datetime | None = None  # when the running service loaded its rules in force
    rules_disabled: int = 0
    # Digests waiting for a retry because the outbox folder could not take them, newest first.
    outbox_waiting: tuple[Delivery, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.problems


def assess(
    store: Store,
    *,
    now: datetime,
    running: bool,
    stale: timedelta,
    since: timedelta,
    rule_files: int,
    rules: int,
    rule_errors: list[RuleError],
    webhooks: Collection[tuple[str, str]] = (),
    subscribers: Collection[str] = (),
    unfollowed: Collection[str] = (),
    disk_free: int | None = None,
    retention: float = 0,
    rules_loaded: datetime | None = None,
    rules_disabled: int = 0,
) -> Health:
    """Read the database's state and name its problems. `stale`: how long a feed may be due
    without being polled; `since`: how far back failed deliveries count; `webhooks`: the (name,
    url) of those config.toml lists, `subscribers` the names: deliveries to others, which no
    retry can send, and an endpoint disabled and since given another url are no problem.
    `disk_free`: bytes free where the database is; `retention`: storage.retention's seconds.
    `rules` (enabled), `rules_disabled` and `rule_files` count the running service's rules in
    force when it recorded them (`rules_loaded`: when it loaded them), else the files on disk;
    `rule_errors` are the files' on disk."""
    feeds = store.feeds()
    due = [when for row in feeds if (when := parse_iso(row["next_poll"])) is not None]
    overdue = [when for when in due if when < now - stale]
    polled = [when for row in feeds if (when := parse_iso(row["last_polled"])) is not None]
    failing = sorted(
        (
            FailingFeed(
                row["name"] or row["title"] or row["url"],
                row["url"],
                row["last_error"],
                row["error_count"],
                parse_iso(row["last_success"]),
            )
            for row in feeds
            if row["error_count"] and row["last_error"]
        ),
        key=lambda f: -f.errors,
    )
    configured = set(webhooks)
    targets = [f"webhook:{name}" for name, _ in configured]
    targets += [f"digest:{name}" for name in subscribers]
    counts = store.delivery_counts(now - since, targets)
    undelivered = sum(n for (_, status), n in counts.items() if status in ("failed", "dead"))
    health = Health(
        checked=now,
        running=running,
        feeds=len(feeds),
        failing=tuple(failing),
        overdue=len(overdue),
        oldest_due=min(overdue, default=None),
        last_polled=max(polled, default=None),
        articles=store.count("articles"),
        newest_article=store.newest_first_seen(),
        rule_files=rule_files,
        rules=rules,
        rule_errors=tuple(rule_errors),
        unfollowed=tuple(unfollowed),
        delivered={
            kind: sum(n for (k, status), n in counts.items() if k == kind and status == "sent")
            for kind in ("digest", "webhook")
        },
        retrying=store.retrying(targets),
        undelivered=tuple(store.undelivered(now - since, targets)),
        undelivered_total=undelivered,
        disabled=tuple(
            e for e in store.disabled_endpoints() if (e["name"], e["url"]) in configured
        ),
        problems=(),
        paused=tuple(e for e in store.paused_endpoints(now) if (e["name"], e["url"]) in configured),
        disk_free=disk_free,
        oldest_article=store.oldest_first_seen(),
        retention=retention,
        rules_loaded=rules_loaded,
        rules_disabled=rules_disabled,
        outbox_waiting=tuple(store.waiting_on_outbox(targets)),
    )
    return replace(health, problems=tuple(problems_of(health)))


# Feeds never read that the problems name one by one; the others are counted in a line. An
# OPML of 2,000 feeds imported at once had 107 such, and status listed 107 problems.
NEVER_READ_NAMED = 10
# Below this, a disk is about to stop the service storing: a few polls' WAL, a checkpoint.
LOW_DISK = 100_000_000


def _never_read_advice(error: str) -> str:
    """What to do of a feed never read, by how it failed: "check its address" sent an operator
    to look for a typo in the address of a server that asked for time (429, 503) or that gave no
    answer (a 2,000-feed import's first ten named were 429s)."""
    if error.startswith(("HTTP 429", "HTTP 503")):
        return "its server asks Vigie to wait, and is asked again when it said"
    if error.startswith(("deadline of", "not asked:")) or "timed out" in error:
        return "its server gave no answer in time: is it up? (fetch.deadline sets the time)"
    return "check its address"


def problems_of(health: Health) -> list[str]:
    """What keeps subscribers from hearing about the news, one sentence each."""
    found = []
    if not health.feeds:
        found.append("no feed to poll: add one to config.toml or with `vigie feeds add`")
    if health.overdue:
        who = (
            "the service holds the database but has not polled them (a cycle stuck?)"
            if health.running
            else "no `vigie run` is polling this database"
        )
        found.append(
            f"{health.overdue} of {health.feeds} feeds due since"
            f" {_when(health.oldest_due)} have not been polled: {who}"
        )
    if health.feeds and len(health.failing) == health.feeds:
        found.append(
            "every feed fails: is the network down, or are the fetch settings refusing them?"
        )
    else:
        # Never once read: a mistyped address, more likely than an outage.
        never = [feed for feed in health.failing if feed.last_success is None]
        found += [
            f"{feed.name} has never been read ({feed.error}): {_never_read_advice(feed.error)}"
            for feed in never[:NEVER_READ_NAMED]
        ]
        if len(never) > NEVER_READ_NAMED:
            found.append(
                f"and {len(never) - NEVER_READ_NAMED} more feeds never read since they were"
                " added (`vigie feeds list --failing` lists them)"
            )
    found += [f"{error} ({_rule_error_consequence(health)})" for error in health.rule_errors]
    found += [f"{what}: they receive nothing of it" for what in health.unfollowed]
    for delivery in health.undelivered:
        what = (
            f"{delivery.kind} #{delivery.id} to {delivery.target!r} {delivery.status}:"
            f" {delivery.last_error or delivery.last_status}"
        )
        if delivery.last_error.startswith(NO_RETRY):
            found.append(what)  # `deliveries retry` refuses it: said without one
        else:
            found.append(f"{what} (`vigie deliveries retry {delivery.id}` sends it again)")
    if health.undelivered_total > len(health.undelivered):
        found.append(
            f"and {health.undelivered_total - len(health.undelivered)} more failed or dead"
            " deliveries (`vigie deliveries list --status dead`, `--status failed`)"
        )
    if health.outbox_waiting:
        # Retried like a mail server down, but the folder is the operator's to mend: status
        # said "healthy" for the four hours of retries before the digests were given up.
        newest, more = health.outbox_waiting[0], len(health.outbox_waiting) - 1
        found.append(
            f"digest #{newest.id} to {newest.target!r}{f' and {more} more' if more else ''}"
            f" waiting: {newest.last_error}; tried every minute, they go once the folder"
            " takes them"
        )
    if health.disk_free is not None and health.disk_free < LOW_DISK:
        # A full disk stops storing while the service runs on, looking like a quiet news day
        # for the 30 minutes before feeds count as overdue (a crash review).
        found.append(
            f"only {health.disk_free / 1e6:.0f} MB free on the database's disk: when it is full,"
            " nothing more is stored or sent"
        )
    for endpoint in health.disabled:
        found.append(
            f"webhook {endpoint['name']!r} disabled since {endpoint['disabled'][:16]}:"
            f" {endpoint['reason']} (change its url, or retry one of its deliveries)"
        )
    return found


def _rule_error_consequence(health: Health) -> str:
    """What a rule file that does not load means now: nothing changes for a running service
    until it is fixed, and no service starts on it (said of a stopped service too, "the running
    service keeps..." sent an operator looking for a service that was not there)."""
    if health.rules_loaded is not None:
        return (
            f"not loaded: the running service keeps the {counted(health.rules, 'rule')} it"
            f" loaded at {_when(health.rules_loaded)}, its last good ones"
        )
    if health.running:
        return "not loaded: the running service keeps the rules it loaded last"
    return "`vigie run` and `vigie once` refuse to start until it is fixed"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"
