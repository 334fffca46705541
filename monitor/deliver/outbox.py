"""What is due in the outbox: digest schedules, retry timing, who follows which match, and the
idempotency keys. Pure functions: the time is always the `now` argument, never the clock.

Schedules are cron expressions (config turns `daily 08:00` into `0 8 * * *`) read by APScheduler's
CronTrigger. Only the next fire time after `now` matters: a service that was down for three days
sends one digest when it comes back, not three.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from ..config_delivery import SubscriberConfig, WebhookConfig
from ..records import WITHDRAWN_EVENT, Delivery, Match
from ..store import Store, iso

# Standard Webhooks' schedule: immediately, then these waits after each failure; after the 8th
# failed attempt the delivery is dead-lettered.
WEBHOOK_RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 36000)
# SMTP 4xx replies and connection failures: 1 min, 5 min, 15 min, 1 h, 3 h, then dead.
EMAIL_RETRY_DELAYS = (60, 300, 900, 3600, 10800)
# The longest pause a consumer's Retry-After holds an endpoint's deliveries for (their own
# retries are capped alike, at the schedule's longest wait).
LONGEST_PAUSE = max(WEBHOOK_RETRY_DELAYS)
JITTER = 0.1  # ±10%, so deliveries that failed together do not all retry together
CLAIM_MARGIN = timedelta(days=1)  # see claim_window

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True)
class Labels:
    """Display names of rules and entities, from the rule files in force; ids when unknown."""

    rules: Mapping[str, str] = field(default_factory=dict)
    entities: Mapping[str, str] = field(default_factory=dict)

    def rule(self, rule_id: str) -> str:
        return self.rules.get(rule_id) or rule_id

    def entity(self, entity_id: str) -> str:
        return self.entities.get(entity_id) or entity_id


@dataclass(frozen=True)
class WebhookRoute:
    """One article's matches that one webhook follows."""

    name: str
    url: str
    batched: bool
    rule_ids: tuple[str, ...]


def webhook_routes(
    webhooks: Iterable[WebhookConfig], matches: Sequence[Match]
) -> list[WebhookRoute]:
    """For each webhook that follows at least one of an article's matches, the rules it follows."""
    routes = []
    for hook in webhooks:
        rule_ids = tuple(m.rule_id for m in matches if hook.follows(m.rule_id, m.tags))
        if rule_ids:
            routes.append(WebhookRoute(hook.name, hook.url, hook.mode == "batched", rule_ids))
    return routes


def queue_webhooks(
    store: Store,
    webhooks: Iterable[WebhookConfig],
    article_id: int,
    matches: Sequence[Match],
    now: datetime,
) -> int:
    """Queue an article's new `matches` for every webhook that follows one of them, in the
    caller's transaction (the outbox: stored and queued together, or neither). Returns the
    deliveries queued (an endpoint disabled by a 410 Gone queues none)."""
    queued = 0
    for route in webhook_routes(webhooks, matches):
        delivery = store.enqueue_webhook(
            route.name, route.url, route.batched, article_id, route.rule_ids, now
        )
        queued += delivery is not None
    return queued


def queue_withdrawals(
    store: Store,
    webhooks: Iterable[WebhookConfig],
    article_id: int,
    matches: Sequence[Match],
    withdrawn: Sequence[str],
    restored: Sequence[str],
    now: datetime,
) -> int:
    """For each webhook that asked for withdrawals (`withdrawals = true`), in the caller's
    transaction: an article.withdrawn event of the `withdrawn` rules whose match it was last
    sent (an event that failed for good is taken back too when the consumer may have handled
    it all the same: a 500, a timeout; one it cannot have had, every attempt refused with a
    4xx or no connection made, is not, unless an operator sends it again: queue_corrections);
    and the `restored` rules (matching again, among `matches`) it follows and was last told
    were withdrawn, as article.matched again. Returns the deliveries queued.

    An event of the other kind not sent yet (a batch still open, an endpoint paused) loses
    those rules instead: rendered when sent, from the article as it is by then, it would
    carry the same `revision` as this one and contradict it, and a consumer keeping the event
    of the highest revision could not tell which holds. The withdrawal is queued even so (the
    consumer may have nothing to undo): it is what tells a restored rule to be sent again."""
    webhooks = list(webhooks)
    hooks = [hook for hook in webhooks if hook.withdrawals]
    if not hooks or not (withdrawn or restored):
        return 0
    # What a webhook was told under its former name is its own (the dispatcher moves only
    # the deliveries of a renamed webhook that some are waiting; its history, sent, stays).
    store.follow_renamed_webhooks([(hook.name, hook.url) for hook in webhooks], False)
    tags = {m.rule_id: m.tags for m in matches}
    return len(_tell(store, hooks, article_id, tags, withdrawn, restored, now))


