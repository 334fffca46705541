"""One poll cycle: fetch -> parse -> identify -> store -> story -> match, one transaction per feed.

Fetching runs in a bounded thread pool (network-bound). Reading what was fetched (parsing,
identification: canonical URL, fingerprint, language) runs on the calling thread, just before
storing, or, given `readers` (monitor/readers.py), in worker processes that also sketch and
match the articles, so that parsing and matching use every core. Full_text feeds fetch their
article pages between parsing and identification and are always read in the fetch threads.
Storing, grouping into stories and matching what no worker matched run on the calling thread,
because SQLite has one writer. A feed's failure is recorded on that feed and the cycle goes on
with the others.

Why the calling thread reads: in one process, CPU work gets no parallelism from threads (the
GIL), and fetch threads that parse take the GIL each time the storing thread lets it go (every
SQLite statement, every numpy call on a few hundred values) and keep it for up to the switch
interval: the two threads traded it thousands of times a second, and an ingest of generated
feeds took 10-24% more time than with every read on the storing thread.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np
import requests

from . import delta
from .config import Config
from .deliver.outbox import queue_webhooks, queue_withdrawals
from .errors import FeedParseError
from .fetch import fetch_feed
from .fulltext import PageFetcher
from .hosts import HostTurns, host_of_feed
from .identity import TrackingParams, distinct_urls, identify, item_url, sketches
from .language import detect_language
from .parse import newest_items, parse_feed
from .records import Article, Change, Evidence, Feed, FetchResult, Match, evolve
from .store import FeedState, Store, parse_iso
from .store.stems import StemsAhead, stem_values, stems_key
from .stories import ensure_index, place_all

log = logging.getLogger(__name__)
# Each feed's failure, for the service's log; commands that print a summary line for each leave
# these out (cli_common.command_logging).
outcome_log = logging.getLogger(f"{__name__}.outcome")


class Matcher(Protocol):
    """What the pipeline needs from the rules: matches and entity mentions for one article."""

    def match(
        self,
        article: Article,
        feed_tags: tuple[str, ...] = (),
        other_feeds: tuple[str, ...] = (),
    ) -> tuple[list[Match], list[Evidence]]: ...

    def has_rule(self, rule_id: str) -> bool: ...


@dataclass(frozen=True)
class Prepared:
    """The CPU work on one article that storing needs, done ahead by a reader process: its
    story sketch, its stems for the search index and, with rules, its matches and entity
    mentions."""

    signature: np.ndarray | None  # identity.sketch of its text
    matched: tuple[list[Match], list[Evidence]] | None  # Matcher.match; None: no rules
    stems: tuple[str | None, ...] = ()  # store.stems.stem_values


class FeedReaders(Protocol):
    """Where fetched bodies are read (and their articles matched) when not in the fetch thread:
    worker processes (monitor/readers.py)."""

    def use(self, matcher: Matcher | None, feeds: int) -> bool:
        """Get ready to read a cycle of `feeds` due feeds with this matcher; False when the
        cycle is better read in the fetch threads."""
        ...

    def read(
        self, result: FetchResult, feed: Feed, tracking: TrackingParams, now: datetime
    ) -> PollOutcome: ...


@dataclass(frozen=True)
class PollOutcome:
    """What fetching and parsing one feed produced, before anything is stored."""

    feed: Feed
    fetch: FetchResult
    title: str = ""
    articles: tuple[Article, ...] = ()
    error: str | None = None  # fetch or parse error, for the feed's record
    seen_items: tuple[tuple[str, str, str], ...] | None = None  # for the feed's record; None: keep
    # Each of `articles` prepared for storing (`prepare`), when a reader did it already.
    prepared: tuple[Prepared, ...] | None = None
    # The body was fetched but left for the caller to read (fetch_and_parse, read_later).
    unread: bool = False
    # Seconds from the start of the cycle to the answer: when the feed was polled, and when its
    # next poll and a Retry-After count from (one `now` for a cycle of minutes shortened them).
    answered_after: float = 0.0


@dataclass
class CycleSummary:
    feeds_polled: int = 0
    feeds_unchanged: int = 0
    new_articles: int = 0
    updated_articles: int = 0  # new revisions of stored articles
    new_matches: int = 0  # rules newly matching a new article or a new revision
    archive_articles: int = 0  # new articles of new feeds' archives: kept, not delivered
    errors: list[tuple[str, str]] = field(default_factory=list)  # (feed url, message)
    # What storing changed, article by article, kept only when poll_due is asked to (tests,
    # tools): a first cycle of 2,000 feeds held every new article's text until its end.
    changes: list[Change] = field(default_factory=list)
    # Feeds a forced poll left alone, their server having asked for time: (url, until, error).
    waiting: list[tuple[str, str, str]] = field(default_factory=list)
    # Feeds not started within the cycle's max_cycle, by host: still due, for the next cycle.
    left: Counter[str] = field(default_factory=Counter)


# The first slot of a healthy feed is at least this share of its interval after its last poll:
# a feed added (or recovered, or polled at a restart) with many others is not asked again
# at once, and none waits longer than the interval and this share.
SLOT_MARGIN = 0.1
_GOLDEN = (5**0.5 - 1) / 2  # consecutive multiples modulo 1 fill [0, 1) evenly


def feed_phase(feed_id: int) -> float:
    """Where in its interval a feed is polled, as a share of it in [0, 1). Feeds stored
    together (an OPML import, config.toml) have consecutive ids, so their phases are spread
    evenly over the interval (the golden-ratio sequence), and a feed keeps its phase across
    restarts with nothing stored."""
    return (feed_id * _GOLDEN) % 1.0


def _until_slot(interval: float, phase: float, now: datetime) -> float:
    """Seconds to the feed's next slot: the first time t, SLOT_MARGIN of the interval after
    now or later, with t = (k + phase) * interval seconds since the Unix epoch. Polled a little
    after one slot, a feed is due again at the next, one interval later."""
    earliest = now.timestamp() + interval * SLOT_MARGIN
    slot = (math.ceil(earliest / interval - phase) + phase) * interval
    return slot - now.timestamp()


def next_poll_time(
    interval: float,
    error_count: int,
    now: datetime,
    max_backoff: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
    phase: float | None = None,
) -> datetime:
    """When to poll next. A healthy feed: at its slot (`_until_slot`, at `phase`, a random
    one if not given), so feeds that were polled together, added at once or all due after a
    restart, are spread over the interval from then on, rather than kept together by the same
    interval each. After failures: the interval doubled per consecutive failure up to
    max_backoff, with ±10% jitter so feeds that failed together do not retry together (the
    jitter never takes the wait past max_backoff). Never before a Retry-After the server asked
    for, itself capped at max_backoff."""
    rng = rng or random.Random()
    if error_count == 0:
        delay = _until_slot(interval, rng.random() if phase is None else phase, now)
    else:
        backoff = interval * 2 ** min(error_count, 32)  # the exponent is bounded: no overflow
        high = 1.0 if backoff >= max_backoff else 1.1
        delay = min(min(backoff, max_backoff) * rng.uniform(0.9, high), max_backoff)
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_backoff))
    return now + timedelta(seconds=delay)


def fetch_and_parse(
    session: requests.Session,
    feed: Feed,
    config: Config,
    now: datetime,
    known: Mapping[str, str | None] | None = None,
    pages: PageFetcher | None = None,
    readers: FeedReaders | None = None,
    read_later: bool = False,
) -> PollOutcome:
    """Network, parsing and identification for one feed; safe to run in a worker thread (no
    database access). Only the items the feed's last document did not carry byte for byte are
    parsed (monitor/delta.py). For a full_text feed, `pages` fetches the pages of the items that
    `known` (guid -> stored fingerprint) does not hold unchanged; other feeds are read by
    `readers` when given, else here, or with `read_later` by the caller: the outcome is then
    `unread`, for `read_outcome`."""
    result = fetch_feed(session, feed, config.fetch)
    if result.error:
        return PollOutcome(feed, result, error=result.error)
    if result.unchanged or result.body is None:
        return PollOutcome(feed, result)
    tracking = TrackingParams.of(config.identity.tracking_params)
    if not (feed.full_text and pages is not None):
        if readers is not None:
            return readers.read(result, feed, tracking, now)
        if read_later:
            return PollOutcome(feed, result, unread=True)
        return read_feed(result, feed, tracking, now)
    try:
        title, articles, seen, others = _new_items(result, feed, tracking, now)
    except FeedParseError as e:
        return PollOutcome(feed, result, error=e.reason)
    articles = distinct_urls(pages.enrich(articles, known or {}), others)
    return PollOutcome(feed, result, title, _with_language(articles), seen_items=seen)


def read_feed(
    result: FetchResult,
    feed: Feed,
    tracking: TrackingParams,
    now: datetime,
) -> PollOutcome:
    """Parse and identify the new items of one fetched body: CPU work only (no network, no
    database), so a worker process can do it."""
    try:
        title, articles, seen, _ = _new_items(result, feed, tracking, now)
    except FeedParseError as e:
        return PollOutcome(feed, result, error=e.reason)
    return PollOutcome(feed, result, title, _with_language(articles), seen_items=seen)


def _with_language(articles: list[Article]) -> tuple[Article, ...]:
    """The articles, each with a language: the one declared, else the one detected."""
    return tuple(a if a.language else evolve(a, language=detect_language(a.text)) for a in articles)


def prepare(outcome: PollOutcome, matcher: Matcher | None) -> PollOutcome:
    """The outcome with each article's sketch and matches worked out ahead of storing (pure),
    so that a reader process does that work instead of the one that stores."""
    articles = outcome.articles
    signatures = sketches(a.text for a in articles)
    prepared = tuple(
        Prepared(
            signature,
            matcher.match(a, outcome.feed.tags) if matcher else None,
            tuple(stem_values(a.title, a.summary, a.content, a.language)),
        )
        for a, signature in zip(articles, signatures, strict=True)
    )
    return evolve(outcome, prepared=prepared)


Remembered = tuple[tuple[str, str, str], ...]  # Feed.seen_items: (digest, identity URL, guid)


def _new_items(
    result: FetchResult, feed: Feed, tracking: TrackingParams, now: datetime
) -> tuple[str, list[Article], Remembered, list[str]]:
    """(title, identified articles, the document's items to remember, the identity URLs of
    the items not parsed as `distinct_urls` should count them after identification).

    The items the feed's last document also had are cut out before parsing and counted by
    their remembered URLs, so that a link several items share still identifies none of them.
    A new item whose guid an item cut out has makes the whole document parsed, so that
    `distinct_guids` sees every item of that guid (rare: only feeds that reuse guids).
    A document whose every item was seen is not parsed at all (its title waits for a change).
    When its items cannot be cut, or do not each give one article (an item with neither title
    nor text gives none), the whole document is parsed and nothing is remembered."""
    seen = {d: (url, guid) for d, url, guid in feed.seen_items}
    # The items parse_feed reads, and only those, are cut and remembered.
    body = newest_items(result.body or b"", result.headers, result.url)
    args = (result.headers, result.url, feed.id, feed.name, feed.language, now)
    cut = delta.cut(body, seen)
    if cut is not None and not cut.kept:
        return "", [], tuple((d, *seen[d]) for d in cut.digests), []
    if cut is not None:
        title, articles = parse_feed(cut.body, *args)
        if len(articles) == len(cut.kept):
            items = seen | dict(zip(cut.kept, _remember(articles, tracking), strict=True))
            remembered = tuple((d, *items[d]) for d in cut.digests)
            skipped = [seen[d] for d in cut.skipped]
            if {a.guid for a in articles}.isdisjoint(guid for _, guid in skipped):
                urls = [url for url, _ in skipped]
                counts = Counter(items[d][0] for d in cut.digests if items[d][0])
                identified = identify(articles, tracking, urls)
                return title, identified, remembered, [u for u in urls if counts[u] == 1]
            title, articles = parse_feed(body, *args)  # every item of the shared guid together
            return title, identify(articles, tracking), remembered, []
        if not cut.skipped:  # the whole document was parsed already
            return title, identify(articles, tracking), (), []
    title, articles = parse_feed(body, *args)
    return title, identify(articles, tracking), (), []


def _remember(articles: list[Article], tracking: TrackingParams) -> list[tuple[str, str]]:
    """(identity URL, guid) of each parsed item: what counts for it in a later document that
    still carries it, instead of parsing it again."""
    return [(item_url(a, tracking), a.guid) for a in articles]


def read_outcome(outcome: PollOutcome, config: Config, now: datetime) -> PollOutcome:
    """An `unread` outcome read (read_feed), contained as fetching is (`_contained`), still
    answered when it was: read here, a feed's last and next poll counted from the cycle's start."""
    tracking = TrackingParams.of(config.identity.tracking_params)
    read = _contained(outcome.feed, read_feed, outcome.fetch, outcome.feed, tracking, now)
    return replace(read, answered_after=outcome.answered_after)


def _contained(feed: Feed, work: Callable[..., PollOutcome], *args: object) -> PollOutcome:
    """`work(*args)` on one feed, where a bug that the feed's bytes trigger is logged with its
    traceback and recorded on that feed like any failure (backed off), so one hostile feed
    cannot stop the other feeds of every cycle from being stored."""
    try:
        return work(*args)
    except Exception as e:
        log.exception("bug while reading a feed", extra={"feed_id": feed.id, "feed_url": feed.url})
        reason = " ".join(f"internal error: {type(e).__name__}: {e}".split())[:300]
        return PollOutcome(feed, FetchResult(url=feed.url, status=0), error=reason)


def store_outcome(
    store: Store, outcome: PollOutcome, config: Config, matcher: Matcher | None, now: datetime
) -> list[Change]:
    """Store one feed's outcome in one transaction. Returns its new articles and new revisions
    of stored ones, each with its story and the rules that newly match it."""
    feed = outcome.feed
    failed = outcome.error is not None
    prepared: dict[tuple, Prepared] = {}
    stems: StemsAhead = {}
    if outcome.prepared is not None:
        prepared = dict(zip(map(_read_key, outcome.articles), outcome.prepared, strict=True))
        stems = {
            stems_key(a): p.stems for a, p in zip(outcome.articles, outcome.prepared, strict=True)
        }
    aliased: list[tuple[int, Article]] = []
    with store.transaction():
        archive = _archive_before(store, feed, outcome.articles, config, now)
        stored = store.store_articles(outcome.articles, now, aliased, stems) if not failed else []
        ready = [prepared.get(_read_key(a)) for a in stored]
        # Sketched together: for a feed's short items, a third of the cost of one at a time.
        unready = iter(sketches(a.text for a, p in zip(stored, ready, strict=True) if p is None))
        signatures = [next(unready) if p is None else p.signature for p in ready]
        stories = place_all(store, stored, signatures, config.identity, now)
        changes = [
            _matches(
                store,
                evolve(a, story_id=story),
                feed,
                config,
                matcher,
                now,
                p,
                backlog=_in_archive(a, archive),
            )
            for a, story, p in zip(stored, stories, ready, strict=True)
        ]
        new_items = sum(1 for change in changes if not change.updated)
        if matcher is not None:
            # A copy in a new feed's archive brings no news either (see _archive_before).
            news = {article_id for article_id, item in aliased if not _in_archive(item, archive)}
            for article_id in dict.fromkeys(article_id for article_id, _ in aliased):
                carried = _carried_matches(
                    store, article_id, config, matcher, now, backlog=article_id not in news
                )
                if carried is not None:
                    changes.append(carried)
        store.record_poll(feed.id, _feed_state(outcome, config, now, new_items))
    _log_failure(outcome)
    return changes


def _archive_before(
    store: Store, feed: Feed, articles: Sequence[Article], config: Config, now: datetime
) -> datetime | None:
    """When a feed is read for the first time, the time before which its items are its
    archive rather than news: delivery.backlog (or the feed's own backlog) before now. None on
    later reads, or with backlog = 0. A new feed's first read sent every item as news: 31
    articles back to 2013 in one digest, 12 immediate alerts back to 2018. Measured from the
    feed's newest item, as it was, a dormant feed's items of a year before were sent as news,
    urgent ones too. (A feed dated ahead of the clock needs no other bound: parse drops dates
    more than a day ahead.) Replays of fixed snapshots (the bundled samples, tests,
    benchmarks) set backlog = 0."""
    if not articles:
        return None
    row = store.feed_row(feed.id)
    if row is None or row["last_success"] is not None:
        return None
    own = next((f.backlog for f in config.feeds if f.url == feed.url), None)
    backlog = config.delivery.backlog if own is None else own
    return now - timedelta(seconds=backlog) if backlog else None


def _in_archive(article: Article, before: datetime | None) -> bool:
    """Whether a stored article is of its feed's archive (see _archive_before): new, and dated
    before `before`. An undated item counts as news."""
    published = article.published
    return (
        before is not None
        and article.revision == 1
        and published is not None
        and published < before
    )


def record_polls(store: Store, outcomes: list[PollOutcome], config: Config, now: datetime) -> None:
    """Record polls that brought nothing to store (304, unchanged body, every item seen, or a
    failure) in one transaction: a commit each would cost more than the poll. Lost in a crash,
    such a record only means the feed is polled again, with the validators it had."""
    with store.transaction():
        for outcome in outcomes:
            store.record_poll(outcome.feed.id, _feed_state(outcome, config, now, 0))


def _feed_state(outcome: PollOutcome, config: Config, now: datetime, new_items: int) -> FeedState:
    feed, result = outcome.feed, outcome.fetch
    failed = outcome.error is not None
    error_count = feed.error_count + 1 if failed else 0
    answered = now + timedelta(seconds=outcome.answered_after)
    next_poll = next_poll_time(
        feed.interval,
        error_count,
        answered,
        config.polling.max_backoff,
        result.retry_after,
        phase=feed_phase(feed.id),
    )
    return FeedState(
        # The server's Retry-After, as the service honours it (capped at max_backoff).
        asked_until=next_poll if failed and result.retry_after else None,
        status=result.status,
        error=outcome.error,
        error_count=error_count,
        polled=answered,
        next_poll=next_poll,
        url=None if failed else result.permanent_url,  # moved only once it answers there
        title=outcome.title or None,
        success=not failed,
        etag=result.etag,
        last_modified=result.last_modified,
        body_hash=result.body_hash,
        seen_items=None if failed else outcome.seen_items,
        new_items=new_items,
    )


def _log_failure(outcome: PollOutcome) -> None:
    feed = outcome.feed
    if outcome.error is not None:
        outcome_log.warning(
            "feed failed", extra={"feed_id": feed.id, "feed_url": feed.url, "error": outcome.error}
        )


def _matches(
    store: Store,
    article: Article,
    feed: Feed,
    config: Config,
    matcher: Matcher | None,
    now: datetime,
    prepared: Prepared | None,
    backlog: bool = False,
) -> Change:
    """Run the rules on a stored article (new, or a new revision) placed in its story, and keep
    the rules that newly match (on a revision: matched no earlier one). The matches a reader
    `prepared` are used as they are. Those of a `backlog` article are kept, not delivered."""
    assert article.id is not None  # stored
    if matcher is None:
        return Change(article)
    matched = prepared.matched if prepared else None
    # A revision of an article other feeds carry too: those feeds' rules must still see it (a
    # reader matched it as this feed's alone). A new article has no other feed yet.
    names, tags = store.other_carriers(article.id) if article.revision > 1 else ((), ())
    if names:
        matches, mentions = _carried_match(matcher, article, (*feed.tags, *tags), names)
    elif matched is not None:
        matches, mentions = matched
    else:
        matches, mentions = matcher.match(article, feed.tags)
    recorded = store.record_matches(article.id, article.revision, matches, now, backlog)
    store.replace_mentions(article.id, mentions)
    if not backlog:
        webhooks = config.delivery.webhooks
        queue_webhooks(store, webhooks, article.id, recorded.new, now)
        # A rule the operator removed or disabled matches no revision any more: its matches
        # are withdrawn, but no correction undid them, and none is announced.
        withdrawn = [r for r in recorded.withdrawn if matcher.has_rule(r)]
        queue_withdrawals(store, webhooks, article.id, matches, withdrawn, recorded.restored, now)
    return Change(article, tuple(recorded.new), archive=backlog)


def _carried_matches(
    store: Store,
    article_id: int,
    config: Config,
    matcher: Matcher,
    now: datetime,
    backlog: bool = False,
) -> Change | None:
    """The rules that newly match a stored article once another feed carries it too (its item
    became an alias): those scoped to that feed, or asking `feed:` for it. Whether they matched
    depended on which feed was polled first. Only the rules that hold because of the other
    feeds are added: the others' matches (made, withdrawn, or not made under rules edited
    since) stay as they are, for a revision or `rules backtest --apply` to change. None when no
    rule newly matches. `backlog`: the copy is of a new feed's archive; kept, not delivered."""
    article = store.article(article_id)
    if article is None:
        return None
    row = store.feed_row(article.feed_id)
    own_tags = tuple(json.loads(row["tags"] or "[]")) if row else ()
    names, tags = store.other_carriers(article_id)
    alone = {match.rule_id for match in matcher.match(article, own_tags)[0]}
    carried = _carried_match(matcher, article, (*own_tags, *tags), names)[0]
    new_matches = store.add_matches(
        article_id, article.revision, [m for m in carried if m.rule_id not in alone], now, backlog
    )
    if not new_matches:
        return None
    if not backlog:
        queue_webhooks(store, config.delivery.webhooks, article_id, new_matches, now)
    return Change(article, tuple(new_matches), carried=True)


