"""The two delivery jobs, "send due digests" and "dispatch webhooks", and the digest preview.

Everything they decide from is in SQLite: which subscriber is due (subscribers.next_due), which
message is waiting (deliveries.status and next_attempt). A message is claimed in one transaction
(its matches recorded against it), sent with no transaction open, and its outcome recorded at
once: a crash between sending and recording sends it again, with the same Message-ID or
webhook-id, and loses nothing.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from pathlib import Path

import requests

from ..config_delivery import DeliveryConfig, SubscriberConfig, WebhookConfig
from ..errors import OutboxError
from ..records import (
    MATCHES_PRUNED,
    OUTBOX_UNWRITABLE,
    SUBSCRIBER_REMOVED,
    URL_TAKEN,
    WEBHOOK_REMOVED,
    WITHDRAWN_EVENT,
    Delivery,
)
from ..rules.files import RuleSet
from ..rules.index import RuleIndex
from ..rules.model import Rule
from ..store import OutboxItem, Store, iso, parse_iso
from . import outbox
from .digest import Digest, build_digest, compose, footer, render
from .email import outbox_errors, send_smtp, write_eml
from .endpoints import enable_moved_endpoints
from .lanes import run_lanes
from .payload import payload
from .webhook import Attempt, post

log = logging.getLogger(__name__)
# Each attempt's outcome, for the service's log; commands that print a line for each attempt
# leave these out (cli_common.command_logging).
outcome_log = logging.getLogger(f"{__name__}.outcome")

# Webhook endpoints sent to at the same time, one thread and one connection each: few, as each
# is mostly waiting for an answer; as many as the connection pools a session keeps by default
# (fetch.make_session), so the endpoints sent to together do not close each other's.
ENDPOINTS_AT_ONCE = 8
# Seconds a run of `vigie run`'s dispatcher spends on one endpoint, at most (plus the answer it
# is waiting for); the rest of its deliveries go in the next run. The job runs once at a time:
# a slow endpoint's backlog of 100 kept the run, and every other endpoint's new deliveries,
# waiting for minutes.
ENDPOINT_BUDGET = 30.0
# Seconds between attempts at a digest the outbox folder could not take (a full disk, a folder
# it may not write): as the jobs wait after a database that could not be written.
OUTBOX_WAIT = 60


@dataclass(frozen=True)
class Sent:
    """The outcome of one attempt, for the CLI and the logs."""

    delivery_id: int
    kind: str
    target: str
    status: str  # sent | pending (will retry) | failed | dead
    detail: str = ""  # the .eml path, or why it failed
    items: int = 0  # a webhook's matches; a digest's entries, as the email counts them
    noun: str = ""  # a digest's word for its entries: "articles", or "stories" (digest.py)
    retry_at: datetime | None = None  # when a pending one is tried again
    code: int | None = None  # the HTTP status answered; None when no answer came
    made: datetime | None = None  # when the delivery was queued (`deliveries replay --since`)


def labels_of(rules: RuleIndex | RuleSet | None) -> outbox.Labels:
    """The names of the enabled rules and of the entities, of the rules in force (an index) or
    of the rule files as read, compiled or not (a command that only shows names need not
    compile 100,000 rules: 30 s)."""
    if rules is None:
        return outbox.Labels()
    return outbox.Labels(
        {rule.id: rule.name for rule in _enabled(rules) if rule.name},
        {e.id: e.name for e in rules.entities.values() if e.name},
    )


def has_rule_of(rules: RuleIndex | RuleSet | None) -> Callable[[str], bool]:
    """Whether a rule is in the rule files in force; any, when they do not load (nothing is
    matched then, and nothing withdrawn)."""
    if rules is None:
        return lambda rule_id: True
    if isinstance(rules, RuleIndex):
        return rules.has_rule
    return {rule.id for rule in _enabled(rules)}.__contains__


def _enabled(rules: RuleIndex | RuleSet) -> list[Rule]:
    if isinstance(rules, RuleIndex):
        return [compiled.rule for compiled in rules.rules]
    return [rule for rule in rules.rules if rule.enabled]


def sync_subscribers(store: Store, config: DeliveryConfig, now: datetime) -> None:
    """Bring each configured subscriber's stored state in line with config.toml. Call before
    polling, so a new subscriber receives the matches of that very poll."""
    for subscriber in config.subscribers:
        row = store.subscriber_state(subscriber.name)
        last = store.last_delivery_created("digest", subscriber.name)
        wanted = outbox.subscriber_row(subscriber, row, now, secrets.token_urlsafe(16), last)
        if wanted != row:
            with store.transaction():
                store.save_subscriber(wanted)


def _chosen(config: DeliveryConfig, names: Collection[str] | None) -> list[SubscriberConfig]:
    return [s for s in config.subscribers if names is None or s.name in names]


def open_digests(
    store: Store,
    config: DeliveryConfig,
    now: datetime,
    names: Collection[str] | None = None,
    force: bool = False,
    forced_empty: bool = True,
) -> list[int]:
    """Claim each due subscriber's undelivered matches into a new digest (every chosen one with
    force=True); advance the schedules that came due, to their next time after `now`, however
    many slots were missed. Returns the new deliveries' ids.

    A send_empty subscriber with nothing new gets a "nothing matched" digest at its slot, and
    when forced unless `forced_empty` is False: `vigie once`, run from cron every few minutes,
    sent one at every run."""
    sync_subscribers(store, config, now)
    created = []
    for subscriber in _chosen(config, names):
        row = store.subscriber_state(subscriber.name)
        assert row is not None  # synced above
        if row["unsubscribed"]:
            continue  # their matches are not claimed (Store.resubscribe starts them afresh)
        due = outbox.digest_due(subscriber, parse_iso(row["next_due"]), now)
        if not (force or due):
            continue
        with store.transaction():  # what is claimed and the schedule move together
            matches = _undelivered(store, subscriber, row)
            empty_allowed = subscriber.send_empty and (due or (force and forced_empty))
            if matches or empty_allowed:
                created.append(
                    store.insert_delivery("digest", subscriber.name, "pending", now, matches)
                )
            if due and subscriber.cron is not None:
                next_due = outbox.next_fire(subscriber.cron, subscriber.timezone, now)
                store.set_next_due(subscriber.name, next_due)
    return created


def _undelivered(store: Store, subscriber: SubscriberConfig, state: dict) -> list[tuple[int, str]]:
    since = outbox.claim_window(
        parse_iso(state["since"]),  # type: ignore[arg-type]
        store.last_delivery_created("digest", subscriber.name),
    )
    return store.undelivered_matches(
        subscriber.name, since, subscriber.rules, subscriber.tags, outbox.priorities(subscriber)
    )


def _period_start(
    store: Store, name: str, state: dict, made: datetime, delivery_id: int | None = None
) -> datetime | None:
    """Since when the digest made at `made` (delivery `delivery_id`, or one not made yet) tells
    what matched: the subscriber's digest before it, or the moment they came back or changed
    what they follow, when later. None for their first digest, which carries what matched
    since they were added, a new feed's latest items with it: "9 articles since 07:42" read
    wrong of November's news."""
    last = store.last_delivery_created("digest", name, before=delivery_id)
    if last is None:
        return None
    start = parse_iso(state.get("since"))
    return max(last, start) if start is not None and start <= made else last


