"""Delivery: digests for 1,000 subscribers with 50 matches each, and 10,000 signed webhooks.

A database is filled first (untimed) with generated articles (bench.newsgen) and their matches,
each rule matching 50 articles. Then, each from the real delivery jobs:

- digests: every subscriber (one rule each, so 50 matches; each article matched by 10 rules)
  gets a digest: claimed from SQLite (`open_digests`), grouped, rendered to HTML and text,
  composed as MIME and written as an .eml file (`send_digests` without SMTP); beside
  it, building and rendering alone (`build_digest` + `render`) over the same items in memory;
- webhooks: 10,000 per-match deliveries, each built into its JSON payload, signed (Standard
  Webhooks) and POSTed to a loopback receiver (bench.feedserver, another process), its outcome
  recorded (`dispatch_webhooks`), each article matched by 5 rules; beside it, a plain
  `requests` loop POSTing the same bodies, unsigned, recording nothing.

Usage: python -m bench.delivery [--quick] [--rows PATH]
"""

from __future__ import annotations

import base64
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from bench.newsgen import item
from bench.polling import Server
from bench.report import Row, emit, quick
from monitor.config import load_config
from monitor.config_delivery import DeliveryConfig, SubscriberConfig, WebhookConfig
from monitor.deliver.digest import build_digest, footer, render
from monitor.deliver.dispatch import dispatch_webhooks, open_digests, send_digests
from monitor.deliver.outbox import Labels
from monitor.fetch import make_session
from monitor.records import Article, Evidence, Match
from monitor.store import Store

PER_DIGEST = 50
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def fill(store: Store, articles: int, rules: int, now: datetime) -> dict[int, list[str]]:
    """`articles` generated articles; rule r matches the 50 articles from r * 50 % articles on
    (each article is matched by rules * 50 / articles rules). Returns each article's rule ids."""
    feed_id = store.upsert_feed("https://news.example.org/feed.xml", now=now)
    stored = []
    with store.transaction():
        for number in range(articles):
            it = item(feed_id, number, now.timestamp())
            article = Article(
                feed_id=feed_id,
                guid=it.guid,
                url=it.link,
                title=it.title,
                summary=it.description,
                published=now - timedelta(minutes=number),
                updated=now - timedelta(minutes=number),
                language="en",
                fingerprint=str(number),
            )
            stored += store.store_articles([article], now)
        matched: dict[int, list[str]] = {a.id: [] for a in stored}  # type: ignore[misc]
        found: dict[int, list[Match]] = {a.id: [] for a in stored}  # type: ignore[misc]
        for rule in range(rules):
            for i in range(PER_DIGEST):
                article = stored[(rule * PER_DIGEST + i) % articles]
                word = article.summary.split()[3]
                start = article.summary.index(word)
                evidence = Evidence("summary", start, start + len(word), word, word)
                snippet = (
                    article.summary[:start] + f"\u27e6{word}\u27e7" + article.summary[start + 60 :]
                )[:240]
                tags = (f"t{rule}", "bench")
                match = Match(article.id, f"r{rule}", 2.0, (evidence,), snippet, tags)
                found[article.id].append(match)  # type: ignore[index]
                matched[article.id].append(f"r{rule}")  # type: ignore[index]
        # All of an article's matches at once, as polling records them: a rule left out of
        # an article's matches is one its latest revision no longer matches (withdrawn).
        for article_id, matches in found.items():
            store.record_matches(article_id, 1, matches, now)
    return matched


