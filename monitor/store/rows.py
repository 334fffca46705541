"""Rows and records: how an Article, a match or a delivery is written to and read from its table
row, and the small value types the store hands out."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from ..records import Article, Delivery, Evidence, Match


@lru_cache(maxsize=64)
def iso(when: datetime) -> str:
    """Fixed-width UTC timestamps that sort as text. Cached: storing one article writes the
    poll's `now` several times (first seen, revision, sketch, story, matches). The year
    written with four digits: strftime writes 999, which sorts after 2026."""
    utc = when.astimezone(UTC)
    return f"{utc.year:04d}" + utc.strftime("-%m-%dT%H:%M:%S+00:00")


def parse_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def outlet_name(name: str | None, title: str | None, url: str | None) -> str:
    """The name to show a reader for a feed: the name given to it, else its own title, else
    the host of its address (a feed without a title was an empty outlet in exports). Never
    the whole address, which may carry a private feed's key, nor the credentials or port a
    host may be written with; a file's name for a feed read from a file."""
    if name or title:
        return name or title or ""
    parts = urlsplit(url or "")
    if parts.hostname:
        return parts.hostname
    return PurePosixPath(unquote(parts.path)).name if parts.scheme in ("", "file") else ""


@dataclass(frozen=True)
class FeedState:
    """What is written back to a feed after a poll."""

    status: int
    error: str | None
    error_count: int
    next_poll: datetime
    polled: datetime
    url: str | None = None  # a permanent redirect's new URL
    title: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    success: bool = False
    new_items: int = 0
    seen_items: tuple[tuple[str, str, str], ...] | None = None  # None: keep what the feed had
    asked_until: datetime | None = None  # when the server's Retry-After ends


ARTICLE_SELECT = (
    "SELECT a.*, COALESCE(NULLIF(f.name, ''), f.title, '') AS feed_name FROM articles a "
    "JOIN feeds f ON f.id = a.feed_id"
)


def article_from_row(row: dict[str, Any]) -> Article:
    return Article(
        id=row["id"],
        feed_id=row["feed_id"],
        guid=row["guid"],
        url=row["url"] or "",
        title=row["title"] or "",
        summary=row["summary"] or "",
        content=row["content"] or "",
        content_html=row["content_html"] or "",
        published=parse_iso(row["published"]),
        updated=parse_iso(row["updated"]),
        authors=tuple(json.loads(row["authors"] or "[]")),
        language=row["language"] or "",
        categories=tuple(json.loads(row["categories"] or "[]")),
        feed_name=row.get("feed_name") or "",
        canonical_url=row.get("canonical_url") or "",
        fingerprint=row.get("fingerprint") or "",
        full_text=bool(row.get("full_text")),
        full_text_error=row.get("full_text_error") or "",
        revision=row.get("revision") or 1,
        story_id=row.get("story_id"),
        first_seen=parse_iso(row.get("first_seen")),
    )


def article_columns(article: Article) -> dict[str, Any]:
    """The columns an article's revision rewrites."""
    return {
        "url": article.url,
        "title": article.title,
        "summary": article.summary,
        "content": article.content,
        "content_html": article.content_html,
        "published": iso(article.published) if article.published else None,
        "updated": iso(article.updated) if article.updated else None,
        "authors": json.dumps(list(article.authors), ensure_ascii=False),
        "language": article.language,
        "categories": json.dumps(list(article.categories), ensure_ascii=False),
        "fingerprint": article.fingerprint or None,
        "full_text": int(article.full_text),
        "full_text_error": article.full_text_error or None,
    }


def match_columns(match: Match, now: datetime) -> dict[str, Any]:
    return {
        "article_id": match.article_id,
        "rule_id": match.rule_id,
        "score": match.score,
        "evidence": json.dumps([e._asdict() for e in match.evidence], ensure_ascii=False),
        "snippet": match.snippet,
        "tags": json.dumps(list(match.tags)),
        "priority": match.priority,
        "matched_at": iso(now),
    }


@dataclass(frozen=True)
class OutboxItem:
    """One match a delivery carries, with its article and, once stories exist, its story."""

    article: Article
    match: Match
    story_id: str | None = None
    feed_url: str = ""
    updated: bool = False  # the rule first matched a later revision of the article
    # The headline of the revision before the one the rule first matched ("" unless updated).
    earlier_title: str = ""
    # The match holds again after an article.withdrawn of it queued before for the same
    # target (a webhook's, withdrawals = true): an event of it is an update too.
    restored: bool = False


def delivery_from_row(row: dict[str, Any]) -> Delivery:
    return Delivery(
        id=row["id"],
        kind=row["kind"],
        target=row["target"],
        key=row["key"],
        status=row["status"],
        created=parse_iso(row["created"]),  # type: ignore[arg-type]
        attempts=row["attempts"] or 0,
        next_attempt=parse_iso(row["next_attempt"]),
        sent=parse_iso(row["sent"]),
        last_status=row["last_status"],
        last_error=row["last_error"] or "",
        payload=row["payload"] or "",
        items=row.get("items") or 0,
        url=row.get("url") or "",
        event=row.get("event") or "",
    )


def outbox_item_from_row(row: dict[str, Any]) -> OutboxItem:
    match = Match(
        article_id=row["id"],
        rule_id=row["rule_id"],
        score=row["score"] or 0.0,
        evidence=tuple(Evidence(**e) for e in json.loads(row["evidence"] or "[]")),
        snippet=row["snippet"] or "",
        tags=tuple(json.loads(row["match_tags"] or "[]")),
        priority=row["priority"] or "normal",
    )
    story = row["story_id"]
    return OutboxItem(
        article_from_row(row),
        match,
        str(story) if story is not None else None,
        row["feed_url"] or "",
        (row["match_revision"] or 1) > 1,
        row.get("earlier_title") or "",
        bool(row.get("restored")),
    )


def guid_key(feed_id: int, guid: str) -> str:
    return f"guid:{feed_id}:{guid}"


def url_key(canonical_url: str) -> str:
    return f"url:{canonical_url}"


def item_keys(article: Article) -> set[str]:
    """The keys by which an item may be known: its feed and guid, and its canonical URL."""
    keys = {guid_key(article.feed_id, article.guid)}
    if article.canonical_url:
        keys.add(url_key(article.canonical_url))
    return keys


def chunks(values: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    """Pieces of at most `size` values, under SQLite's limit on parameters per statement."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