def send_digests(
    store: Store,
    config: DeliveryConfig,
    labels: outbox.Labels,
    now: datetime,
    names: Collection[str] | None = None,
    rng: random.Random | None = None,
    stop: threading.Event | None = None,
) -> list[Sent]:
    """Send every digest that is due (new, or waiting for a retry); when `stop` is set (the
    service stopping), the rest stay due: against a slow mail server, sending them all could
    outlast the stop's timeout, and a kill between a send and its record sends it twice."""
    rng = rng or random.Random()
    sent = []
    due = store.due_deliveries("digest", now)
    if due:
        store.make_durable()  # what is sent stays sent (Store.make_durable)
    for delivery in due:
        if stop is not None and stop.is_set():
            break
        if names is not None and delivery.target not in names:
            continue
        try:
            sent.append(_send_digest(store, config, labels, delivery, now, rng))
        except Exception as e:  # one digest that cannot be written must not hold back the
            # others due behind it, at every tick, with nothing recorded on it.
            log.exception("digest #%s for %s could not be written", delivery.id, delivery.target)
            error = f"could not be written ({type(e).__name__}: {e}); see the service's log"
            sent.append(_record(store, delivery, now, "failed", error))
        log_outcomes(sent[-1:])
        if sent[-1].status == "pending" and sent[-1].detail.startswith(OUTBOX_UNWRITABLE):
            # The folder would refuse the others as well: they wait with this one, and the
            # next attempt, a minute later, is one digest's, not one and a log line each.
            store.defer_digests(now + timedelta(seconds=OUTBOX_WAIT))
            break
    else:
        if config.smtp is None and any(s.status == "sent" for s in sent):
            store.hasten_outbox_digests(now)  # it takes digests again: those waiting go next
    return sent


