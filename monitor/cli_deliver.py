"""`vigie digest preview | send` and `vigie deliveries list | retry | replay`: delivery for
operators, and what `vigie once` does after polling.

Commands write to the outbox in SQLite, which is safe beside a running service; whoever holds the
database lock sends. When `vigie run` holds it, what was queued goes out on its next tick.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import asdict
from datetime import UTC, datetime

import click
from rich import box
from rich.table import Table

from .cli_common import (
    ago,
    check_digest_outbox,
    command_logging,
    config_option,
    console,
    did_you_mean,
    escape,
    locked_database,
    open_database,
    operator_errors,
    outbox_config_errors,
    parse_moment,
    print_table,
)
from .config import Config, load_config
from .config_delivery import SubscriberConfig
from .deliver.digest import count_of
from .deliver.dispatch import (
    Sent,
    dispatch_webhooks,
    follow_renames,
    has_rule_of,
    labels_of,
    open_digests,
    paused_webhooks,
    preview_digest,
    send_digests,
    send_webhook,
    sync_subscribers,
    taken_url,
)
from .deliver.endpoints import enable_endpoint, enable_moved_endpoints
from .deliver.outbox import Labels, queue_corrections
from .deliver.payload import ping_event
from .deliver.webhook import Attempt, post
from .errors import AlreadyRunningError, ConfigError, VigieError
from .fetch import make_session
from .records import NO_RETRY, TARGET_REMOVED, Delivery
from .rules.files import RuleSet, load_rules
from .rules.index import RuleIndex
from .scheduler import service_running
from .store import Store
from .text import counted


def _labels(config: Config) -> Labels:
    """Rule and entity names for display; a broken rule file only costs the names."""
    return labels_of(_rules(config))


def _rules(config: Config) -> RuleSet:
    """The rules of the rule files, for their names and ids: read, not compiled (100,000 rules
    took 30 s to compile for `digest preview`); none when a file does not load."""
    loaded = load_rules(config.rules.paths, only=())
    return loaded if loaded.ok else RuleSet()


def _correct(
    store: Store, config: Config, ids: list[int], now: datetime, index: RuleIndex | RuleSet | None
) -> list[int]:
    """After webhook deliveries were made due again, in the transaction that did it: the
    events that tell their consumers what holds now where they say otherwise (see
    outbox.queue_corrections), of the rules in `index` (all, when the rule files do not
    load). Returns their ids."""
    follow_renames(store, config.delivery)  # those of a renamed webhook, due again, follow it
    return queue_corrections(store, config.delivery.webhooks, ids, now, has_rule_of(index))


def _print_caught_up(store: Store, caught_up: list[int]) -> None:
    """What enabling endpoints again queued (endpoints.enable_endpoint), a line per webhook."""
    found = [d for d in map(store.delivery, caught_up) if d is not None]
    for name in sorted({d.target for d in found}):
        ids = [d.id for d in found if d.target == name]
        console.print(
            f"{_numbered(ids)} queued for {escape(name)}, whose endpoint is enabled again:"
            " what changed while it was disabled of the matches it was sent (a correction"
            " undid them, or they match again).",
            soft_wrap=True,
        )


def _print_corrections(store: Store, ids: list[int], corrections: list[int]) -> None:
    """What _correct did, said after the deliveries made due again: those dropped (never
    attempted, and nothing they said holds now), and the events queued after them."""
    dropped = [i for i in ids if store.delivery(i) is None]
    if dropped:
        they = "they" if len(dropped) > 1 else "it"
        console.print(
            f"{_numbered(dropped)} not sent: never attempted, and a later revision or rule edit"
            f" undid what {they} said: nothing to take back.",
            soft_wrap=True,
        )
    if corrections:
        they = "they" if len(ids) > 1 else "it"
        console.print(
            f"{_numbered(corrections)} queued after {'them' if len(ids) > 1 else 'it'}: a"
            f" later revision or rule edit changed what {they} said of a match, and"
            f" {'these tell' if len(corrections) > 1 else 'this tells'} the consumer what"
            " holds now.",
            soft_wrap=True,
        )


def _numbered(ids: list[int]) -> str:
    """'Delivery #4', 'Deliveries #4 and #7', 'Deliveries #4, #5 and #7'; past 5, a count."""
    if len(ids) > 5:
        return counted(len(ids), "delivery").capitalize()
    listed = " and ".join(", ".join(f"#{i}" for i in ids).rsplit(", ", 1))
    return f"{'Deliveries' if len(ids) > 1 else 'Delivery'} {listed}"


def _subscriber(config: Config, name: str) -> SubscriberConfig:
    found = config.delivery.subscriber(name)
    if found is None:
        known = ", ".join(s.name for s in config.delivery.subscribers) or "none configured"
        raise ConfigError(
            str(config.path), "subscribers", f"no subscriber {name!r} (known: {known})"
        )
    return found


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


# Past this many webhooks of one consumer with one outcome, `once` (and `replay`...) sums them up
# in a line: the first `vigie once` of an NGO's 2,000 feeds printed 2,533 lines, one per
# webhook, 946 of them the same 500 of the one consumer that was down.
LINES_PER_OUTCOME = 20


def print_sent(sent: list[Sent]) -> None:
    """One line per attempt: `Digest #1 for newsroom (13 articles) written: outbox/....eml`;
    a digest counts its entries with its own word ("2 stories"), a webhook its matches. A
    consumer's webhooks of one outcome, when more than LINES_PER_OUTCOME, in one line, where
    the first of them stood."""
    groups: dict[tuple[str, str, str], list[Sent]] = {}
    for result in sent:
        if result.kind == "webhook":  # withdrawals apart from matches
            groups.setdefault((result.target, result.status, result.noun), []).append(result)
    for result in sent:
        key = (result.target, result.status, result.noun)
        group = groups.get(key, []) if result.kind == "webhook" else []
        if len(group) <= LINES_PER_OUTCOME:
            _print_one(result)
        elif result is group[0]:
            _print_many(group)


def _print_many(group: list[Sent]) -> None:
    """`Webhooks for bot: 946 will retry from 06:45:16 UTC: HTTP 500 ...: boom`."""
    first = group[0]
    target, status = escape(first.target), first.status
    matches = counted(sum(s.items for s in group), "match")
    if first.noun == "withdrawn":  # article.withdrawn events
        matches += " withdrawn"
    errors = Counter(s.detail for s in group if s.detail)
    said = f"Webhooks for {target}: {len(group):,} "
    if status == "sent":
        console.print(f"{said}[green]sent[/] ({matches})", soft_wrap=True)
        return
    if status == "pending":
        retries = [s.retry_at for s in group if s.retry_at]
        said += "[yellow]will retry[/]" + (f" from {_when(min(retries))}" if retries else "")
    else:
        said += f"[red]{status}[/]"
    if errors:
        error, _ = errors.most_common(1)[0]
        others = len(group) - errors[error]
        said += f": {escape(error)}" + (f" ({others:,} with another error)" if others else "")
    listing = f"`vigie deliveries list --target {target} --status {status}` lists them"
    if status in UNDELIVERED and not first.detail.startswith(NO_RETRY):
        since = min((s.made for s in group if s.made), default=None)
        if since is not None:
            listing += (
                f"; once fixed, `vigie deliveries replay --target {target} --since"
                f" {since.astimezone(UTC):%Y-%m-%dT%H:%M}` sends them again"
            )
    console.print(f"{said} ({listing})", soft_wrap=True)


def _print_one(result: Sent) -> None:
    """`Webhook #12 for bot (3 matches) will retry at ...: HTTP 500 ...`."""
    if result.kind == "digest":  # counted as the email counts its entries
        what, count = "Digest", count_of(result.items, result.noun or "articles")
    else:
        what, count = "Webhook", f"{result.items} match{'es' if result.items != 1 else ''}"
        if result.noun == "withdrawn":  # an article.withdrawn event
            count += " withdrawn"
    colour = {"sent": "green", "pending": "yellow"}.get(result.status, "red")
    status = result.status
    if result.status == "pending":
        status = "will retry" + (f" at {_when(result.retry_at)}" if result.retry_at else "")
    if result.status == "sent" and result.detail.endswith(".eml"):
        status = "written"
    detail = f": {escape(result.detail)}" if result.detail else ""
    if then := _what_next(result):
        detail = f"{detail.rstrip('.')}. {then}"
    console.print(
        f"{what} #{result.delivery_id} for {escape(result.target)} "
        f"({count}) [{colour}]{status}[/]{detail}",
        soft_wrap=True,
    )


def _what_next(result: Sent) -> str:
    """What becomes of a delivery that was not sent, and what the operator can do: a failed
    digest was taken for retried, its articles stranded in it; a 410 disabled the endpoint
    and failed its other waiting deliveries, and said only "HTTP 410 Gone"."""
    if result.status == "pending" and result.kind == "digest":
        return "A temporary failure: it is tried again then, or now by `vigie digest send`."
    if result.status in UNDELIVERED and result.detail.startswith(NO_RETRY):
        return ""  # no retry sends it as things are
    if result.status in UNDELIVERED and result.code == 410:
        return (
            "The endpoint is disabled, its waiting deliveries failed with it, and what matches"
            " is not queued for it: once the consumer is back, `vigie deliveries retry"
            f" {result.delivery_id}` enables it and sends this one again."
        )
    if result.status in UNDELIVERED:
        return f"Once fixed, `vigie deliveries retry {result.delivery_id}` sends it again."
    return ""


UNDELIVERED = ("failed", "dead")  # statuses of a delivery that no one sends unless asked


def undelivered(sent: list[Sent]) -> bool:
    """Whether a digest or webhook just attempted failed for good or was given up: `digest
    send` and `once` then exit with status 2, as `vigie status` does, for scripts and cron
    (a 410 that disabled an endpoint left `once` exiting 0). Not for a delivery to a target
    removed from config.toml, which status counts as no problem either."""
    return any(s.status in UNDELIVERED and not s.detail.startswith(TARGET_REMOVED) for s in sent)


def _stranded(store: Store, name: str) -> str:
    """The subscriber's digests that failed for good or were given up, which `deliveries retry`
    would send, said for a "nothing new to send" line: their matches are claimed, so no new
    digest carries them, and "nothing new" read as nothing lost."""
    found = [
        d.id
        for d in store.undelivered(datetime.min.replace(tzinfo=UTC), [f"digest:{name}"])
        if d.items
    ][::-1]
    if not found:
        return ""
    ids = " and ".join(", ".join(f"#{i}" for i in found).rsplit(", ", 1))
    commands = " and ".join(f"`vigie deliveries retry {i}`" for i in found)
    many = len(found) > 1
    return (
        f"digest{'s' * many} {ids} failed for good, {'their' if many else 'its'} articles not"
        f" sent: once the cause is fixed, {commands} {'send them' if many else 'sends it'} again"
    )


def deliver_now(
    config: Config, store: Store, index: RuleIndex | None, now: datetime, names: list[str] | None
) -> list[Sent]:
    """Digests for the chosen subscribers (all when None) whatever their schedule (an empty one
    only at its slot), then every due webhook. The caller holds the database lock."""
    labels = labels_of(index)
    open_digests(store, config.delivery, now, names, force=True, forced_empty=False)
    sent = send_digests(store, config.delivery, labels, now, names)
    if config.delivery.webhooks:
        session = make_session(config.fetch)
        sent += dispatch_webhooks(
            store,
            session,
            config.delivery,
            labels,
            now,
            every_due=True,
            has_rule=has_rule_of(index),
        )
    return sent


def deliver_after_poll(
    config: Config, store: Store, index: RuleIndex | None, now: datetime
) -> list[Sent]:
    """The end of `vigie once`: each subscriber's digest now (as an .eml in the outbox folder
    when no SMTP server is configured), and the webhooks; one line each. Returns what was
    attempted."""
    sent = deliver_now(config, store, index, now, None)
    digests = {s.target for s in sent if s.kind == "digest"}
    for subscriber in config.delivery.subscribers:
        if subscriber.name in digests:
            continue
        waiting = store.list_deliveries(kind="digest", status="pending", target=subscriber.name)
        for delivery in reversed(waiting):  # oldest first
            when = f" at {_when(delivery.next_attempt)}" if delivery.next_attempt else ""
            why = f": {escape(delivery.last_error)}" if delivery.last_error else ""
            console.print(
                f"Digest #{delivery.id} for {escape(subscriber.name)} [yellow]waits to retry"
                f"{when}[/]{why} (`vigie deliveries retry {delivery.id}` sends it now)",
                soft_wrap=True,
            )
        left = (store.subscriber_state(subscriber.name) or {}).get("unsubscribed")
        if left and not waiting:  # "nothing new to send" read as if no news matched
            console.print(
                f"Digest for {escape(subscriber.name)}: none, unsubscribed {left[:10]}"
                f" (`vigie digest resubscribe {escape(subscriber.name)}` if they ask to come"
                " back)",
                soft_wrap=True,
            )
        elif not waiting:
            stranded = _stranded(store, subscriber.name)
            console.print(
                f"Digest for {escape(subscriber.name)}: nothing new to send"
                + (f" ({stranded})" if stranded else ""),
                soft_wrap=True,
            )
    print_sent(sent)
    return sent


_EVERY_KIND = ("digest", "webhook")


def _secrets_to_send(config: Config, kinds: Collection[str] = _EVERY_KIND) -> None:
    """The secrets the command needs to send `kinds` of deliveries, unless `vigie run` holds
    the database: it only queues then, and the service, which has them, sends (retry and
    digest send asked for the webhook secret in a shell that had no reason to hold it; digest
    send asks for no webhook's)."""
    if not service_running(config.database):
        config.require_secrets(kinds)


def _send_or_queue(
    config: Config, send: Callable[[], None], kinds: Collection[str] = _EVERY_KIND
) -> None:
    try:
        with locked_database(config), command_logging():
            config.require_secrets(kinds)  # the service may have stopped since _secrets_to_send
            send()
    except AlreadyRunningError:
        console.print(
            f"Queued: the running service sends it within {config.delivery.tick:g}s.",
            soft_wrap=True,
        )


@click.group()
def digest() -> None:
    """Preview or send digests."""


@digest.command("preview")
@click.argument("subscriber")
@config_option
@operator_errors
def digest_preview(subscriber: str, config_path: str) -> None:
    """Render SUBSCRIBER's next digest to an HTML file and print its path; nothing is claimed."""
    config = load_config(config_path)
    chosen = _subscriber(config, subscriber)
    store = open_database(config, must_exist=True)
    try:
        with outbox_config_errors(config):
            path, rendered = preview_digest(
                store, config.delivery, chosen, _labels(config), datetime.now(UTC)
            )
    finally:
        store.close()
    console.print(f"{rendered.subject}", soft_wrap=True, markup=False)
    console.print(str(path), soft_wrap=True, markup=False)


@digest.command("send")
@click.argument("subscriber", required=False)
@config_option
@operator_errors
def digest_send(subscriber: str | None, config_path: str) -> None:
    """Send SUBSCRIBER's digest now (every subscriber's without one), whatever the schedule,
    and any waiting to retry."""
    config = load_config(config_path)
    _secrets_to_send(config, ("digest",))
    names = [_subscriber(config, subscriber).name] if subscriber else None
    if not config.delivery.subscribers:
        raise VigieError(f"{config.path}: no [[subscribers]] configured")
    store = open_database(config)
    try:
        check_digest_outbox(config)  # before anything is claimed
    except VigieError:
        store.close()
        raise
    now = datetime.now(UTC)
    if subscriber is not None:
        state = store.subscriber_state(names[0]) if names else None
        if state and state["unsubscribed"]:
            store.close()
            raise VigieError(
                f"{names[0]} unsubscribed {state['unsubscribed']}; if they asked to come "
                f"back: vigie digest resubscribe {names[0]}"
            )
    created = open_digests(store, config.delivery, now, names, force=True)
    # Now means now: a digest waiting to retry goes too.
    chosen = names or [s.name for s in config.delivery.subscribers]
    waiting = store.hasten("digest", chosen, now)  # whether or not something new was made
    if not created and not waiting:
        console.print("Nothing new to send.")
        for name in chosen:
            if stranded := _stranded(store, name):
                console.print(f"{escape(name)}: {stranded}.", soft_wrap=True)
        store.close()
        return
    sent: list[Sent] = []

    def send() -> None:
        sent.extend(send_digests(store, config.delivery, _labels(config), now, names))
        print_sent(sent)

    _send_or_queue(config, send, ("digest",))
    store.close()
    if undelivered(sent):
        raise SystemExit(2)


@digest.command("unsubscribe")
@click.argument("subscriber")
@config_option
@operator_errors
def digest_unsubscribe(subscriber: str, config_path: str) -> None:
    """Stop SUBSCRIBER's digests (for a request that came by email), as their link would."""
    name, state = _change_subscription(config_path, subscriber, Store.unsubscribe)
    console.print(
        f"{escape(name)} unsubscribed {escape(state.get('unsubscribed') or '')}: no more "
        "digests (remove them from config.toml, or `vigie digest resubscribe`).",
        soft_wrap=True,
    )


@digest.command("resubscribe")
@click.argument("subscriber")
@config_option
@operator_errors
def digest_resubscribe(subscriber: str, config_path: str) -> None:
    """Send SUBSCRIBER digests again, of matches made from now on."""
    name, _ = _change_subscription(config_path, subscriber, Store.resubscribe)
    console.print(f"{escape(name)} receives digests again, of matches made from now on.")


def _change_subscription(
    config_path: str, subscriber: str, change: Callable[[Store, str, datetime], bool]
) -> tuple[str, dict]:
    """Apply `change` (Store.unsubscribe or resubscribe) to the subscriber; their name and
    stored state after it."""
    config = load_config(config_path)
    name = _subscriber(config, subscriber).name
    now = datetime.now(UTC)
    store = open_database(config)
    try:
        sync_subscribers(store, config.delivery, now)  # a new subscriber has no row yet
        change(store, name, now)
        return name, store.subscriber_state(name) or {}
    finally:
        store.close()


@click.group()
def deliveries() -> None:
    """List, retry and replay digests and webhook deliveries."""


def _row(delivery: Delivery) -> dict:
    row = asdict(delivery)
    for key in ("created", "next_attempt", "sent"):
        row[key] = row[key].isoformat() if row[key] else None
    row.pop("payload")
    row.pop("url")  # secret as the webhook's address (docs/database.md)
    return row


@deliveries.command("list")
@click.option("--status", type=click.Choice(["open", "pending", "sent", "failed", "dead"]))
@click.option("--kind", type=click.Choice(["digest", "webhook"]))
@click.option("--target", help="A subscriber or webhook name.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@config_option
@operator_errors
def deliveries_list(
    status: str | None,
    kind: str | None,
    target: str | None,
    limit: int,
    as_json: bool,
    config_path: str,
) -> None:
    """Deliveries, newest first, with their attempts and last error."""
    config = load_config(config_path)
    store = open_database(config, must_exist=True)
    found = store.list_deliveries(kind=kind, status=status, target=target, limit=limit + 1)
    store.close()
    more, found = len(found) > limit, found[:limit]  # the table stopped at 50, saying nothing
    if as_json:
        click.echo(json.dumps([_row(d) for d in found], indent=2, ensure_ascii=False))
        return
    if not found:  # an empty table's header read as a failure to list
        asked = [f"{name} {value}" for name, value in (("status", status), ("kind", kind),
                 ("to", target)) if value]  # fmt: skip
        console.print("No deliveries" + (f" ({', '.join(asked)})." if asked else "."))
        return
    # Short relative times, and the recipient and error folded, fit a narrow terminal.
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("id", "kind", "to", "status", "matches", "tries", "made", "next / sent"):
        folds = column in ("to", "status")
        table.add_column(column, overflow="fold", no_wrap=not folds)
    now = datetime.now(UTC)
    for d in found:
        status_text = d.status
        if d.last_error:
            status_text += f" [red]{escape(d.last_error)}[/]"
        # A failed or dead delivery keeps the time of the attempt it never made: no "next".
        when = d.sent if d.status == "sent" else d.next_attempt if d.status == "pending" else None
        table.add_row(
            str(d.id),
            f"{d.kind} ({d.event.removeprefix('article.')})" if d.event else d.kind,
            escape(d.target),
            status_text,
            str(d.items),
            str(d.attempts),
            ago(d.created, now),
            ago(when, now) if when else "-",
        )
    print_table(table)
    if more:
        console.print(f"The newest {limit} shown: --limit {limit * 10} shows more.")


@deliveries.command("retry")
@click.argument("delivery_id", type=int)
@config_option
@operator_errors
def deliveries_retry(delivery_id: int, config_path: str) -> None:
    """Send delivery DELIVERY_ID again now, with the same Message-ID or webhook-id; a webhook
    endpoint disabled by a 410 is enabled again."""
    config = load_config(config_path)
    store = open_database(config, must_exist=True)
    now = datetime.now(UTC)
    found = store.delivery(delivery_id)
    if found is None:
        raise VigieError(f"no delivery {delivery_id}")
    if not found.items:
        # Sent again, a digest would be an email saying nothing matched; a webhook, nothing.
        raise VigieError(
            f"{found.kind} #{delivery_id} carries nothing any more: retention pruned it"
        )
    if found.kind == "webhook" and (taken := taken_url(store, config.delivery, found)):
        raise VigieError(f"webhook #{delivery_id}: {taken}; no retry sends it to its consumer")
    _secrets_to_send(config, (found.kind,))
    index = _rules(config)
    corrections: list[int] = []
    caught_up: list[int] = []
    with store.transaction():
        if found.kind == "webhook":  # a 410's disable lifted: told what changed meanwhile
            caught_up = enable_endpoint(
                store, config.delivery, found.target, now, has_rule_of(index)
            )
        delivery = store.requeue(delivery_id, now)
        if delivery is None:
            raise VigieError(f"no delivery {delivery_id}")
        if delivery.kind == "webhook":
            corrections = _correct(store, config, [delivery_id], now, index)
    queued = [i for i in [delivery_id, *corrections, *caught_up] if store.delivery(i) is not None]
    if delivery_id in queued:
        console.print(f"Delivery #{delivery_id} to {escape(delivery.target)} queued.")
    _print_corrections(store, [delivery_id], corrections)
    _print_caught_up(store, caught_up)

    def send() -> None:
        labels = labels_of(index)
        if delivery.kind == "digest":
            print_sent(send_digests(store, config.delivery, labels, now, [delivery.target]))
            return
        session = make_session(config.fetch)
        print_sent(
            [
                send_webhook(store, session, config.delivery, labels, d, now)
                for d in map(store.delivery, queued)
                if d is not None
            ]
        )

    if queued:
        _send_or_queue(config, send, (delivery.kind,))
    store.close()


@deliveries.command("ping")
@click.argument("webhook")
@config_option
@operator_errors
def deliveries_ping(webhook: str, config_path: str) -> None:
    """POST a signed `vigie.ping` event to WEBHOOK now and say how its endpoint answered: a
    consumer checks its address, its secret and its parsing before any article matches. Nothing
    is stored or retried."""
    config = load_config(config_path)
    hooks = config.delivery.webhooks
    place = next((i for i, hook in enumerate(hooks) if hook.name == webhook), None)
    if place is None:
        known = {hook.name for hook in hooks}
        raise VigieError(
            f"no webhook {webhook!r} in {config.path}{did_you_mean(webhook, known)}"
            if known
            else f"no webhook in {config.path}: a [[webhooks]] table names each"
        )
    config.require_secrets(("webhook",), webhook=place)
    hook = hooks[place]
    now = datetime.now(UTC)
    ping_id, body = ping_event(hook.name, now, secrets.token_hex(8))
    started = time.monotonic()
    session = make_session(config.fetch)
    attempt = post(session, hook.url, body, ping_id, hook.secret, hook.timeout, now)
    took = f"{(time.monotonic() - started) * 1000:.0f} ms"
    if attempt.ok:
        console.print(
            f"Ping {ping_id} to {escape(hook.name)}: HTTP {attempt.status} in {took}. The"
            " endpoint answered 2xx, as Vigie's events need.",
            soft_wrap=True,
        )
        return
    raise VigieError(f"ping {ping_id} to {hook.name}: {attempt.error}{_ping_hint(attempt, place)}")


def _ping_hint(attempt: Attempt, place: int) -> str:
    """What a failed ping most likely means, for the operator or the consumer to act on."""
    if attempt.status in (400, 401, 403):
        return (
            f" (does the endpoint verify with the secret of webhooks[{place}].secret_env, and"
            ' over the raw body? docs/delivery.md, "Verifying a request")'
        )
    if attempt.gone:
        return " (Vigie stops sending to an endpoint that answers 410, until `deliveries retry`)"
    return ""


@deliveries.command("replay")
@click.option("--since", "since_text", required=True, help='A date, a time, or e.g. "24h".')
@click.option("--target", help="Only this subscriber or webhook.")
@click.option("--include-sent", is_flag=True, help="Sent deliveries too, not only failed ones.")
@config_option
@operator_errors
def deliveries_replay(
    since_text: str, target: str | None, include_sent: bool, config_path: str
) -> None:
    """Send failed and dead deliveries made since a time again (sent ones too with
    --include-sent), each with its original Message-ID or webhook-id."""
    config = load_config(config_path)
    now = datetime.now(UTC)
    since = parse_moment(since_text, now, "--since")  # a mistyped time said first
    kinds = [k for k, name in _targets(config) if name == target] if target else _EVERY_KIND
    _secrets_to_send(config, kinds)  # a subscriber's digests need no webhook's secret
    store = open_database(config, must_exist=True)
    follow_renames(store, config.delivery, waiting_only=False)  # a renamed webhook's history
    why_not = _why_not_sendable(store, config)
    targets = _targets(config)

    def refused(delivery: Delivery) -> str | None:
        """Sent again, each would fail at once, and a sent one be rewritten as failed."""
        key = (delivery.kind, delivery.target)
        if key not in targets:
            return "no longer in config.toml"
        return why_not.get(key) or taken_url(store, config.delivery, delivery)

    index = _rules(config)
    caught_up: list[int] = []
    if "webhook" in kinds:  # given a new url since a 410: what changed meanwhile goes too
        names = None if target is None else [target]
        caught_up = enable_moved_endpoints(store, config.delivery, now, has_rule_of(index), names)
    with store.transaction():
        ids, left = store.requeue_since(
            since, now, target=target, sent=include_sent, refused=refused
        )
        corrections = _correct(store, config, ids, now, index) if ids else []
    kept = [i for i in ids if store.delivery(i) is not None]
    console.print(f"{counted(len(kept), 'delivery')} queued again.")
    _print_corrections(store, ids, corrections)
    _print_caught_up(store, caught_up)
    corrections += caught_up
    for (kind, name, why), count in sorted(left.items()):
        console.print(
            f"{counted(count, 'delivery')} to {kind} {escape(repr(name))} left as they are: "
            f"{escape(why)}.",
            soft_wrap=True,
        )

    def send() -> None:
        """The deliveries queued again, not whatever else is due (a digest due tomorrow was
        sent by a replay of webhooks), and all of them (not the first 100)."""
        labels = labels_of(index)
        queued = sorted(
            (d for d in map(store.delivery, [*ids, *corrections]) if d is not None), key=_by_id
        )
        subscribers = sorted({d.target for d in queued if d.kind == "digest"})
        sent = send_digests(store, config.delivery, labels, now, subscribers) if subscribers else []
        hooks = [d for d in queued if d.kind == "webhook"]
        waiting: Counter[str] = Counter()
        if hooks:
            session = make_session(config.fetch)
            paused = paused_webhooks(store, config.delivery, now)
            for delivery in hooks:
                if delivery.target in paused:  # the service sends it once the pause is over
                    waiting[delivery.target] += 1
                    continue
                sent.append(send_webhook(store, session, config.delivery, labels, delivery, now))
                if sent[-1].status != "sent":
                    paused = paused_webhooks(store, config.delivery, now)
        print_sent(sent)
        for name, count in sorted(waiting.items()):
            console.print(
                f"{counted(count, 'delivery')} to webhook {escape(repr(name))} wait: its"
                " endpoint asked for a pause (`vigie status` says until when).",
                soft_wrap=True,
            )

    if kept or corrections:
        _send_or_queue(config, send, kinds)
    store.close()


def _targets(config: Config) -> set[tuple[str, str]]:
    delivery = config.delivery
    return {("digest", s.name) for s in delivery.subscribers} | {
        ("webhook", w.name) for w in delivery.webhooks
    }


def _why_not_sendable(store: Store, config: Config) -> dict[tuple[str, str], str]:
    """(kind, target) -> why a replay leaves its deliveries as they are, of the configured
    ones that cannot be sent to: each would fail at once, a sent one rewritten as failed."""
    found = {}
    for hook in config.delivery.webhooks:
        if store.disabled_endpoint(hook.name, hook.url):
            found["webhook", hook.name] = (
                "its endpoint is disabled (`vigie deliveries retry` of one of them enables it)"
            )
    for subscriber in config.delivery.subscribers:
        state = store.subscriber_state(subscriber.name) or {}
        if state.get("unsubscribed"):
            found["digest", subscriber.name] = f"unsubscribed {state['unsubscribed'][:10]}"
    return found


def _by_id(delivery: Delivery) -> int:
    return delivery.id or 0


def add_delivery_commands(main: click.Group) -> None:
    main.add_command(digest)
    main.add_command(deliveries)
