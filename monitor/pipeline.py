"""One poll cycle: fetch -> parse -> store -> match, one transaction per feed.

Fetching and parsing run in a bounded thread pool (network-bound); storing and matching run on the
calling thread, because SQLite has one writer. A feed's failure is recorded on that feed and the
cycle goes on with the others.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import requests

from .config import Config
from .errors import FeedParseError
from .fetch import fetch_feed
from .parse import parse_feed
from .records import Article, Evidence, Feed, FetchResult, Match
from .store import FeedState, Store

log = logging.getLogger(__name__)


class Matcher(Protocol):
    """What the pipeline needs from the rules: matches and entity mentions for one article."""

    def match(
        self, article: Article, feed_tags: tuple[str, ...] = ()
    ) -> tuple[list[Match], list[Evidence]]: ...


@dataclass(frozen=True)
class PollOutcome:
    """What fetching and parsing one feed produced, before anything is stored."""

    feed: Feed
    fetch: FetchResult
    title: str = ""
    articles: tuple[Article, ...] = ()
    error: str | None = None  # fetch or parse error, for the feed's record


@dataclass
class CycleSummary:
    feeds_polled: int = 0
    feeds_unchanged: int = 0
    new_articles: int = 0
    new_matches: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (feed url, message)


def next_poll_time(
    interval: float,
    error_count: int,
    now: datetime,
    max_backoff: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> datetime:
    """When to poll next: the interval, doubled per consecutive failure up to max_backoff,
    with ±10% jitter so feeds that failed together do not retry together (after failures the
    jitter never takes the wait past max_backoff); never before a Retry-After the server asked
    for, itself capped at max_backoff."""
    rng = rng or random.Random()
    if error_count == 0:
        delay = interval * rng.uniform(0.9, 1.1)
    else:
        backoff = interval * 2 ** min(error_count, 32)  # the exponent is bounded: no overflow
        high = 1.0 if backoff >= max_backoff else 1.1
        delay = min(min(backoff, max_backoff) * rng.uniform(0.9, high), max_backoff)
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_backoff))
    return now + timedelta(seconds=delay)


def fetch_and_parse(
    session: requests.Session, feed: Feed, config: Config, now: datetime
) -> PollOutcome:
    """Network and parsing for one feed; safe to run in a worker thread (no database access)."""
    result = fetch_feed(session, feed, config.fetch)
    if result.error:
        return PollOutcome(feed, result, error=result.error)
    if result.unchanged or result.body is None:
        return PollOutcome(feed, result)
    try:
        title, articles = parse_feed(
            result.body, result.headers, result.url, feed.id, feed.name, feed.language, now
        )
    except FeedParseError as e:
        return PollOutcome(feed, result, error=e.reason)
    return PollOutcome(feed, result, title=title, articles=tuple(articles))


def store_outcome(
    store: Store, outcome: PollOutcome, config: Config, matcher: Matcher | None, now: datetime
) -> tuple[int, int]:
    """Store one feed's outcome in one transaction. Returns (new articles, new matches)."""
    feed, result = outcome.feed, outcome.fetch
    failed = outcome.error is not None
    error_count = feed.error_count + 1 if failed else 0
    state = FeedState(
        status=result.status,
        error=outcome.error,
        error_count=error_count,
        polled=now,
        next_poll=next_poll_time(
            feed.interval, error_count, now, config.polling.max_backoff, result.retry_after
        ),
        url=result.permanent_url,
        title=outcome.title or None,
        success=not failed,
        etag=result.etag,
        last_modified=result.last_modified,
        body_hash=result.body_hash,
    )
    new_matches = 0
    with store.transaction():
        new = store.insert_articles(outcome.articles, now) if not failed else []
        if matcher is not None:
            for article in new:
                matches, mentions = matcher.match(article, feed.tags)
                new_matches += store.insert_matches(matches, now)
                store.insert_mentions(article.id, mentions)  # type: ignore[arg-type]
        store.record_poll(feed.id, FeedState(**{**state.__dict__, "new_items": len(new)}))
    if failed:
        log.warning(
            "feed failed", extra={"feed_id": feed.id, "feed_url": feed.url, "error": outcome.error}
        )
    return len(new), new_matches


def poll_due(
    store: Store,
    session: requests.Session,
    config: Config,
    matcher: Matcher | None,
    now: datetime,
    on_feed_done: Callable[[PollOutcome], None] | None = None,
    force: bool = False,
) -> CycleSummary:
    """Poll every feed that is due (every feed with force=True) and store what is new."""
    if force:
        feeds = [store.feed(row["id"], config.polling.interval) for row in store.feeds()]
    else:
        feeds = store.due_feeds(now, config.polling.interval)
    summary = CycleSummary()
    if not feeds:
        return summary
    workers = max(1, min(config.fetch.concurrency, len(feeds)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
        futures = [pool.submit(fetch_and_parse, session, feed, config, now) for feed in feeds]
        for future in as_completed(futures):
            outcome = future.result()
            new_articles, new_matches = store_outcome(store, outcome, config, matcher, now)
            summary.feeds_polled += 1
            summary.new_articles += new_articles
            summary.new_matches += new_matches
            if outcome.fetch.unchanged:
                summary.feeds_unchanged += 1
            if outcome.error:
                summary.errors.append((outcome.feed.url, outcome.error))
            if on_feed_done:
                on_feed_done(outcome)
    return summary