def send_due_digests(
    store: Store,
    config: DeliveryConfig,
    labels: outbox.Labels,
    now: datetime,
    rng: random.Random | None = None,
    stop: threading.Event | None = None,
) -> list[Sent]:
    """The "send due digests" job; it also forgets deliveries whose matches retention pruned."""
    open_digests(store, config, now)
    sent = send_digests(store, config, labels, now, rng=rng, stop=stop)
    store.prune_deliveries()
    return sent


def _send_digest(
    store: Store,
    config: DeliveryConfig,
    labels: outbox.Labels,
    delivery: Delivery,
    now: datetime,
    rng: random.Random,
) -> Sent:
    subscriber = config.subscriber(delivery.target)
    items = store.delivery_items(delivery.id)
    if subscriber is None:
        articles = len({item.article.id for item in items})
        return _record(store, delivery, now, "failed", SUBSCRIBER_REMOVED, count=articles)
    state = store.subscriber_state(subscriber.name) or {}
    if state.get("unsubscribed"):  # a digest made, or retried, before they left
        return _record(
            store, delivery, now, "failed", f"not sent: unsubscribed {state['unsubscribed']}"
        )
    # Rendered as of the delivery's creation, so every attempt sends the same email.
    stories = {item.story_id for item in items if item.story_id}
    sent_before = store.stories_sent_before(subscriber.name, stories, delivery.created)
    since = _period_start(store, subscriber.name, state, delivery.created, delivery.id)
    digest = build_digest(items, subscriber, labels, delivery.created, sent_before, since)
    message = compose(
        digest, delivery, subscriber, config, state.get("token") or "", delivery.created
    )
    # Reported as the email counts its entries (one per story), whichever way it goes out:
    # the delivery's matches are more (several rules, several outlets per entry).
    count, noun = digest.entries, digest.noun
    if config.smtp is None:
        name = f"{delivery.created:%Y%m%d-%H%M%S}-{subscriber.name}-{delivery.id}"
        try:
            path = write_eml(message, config.outbox, name)
        except OutboxError as e:  # a full disk, a folder fixed later: retried, as a refused
            # connection is (failed for good, its articles were never sent), but every
            # OUTBOX_WAIT for as long as it takes: the folder is the operator's to mend (status
            # says so), and its digests go within a minute of it.
            error, when = f"{OUTBOX_UNWRITABLE} ({e})", now + timedelta(seconds=OUTBOX_WAIT)
            return _record(
                store, delivery, now, "pending", error, None, when, count=count, noun=noun
            )
        return _record(store, delivery, now, "sent", str(path), count=count, noun=noun)
    outcome = send_smtp(message, config.smtp, subscriber.recipient.addr_spec)
    when = None
    status = outcome.status
    if status == "retry":
        when = outbox.retry_at(outbox.EMAIL_RETRY_DELAYS, delivery.attempts + 1, now, rng)
        # The schedule's span at its shortest (each wait less its jitter): attempts made on
        # schedule always end past it.
        span = sum(outbox.EMAIL_RETRY_DELAYS) * (1 - outbox.JITTER)
        if when is None and now < delivery.created + timedelta(seconds=span):
            # Attempts an operator asked for (`digest send`, five in a minute against a server
            # down) spent the schedule's count early: given up only after its whole span.
            when = delivery.created + timedelta(seconds=span)
        status = "pending" if when else "dead"
    return _record(
        store, delivery, now, status, outcome.error, outcome.code, when, count=count, noun=noun
    )