def digests(tmp: Path, subscribers: int) -> list[Row]:
    now = datetime.now(UTC).replace(microsecond=0)
    store = Store(tmp / "digests.db")
    fill(store, subscribers * PER_DIGEST // 10, subscribers, now - timedelta(hours=1))
    people = tuple(
        SubscriberConfig(f"reader{i}", f"reader{i}@example.org", rules=(f"r{i}",))
        for i in range(subscribers)
    )
    config = DeliveryConfig(outbox=tmp / "outbox", subscribers=people)
    labels = Labels({f"r{i}": f"Rule {i}" for i in range(subscribers)})
    for subscriber in people:  # they subscribed before the matches were made
        store.save_subscriber(
            {
                "name": subscriber.name,
                "since": (now - timedelta(days=1)).isoformat(),
                "filter": "",
                "schedule": "",
                "next_due": None,
                "token": "t",
            }
        )
    start = time.perf_counter()
    created = open_digests(store, config, now, force=True)
    sent = []
    while batch := send_digests(store, config, labels, now):  # a hundred per call, as per tick
        sent += batch
    whole = time.perf_counter() - start
    assert len(created) == len(sent) == subscribers and all(s.status == "sent" for s in sent)
    assert all(s.items == PER_DIGEST for s in sent), {s.items for s in sent}
    items = [store.delivery_items(delivery_id) for delivery_id in created]
    start = time.perf_counter()
    for subscriber, chosen in zip(people, items, strict=True):
        render(build_digest(chosen, subscriber, labels, now), footer(subscriber, config, "t"))
    alone = time.perf_counter() - start
    store.close()
    print(
        f"digests: {subscribers:,} subscribers x {PER_DIGEST} matches: claim, build, render, "
        f"write .eml {whole / subscribers * 1000:.2f} ms each ({subscribers / whole:.0f}/s); "
        f"build and render alone {alone / subscribers * 1000:.2f} ms each"
    )
    case = f"digests, {subscribers:,} subscribers x {PER_DIGEST} matches"
    return [
        Row(
            "delivery",
            case,
            "digests/s",
            subscribers / whole,
            subscribers / alone,
            "build + render alone",
        )
    ]


def webhooks(tmp: Path, count: int) -> list[Row]:
    now = datetime.now(UTC).replace(microsecond=0)
    server = Server(1)
    try:
        store = Store(tmp / "webhooks.db")
        matched = fill(store, count, count * 5 // PER_DIGEST, now - timedelta(hours=1))
        hook = WebhookConfig("bot", f"{server.base}/hook", SECRET, tags=("bench",), timeout=15)
        config = DeliveryConfig(outbox=tmp / "outbox", webhooks=(hook,))
        with store.transaction():
            for article_id, rules in matched.items():
                store.enqueue_webhook("bot", hook.url, False, article_id, rules, now)
        (tmp / "config.toml").write_text("[fetch]\nallow_private = true\n", encoding="utf-8")
        session = make_session(load_config(tmp / "config.toml").fetch)
        start = time.perf_counter()
        sent = 0
        while batch := dispatch_webhooks(store, session, config, Labels(), now):
            assert all(s.status == "sent" for s in batch), batch[0]
            sent += len(batch)
        whole = time.perf_counter() - start
        assert sent == count, sent
        bodies = [row[0] for row in store.db.execute("SELECT payload FROM deliveries")]
        plain = requests.Session()
        start = time.perf_counter()
        for body in bodies:
            plain.post(hook.url, data=body.encode(), timeout=15).close()
        alone = time.perf_counter() - start
        store.close()
    finally:
        server.close()
    print(
        f"webhooks: {count:,} built, signed, POSTed to loopback and recorded: "
        f"{count / whole:.0f}/s; a plain requests loop POSTing the same bodies: "
        f"{count / alone:.0f}/s"
    )
    return [
        Row(
            "delivery",
            f"webhooks, {count:,} signed and sent to loopback",
            "webhooks/s",
            count / whole,
            count / alone,
            "plain requests.post loop",
        )
    ]


def main() -> None:
    subscribers, count = (200, 2000) if quick() else (1000, 10_000)
    with tempfile.TemporaryDirectory() as tmp:
        rows = digests(Path(tmp), subscribers) + webhooks(Path(tmp), count)
    emit(rows)


if __name__ == "__main__":
    main()