def queue_corrections(
    store: Store,
    webhooks: Iterable[WebhookConfig],
    delivery_ids: Sequence[int],
    now: datetime,
    has_rule: Callable[[str], bool] = lambda rule_id: True,
) -> list[int]:
    """After an operator made these webhook deliveries due again (`vigie deliveries retry`,
    `replay`), in the caller's transaction: to each webhook that asked for withdrawals, the
    events that say what holds now of the matches they carry, where the newest event it may
    receive says otherwise (as queue_withdrawals decides after a correction). A delivery sent
    again keeps its body: a withdrawal that had failed, sent after the rule matched again
    (which nothing announced: the consumer had not been told of the withdrawal, or the
    endpoint was disabled), left the consumer without a match that holds; an article.matched
    sent after a correction undid it, with one that does not. One never attempted, written
    when sent, loses the rules it would contradict instead, as one not sent yet does, and
    goes when none is left. Rules no longer in the rule files (`has_rule` false) are left
    alone, as a correction leaves them. Returns the deliveries queued."""
    webhooks = list(webhooks)
    asking = {hook.name: hook for hook in webhooks if hook.withdrawals}
    carried: dict[tuple[str, int], list[tuple[str, bool, tuple[str, ...]]]] = {}
    for target, article_id, rule_id, holds, tags in store.carried_matches(delivery_ids):
        if target in asking and has_rule(rule_id):
            carried.setdefault((target, article_id), []).append((rule_id, holds, tags))
    queued: list[int] = []
    for (target, article_id), rules in carried.items():
        withdrawn = [rule_id for rule_id, holds, _ in rules if not holds]
        holding = [rule_id for rule_id, holds, _ in rules if holds]
        tags = {rule_id: rule_tags for rule_id, _, rule_tags in rules}
        hook = [asking[target]]
        queued += _tell(store, hook, article_id, tags, withdrawn, holding, now)
    return list(dict.fromkeys(queued))


def queue_catch_up(
    store: Store,
    webhooks: Iterable[WebhookConfig],
    name: str,
    now: datetime,
    has_rule: Callable[[str], bool] = lambda rule_id: True,
) -> list[int]:
    """To webhook `name`, its endpoint enabled again after a 410 disabled it, when it asked
    for withdrawals, in the caller's transaction: what changed while nothing was queued for
    it of the matches it was told of (or may have been), as queue_withdrawals would have
    queued it: article.withdrawn of those a correction or a rule edit undid, article.matched
    again of those it was last told were withdrawn that hold again (and that it follows).
    A consumer otherwise went on believing a match that no longer holds. Not what matched
    anew meanwhile, lost to it (docs/delivery.md), nor a rule no longer in the rule files
    (`has_rule` false). Returns the deliveries queued."""
    webhooks = list(webhooks)
    hook = next((hook for hook in webhooks if hook.name == name), None)
    if hook is None or not hook.withdrawals:
        return []
    store.follow_renamed_webhooks([(w.name, w.url) for w in webhooks], False)
    changed: dict[int, list[tuple[str, bool, tuple[str, ...]]]] = {}
    for article_id, rule_id, holds, tags in store.told_otherwise(name):
        if has_rule(rule_id):
            changed.setdefault(article_id, []).append((rule_id, holds, tags))
    queued: list[int] = []
    for article_id, rules in changed.items():
        withdrawn = [rule_id for rule_id, holds, _ in rules if not holds]
        holding = [rule_id for rule_id, holds, _ in rules if holds]
        tags = {rule_id: rule_tags for rule_id, _, rule_tags in rules}
        queued += _tell(store, [hook], article_id, tags, withdrawn, holding, now)
    return queued


def _tell(
    store: Store,
    hooks: Sequence[WebhookConfig],
    article_id: int,
    tags: Mapping[str, tuple[str, ...]],
    withdrawn: Sequence[str],
    restored: Sequence[str],
    now: datetime,
) -> list[int]:
    """queue_withdrawals for these webhooks, that asked for withdrawals; `tags`: each
    restored rule's. Returns the deliveries queued."""
    told = store.webhooks_told(article_id, {*withdrawn, *restored})
    queued: list[int | None] = []
    for hook in hooks:
        last = told.get(hook.name, {})
        gone = [r for r in withdrawn if last.get(r) == "article.matched"]
        back = [
            r
            for r in restored
            if last.get(r) == WITHDRAWN_EVENT and hook.follows(r, tags.get(r, ()))
        ]
        if gone:
            store.take_back_unsent(hook.name, article_id, gone, None)
            queued.append(store.enqueue_withdrawal(hook.name, hook.url, article_id, gone, now))
        if back:
            store.take_back_unsent(hook.name, article_id, back, WITHDRAWN_EVENT)
            now_told = store.webhooks_told(article_id, back).get(hook.name, {})
            back = [r for r in back if now_told.get(r) != "article.matched"]
        if back:
            batched = hook.mode == "batched"
            queued.append(
                store.enqueue_webhook(hook.name, hook.url, batched, article_id, back, now)
            )
    return [delivery_id for delivery_id in queued if delivery_id is not None]


def retry_at(
    delays: Sequence[float],
    attempts: int,
    now: datetime,
    rng: random.Random,
    retry_after: float | None = None,
) -> datetime | None:
    """When to try again after `attempts` failed attempts, or None when none is left.

    The wait is the schedule's, with jitter; a Retry-After the server sent is honoured when longer,
    up to the schedule's longest wait (a server cannot park a delivery for a week)."""
    if attempts < 1 or attempts > len(delays):
        return None
    delay = delays[attempts - 1] * rng.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, max(delays)))
    return now + timedelta(seconds=delay)