def dispatch_webhooks(
    store: Store,
    session: requests.Session,
    config: DeliveryConfig,
    labels: outbox.Labels,
    now: datetime,
    rng: random.Random | None = None,
    *,
    every_due: bool = False,
    stop: threading.Event | None = None,
    has_rule: Callable[[str], bool] = lambda rule_id: True,
) -> list[Sent]:
    """The "dispatch webhooks" job: enable the endpoints a 410 disabled that config.toml gave
    another `url` since, with what changed meanwhile of the rules in force (`has_rule`; see
    endpoints.py), close open batches, then attempt the due deliveries, the first 100 of each
    endpoint (the job's next run, seconds later, takes the rest), or with `every_due` all of
    them: `vigie once` run from cron would otherwise hold the rest until its next run.

    Each endpoint's deliveries go one after the other, in their order, over one connection;
    ENDPOINTS_AT_ONCE endpoints are sent to at the same time, so a consumer that answers slowly
    holds up its own deliveries only. An endpoint that gives no answer (a timeout, a refused
    connection) is not tried again in the same run: its other deliveries wait for the next, as
    do those of an endpoint that has had ENDPOINT_BUDGET seconds of the run (not with
    `every_due`, which sends them all). `stop` (the service stopping) ends the run: no attempt
    starts after it is set, and those under way are recorded."""
    follow_renames(store, config)
    enable_moved_endpoints(store, config, now, has_rule)
    store.close_batches(now)
    steps = _WebhookSteps(store, session, config, labels, now, rng or random.Random())
    try:
        _dispatch(store, config, steps, every_due, stop)
    finally:
        log_outcomes(steps.sent)
    return steps.sent


def _dispatch(
    store: Store,
    config: DeliveryConfig,
    steps: _WebhookSteps,
    every_due: bool,
    stop: threading.Event | None,
) -> None:
    """dispatch_webhooks' rounds: the due deliveries, then (`every_due`) those due since."""
    now = steps.now
    tried: set[int] = set()
    while True:
        paused = paused_webhooks(store, config, now)
        due = [
            d
            for d in store.due_per_target("webhook", now, paused=paused)
            if d.id not in tried and d.target not in steps.failing
        ]
        tried.update(d.id for d in due)
        if stop is not None and stop.is_set():
            return  # stopping: nothing more is prepared either
        # Bodies frozen first, then synced with what they name, then sent: a body frozen after
        # the sync could be lost to a power cut and sent again rebuilt (a code review).
        ready = steps.prepare(due)
        if ready:
            store.make_durable()  # what is sent stays sent (Store.make_durable)
        run_lanes(
            ready,
            _TARGET,
            steps,
            workers=ENDPOINTS_AT_ONCE,
            budget=None if every_due else ENDPOINT_BUDGET,
            stop=stop,
        )
        if not every_due or not due or (stop is not None and stop.is_set()):
            return


@dataclass(frozen=True)
class _Request:
    """A webhook delivery ready to be POSTed: its consumer, and the body every attempt sends."""

    delivery: Delivery
    hook: WebhookConfig
    body: str

    @property
    def target(self) -> str:
        return self.delivery.target


_TARGET = attrgetter("target")  # the lane of a request: its endpoint's