def _carried_match(
    matcher: Matcher, article: Article, tags: tuple[str, ...], names: tuple[str, ...]
) -> tuple[list[Match], list[Evidence]]:
    return matcher.match(article, tuple(dict.fromkeys(tags)), names)


def _read_key(article: Article) -> tuple:
    """Everything of an article that sketching and matching read: what a reader prepared is
    used for the stored article only if storing left all of it as it was."""
    a = article
    fields = (a.title, a.summary, a.content, a.url, a.authors, a.categories, a.language)
    return (a.guid, a.feed_name, *fields)


def poll_due(
    store: Store,
    session: requests.Session,
    config: Config,
    matcher: Matcher | None,
    now: datetime,
    on_feed_done: Callable[[PollOutcome], None] | None = None,
    force: bool = False,
    readers: FeedReaders | None = None,
    stop: threading.Event | None = None,
    keep_changes: bool = False,
    max_cycle: float | None = None,
) -> CycleSummary:
    """Poll every feed that is due (with force=True, every feed but those whose server asked
    for time) and store what is new; with `readers`, bodies are read and matched in worker
    processes when the cycle is worth it. With `keep_changes`, the summary lists every change
    (CycleSummary.changes). With `max_cycle` (seconds), no fetch starts after that much of the
    cycle: the feeds not started stay due, first of the next cycle (CycleSummary.left), so
    that a feed coming due during a cycle does not wait for all of a slow host's."""
    summary = CycleSummary()
    if stop is not None and stop.is_set():  # a tick that fired as the service stopped
        return summary
    if force:
        # `vigie once` polls what is not due yet (a feed that failed included: the operator
        # may have mended it), but not a feed whose server asked for time (a 429 or 503 with
        # Retry-After): run from cron, it hammered what the service leaves alone until then.
        feeds = []
        for row in store.feeds():
            until = parse_iso(row["asked_until"])
            if until and until > now:
                summary.waiting.append((row["url"], row["asked_until"], row["last_error"] or ""))
            else:
                feeds.append(store.feed(row["id"], config.polling.interval))
    else:
        feeds = store.due_feeds(now, config.polling.interval)
    if not feeds:
        return summary
    ensure_index(store, config.identity, now)
    known = {feed.id: store.item_fingerprints(feed.id) for feed in feeds if feed.full_text}
    pages = PageFetcher(session, config.fetch, TrackingParams.of(config.identity.tracking_params))
    if readers is not None and not readers.use(matcher, len(feeds)):
        readers = None
    workers = max(1, min(config.fetch.concurrency, len(feeds)))
    read_later = readers is None
    # Fetched outcomes waiting for this thread, at most this many when it reads them: bodies
    # left to read here must not pile up in memory while storing is slower than fetching. With
    # readers, fetching runs further ahead: held back to a few outcomes, the fetch threads' HTTP
    # work overlapped storing all cycle long and took the GIL from it at every SQLite call (the
    # changed-feeds pass of bench.polling used about 15% more CPU per feed). It is held back by
    # the articles read and not stored yet instead (`backlog`): unbounded, a first cycle of
    # 2,000 feeds held 65,000 parsed articles at once (a reviewer's process grew to 740 MB).
    waiting = threading.Semaphore(2 * workers if read_later else len(feeds))
    backlog = _Backlog(_BACKLOG_ARTICLES)

    started = time.monotonic()
    # Politeness: at most fetch.per_host connections to one host at once, its feeds spread
    # through the cycle (200 sections of one newspaper were 8 parallel requests, 27 a second),
    # and a thread is given a feed only when its host has a free turn (hosts.HostTurns).
    host_of = {feed.id: host_of_feed(feed) for feed in feeds}
    until = None if max_cycle is None else started + max_cycle
    hosts = HostTurns(feeds, host_of, config.fetch.per_host, until)

    ending = threading.Event()  # the storing loop has left

    def fetch() -> PollOutcome | None:
        """Fetch the next feed whose host has a turn; None when no feed is left to start."""
        waiting.acquire()  # released when this thread takes the outcome
        feed = hosts.take()
        if feed is None:
            return None
        host = host_of[feed.id]
        try:
            if ending.is_set() or (stop is not None and stop.is_set()):
                # Stopping, or the cycle ended by an error or Ctrl+C: a feed given out now is
                # not fetched (leaving the pool waited for those queued behind their host's
                # turn, one deadline after the other: over 60 s, a review).
                raise _Stopping
            silent = hosts.silent(host)
            if silent is not None:
                result = FetchResult(url=feed.url, status=0, error=silent)
                outcome = PollOutcome(feed, result, error=silent)
            else:
                outcome = _contained(
                    feed,
                    fetch_and_parse,
                    session,
                    feed,
                    config,
                    now,
                    known.get(feed.id),
                    pages,
                    readers,
                    read_later,
                )
                hosts.heard(host, outcome.fetch)  # before the turn goes to the next feed
        finally:
            hosts.end_turn(feed)
        if not read_later:
            backlog.hold(len(outcome.articles))  # released when this thread stores them
        return replace(outcome, answered_after=time.monotonic() - started)

    progress = _Progress(len(feeds), started)
    with pages, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
        # A set, each future dropped once stored: a list kept every outcome of the cycle.
        futures = {pool.submit(fetch) for _ in feeds}  # each fetches one feed, or none
        try:
            quiet: list[PollOutcome] = []  # polls with nothing to store, recorded together
            for future in _completed(futures, stop):
                if stop is not None and stop.is_set():
                    # The service is stopping: the feeds not stored yet stay due and are
                    # polled at its next start (a cycle of minutes held SIGTERM that long).
                    break
                outcome = future.result()
                waiting.release()
                futures.discard(future)
                if outcome is None:
                    continue  # a feed not started: left for the next cycle
                if outcome.unread:
                    outcome = read_outcome(outcome, config, now)
                if outcome.articles:
                    changes = store_outcome(store, outcome, config, matcher, now)
                else:
                    changes = []
                    _log_failure(outcome)  # now, not when the batch is written
                    quiet.append(outcome)
                    if len(quiet) >= _QUIET_BATCH:
                        record_polls(store, quiet, config, now)
                        quiet.clear()
                if not read_later:
                    backlog.release(len(outcome.articles))  # stored: let go
                _count(summary, outcome, changes, keep_changes)
                progress.feed_done(summary)
                if on_feed_done:
                    on_feed_done(outcome)
            if quiet:
                record_polls(store, quiet, config, now)
            summary.left.update(host_of[feed.id] for feed in hosts.left())
        finally:
            # After an error in storing, fetches not started are dropped and those waiting for
            # room or a turn let go: leaving the pool waits for the running ones only.
            ending.set()
            hosts.close()
            for future in futures:
                future.cancel()
            waiting.release(len(feeds))
            backlog.open()
    return summary