def _day_number(text: str) -> int:
    return _DAYS.index(text) if text in _DAYS else int(text)


def _weekdays(cron_field: str) -> str:
    """A standard cron day-of-week field (0 or 7 is Sunday) as day names, because APScheduler 3
    counts 0 as Monday (its issue 286): names mean the same to both."""
    if cron_field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for item in cron_field.split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            low, high = 0, 6
        elif "-" in base:
            first, last = base.split("-", 1)
            low, high = _day_number(first), _day_number(last)
        else:
            low = _day_number(base)
            high = 6 if step_text else low
        days.update(day % 7 for day in range(low, high + 1, step))
    return ",".join(_DAYS[day] for day in sorted(days))


def cron_trigger(cron: str, timezone: str) -> CronTrigger:
    minute, hour, day, month, weekday = cron.split()
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_weekdays(weekday),
        timezone=ZoneInfo(timezone),
    )


def next_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first time strictly after `after` that the schedule fires, in UTC."""
    zone = ZoneInfo(timezone)
    start = (after + timedelta(microseconds=1)).astimezone(zone)
    fire = cron_trigger(cron, timezone).get_next_fire_time(None, start)
    if fire is None:  # pragma: no cover - config only accepts schedules that fire again
        raise ValueError(f"schedule {cron!r} never fires again")
    local = fire.astimezone(zone)
    if "*" not in cron.split()[1] and _second_of_two(local, zone):
        # "daily 02:30" on the night clocks go back: 02:30 comes twice, the digest once (as
        # cron runs a job of fixed hours once in the repeated hour).
        return next_fire(cron, timezone, fire.astimezone(UTC))
    return fire.astimezone(UTC)


def _second_of_two(local: datetime, zone: ZoneInfo) -> bool:
    """Whether this local time is the second time the clock shows it (clocks went back)."""
    first = local.replace(fold=0).astimezone(UTC)
    return first != local.replace(fold=1).astimezone(UTC) and local.astimezone(UTC) != first


def digest_due(subscriber: SubscriberConfig, next_due: datetime | None, now: datetime) -> bool:
    """Immediate subscribers are always due (when something is waiting); others at next_due."""
    if subscriber.cron is None:
        return True
    return next_due is not None and next_due <= now


def claim_window(since: datetime, last_digest: datetime | None) -> datetime:
    """Where a digest starts looking for undelivered matches: from the subscriber's start, but
    no earlier than CLAIM_MARGIN before its last digest, so a tick does not rescan months of
    delivered matches. The margin covers matches stamped at a poll cycle's start and committed
    after that digest was made (a cycle takes minutes, never a day)."""
    if last_digest is None:
        return since
    return max(since, last_digest - CLAIM_MARGIN)


def priorities(subscriber: SubscriberConfig) -> tuple[str, ...]:
    return ("urgent",) if subscriber.min_priority == "urgent" else ("normal", "urgent")


def subscriber_row(
    subscriber: SubscriberConfig,
    row: Mapping[str, Any] | None,
    now: datetime,
    token: str,
    last_digest: datetime | None = None,
) -> dict[str, Any]:
    """A subscriber's stored state, brought in line with its configuration.

    A new subscriber receives matches made from now on (not the whole history). When what it
    follows changes, matches made since its last digest count under the new choice. When its
    schedule changes, the next digest is due at the new schedule's next time."""
    what = json.dumps([sorted(subscriber.rules), sorted(subscriber.tags), subscriber.min_priority])
    when = "immediate" if subscriber.cron is None else f"{subscriber.cron} {subscriber.timezone}"
    if row is None:
        since, next_due, token_kept = now, None, token
    else:
        since = datetime.fromisoformat(row["since"])
        next_due = datetime.fromisoformat(row["next_due"]) if row["next_due"] else None
        token_kept = row["token"] or token
        if row["filter"] != what:
            since = max(since, last_digest) if last_digest else since
    if subscriber.cron is None:
        next_due = None
    elif row is None or row["schedule"] != when or next_due is None:
        next_due = next_fire(subscriber.cron, subscriber.timezone, now)
    return {
        "name": subscriber.name,
        "since": iso(since),
        "filter": what,
        "schedule": when,
        "next_due": iso(next_due) if next_due else None,
        "token": token_kept,
        "unsubscribed": row.get("unsubscribed") if row else None,  # kept: theirs, not config's
    }


def webhook_id(delivery: Delivery) -> str:
    """The webhook-id header: from the delivery id, the same on every attempt. The random part
    keeps ids from two Vigie databases apart at one consumer."""
    return f"msg_{delivery.id}_{delivery.key}"


def message_id(delivery: Delivery, domain: str) -> str:
    """The digest's Message-ID: from the delivery id, the same on every attempt."""
    return f"<vigie.digest.{delivery.id}.{delivery.key}@{domain}>"
