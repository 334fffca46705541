"""The webhook payload: a versioned record of its own, documented by the JSON Schema in
docs/delivery.md, never an internal record serialised. Changing a field's meaning or removing one
means a new `version`; adding an optional field does not.

    {"type": "article.matched", "version": 1, "id": "msg_...", "timestamp": "...",
     "data": {"article": {...}, "rules": [...], "entities": [...]}}

A batched webhook receives `article.matched.batch`, whose data is {"events": [data, ...]}. A
webhook with `withdrawals = true` also receives `article.withdrawn` (withdrawal_event), one
article's, batched or not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..records import WITHDRAWN_EVENT, Delivery
from ..store import OutboxItem
from ..store.rows import outlet_name
from ..text import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN
from .outbox import Labels, webhook_id

VERSION = 1
# Evidence items sent per rule: an article repeating a matched paragraph hundreds of times gave
# a 2 MB body, over the 1 MB many receivers accept (nginx's default), retried to its death.
EVIDENCE_SENT = 100
EVENT = "article.matched"
BATCH_EVENT = "article.matched.batch"
PING_EVENT = "vigie.ping"  # `vigie deliveries ping`: a consumer checks its endpoint


def rfc3339(when: datetime | None) -> str | None:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def highlighted(snippet: str) -> tuple[str, list[list[int]]]:
    """A ⟦marked⟧ snippet as plain text plus the [start, end) offsets of the marked words."""
    text, spans, start = [], [], 0
    length = 0
    for part in _MARKS.split(snippet):  # text, mark, text, mark, ...: a few parts, not chars
        if part == HIGHLIGHT_OPEN:
            start = length
        elif part == HIGHLIGHT_CLOSE:
            spans.append([start, length])
        elif part:
            text.append(part)
            length += len(part)
    return "".join(text), spans


_MARKS = re.compile(f"([{HIGHLIGHT_OPEN}{HIGHLIGHT_CLOSE}])")


def article_event(
    items: Sequence[OutboxItem], mentions: Mapping[str, int], labels: Labels
) -> dict[str, Any]:
    """One article and the rules (those this consumer follows) that matched it."""
    rules = []
    for item in sorted(items, key=lambda i: (i.match.priority != "urgent", -i.match.score)):
        match = item.match
        snippet, spans = highlighted(match.snippet)
        rules.append(
            {
                "id": match.rule_id,
                "name": labels.rule(match.rule_id),
                "priority": match.priority,
                "tags": list(match.tags),
                "score": match.score,
                "snippet": snippet,
                "highlights": spans,
                "evidence": [
                    {
                        "field": e.field,
                        "start": e.start,
                        "end": e.end,
                        "text": e.text,
                        "term": e.term,
                        "entity": e.entity,
                    }
                    for e in match.evidence[:EVIDENCE_SENT]
                ],
                "evidence_total": len(match.evidence),
            }
        )
    return {
        "article": _article(items[0]),
        # A rule matching again after the consumer was sent its withdrawal: an update too.
        "updated": any(item.updated or item.restored for item in items),
        "rules": rules,
        "entities": [
            {"id": entity, "name": labels.entity(entity), "mentions": count}
            for entity, count in sorted(mentions.items())
        ],
    }


def _article(item: OutboxItem) -> dict[str, Any]:
    """An event's `article`: as the latest revision has it."""
    article = item.article
    return {
        "id": article.id,
        "url": article.url,
        "title": article.title,
        "source": {
            "name": outlet_name(article.feed_name, "", item.feed_url),
            "feed_url": _without_credentials(item.feed_url),
        },
        "published": rfc3339(article.published) if article.dated else None,
        "first_seen": rfc3339(article.first_seen),
        "language": article.language or None,
        "story_id": item.story_id,
        "revision": article.revision,
    }


def _without_credentials(url: str) -> str:
    """A feed's address without the user name and password it may hold (a private feed's,
    https://user:pass@host/...): they are the operator's secret, not the consumer's."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def withdrawal_event(items: Sequence[OutboxItem], labels: Labels) -> dict[str, Any]:
    """One article, as corrected, and the rules (those this consumer follows) that an event
    sent before named and its latest revision no longer matches."""
    return {
        "article": _article(items[0]),
        "rules": [
            {"id": item.match.rule_id, "name": labels.rule(item.match.rule_id)}
            for item in sorted(items, key=lambda i: i.match.rule_id)
        ],
    }


def payload(
    delivery: Delivery,
    items: Sequence[OutboxItem],
    mentions: Mapping[int, Mapping[str, int]],
    labels: Labels,
    batched: bool,
    max_body: int | None = None,
) -> tuple[str, list[OutboxItem]]:
    """The JSON body of a webhook delivery (compact, UTF-8 kept), and the items it carries.

    With `max_body`, a batch carries the articles, in order, whose events fit in that many
    bytes (always the first); the items of the others are left out, for another delivery: a
    batch of 100 articles quoting their evidence reached 4 MB, which receivers refuse (413)
    on every attempt."""
    if delivery.event == WITHDRAWN_EVENT:  # one article's, never batched
        envelope = _envelope(WITHDRAWN_EVENT, delivery)
        return _compact({**envelope, "data": withdrawal_event(items, labels)}), list(items)
    by_article: dict[int, list[OutboxItem]] = {}
    for item in items:
        by_article.setdefault(item.article.id or 0, []).append(item)
    events = [
        _compact(article_event(group, mentions.get(article_id, {}), labels))
        for article_id, group in by_article.items()
    ]
    kind = BATCH_EVENT if batched or len(events) != 1 else EVENT
    envelope = _envelope(kind, delivery)
    opening = _compact(envelope)[:-1] + ',"data":'  # the data, then the closing brace
    if kind == EVENT:
        return opening + events[0] + "}", list(items)
    kept, size = len(events), len(opening.encode()) + len('{"events":[]}}')
    if max_body is not None:
        for i, event in enumerate(events):
            size += len(event.encode()) + (i > 0)  # and its comma
            if size > max_body and i > 0:
                kept = i
                break
    carried = [item for group in list(by_article.values())[:kept] for item in group]
    return opening + '{"events":[' + ",".join(events[:kept]) + "]}}", carried


def ping_event(webhook: str, now: datetime, nonce: str) -> tuple[str, str]:
    """The webhook-id and body of a ping: signed and shaped as every event is, so a consumer can
    check its endpoint, its secret and its schema before any article matches. Its id has 0 for a
    delivery number (deliveries count from 1) and `nonce` (hex) for the rest: each ping is new,
    never a copy of another."""
    ping_id = f"msg_0_{nonce}"
    body = {
        "type": PING_EVENT,
        "version": VERSION,
        "id": ping_id,
        "timestamp": rfc3339(now),
        "data": {"webhook": webhook},
    }
    return ping_id, _compact(body)


def _envelope(kind: str, delivery: Delivery) -> dict[str, Any]:
    return {
        "type": kind,
        "version": VERSION,
        "id": webhook_id(delivery),
        "timestamp": rfc3339(delivery.created),
    }


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