_QUIET_BATCH = 100  # polls with nothing to store recorded in one transaction
_BACKLOG_ARTICLES = 5000  # articles read by readers that may wait for storing


class _Stopping(Exception):
    """A fetch not made because the service is stopping; its outcome is never read."""


def _completed(futures: set[Future], stop: threading.Event | None) -> Iterator[Future]:
    """The futures as they complete, as as_completed gives them; with `stop`, it is looked at
    every half second too, not only when a fetch ends (which may take a whole deadline). Each
    future tells a queue once it is done: waiting on all those pending at each completion
    cost N²/2 lock operations a cycle (3 s of CPU for 8,000 feeds, a review measured)."""
    if stop is None:
        yield from as_completed(futures)
        return
    done: queue.SimpleQueue[Future] = queue.SimpleQueue()
    for future in futures:
        future.add_done_callback(done.put)
    for _ in range(len(futures)):
        while True:
            if stop.is_set():
                return
            try:
                yield done.get(timeout=0.5)
                break
            except queue.Empty:
                pass


class _Backlog:
    """Articles fetched and read, waiting to be stored: a fetch thread holds its feed's until
    there is room for them (or none wait: a feed of more is never stuck), and storing lets
    them go. Memory stays bounded however far fetching could run ahead."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.held = 0
        self._changed = threading.Condition()

    def hold(self, articles: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: not self.held or self.held + articles <= self.limit)
            self.held += articles

    def release(self, articles: int) -> None:
        with self._changed:
            self.held -= articles
            self._changed.notify_all()

    def open(self) -> None:
        """No limit any more: the cycle ends, and no fetch thread may wait for storing."""
        with self._changed:
            self.limit = float("inf")
            self._changed.notify_all()


PROGRESS_EVERY = 30.0  # seconds, at least, between two progress lines of a long cycle


class _Progress:
    """A line at INFO, at most every PROGRESS_EVERY seconds, while a cycle is still running:
    a first cycle of 2,000 feeds ran for minutes with nothing logged after "vigie running".
    Costs one clock reading per feed."""

    def __init__(self, feeds: int, started: float) -> None:
        self.feeds = feeds
        self.last = started

    def feed_done(self, summary: CycleSummary) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY or summary.feeds_polled >= self.feeds:
            return  # the cycle's own summary line follows the last feed
        self.last = now
        log.info(
            "polling: %s of %s feeds done, %s new %s so far",
            f"{summary.feeds_polled:,}",
            f"{self.feeds:,}",
            f"{summary.new_articles:,}",
            "article" if summary.new_articles == 1 else "articles",
        )


def _count(summary: CycleSummary, outcome: PollOutcome, changes: list[Change], keep: bool) -> None:
    summary.feeds_polled += 1
    summary.new_articles += sum(1 for c in changes if not (c.updated or c.carried))
    summary.updated_articles += sum(1 for c in changes if c.updated and not c.carried)
    summary.new_matches += sum(len(change.new_matches) for change in changes)
    summary.archive_articles += sum(1 for c in changes if c.archive and not c.updated)
    if keep:
        summary.changes.extend(changes)
    if outcome.fetch.unchanged:
        summary.feeds_unchanged += 1
    if outcome.error:
        summary.errors.append((outcome.feed.url, outcome.error))