class _WebhookSteps:
    """dispatch_webhooks' steps for run_lanes: the store is read and written on the
    dispatcher's thread only (start, finish); the pool's threads only sign and POST."""

    def __init__(
        self,
        store: Store,
        session: requests.Session,
        config: DeliveryConfig,
        labels: outbox.Labels,
        now: datetime,
        rng: random.Random,
    ) -> None:
        self.store, self.session, self.config, self.labels = store, session, config, labels
        self.now, self.rng = now, rng
        self.sent: list[Sent] = []
        # Endpoints that gave no answer, or asked for a pause, in this run.
        self.failing: set[str] = set()

    def prepare(self, due: list[Delivery]) -> list[_Request]:
        """The requests of the due deliveries, their bodies frozen; those not to be sent are
        recorded as such (see _prepare)."""
        ready = []
        for delivery in due:
            now = max(self.now, datetime.now(UTC))
            request = _prepare(self.store, self.config, self.labels, delivery, now)
            if isinstance(request, Sent):
                self.sent.append(request)
            else:
                ready.append(request)
        return ready

    def start(self, request: _Request) -> _Request:
        return request

    def work(self, request: _Request) -> tuple[Attempt, datetime]:
        return _attempt(self.session, request, self.now)

    def finish(self, request: _Request, outcome: tuple[Attempt, datetime]) -> bool:
        attempt, when = outcome
        result = _conclude(self.store, request, attempt, when, self.rng)
        self.sent.append(result)
        if (result.status != "sent" and not result.code) or attempt.paused:
            self.failing.add(result.target)  # no answer, or a pause: not again in this run
            return False
        return not attempt.gone  # 410: its other deliveries failed with it (disable_endpoint)


def send_webhook(
    store: Store,
    session: requests.Session,
    config: DeliveryConfig,
    labels: outbox.Labels,
    delivery: Delivery,
    now: datetime,
    rng: random.Random | None = None,
) -> Sent:
    """Attempt one webhook delivery now, whatever else is due (`vigie deliveries retry` and
    `replay` send only theirs); `rng` jitters its retry.

    `now` is when the caller began (a tick, a `vigie once`); the attempt is signed, recorded
    and its retry counted from the clock when it is made, if later: a tick of slow endpoints,
    or a `once` that polled for minutes, signed every request with its start time, which
    receivers reject once five minutes old (docs/delivery.md)."""
    if config.webhook(delivery.target) is None and follow_renames(store, config):
        delivery = store.delivery(delivery.id) or delivery
    ready = _prepare(store, config, labels, delivery, max(now, datetime.now(UTC)))
    if isinstance(ready, Sent):
        result = ready
    else:
        store.make_durable()  # what is sent stays sent (Store.make_durable)
        attempt, when = _attempt(session, ready, now)
        result = _conclude(store, ready, attempt, when, rng or random.Random())
    log_outcomes([result])
    return result


def paused_webhooks(store: Store, config: DeliveryConfig, now: datetime) -> set[str]:
    """The webhooks whose endpoint, at the URL configured, asked for a pause not over at
    `now` (a pause of the URL a webhook had before is none of the new one's)."""
    urls = {hook.name: hook.url for hook in config.webhooks}
    return {e["name"] for e in store.paused_endpoints(now) if urls.get(e["name"]) == e["url"]}


def follow_renames(store: Store, config: DeliveryConfig, waiting_only: bool = True) -> int:
    """Deliveries queued for a webhook renamed in config.toml (its URL under a new name)
    follow the new name, rather than fail "no longer in config.toml" (see
    Store.follow_renamed_webhooks). Returns how many moved."""
    hooks = [(hook.name, hook.url) for hook in config.webhooks]
    moved = store.follow_renamed_webhooks(hooks, waiting_only)
    for old, new, count in moved:
        log.warning("webhook %r renamed %r (the same url): %d deliveries follow", old, new, count)
    return sum(count for _, _, count in moved)


