"""A webhook endpoint a 410 Gone disabled, enabled again (docs/delivery.md, "How to answer"):
by an operator's `vigie deliveries retry` of one of its deliveries, or by a new `url` in
config.toml. While it was disabled nothing was queued for it, corrections included; once
enabled, a consumer that asked for withdrawals is told what changed of the matches it was
told of (outbox.queue_catch_up), so that it does not go on believing one that no longer holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime

from ..config_delivery import DeliveryConfig
from ..store import Store
from ..text import counted
from . import outbox

log = logging.getLogger(__name__)


def enable_endpoint(
    store: Store,
    config: DeliveryConfig,
    name: str,
    now: datetime,
    has_rule: Callable[[str], bool] = lambda rule_id: True,
) -> list[int]:
    """Enable webhook `name`'s endpoint if a 410 disabled it, at whatever URL, and queue what
    changed meanwhile, in the caller's transaction. Returns the deliveries queued (none when
    it was not disabled)."""
    if not store.enable_endpoint(name):
        return []
    return outbox.queue_catch_up(store, config.webhooks, name, now, has_rule)


def enable_moved_endpoints(
    store: Store,
    config: DeliveryConfig,
    now: datetime,
    has_rule: Callable[[str], bool] = lambda rule_id: True,
    names: Collection[str] | None = None,
) -> list[int]:
    """The webhooks (of `names`, or all) given another `url` in config.toml since a 410
    disabled their endpoint: enabled at the new one, and told what changed meanwhile, each in
    a transaction of its own. Returns the deliveries queued."""
    disabled = {row["name"]: row["url"] for row in store.disabled_endpoints()}
    queued: list[int] = []
    for hook in config.webhooks:
        if names is not None and hook.name not in names:
            continue
        if hook.name in disabled and disabled[hook.name] != hook.url:
            with store.transaction():
                told = enable_endpoint(store, config, hook.name, now, has_rule)
            log.info(
                "webhook %s: disabled by a 410 at its former url, enabled at its new one; %s"
                " queued of what changed meanwhile of the matches it was sent",
                hook.name,
                counted(len(told), "delivery"),
            )
            queued += told
    return queued