def taken_url(store: Store, config: DeliveryConfig, delivery: Delivery) -> str | None:
    """Why a webhook delivery is not sent to its webhook's URL, when another webhook took the
    URL it was queued for from it (two webhooks swapped URLs, or the name went to another
    consumer): it would reach the wrong consumer. None otherwise: a webhook that left a URL it
    shared, or moved to a URL no other has, takes its deliveries along."""
    hook = config.webhook(delivery.target)
    if hook is None or not delivery.url or delivery.url == hook.url:
        return None
    owner = next((w.name for w in config.webhooks if w.url == delivery.url), None)
    if owner is None or not store.took_url(owner, delivery.url, delivery.created):
        return None
    return f"{URL_TAKEN} that is now webhook {owner!r}'s"


def _prepare(
    store: Store,
    config: DeliveryConfig,
    labels: outbox.Labels,
    delivery: Delivery,
    now: datetime,
) -> _Request | Sent:
    """The request for a delivery, its body frozen before the first attempt; or, recorded,
    why it is not sent (its consumer removed or disabled, its matches pruned)."""
    hook = config.webhook(delivery.target)
    if hook is None:
        return _record(store, delivery, now, "failed", WEBHOOK_REMOVED)
    swapped = taken_url(store, config, delivery)
    if swapped:
        return _record(store, delivery, now, "failed", swapped)
    disabled = store.disabled_endpoint(hook.name, hook.url)
    if disabled:
        return _record(store, delivery, now, "failed", f"endpoint disabled: {disabled}")
    body = delivery.payload
    if not body:
        items = store.delivery_items(delivery.id)
        if not items:
            return _record(store, delivery, now, "failed", MATCHES_PRUNED)
        mentions = store.mentions_of(sorted({item.article.id or 0 for item in items}))
        batched = hook.mode == "batched"
        body, carried = payload(delivery, items, mentions, labels, batched, hook.max_body)
        kept = set(map(_pair, carried))
        left = [pair for pair in map(_pair, items) if pair not in kept]
        # The articles past max_body go in a delivery of their own, due now.
        store.freeze_payload(delivery.id, body, left, now)
        delivery = replace(delivery, items=len(carried))
    return _Request(delivery, hook, body)


def _pair(item: OutboxItem) -> tuple[int, str]:
    return item.article.id or 0, item.match.rule_id


def _attempt(
    session: requests.Session, request: _Request, now: datetime
) -> tuple[Attempt, datetime]:
    """POST, signed with the time it is made (`now` if later); touches no store, so it may run
    on any thread. Returns the attempt and that time."""
    when = max(now, datetime.now(UTC))
    hook, delivery = request.hook, request.delivery
    attempt = post(
        session,
        hook.url,
        request.body,
        outbox.webhook_id(delivery),
        hook.secret,
        hook.timeout,
        when,
    )
    return attempt, when


def _conclude(
    store: Store, request: _Request, attempt: Attempt, now: datetime, rng: random.Random
) -> Sent:
    """Record what the attempt made at `now` achieved: sent, retry, dead, or gone."""
    hook, delivery = request.hook, request.delivery
    if attempt.ok:
        return _record(store, delivery, now, "sent", "", attempt.status, maybe_handled=True)
    handled = attempt.maybe_handled
    if attempt.gone:
        result = _record(
            store, delivery, now, "failed", attempt.error, attempt.status, maybe_handled=handled
        )
        others = store.disable_endpoint(hook.name, hook.url, attempt.error, now)
        log.warning(
            "webhook %s: endpoint %s gone, disabled; %d waiting deliveries failed",
            hook.name,
            hook.url,
            others,
            extra={"delivery_id": delivery.id, "error": attempt.error},
        )
        return result
    when = outbox.retry_at(
        outbox.WEBHOOK_RETRY_DELAYS, delivery.attempts + 1, now, rng, attempt.retry_after
    )
    if attempt.paused:
        # The endpoint asked for a pause: its other deliveries wait with this one, unspent.
        until = now + timedelta(seconds=min(attempt.retry_after or 0, outbox.LONGEST_PAUSE))
        store.pause_endpoint(hook.name, hook.url, until, attempt.error)
        log.warning(
            "webhook %s: endpoint paused until %s (HTTP %d with Retry-After)",
            hook.name,
            iso(until),
            attempt.status,
            extra={"delivery_id": delivery.id},
        )
    status = "pending" if when else "dead"
    return _record(
        store, delivery, now, status, attempt.error, attempt.status or None, when, handled
    )


def _record(
    store: Store,
    delivery: Delivery,
    now: datetime,
    status: str,
    detail: str,
    code: int | None = None,
    next_attempt: datetime | None = None,
    maybe_handled: bool = False,
    count: int | None = None,
    noun: str = "",
) -> Sent:
    """Record an attempt's outcome (log_outcomes logs it). `maybe_handled`: a webhook's
    consumer may have handled it (webhook.Attempt). `count` and `noun` are what the CLI
    reports; a webhook's count is its matches."""
    error = "" if status == "sent" else detail
    store.record_attempt(
        delivery.id,
        status,
        now,
        next_attempt=next_attempt,
        last_status=code,
        last_error=error,
        maybe_handled=maybe_handled,
    )
    items = delivery.items if count is None else count
    if delivery.event == WITHDRAWN_EVENT:
        noun = "withdrawn"  # its matches are those it takes back
    retry_at = next_attempt if status == "pending" else None
    return Sent(
        delivery.id,
        delivery.kind,
        delivery.target,
        status,
        detail,
        items,
        noun,
        retry_at,
        code,
        delivery.created,
    )


def log_outcomes(sent: list[Sent]) -> None:
    """Outcomes in the service's log: a line for each delivery, but one for all those of a
    consumer with one outcome in a run, saying how many, the first's id and the commonest
    error. A consumer down, answering 500 to each of its 1,270 waiting webhooks, made 950
    lines in six minutes of an NGO's log, one retry wave after another."""
    groups: dict[tuple[str, str, str], list[Sent]] = {}
    for result in sent:
        groups.setdefault((result.kind, result.target, result.status), []).append(result)
    for (kind, target, status), group in groups.items():
        level = logging.INFO if status == "sent" else logging.WARNING
        errors = Counter(s.detail for s in group if s.detail and status != "sent")
        extra: dict[str, object] = {"delivery_id": group[0].delivery_id}
        if errors:
            extra["error"], shared = errors.most_common(1)[0]
        if len(group) == 1:
            outcome_log.log(level, "%s to %s: %s", kind, target, status, extra=extra)
            continue
        others = len(group) - shared if errors else 0
        outcome_log.log(
            level,
            "%s to %s: %s %s (delivery_id is the first's%s)",
            kind,
            target,
            f"{len(group):,}",
            status,
            f"; {others:,} with another error" if others else "",
            extra=extra,
        )


def preview_digest(
    store: Store,
    config: DeliveryConfig,
    subscriber: SubscriberConfig,
    labels: outbox.Labels,
    now: datetime,
) -> tuple[Path, Digest]:
    """Render the digest the subscriber would receive now to outbox/preview-NAME.html, without
    claiming anything; an OutboxError when the outbox folder cannot take it."""
    sync_subscribers(store, config, now)
    state = store.subscriber_state(subscriber.name) or {}
    matches = _undelivered(store, subscriber, state)
    items = store.items_for(matches)
    stories = {item.story_id for item in items if item.story_id}
    sent_before = store.stories_sent_before(subscriber.name, stories, now)
    since = _period_start(store, subscriber.name, state, now)
    digest = build_digest(items, subscriber, labels, now, sent_before, since)
    html, _ = render(digest, footer(subscriber, config, state.get("token") or ""))
    path = config.outbox / f"preview-{subscriber.name}.html"
    with outbox_errors(config.outbox):
        config.outbox.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    return path, digest
