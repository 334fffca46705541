"""Webhooks to a real endpoint on loopback. Every request the endpoint receives is verified with
the standardwebhooks library, as a consumer would, and every payload against the JSON Schema
published in docs/delivery.md. Fault cases: 500 then 200, a timeout, 410, a redirect, the
network guard, the last attempt."""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import itertools
import json
import logging
import re
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from conftest import REPO, LoopbackServer, fetch_config
from delivery_support import (
    ALL_TAGS,
    IMMEDIATE_DESK,
    SAMPLE_FEEDS,
    SECRET,
    SECRET_ENV,
    Answer,
    Receiver,
    SmtpServer,
    Vigie,
    hook_to,
    start,
    write_delivery_config,
)
from identity_support import Item, rss
from standardwebhooks.webhooks import WebhookVerificationError

from monitor.cli import main
from monitor.deliver.payload import rfc3339
from monitor.deliver.webhook import post
from monitor.fetch import make_session
from monitor.health import assess
from monitor.store import parse_iso

DOC = (REPO / "docs" / "delivery.md").read_text(encoding="utf-8")


def doc_json(marker: str) -> Any:
    found = re.search(rf"<!-- {marker} -->\n```json\n(.*?)\n```", DOC, re.DOTALL)
    assert found, marker
    return json.loads(found.group(1))


SCHEMA = doc_json("payload-schema")
# jsonschema checks "format": "date-time" only with rfc3339-validator installed: without it,
# "yesterday" passed (a consumer's review). The RFC 3339 form, checked here.
FORMATS = jsonschema.FormatChecker()
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


@FORMATS.checks("date-time")
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # the type's business
    return bool(_RFC3339.fullmatch(value)) and bool(datetime.fromisoformat(value))


VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=FORMATS)
# docs/delivery.md's consumer, which keeps which rules hold whatever order events come in.
CONSUMER = re.search(r"<!-- consumer-example -->\n```python\n(.*?)\n```", DOC, re.DOTALL)


def test_the_published_schema_is_itself_valid_draft_2020_12() -> None:
    """A JavaScript consumer's review: Ajv refused to compile the schema docs/delivery.md
    publishes ("data/$id must match pattern"): its `$id` had a fragment, which draft 2020-12
    forbids. Python's validator never checks the schema it is given, so the tests passed."""
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert "#" not in SCHEMA["$id"]


def test_the_schema_check_refuses_a_time_that_is_not_rfc3339() -> None:
    event = {"type": "article.matched", "version": 1, "id": "msg_1_a", "data": {}}
    errors = {e.message for e in VALIDATOR.iter_errors({**event, "timestamp": "yesterday"})}
    assert "'yesterday' is not a 'date-time'" in errors


@pytest.fixture
def vigie(tmp_path: Path, receiver: Receiver) -> Iterator[Callable[..., Vigie]]:
    """A Vigie whose one webhook points at the receiver; it has polled the samples at `now`
    (the real time: consumers reject signatures more than five minutes old)."""
    made: list[Vigie] = []

    def make(now: datetime, fetch: dict | None = None, **hook: Any) -> Vigie:
        webhook = {
            "name": "bot",
            "url": receiver.url(),
            "secret_env": SECRET_ENV,
            "tags": ALL_TAGS,
            **hook,
        }
        path = write_delivery_config(tmp_path, webhooks=[webhook])
        if fetch:
            text = path.read_text().replace("allow_private = true", "allow_private = false")
            path.write_text(text)
        made.append(Vigie(path, now))
        made[-1].poll(now)
        return made[-1]

    yield make
    for v in made:
        v.close()


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def statuses(v: Vigie) -> list[tuple]:
    return v.rows("SELECT status, attempts, last_status FROM deliveries ORDER BY id")


def test_every_matched_article_is_delivered_signed_and_valid(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    t = now()
    v = vigie(t)
    articles = {row[0] for row in v.rows("SELECT DISTINCT article_id FROM matches")}
    queued = v.rows("SELECT count(*) FROM deliveries WHERE status = 'pending'")[0][0]
    assert queued == len(articles) > 5  # queued with the matches, one per article
    sent = v.dispatch(t)
    assert [s.status for s in sent] == ["sent"] * len(articles)
    delivered = set()
    for request in receiver.requests:
        payload = request.verify()  # the consumer's check: raises unless correctly signed
        VALIDATOR.validate(payload)
        assert payload["id"] == request.headers["webhook-id"]
        assert payload["type"] == "article.matched"
        assert request.headers["content-type"] == "application/json"
        delivered.add(payload["data"]["article"]["id"])
    assert delivered == articles
    assert v.dispatch(t + timedelta(seconds=5)) == []  # each once
    with pytest.raises(WebhookVerificationError):
        receiver.requests[0].verify("whsec_" + "QUJD" * 8)  # another secret does not verify


def test_deliveries_to_one_endpoint_share_one_connection(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    t = now()
    v = vigie(t)
    sent = v.dispatch(t)
    assert len(sent) > 5 and all(s.status == "sent" for s in sent)
    # Keep-alive: a consumer sees one TCP connection, not one per delivery.
    assert len({request.peer for request in receiver.requests}) == 1


def test_payload_carries_article_rules_evidence_and_entities(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    t = now()
    v = vigie(t, tags=["calais"])
    v.dispatch(t)
    payloads = [r.verify() for r in receiver.requests]
    assert payloads and all(
        [rule["id"] for rule in p["data"]["rules"]] == ["calais"] for p in payloads
    )  # only the rules this consumer follows
    event = payloads[0]["data"]
    assert set(event) == {"article", "updated", "rules", "entities"}
    assert set(event["article"]) == {
        "id", "url", "title", "source", "published", "first_seen", "language", "story_id",
        "revision",
    }  # fmt: skip
    assert event["updated"] is False and event["article"]["revision"] == 1
    rule = event["rules"][0]
    assert rule["name"] == "Calais and the Channel route" and rule["evidence"]
    for start_, end in rule["highlights"]:
        assert rule["snippet"][start_:end].strip()
    assert "⟦" not in rule["snippet"]
    assert any(e["mentions"] >= 1 and e["name"] for p in payloads for e in p["data"]["entities"])


def test_evidence_comes_from_the_fields_the_docs_list(tmp_path: Path, receiver: Receiver) -> None:
    """A JavaScript consumer's review: docs/delivery.md said evidence is found in the title,
    the summary or the content; a rule on the author, the categories, the link or the feed
    sent evidence of those fields too, which a consumer handling the three fields it was told
    of dropped or misread."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "byline.toml").write_text(
        '[[rule]]\nid = "byline"\ntags = ["byline"]\n'
        "query = 'author:Holloway AND category:Policing AND url:calais AND feed:Coastal'\n",
        encoding="utf-8",
    )
    hook = hook_to(receiver, tags=["byline"])
    config = write_delivery_config(tmp_path, webhooks=[hook], feeds=SAMPLE_FEEDS[:1])
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(json.dumps(str(REPO / "rules")), json.dumps(str(rules))))
    t = now()
    v = Vigie(config, t)
    try:
        v.poll(t)
        v.dispatch(t)
    finally:
        v.close()
    [request] = receiver.requests
    data = request.verify()["data"]
    evidence = data["rules"][0]["evidence"]
    described = DOC[DOC.index("the `field` it was found in") : DOC.index("the `text` as written")]
    assert {e["field"] for e in evidence} == {"author", "category", "url", "feed"}
    assert {e["field"] for e in evidence} <= set(re.findall(r"`(\w+)`", described))
    # The link's offsets are in the `url` sent, as the docs say.
    [link] = [e for e in evidence if e["field"] == "url"]
    assert data["article"]["url"][link["start"] : link["end"]] == link["text"] == "calais"


def _littoral(path: Path, items: list[tuple[str, str, datetime | None]]) -> None:
    """An RSS file of (guid, text, publication date or None for none) items about Calais."""
    path.write_text(
        "<rss version='2.0'><channel><title>Littoral</title>"
        + "".join(
            f"<item><guid>https://news.example/{guid}</guid><title>Calais: {guid}</title>"
            f"<description>{text}</description>"
            + (f"<pubDate>{format_datetime(date)}</pubDate>" if date else "")
            + "</item>"
            for guid, text, date in items
        )
        + "</channel></rss>",
        encoding="utf-8",
    )


def test_an_undated_item_is_sent_with_no_publication_date(
    tmp_path: Path, receiver: Receiver
) -> None:
    """An item the feed gave no date was sent with the poll's time as `published`, which a
    consumer could not tell from a real date; each revision then moved it to its own time."""
    feed = tmp_path / "littoral.rss"
    text = "Police evacuated a migrant camp in Calais at dawn."
    t = now()
    _littoral(feed, [("undated", text, None), ("dated", f"{text} Again.", t - timedelta(hours=2))])
    config = write_delivery_config(
        tmp_path, webhooks=[hook_to(receiver)], feeds=[{"url": str(feed), "name": "Littoral"}]
    )
    v = Vigie(config, t)
    try:
        v.poll(t)
        v.dispatch(t)
        payloads = [request.verify() for request in receiver.requests]
        for payload in payloads:
            VALIDATOR.validate(payload)
        sent = {p["data"]["article"]["title"]: p["data"]["article"] for p in payloads}
        undated, dated = sent["Calais: undated"], sent["Calais: dated"]
        assert undated["published"] is None and undated["first_seen"] == rfc3339(t)
        assert dated["published"] == rfc3339(t - timedelta(hours=2))
        assert dated["first_seen"] == rfc3339(t)

        # The outlet edits the undated item: it keeps the time it was first seen.
        _littoral(feed, [("undated", f"{text} The prefecture confirmed.", None)])
        later = t + timedelta(hours=1)
        v.poll(later)
        [(published, first_seen, revision)] = v.rows(
            "SELECT published, first_seen, revision FROM articles WHERE title = 'Calais: undated'"
        )
        assert revision == 2 and published == first_seen == t.isoformat()
    finally:
        v.close()


def test_a_feed_without_a_name_or_title_is_sent_as_its_host_or_file(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A feed with no name in config.toml and no title of its own was sent with `source.name`
    "" (a code review): consumers showed an empty outlet. It is named as digests and exports
    name it: its address's host, or a file's name."""
    feed = tmp_path / "partner-feed.rss"
    feed.write_text(
        "<rss version='2.0'><channel><item><guid>https://news.example/camp</guid>"
        "<title>Calais: camp cleared</title><description>Police evacuated a migrant camp in"
        " Calais at dawn.</description></item></channel></rss>",
        encoding="utf-8",
    )
    t = now()
    config = write_delivery_config(
        tmp_path, webhooks=[hook_to(receiver)], feeds=[{"url": str(feed)}]
    )
    v = Vigie(config, t)
    try:
        v.poll(t)
        v.dispatch(t)
        [payload] = [request.verify() for request in receiver.requests]
        VALIDATOR.validate(payload)
        assert payload["data"]["article"]["source"]["name"] == "partner-feed.rss"
    finally:
        v.close()


def test_a_correction_that_undoes_a_match_is_sent_as_article_withdrawn(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A webhook consumer's review: a dashboard kept an article its rule no longer matched
    once the outlet corrected it, as no event said so. A webhook that asks for withdrawals is
    sent article.withdrawn for the rules an event it was sent named, and article.matched again
    when a later revision matches anew; one that does not ask is sent neither."""
    feed = tmp_path / "littoral.rss"
    t = now() - timedelta(hours=4)  # each step an hour on, and signed no later than now
    _camp_feed(feed, *CALAIS)
    asking = {**hook_to(receiver, tags=["calais"], name="dashboard"), "withdrawals": True}
    asking["url"] = receiver.url("/dashboard")
    config = write_delivery_config(
        tmp_path,
        webhooks=[asking, hook_to(receiver, tags=["calais"], name="plain")],
        feeds=[{"url": str(feed), "name": "Littoral"}],
    )
    v = Vigie(config, t)

    def events(since: int) -> list[tuple[str, str, int, list[str]]]:
        found = []
        for request in receiver.requests[since:]:
            payload = request.verify()
            VALIDATOR.validate(payload)
            data = payload["data"]
            rules = [rule["id"] for rule in data["rules"]]
            found.append((request.path, payload["type"], data["article"]["revision"], rules))
        return sorted(found)

    try:
        v.poll(t)
        v.dispatch(t)
        assert events(0) == [
            ("/dashboard", "article.matched", 1, ["calais"]),
            ("/hook", "article.matched", 1, ["calais"]),
        ]
        # The correction: the camp was not in Calais.
        _camp_feed(feed, *GRENOBLE)
        later = t + timedelta(hours=1)
        v.poll(later)
        v.dispatch(later)
        assert events(2) == [("/dashboard", "article.withdrawn", 2, ["calais"])]
        withdrawn = receiver.requests[2].verify()["data"]
        assert withdrawn["article"]["title"] == "Camp evacuated in Grenoble"
        assert withdrawn["rules"] == [{"id": "calais", "name": "Calais and the Channel route"}]
        # A revision matching again: told to the consumer that was told of the withdrawal.
        _camp_feed(
            feed, "Camp evacuated in Calais", "Police evacuated a migrant camp in Calais, again."
        )
        last = t + timedelta(hours=2)
        v.poll(last)
        v.dispatch(last)
        assert events(3) == [("/dashboard", "article.matched", 3, ["calais"])]
        # A revision with nothing new to say of the rule sends nothing.
        _camp_feed(
            feed, "Camp evacuated in Calais", "Police evacuated a migrant camp in Calais, at last."
        )
        v.poll(last + timedelta(hours=1))
        v.dispatch(last + timedelta(hours=1))
        assert len(receiver.requests) == 4
    finally:
        v.close()
    # docs/delivery.md's consumer ends where the events left it, in whatever order they came.
    board = [r.verify() for r in receiver.requests if r.path == "/dashboard"]
    assert CONSUMER
    for order in (board, board[::-1], [board[1], board[2], board[0]]):
        consumer: dict[str, Any] = {}
        exec(CONSUMER.group(1), consumer)  # the documented code, as a consumer would paste it
        for event in order:
            consumer["handle"](event)
        article = board[0]["data"]["article"]["id"]
        assert {key: held for key, (_, held) in consumer["holds"].items()} == {
            (article, "calais"): True
        }
    consumer = {}
    exec(CONSUMER.group(1), consumer)
    for event in board[:2]:  # the match, then its withdrawal, the later revision's
        consumer["handle"](event)
    assert [held for _, held in consumer["holds"].values()] == [False]


def test_articles_show_says_which_webhook_delivery_was_a_withdrawal(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Checking the docs: `vigie articles show` of a corrected article listed its
    article.matched and its article.withdrawn deliveries as the same line twice, "webhook to
    dashboard: sent (rules calais)", where `deliveries list` says "webhook (withdrawn)": the
    "why did I get it twice?" it is for had no answer."""
    t = now() - timedelta(hours=2)
    feed, config = _littoral_watched(
        tmp_path, {**hook_to(receiver, tags=["calais"], name="dashboard"), "withdrawals": True}
    )
    v = Vigie(config, t)
    try:
        v.poll(t)
        v.dispatch(t)
        _camp_feed(feed, *GRENOBLE)
        v.poll(t + timedelta(hours=1))
        v.dispatch(t + timedelta(hours=1))
        [article_id] = [a for (a,) in v.store.db.execute("SELECT id FROM articles")]
    finally:
        v.close()
    assert [r.verify()["type"] for r in receiver.requests] == [
        "article.matched",
        "article.withdrawn",
    ]
    show = ["articles", "show", str(article_id), "--config", str(config)]
    text = CliRunner().invoke(main, show).stdout
    assert "Delivery #1 webhook to dashboard: sent" in text, text
    assert "Delivery #2 webhook (withdrawn) to dashboard: sent" in text, text
    record = json.loads(CliRunner().invoke(main, [*show, "--json"]).stdout)
    assert [d["event"] for d in record["deliveries"]] == ["", "article.withdrawn"]


def _littoral_watched(tmp_path: Path, hook: dict) -> tuple[Path, Path]:
    """The Littoral feed with its Calais camp article, and a config of it and one webhook."""
    feed = tmp_path / "littoral.rss"
    _camp_feed(feed, *CALAIS)
    config = write_delivery_config(
        tmp_path, webhooks=[hook], feeds=[{"url": str(feed), "name": "Littoral"}]
    )
    return feed, config


def _camp_feed(feed: Path, title: str, text: str) -> None:
    feed.write_text(
        "<rss version='2.0'><channel><title>Littoral</title><item>"
        f"<guid>https://news.example/camp</guid><title>{title}</title>"
        f"<description>{text}</description></item></channel></rss>",
        encoding="utf-8",
    )


CALAIS = ("Camp evacuated in Calais", "Police evacuated a migrant camp in Calais at dawn.")
GRENOBLE = ("Camp evacuated in Grenoble", "Police evacuated a camp in Grenoble at dawn.")


def _sent_about_calais(
    tmp_path: Path, hook: dict[str, Any]
) -> tuple[Path, list[dict[str, str]], datetime]:
    """A feed with one article about a camp in Calais, polled and sent to `hook` four hours
    ago (each later step an hour on, signed no later than now): the feed, the config's feeds
    and the time."""
    feed = tmp_path / "littoral.rss"
    _camp_feed(feed, *CALAIS)
    feeds = [{"url": str(feed), "name": "Littoral"}]
    t = now() - timedelta(hours=4)
    v = Vigie(write_delivery_config(tmp_path, webhooks=[hook], feeds=feeds), t)
    try:
        v.poll(t)
        v.dispatch(t)
    finally:
        v.close()
    return feed, feeds, t


def _received(receiver: Receiver, since: int = 0) -> list[tuple[str, int, list[str]]]:
    """(type, article revision, rule ids) of each event received, batches opened (their
    events typed article.matched)."""
    found = []
    for request in receiver.requests[since:]:
        payload = request.verify()
        VALIDATOR.validate(payload)
        data = payload["data"]
        for event in data["events"] if payload["type"].endswith(".batch") else [data]:
            rules = [rule["id"] for rule in event["rules"]]
            kind = payload["type"].removesuffix(".batch")
            found.append((kind, event["article"]["revision"], rules))
    return found


@pytest.mark.parametrize("mode", ["per-match", "batched"])
def test_a_match_withdrawn_before_its_event_was_sent_is_not_sent(
    tmp_path: Path, receiver: Receiver, mode: str
) -> None:
    """A review: an event not sent yet when a correction withdrew its match (a batch still
    open, an endpoint paused) was rendered when sent, from the corrected article: the consumer
    got article.matched and article.withdrawn of the same revision, the batch after the
    withdrawal, and kept the match. It loses the rule instead; and a withdrawal not sent yet
    when a revision matches again is taken back the same way."""
    feed, config = _littoral_watched(
        tmp_path, {**hook_to(receiver, tags=["calais"]), "withdrawals": True, "mode": mode}
    )
    t = now() - timedelta(hours=4)
    v = Vigie(config, t)
    try:
        v.poll(t)  # its event waits (an open batch, or the dispatcher's next tick)
        _camp_feed(feed, *GRENOBLE)
        v.poll(t + timedelta(minutes=10))
        v.dispatch(t + timedelta(minutes=11))
        assert _received(receiver) == [("article.withdrawn", 2, ["calais"])]
        # Withdrawn, and matching again before the withdrawal was sent: nothing to say.
        _camp_feed(feed, *CALAIS)
        v.poll(t + timedelta(minutes=20))
        _camp_feed(feed, *GRENOBLE)
        v.poll(t + timedelta(minutes=30))
        _camp_feed(feed, CALAIS[0], CALAIS[1] + " Again.")
        v.poll(t + timedelta(minutes=40))
        v.dispatch(t + timedelta(minutes=41))
        assert _received(receiver, 1) == [("article.matched", 5, ["calais"])]
    finally:
        v.close()


@pytest.mark.parametrize("mode", ["per-match", "batched"])
def test_a_match_restored_after_its_withdrawal_is_sent_as_an_update(
    tmp_path: Path, receiver: Receiver, mode: str
) -> None:
    """A JavaScript consumer's review: the article.matched event of a rule matching again after
    its article.withdrawn said `updated: false`, as a first report does, though the consumer
    had been sent the article twice; one that announces `updated: false` events as news
    announced the corrected article as news again."""
    hook = {**hook_to(receiver, tags=["calais"]), "withdrawals": True, "mode": mode}
    feed, feeds, t = _sent_about_calais(tmp_path, hook)
    v = Vigie(tmp_path / "config.toml", t)
    try:
        for hours, text in enumerate([GRENOBLE, CALAIS], start=1):
            _camp_feed(feed, *text)
            v.poll(t + timedelta(hours=hours))
            v.dispatch(t + timedelta(hours=hours, minutes=1))
    finally:
        v.close()
    assert _received(receiver) == [
        ("article.matched", 1, ["calais"]),
        ("article.withdrawn", 2, ["calais"]),
        ("article.matched", 3, ["calais"]),
    ]
    matched = [r.json["data"] for r in receiver.requests if r.json["type"] != "article.withdrawn"]
    assert [e["updated"] for data in matched for e in data.get("events", [data])] == [False, True]


def test_a_webhook_renamed_is_sent_the_withdrawal_of_what_it_was_sent_as_before(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A review: a webhook renamed in config.toml (the same URL) with nothing waiting kept
    its sent deliveries under the old name, so a correction found nothing it was told, and
    the consumer was never sent the withdrawal."""
    hook = {**hook_to(receiver, tags=["calais"], name="dashboard"), "withdrawals": True}
    feed, feeds, t = _sent_about_calais(tmp_path, hook)
    renamed = {**hook, "name": "newsroom-board"}
    config = write_delivery_config(tmp_path, webhooks=[renamed], feeds=feeds)
    v = Vigie(config, t)
    try:
        _camp_feed(feed, *GRENOBLE)
        v.poll(t + timedelta(hours=1))
        v.dispatch(t + timedelta(hours=1))
        assert _received(receiver) == [
            ("article.matched", 1, ["calais"]),
            ("article.withdrawn", 2, ["calais"]),
        ]
    finally:
        v.close()


def test_a_rule_removed_from_the_rule_files_is_not_announced_withdrawn(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A review: once the operator removed a rule, the next edit of an article it had matched
    (a line added, the article still about Calais) was announced as article.withdrawn of it,
    as if the outlet had corrected the article."""
    hook = {**hook_to(receiver, tags=["calais"]), "withdrawals": True}
    feed, _, t = _sent_about_calais(tmp_path, hook)
    config = tmp_path / "config.toml"  # write_delivery_config's
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    topics = (rules / "topics.toml").read_text(encoding="utf-8").split("[[rule]]")
    kept = [block for block in topics if 'id = "calais"' not in block]
    assert len(kept) == len(topics) - 1
    (rules / "topics.toml").write_text("[[rule]]".join(kept), encoding="utf-8")
    text = config.read_text(encoding="utf-8").replace(str(REPO / "rules"), str(rules))
    config.write_text(text, encoding="utf-8")
    v = Vigie(config, t)
    try:
        _camp_feed(feed, CALAIS[0], CALAIS[1] + " The prefecture confirmed it at noon.")
        v.poll(t + timedelta(hours=1))
        v.dispatch(t + timedelta(hours=1))
        assert _received(receiver) == [("article.matched", 1, ["calais"])]
        # The store counts it withdrawn all the same (rules backtest, digests).
        withdrawn = "SELECT rule_id FROM matches WHERE withdrawn_revision = 2"
        assert v.rows(withdrawn) == [("calais",)]
    finally:
        v.close()


def _consumer_ends(receiver: Receiver) -> set[frozenset[tuple[tuple[int, str], bool]]]:
    """What docs/delivery.md's consumer holds once it has handled every event the receiver
    accepted (2xx), for each order they could have come in: one state when order does not
    matter."""
    assert CONSUMER
    events = [request.verify() for request in receiver.requests if request.accepted]
    ends = set()
    for order in itertools.permutations(events):
        consumer: dict[str, Any] = {}
        exec(CONSUMER.group(1), consumer)  # the documented code, as a consumer would paste it
        for event in order:
            consumer["handle"](event)
        ends.add(frozenset((key, held) for key, (_, held) in consumer["holds"].items()))
    return ends


def _cli(*args: str | Path) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


AGAIN = (CALAIS[0], CALAIS[1] + " The prefecture confirmed it.")  # revision 3, about Calais


def _about_calais_again(v: Vigie, feed: Path, at: datetime) -> int:
    """The outlet's third revision, about Calais again, polled and dispatched at `at`: the
    article's id (the only one stored)."""
    _camp_feed(feed, *AGAIN)
    v.poll(at)
    v.dispatch(at)
    [article] = [a for (a,) in v.rows("SELECT id FROM articles")]
    return article


def test_a_dead_withdrawal_replayed_once_the_rule_matches_again_leaves_the_match_held(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A review: the endpoint down for a day, a correction's withdrawal was given up (dead);
    the next revision matched again, and no event said so, as the consumer had not been
    told of the withdrawal. `deliveries replay` then sent the withdrawal, and the consumer
    dropped a match that holds."""
    hook = {**hook_to(receiver, tags=["calais"]), "withdrawals": True}
    feed, _, t = _sent_about_calais(tmp_path, hook)
    config = tmp_path / "config.toml"
    v = Vigie(config, t)
    try:
        _camp_feed(feed, *GRENOBLE)
        at = t + timedelta(hours=1)
        v.poll(at)
        receiver.down()  # every attempt of the withdrawal refused: it never reached them
        for _ in range(8):
            [attempt] = v.dispatch(at)
            at = attempt.retry_at or at
        assert attempt.status == "dead"
        receiver.up()
        article = _about_calais_again(v, feed, t + timedelta(hours=2))
    finally:
        v.close()
    said = _cli("deliveries", "replay", "--since", "1d", "--config", config)
    assert "Delivery #3 queued after it: a later revision or rule edit changed" in said, said
    assert _consumer_ends(receiver) == {frozenset({((article, "calais"), True)})}
    assert [(event, revision) for event, revision, _ in _received(receiver, 1)] == [
        ("article.withdrawn", 2),  # as it was first sent: its body is kept
        ("article.matched", 3),
    ]


def test_a_withdrawal_retried_once_the_rule_matches_again_leaves_the_match_held(
    tmp_path: Path, receiver: Receiver
) -> None:
    """The same, the endpoint having answered the withdrawal 410 (a deploy half up): what
    matched again was not queued for the disabled endpoint, and `deliveries retry`, which
    enables it again, sent the withdrawal alone."""
    hook = {**hook_to(receiver, tags=["calais"]), "withdrawals": True}
    feed, _, t = _sent_about_calais(tmp_path, hook)
    config = tmp_path / "config.toml"
    v = Vigie(config, t)
    try:
        _camp_feed(feed, *GRENOBLE)
        v.poll(t + timedelta(hours=1))
        receiver.answers = [Answer(410)]
        [gone] = v.dispatch(t + timedelta(hours=1))
        assert gone.status == "failed"
        article = _about_calais_again(v, feed, t + timedelta(hours=2))
    finally:
        v.close()
    said = _cli("deliveries", "retry", str(gone.delivery_id), "--config", config)
    assert "Webhook #3 for bot (1 match) sent" in said, said
    assert _consumer_ends(receiver) == {frozenset({((article, "calais"), True)})}


def test_a_withdrawal_never_attempted_is_not_sent_as_of_a_revision_that_matches_again(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A review: a withdrawal that failed before its first attempt (its webhook taken out of
    config.toml for a while) had no body yet; replayed once its webhook was back and a later
    revision matched again, it was written then, saying that revision no longer matched."""
    hook = {**hook_to(receiver, tags=["calais"]), "withdrawals": True}
    feed, feeds, t = _sent_about_calais(tmp_path, hook)
    config = tmp_path / "config.toml"
    v = Vigie(config, t)
    try:
        _camp_feed(feed, *GRENOBLE)
        v.poll(t + timedelta(hours=1))
    finally:
        v.close()
    write_delivery_config(tmp_path, webhooks=[], feeds=feeds)
    v = Vigie(config, t)
    try:
        [removed] = v.dispatch(t + timedelta(hours=1))
        assert removed.status == "failed"
    finally:
        v.close()
    write_delivery_config(tmp_path, webhooks=[hook], feeds=feeds)
    v = Vigie(config, t)
    try:
        article = _about_calais_again(v, feed, t + timedelta(hours=2))
    finally:
        v.close()
    said = _cli("deliveries", "replay", "--since", "1d", "--config", config)
    assert "Delivery #2 not sent: never attempted, and a later revision" in said, said
    assert _consumer_ends(receiver) == {frozenset({((article, "calais"), True)})}
    assert [event for event, *_ in _received(receiver)] == ["article.matched"]


@pytest.mark.parametrize("mode", ["per-match", "batched"])
def test_a_dead_event_replayed_after_a_correction_undid_its_match_is_followed_by_the_withdrawal(
    tmp_path: Path, receiver: Receiver, mode: str
) -> None:
    """The other way round: the article's event given up while the endpoint was down, a
    correction undid its match, and no withdrawal was queued (the consumer had been sent
    nothing). `deliveries replay` then sent the event alone, and the consumer kept a match
    that no longer holds."""
    feed, config = _littoral_watched(
        tmp_path, {**hook_to(receiver, tags=["calais"]), "withdrawals": True, "mode": mode}
    )
    t = now() - timedelta(hours=4)
    v = Vigie(config, t)
    try:
        v.poll(t)
        receiver.down()  # every attempt refused: the event never reached them
        at = t
        for _ in range(8):
            [attempt] = v.dispatch(at)
            at = attempt.retry_at or at
        assert attempt.status == "dead"
        receiver.up()
        _camp_feed(feed, *GRENOBLE)
        v.poll(t + timedelta(hours=1))
        assert v.dispatch(t + timedelta(hours=1)) == []  # nothing to take back, so far
        [article] = [a for (a,) in v.rows("SELECT id FROM articles")]
    finally:
        v.close()
    _cli("deliveries", "replay", "--since", "1d", "--config", config)
    assert _received(receiver) == [
        ("article.matched", 1, ["calais"]),  # as it was first sent
        ("article.withdrawn", 2, ["calais"]),
    ]
    assert _consumer_ends(receiver) == {frozenset({((article, "calais"), False)})}


def _news(feed: Path, items: dict[str, tuple[str, str]]) -> None:
    """The Littoral feed with these items: guid -> (title, text)."""
    feed.write_text(
        "<rss version='2.0'><channel><title>Littoral</title>"
        + "".join(
            f"<item><guid>https://news.example/{guid}</guid><title>{title}</title>"
            f"<description>{text}</description></item>"
            for guid, (title, text) in items.items()
        )
        + "</channel></rss>",
        encoding="utf-8",
    )


QUAY = ("Quay cleared in Calais", "Police cleared a migrant camp on the quay in Calais.")
QUAY_ELSEWHERE = ("Quay cleared in Grenoble", "Police cleared a camp on a quay in Grenoble.")
BOAT = ("Small boat reaches Calais", "A small boat with migrants reached the beach at Calais.")
FERRY = ("Ferry searched in Calais", "Border Force searched a ferry for migrants in Calais.")


@pytest.mark.parametrize("enabled_by", ["retry", "new url", "replay at a new url"])
def test_a_webhook_enabled_again_after_a_410_is_told_what_changed_of_its_matches_meanwhile(
    tmp_path: Path, receiver: Receiver, enabled_by: str
) -> None:
    """A review: a consumer was sent "camp in Calais", then answered a 410, and its endpoint
    was disabled; the outlet corrected the camp to Grenoble meanwhile, and no withdrawal was
    queued for it (nothing is, while disabled). Once the operator enabled it again (`vigie
    deliveries retry`, or a new `url`), nothing said so: the consumer went on showing a match
    that no longer holds. It is sent what changed of the matches it was told of (withdrawn,
    or matching again after their withdrawal), and not what matched anew meanwhile, which
    the docs say is lost to it."""
    feed = tmp_path / "littoral.rss"
    hook = {**hook_to(receiver, tags=["calais"]), "withdrawals": True}
    feeds = [{"url": str(feed), "name": "Littoral"}]
    config = write_delivery_config(tmp_path, webhooks=[hook], feeds=feeds)
    t = now() - timedelta(hours=4)
    v = Vigie(config, t)
    try:
        _news(feed, {"camp": CALAIS, "quay": QUAY})
        v.poll(t)
        v.dispatch(t)
        _news(feed, {"camp": CALAIS, "quay": QUAY_ELSEWHERE})
        v.poll(t + timedelta(hours=1))
        v.dispatch(t + timedelta(hours=1))
        assert sorted(_received(receiver)) == [
            ("article.matched", 1, ["calais"]),
            ("article.matched", 1, ["calais"]),
            ("article.withdrawn", 2, ["calais"]),  # the quay's
        ]
        _news(feed, {"camp": CALAIS, "quay": QUAY_ELSEWHERE, "boat": BOAT})
        v.poll(t + timedelta(hours=2))
        receiver.answers = [Answer(410)]
        [gone] = v.dispatch(t + timedelta(hours=2))
        assert gone.status == "failed"
        # While disabled: the camp corrected, the quay about Calais again, a new article.
        _news(feed, {"camp": GRENOBLE, "quay": QUAY, "boat": BOAT, "ferry": FERRY})
        v.poll(t + timedelta(hours=3))
        assert v.dispatch(t + timedelta(hours=3)) == []
        ids = dict(v.rows("SELECT guid, id FROM articles"))
    finally:
        v.close()
    camp, quay, boat = (ids[f"https://news.example/{g}"] for g in ("camp", "quay", "boat"))
    before = len(receiver.requests)
    said = ""
    if enabled_by == "retry":
        said = _cli("deliveries", "retry", str(gone.delivery_id), "--config", config)
    else:
        moved = {**hook, "url": receiver.url("/moved")}
        write_delivery_config(tmp_path, webhooks=[moved], feeds=feeds)
    if enabled_by == "new url":  # the service's next dispatch
        v = Vigie(config, t)
        try:
            v.dispatch(t + timedelta(hours=3, minutes=1))
        finally:
            v.close()
    elif enabled_by == "replay at a new url":  # before the service has sent anything there
        said = _cli("deliveries", "replay", "--since", "1d", "--config", config)
    told = sorted(
        (r.json["type"], r.json["data"]["article"]["id"], r.json["data"]["article"]["revision"])
        for r in receiver.requests[before:]
    )
    assert told == sorted(
        [
            ("article.withdrawn", camp, 2),
            ("article.matched", quay, 3),
            *([("article.matched", boat, 1)] if enabled_by != "new url" else []),
        ]
    )  # once each, and not the ferry, matched while disabled
    path = "/hook" if enabled_by == "retry" else "/moved"
    assert {(r.path, r.accepted) for r in receiver.requests[before:]} == {(path, True)}
    if said:
        assert "queued for bot, whose endpoint is enabled again" in said, said
    [quay_again] = [
        r.json for r in receiver.requests[before:] if r.json["data"]["article"]["id"] == quay
    ]
    assert quay_again["data"]["updated"] is True
    holds = {(camp, "calais"): False, (quay, "calais"): True}
    if enabled_by != "new url":  # the delivery the 410 failed, sent again
        holds[boat, "calais"] = True
    assert _consumer_ends_of(receiver) == holds


def _consumer_ends_of(receiver: Receiver) -> dict[tuple[int, str], bool]:
    """What docs/delivery.md's consumer holds once it has handled, in the order they came,
    the events the receiver accepted."""
    assert CONSUMER
    consumer: dict[str, Any] = {}
    exec(CONSUMER.group(1), consumer)
    for request in receiver.requests:
        if request.accepted:
            consumer["handle"](request.verify())
    return {key: held for key, (_, held) in consumer["holds"].items()}


@pytest.mark.parametrize(
    ("answer", "handled"),
    [
        (Answer(500), True),  # its handler did the work, then failed to answer
        (Answer(502), True),  # a gateway's: the application behind it may have gone on
        (Answer(303, {"location": "/done"}), True),  # a form handler's "done, see there"
        (Answer(204, delay=1.5), True),  # handled, answered after the webhook's timeout
        (Answer(400), False),  # refused: a signature it does not verify
        (Answer(410), False),
        (Answer(429, {"retry-after": "60"}), False),
    ],
    ids=["500", "502", "303", "too-late", "400", "410", "429"],
)
def test_a_failed_attempt_says_whether_the_consumer_may_have_handled_it(
    receiver: Receiver, answer: Answer, handled: bool
) -> None:
    """A review: a delivery given up was counted as never received, but a 500 or an answer
    too late may follow a handler that did its work. Only a 4xx says it did not."""
    receiver.answers = [answer]
    session = make_session(fetch_config(allow_private=True))
    attempt = post(session, receiver.url(), "{}", "msg_1_x", SECRET, 1.0, datetime.now(UTC))
    assert (attempt.ok, attempt.maybe_handled) == (False, handled), attempt
    assert len(receiver.requests) == 1


def test_an_attempt_that_never_connected_cannot_have_been_handled(receiver: Receiver) -> None:
    """Refused, a name that does not resolve, the network guard: no request was sent."""
    url = receiver.url()
    receiver.down()
    open_session = make_session(fetch_config(allow_private=True))
    guarded = make_session(fetch_config(allow_private=False))
    now = datetime.now(UTC)
    for session, where in [
        (open_session, url),
        (open_session, "http://hooks.invalid/hook"),  # RFC 6761: never resolves
        (guarded, url),
    ]:
        attempt = post(session, where, "{}", "msg_1_x", SECRET, 1.0, now)
        assert (attempt.ok, attempt.status, attempt.maybe_handled) == (False, 0, False), attempt


@pytest.mark.parametrize(
    ("first", "withdrawn"),
    [
        (Answer(500), True),  # handled, then failed to answer
        (Answer(204, delay=2), True),  # handled, answered after the webhook's 1 s
        (Answer(400), False),  # refused
        (None, False),  # its host down already: never connected
    ],
    ids=["500", "too-late", "400", "refused"],
)
def test_a_correction_withdraws_a_match_whose_event_given_up_the_consumer_may_have_handled(
    tmp_path: Path, receiver: Receiver, first: Answer | None, withdrawn: bool
) -> None:
    """A review: a consumer's handler took an article's event and crashed before answering
    (a 500), then its host was down for a day, and the event was given up (dead). A
    correction undid the match, and no article.withdrawn came, as if the event had never
    arrived: the consumer kept showing the article. A delivery given up is taken as never
    received only when no attempt of it can have been handled (refused with a 4xx, or no
    connection made); otherwise its withdrawal follows, which a consumer that never had the
    event ignores (docs/delivery.md)."""
    feed, config = _littoral_watched(
        tmp_path, {**hook_to(receiver, tags=["calais"]), "withdrawals": True, "timeout": "1s"}
    )
    t = now() - timedelta(hours=4)
    v = Vigie(config, t)
    try:
        v.poll(t)
        if first is None:
            receiver.down()
        else:
            receiver.answers = [first]
        at = t
        for attempt_number in range(8):
            [attempt] = v.dispatch(at)
            at = attempt.retry_at or at
            if attempt_number == 0 and first is not None:
                receiver.down()  # the other seven refused
        assert attempt.status == "dead"
        receiver.up()
        handled_before = list(receiver.requests)
        _camp_feed(feed, *GRENOBLE)
        v.poll(t + timedelta(hours=1))  # signed no later than now, as consumers check
        v.dispatch(t + timedelta(hours=1))
    finally:
        v.close()
    after = _received(receiver, len(handled_before))
    assert after == ([("article.withdrawn", 2, ["calais"])] if withdrawn else [])
    if withdrawn:  # docs/delivery.md's consumer, having handled the first attempt
        assert CONSUMER
        consumer: dict[str, Any] = {}
        exec(CONSUMER.group(1), consumer)
        for request in receiver.requests:
            consumer["handle"](request.json)  # the retries signed at their (future) times
        assert [held for _, held in consumer["holds"].values()] == [False]


def test_a_rule_matching_again_after_a_withdrawal_given_up_that_may_have_been_handled_is_sent(
    tmp_path: Path, receiver: Receiver
) -> None:
    """The other way round: a withdrawal answered 503 at every attempt (a gateway in front of
    a consumer that took each) was given up; the next revision matched again, and nothing
    said so, the withdrawal counted as never received: the consumer had dropped a match that
    holds. It is sent article.matched again (`updated: true`) at once."""
    hook = {**hook_to(receiver, tags=["calais"]), "withdrawals": True}
    feed, _, t = _sent_about_calais(tmp_path, hook)
    v = Vigie(tmp_path / "config.toml", t)
    try:
        _camp_feed(feed, *GRENOBLE)
        at = t + timedelta(hours=1)
        v.poll(at)
        receiver.answers = [Answer(503)] * 8
        for _ in range(8):
            [attempt] = v.dispatch(at)
            at = attempt.retry_at or at
        assert attempt.status == "dead"
        article = _about_calais_again(v, feed, t + timedelta(hours=2))
    finally:
        v.close()
    assert _received(receiver, 9) == [("article.matched", 3, ["calais"])]
    assert receiver.requests[-1].json["data"]["updated"] is True
    # Whichever of the withdrawal's attempts the consumer took, and in whatever order.
    assert CONSUMER
    for took in receiver.requests[1:9]:
        consumer: dict[str, Any] = {}
        exec(CONSUMER.group(1), consumer)
        for request in [receiver.requests[0], took, receiver.requests[-1]]:
            consumer["handle"](request.json)  # the retries signed at their (future) times
        assert {key: held for key, (_, held) in consumer["holds"].items()} == {
            (article, "calais"): True
        }


def test_a_private_feeds_password_is_not_sent_to_consumers(
    tmp_path: Path, receiver: Receiver, server: LoopbackServer
) -> None:
    """A security review: `source.feed_url` was the address polled, as written, with a private
    feed's user name and password in it, which are the operator's secret (docs/database.md)."""
    server.route(
        "/private.rss",
        b"<rss version='2.0'><channel><title>Partner</title><item>"
        b"<guid>https://news.example/camp</guid><title>Camp evacuated in Calais</title>"
        b"<description>Police evacuated a migrant camp in Calais.</description></item>"
        b"</channel></rss>",
    )
    address = server.url("/private.rss").replace("http://", "http://reader:s3cret@")
    t = now()
    config = write_delivery_config(
        tmp_path, webhooks=[hook_to(receiver, tags=["calais"])], feeds=[{"url": address}]
    )
    v = Vigie(config, t)
    try:
        v.poll(t)
        v.dispatch(t)
        [request] = receiver.requests
        source = request.verify()["data"]["article"]["source"]
        assert source == {"name": "Partner", "feed_url": server.url("/private.rss")}
        assert b"s3cret" not in request.body
    finally:
        v.close()


def test_documented_example_is_valid_against_the_schema() -> None:
    VALIDATOR.validate(doc_json("payload-example"))


def test_documented_example_is_what_the_samples_send(
    vigie: Callable[..., Vigie], receiver: Receiver
) -> None:
    """docs/delivery.md's example, "from the bundled sample feeds and rules", said score 8.0
    and 5 mentions after overlapping words came to count once (4.0 and 3): what a consumer
    is sent for that article and rule is the example, but for the ids and times of this run."""
    example = doc_json("payload-example")["data"]
    t = now()
    v = vigie(t, tags=["calais"])
    v.dispatch(t)
    [sent] = [
        data
        for data in (request.verify()["data"] for request in receiver.requests)
        if data["article"]["url"] == example["article"]["url"]
    ]
    for key in ("title", "published", "language", "revision"):
        assert sent["article"][key] == example["article"][key], key
    assert sent["article"]["source"]["name"] == example["article"]["source"]["name"]
    assert (sent["updated"], sent["rules"]) == (example["updated"], example["rules"])
    assert sent["entities"] == example["entities"]


def test_500_then_200_retries_with_the_same_webhook_id(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    t = now()
    v = vigie(t, tags=["prosecutions"])
    receiver.answers = [Answer(500)]
    first = v.dispatch(t)
    assert first[0].status == "pending" and "HTTP 500" in first[0].detail
    assert all(s.status == "sent" for s in first[1:])
    assert v.dispatch(t + timedelta(seconds=2)) == []  # the 5 s wait has not passed
    [retried] = v.dispatch(t + timedelta(seconds=6))
    assert retried.status == "sent" and retried.delivery_id == first[0].delivery_id
    failed, *_, again = receiver.requests
    assert failed.headers["webhook-id"] == again.headers["webhook-id"]
    assert failed.body == again.body  # the same bytes, signed afresh
    assert failed.headers["webhook-timestamp"] != again.headers["webhook-timestamp"]
    assert again.verify()["id"] == failed.headers["webhook-id"]


def test_a_slow_endpoint_times_out_and_is_retried(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    t = now()
    # A second, not less: on a loaded machine an ordinary loopback answer took over 0.3 s.
    v = vigie(t, tags=["prosecutions"], timeout="1s")
    receiver.answers = [Answer(200, delay=3.0)]
    [first] = v.dispatch(t)  # the endpoint's other deliveries wait for the next run
    assert first.status == "pending"
    assert first.detail == "no answer within 1s"
    later = v.dispatch(t + timedelta(seconds=6))
    assert {s.status for s in later} == {"sent"} and len(later) == len(statuses(v))
    timed_out = receiver.requests[0].headers["webhook-id"]
    [retried] = [r for r in receiver.requests[1:] if r.headers["webhook-id"] == timed_out]
    assert retried.verify()


def test_an_endpoint_that_does_not_answer_holds_up_no_other_webhook(
    receiver: Receiver, tmp_path: Path
) -> None:
    """Sent one after the other, every delivery to a consumer that never answered cost its
    timeout, and every other consumer's events waited behind them."""
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    dead_url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
    hooks = [
        {"name": "dead", "url": dead_url, "secret_env": SECRET_ENV, "tags": ALL_TAGS,
         "timeout": "1s"},
        {"name": "bot", "url": receiver.url(), "secret_env": SECRET_ENV, "tags": ALL_TAGS},
    ]  # fmt: skip
    t = now()
    v = Vigie(write_delivery_config(tmp_path, webhooks=hooks), t)
    try:
        v.poll(t)
        per_hook = len(statuses(v)) // 2
        assert per_hook > 3
        sent = v.dispatch(t)
        assert [s.target for s in sent if s.status != "sent"] == ["dead"]  # tried once
        assert len([s for s in sent if s.target == "bot" and s.status == "sent"]) == per_hook
    finally:
        v.close()
        silent.close()


@pytest.mark.parametrize("every_due", [False, True], ids=["run", "once"])
def test_a_slow_endpoint_holds_up_only_its_own_deliveries(
    receiver: Receiver, tmp_path: Path, every_due: bool
) -> None:
    """Sent one after the other, the deliveries to a consumer that answered slowly but in time
    held up every other consumer's: at 5 s an answer, 50 of its events kept the others waiting
    minutes. Each endpoint's deliveries now go in their order, over one connection, beside the
    other endpoints'."""
    from monitor.deliver.dispatch import dispatch_webhooks

    slow = Receiver()
    stop_slow = start(slow)
    hooks = [
        {"name": "slow", "url": slow.url(), "secret_env": SECRET_ENV, "tags": ["prosecutions"]},
        {"name": "fast", "url": receiver.url(), "secret_env": SECRET_ENV, "tags": ALL_TAGS},
    ]  # the slow one first: each article's delivery to it is queued before the fast one's
    t = now()
    v = Vigie(write_delivery_config(tmp_path, webhooks=hooks), t)
    fast_done = threading.Event()
    try:
        v.poll(t)
        queued = {
            name: [
                f"msg_{d.id}_{d.key}"
                for d in sorted(v.store.list_deliveries(target=name), key=lambda d: d.id or 0)
            ]
            for name in ("slow", "fast")
        }
        assert len(queued["slow"]) > 2 and len(queued["fast"]) > 2
        # The slow endpoint holds its first answer until the fast one has received every one of
        # its deliveries (or ten seconds have passed), then takes its time over each other one.
        slow.answers = [Answer(hold=fast_done)] + [Answer(delay=0.2)] * 100
        fast_had: list[int] = []

        def release() -> None:
            with contextlib.suppress(AssertionError):
                receiver.wait_for(len(queued["fast"]), limit=10)
            fast_had.append(len(receiver.requests))
            fast_done.set()

        threading.Thread(target=release, daemon=True).start()
        sent = dispatch_webhooks(
            v.store, v.session, v.config.delivery, v.labels, t, every_due=every_due
        )
    finally:
        fast_done.set()
        v.close()
        stop_slow()
    assert fast_had == [len(queued["fast"])]  # all there while the slow one's first was out
    assert len(sent) == len(queued["slow"]) + len(queued["fast"])
    assert {s.status for s in sent} == {"sent"}
    for endpoint, name in ((slow, "slow"), (receiver, "fast")):
        assert [r.headers["webhook-id"] for r in endpoint.requests] == queued[name]  # in order
        assert len({r.peer for r in endpoint.requests}) == 1  # over one connection
        for request in endpoint.requests:
            request.verify()


def test_a_run_spends_a_bounded_time_on_one_endpoint(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dispatcher runs once at a time: a slow endpoint's backlog of 100 kept the run going
    for minutes, and the other endpoints' new deliveries waited for it to end. Past its
    budget an endpoint's deliveries wait for the next run, in their order; `once` sends all."""
    from monitor.deliver import dispatch

    monkeypatch.setattr(dispatch, "ENDPOINT_BUDGET", 0.2)
    slow = Receiver()
    stop_slow = start(slow)
    slow.answers = [Answer(delay=0.3)] * 100  # each answer is more than the budget
    hooks = [
        {"name": "slow", "url": slow.url(), "secret_env": SECRET_ENV, "tags": ["prosecutions"]},
        {"name": "fast", "url": receiver.url(), "secret_env": SECRET_ENV, "tags": ALL_TAGS},
    ]
    t = now()
    v = Vigie(write_delivery_config(tmp_path, webhooks=hooks), t)
    try:
        v.poll(t)
        queued = sorted(d.id for d in v.store.list_deliveries(target="slow"))
        assert len(queued) > 2
        first = v.dispatch(t)
        assert [s.delivery_id for s in first if s.target == "slow"] == queued[:1]
        assert len([s for s in first if s.target == "fast" and s.status == "sent"]) == len(
            v.store.list_deliveries(target="fast")
        )
        untouched = v.rows(
            "SELECT id FROM deliveries WHERE target = 'slow' AND status = 'pending' "
            "AND attempts = 0 ORDER BY id"
        )
        assert [row[0] for row in untouched] == queued[1:]  # not attempted: no retry counted
        second = v.dispatch(t)
        assert [s.delivery_id for s in second] == queued[1:2]  # the next one, in order
        rest = dispatch.dispatch_webhooks(
            v.store, v.session, v.config.delivery, v.labels, t, every_due=True
        )
        assert [s.delivery_id for s in rest] == queued[2:]
        assert {s.status for s in first + second + rest} == {"sent"}
    finally:
        v.close()
        stop_slow()


def test_the_documented_endpoints_at_once_and_budget_are_the_codes() -> None:
    from monitor.deliver.dispatch import ENDPOINT_BUDGET, ENDPOINTS_AT_ONCE

    assert f"Up to {ENDPOINTS_AT_ONCE} endpoints are sent to at the" in DOC
    assert f"gives one endpoint at most {ENDPOINT_BUDGET:g} s of each run" in DOC


def test_a_stopping_service_makes_no_further_attempt(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    """After SIGTERM the service went on sending every due delivery (to a dead endpoint: past
    systemd's stop timeout)."""
    from monitor.deliver.dispatch import dispatch_webhooks

    t = now()
    v = vigie(t)
    stop = threading.Event()
    receiver.answers = [Answer(200, hold=stop)]  # the service stops while the first is out
    threading.Timer(0.5, stop.set).start()
    sent = dispatch_webhooks(v.store, v.session, v.config.delivery, v.labels, t, stop=stop)
    assert [s.status for s in sent] == ["sent"] and len(statuses(v)) > 1
    assert [row[0] for row in statuses(v)][1:] == ["pending"] * (len(statuses(v)) - 1)


def test_two_secrets_while_rotating_both_sign_every_request(
    receiver: Receiver, vigie: Callable[..., Vigie], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One secret only: a consumer could not move to a new one without refusing events in
    between. With two in secret_env, each verifies every request."""
    new = "whsec_" + base64.b64encode(b"n" * 32).decode()
    monkeypatch.setenv(SECRET_ENV, f"{new} {SECRET}")
    t = now()
    v = vigie(t, tags=["prosecutions"])
    v.dispatch(t)
    assert receiver.requests
    for request in receiver.requests:
        assert len(request.headers["webhook-signature"].split()) == 2
        assert request.verify(new) == request.verify(SECRET)  # either secret verifies
    with pytest.raises(WebhookVerificationError):
        receiver.requests[0].verify("whsec_" + base64.b64encode(b"x" * 32).decode())


def test_retry_after_postpones_the_next_attempt(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    t = now()
    v = vigie(t, tags=["prosecutions"])
    receiver.answers = [Answer(503, headers={"Retry-After": "120"})]
    first = v.dispatch(t)[0]
    delivery = v.store.delivery(first.delivery_id)
    assert delivery is not None and delivery.next_attempt is not None
    # Counted from the attempt, made at t or a moment after.
    assert t + timedelta(seconds=120) <= delivery.next_attempt <= now() + timedelta(seconds=120)


def test_503_with_retry_after_pauses_the_whole_endpoint(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    """docs/delivery.md: "for a pause, answer 503 (with Retry-After)". Each other delivery was
    still POSTed at once, and spent one of its eight attempts on the same answer (a consumer's
    review): the endpoint's deliveries now wait, unspent, until the time it gave."""
    t = now()
    v = vigie(t)
    waiting = len(statuses(v))
    assert waiting > 3
    receiver.answers = [Answer(503, headers={"Retry-After": "3600"})]
    [paused] = v.dispatch(t)
    assert len(receiver.requests) == 1 and paused.status == "pending"
    assert v.store.paused_endpoints(t)[0]["name"] == "bot"
    assert sorted(attempts for _, attempts, _ in statuses(v)) == [0] * (waiting - 1) + [1]
    assert v.dispatch(t + timedelta(minutes=30)) == []  # still paused: nothing sent
    health = assess(v.store, now=t, running=True, stale=timedelta(hours=1),
                    since=timedelta(days=7), rule_files=1, rules=1, rule_errors=[],
                    webhooks=[("bot", receiver.url())])  # fmt: skip
    assert [e["name"] for e in health.paused] == ["bot"] and health.healthy
    assert len(receiver.requests) == 1
    sent = v.dispatch(t + timedelta(hours=1, seconds=2))  # the paused one is due then too
    assert len(sent) == waiting and {s.status for s in sent} == {"sent"}


def test_a_renamed_webhook_keeps_its_waiting_deliveries(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    """Renamed in config.toml (the same URL), a webhook's waiting deliveries failed "no longer
    in config.toml" and never reached the consumer (a consumer's review): they follow the new
    name, with its history."""
    t = now()
    v = vigie(t)
    receiver.answers = [Answer(500)] * 100
    first = v.dispatch(t)
    assert first and {s.status for s in first} == {"pending"}
    renamed = vigie(t, name="newsdesk")  # the same url, under another name
    receiver.answers = []
    sent = renamed.dispatch(t + timedelta(minutes=10))
    assert len(sent) == len(first) and {(s.target, s.status) for s in sent} == {
        ("newsdesk", "sent")
    }
    assert renamed.rows("SELECT DISTINCT target FROM deliveries") == [("newsdesk",)]


def test_a_removed_webhooks_deliveries_are_not_given_to_another(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    t = now()
    v = vigie(t)
    receiver.answers = [Answer(500)] * 100
    first = v.dispatch(t)
    other = vigie(t, name="other", url=receiver.url().replace("127.0.0.1", "localhost"))
    receiver.answers = []
    sent = other.dispatch(t + timedelta(minutes=10))
    assert len(sent) == len(first) and {(s.target, s.status, s.detail) for s in sent} == {
        ("bot", "failed", "webhook no longer in config.toml")
    }


def test_503_without_retry_after_pauses_nothing(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    t = now()
    v = vigie(t)
    receiver.answers = [Answer(503)]
    sent = v.dispatch(t)
    assert v.store.paused_endpoints(t) == []
    assert [s.status for s in sent] == ["pending"] + ["sent"] * (len(sent) - 1)
    assert len(receiver.requests) == len(sent) > 3


def test_each_attempt_is_signed_when_it_is_made_not_when_the_tick_began(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    """Every request of a tick, or of a `vigie once` after minutes of polling, was signed with
    the time the tick began: consumers reject a webhook-timestamp five minutes old."""
    began = now() - timedelta(minutes=10)  # a `vigie once` whose polling took ten minutes
    v = vigie(began)
    receiver.answers = [Answer(delay=1.1)]  # and a slow first answer
    sent = v.dispatch(began)
    assert len(sent) == len(receiver.requests) > 1
    stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.requests]
    assert stamps[0] >= now().timestamp() - 60 and stamps[1] >= stamps[0] + 1
    for request in receiver.requests:
        request.verify()  # raised "Message timestamp too old"
    [(sent_at,)] = v.rows("SELECT min(sent) FROM deliveries")
    assert parse_iso(sent_at) >= began + timedelta(minutes=9)  # recorded when sent, too


def test_410_disables_the_endpoint_until_an_operator_retries(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    t = now()
    v = vigie(t)
    receiver.answers = [Answer(410)]
    sent = v.dispatch(t)
    assert sent[0].status == "failed" and sent[0].detail.startswith("HTTP 410")
    assert len(receiver.requests) == 1  # the others were not attempted
    assert {row[0] for row in statuses(v)} == {"failed"}
    assert [row[1] for row in statuses(v)] == [1] + [0] * (len(statuses(v)) - 1)
    assert v.store.disabled_endpoint("bot", receiver.url())
    # New matches for a disabled endpoint are not queued.
    assert v.store.enqueue_webhook("bot", receiver.url(), False, 1, ["calais"], t) is None
    # An operator's retry enables it again, with the same webhook-id.
    v.store.requeue(sent[0].delivery_id, t)
    [retried] = v.dispatch(t)
    assert retried.status == "sent"
    assert receiver.requests[-1].headers["webhook-id"] == receiver.requests[0].headers["webhook-id"]


def test_a_redirect_is_not_followed_and_counts_as_failure(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    t = now()
    v = vigie(t, tags=["prosecutions"])
    receiver.answers = [Answer(308, headers={"Location": "http://127.0.0.1:9/elsewhere"})]
    first = v.dispatch(t)[0]
    assert first.status == "pending"
    assert first.detail == "HTTP 308: redirect to http://127.0.0.1:9/elsewhere not followed"
    assert [r.path for r in receiver.requests].count("/elsewhere") == 0


def test_a_redirects_escape_sequences_are_not_stored(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    """The failure's reason is kept in deliveries.last_error, which scripts read too."""
    t = now()
    v = vigie(t, tags=["prosecutions"])
    receiver.answers = [Answer(302, headers={"Location": "http://x/\x1b]0;PWNED\x07\x1b[2J"})]
    first = v.dispatch(t)[0]
    assert first.detail == "HTTP 302: redirect to http://x/ not followed"
    stored = v.rows("SELECT last_error FROM deliveries WHERE id = ?", (first.delivery_id,))
    assert stored == [(first.detail,)]


def test_the_network_guard_applies_to_webhooks(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    t = now()
    v = vigie(t, fetch={"allow_private": False}, tags=["prosecutions"])
    first = v.dispatch(t)[0]
    assert first.status == "pending" and "non-public address 127.0.0.1" in first.detail
    assert receiver.requests == []


def test_dead_lettered_after_the_eighth_failure(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    t = now()
    v = vigie(t, tags=["prosecutions"])
    receiver.answers = [Answer(500)] * 1000
    rounds, when = [], t
    for _ in range(8):
        rounds.append({s.status for s in v.dispatch(when)})
        waiting = [d.next_attempt for d in v.store.list_deliveries(status="pending")]
        when = max((w for w in waiting if w), default=when)
    assert rounds == [{"pending"}] * 7 + [{"dead"}]
    deliveries = v.store.list_deliveries()
    assert {(d.status, d.attempts) for d in deliveries} == {("dead", 8)}
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 8 * len(deliveries)
    for d in deliveries:  # eight attempts each, all with the delivery's one webhook-id
        assert ids.count(f"msg_{d.id}_{d.key}") == 8
    assert when - t > timedelta(hours=24)  # the schedule spans about 28 hours
    assert v.dispatch(when + timedelta(days=2)) == []


def test_batched_mode_sends_every_new_article_in_one_message(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    t = now()
    v = vigie(t, mode="batched")
    articles = {row[0] for row in v.rows("SELECT DISTINCT article_id FROM matches")}
    assert statuses(v) == [("open", 0, None)]  # filled by the poll, closed by the dispatcher
    [sent] = v.dispatch(t)
    assert sent.status == "sent"
    [request] = receiver.requests
    payload = request.verify()
    VALIDATOR.validate(payload)
    assert payload["type"] == "article.matched.batch"
    assert {e["article"]["id"] for e in payload["data"]["events"]} == articles


def test_a_batch_over_max_body_goes_in_several_posts_each_under_it(
    receiver: Receiver, vigie: Callable[..., Vigie]
) -> None:
    """A batch of 100 articles quoting their evidence reached 4 MB, refused (413) by receivers
    on every attempt to its death (a consumer's review): the articles past `max_body` go in
    the next POSTs, each under it, every article once."""
    t = now()
    v = vigie(t, mode="batched", max_body="6KB")
    articles = {row[0] for row in v.rows("SELECT DISTINCT article_id FROM matches")}
    sent = []
    for tick in range(20):
        found = v.dispatch(t + timedelta(seconds=tick))
        if not found:
            break
        sent += found
    assert len(sent) > 2 and all(s.status == "sent" for s in sent)
    delivered: list[int] = []
    for request in receiver.requests:
        payload = request.verify()
        VALIDATOR.validate(payload)
        assert payload["type"] == "article.matched.batch"
        assert len(request.body) <= 6000 or len(payload["data"]["events"]) == 1
        delivered += [e["article"]["id"] for e in payload["data"]["events"]]
    assert sorted(delivered) == sorted(articles)  # each once
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == len(receiver.requests)
    # What each delivery reports carrying is what its body carried.
    assert sum(s.items for s in sent) == v.rows("SELECT count(*) FROM delivery_matches")[0][0]


def test_outbox_rows_commit_with_their_matches_or_not_at_all(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = now()
    hook = {"name": "bot", "url": receiver.url(), "secret_env": SECRET_ENV, "tags": ALL_TAGS}
    config = write_delivery_config(tmp_path, webhooks=[hook], feeds=SAMPLE_FEEDS[:1])
    v = Vigie(config, t)
    queued = []
    enqueue = v.store.enqueue_webhook

    def crash_on_the_third(*args: Any) -> int | None:
        if len(queued) == 2:
            raise RuntimeError("the process dies while queueing")
        queued.append(enqueue(*args))
        return queued[-1]

    monkeypatch.setattr(v.store, "enqueue_webhook", crash_on_the_third)
    with pytest.raises(RuntimeError):
        v.poll(t)
    assert queued == [1, 2]  # two deliveries were written, then the process died...
    for table in ("deliveries", "delivery_matches", "matches", "articles"):
        assert v.rows(f"SELECT count(*) FROM {table}") == [(0,)], table  # ...and none remains
    monkeypatch.setattr(v.store, "enqueue_webhook", enqueue)
    v.poll(t)  # the next poll stores the feed again, deliveries with its matches
    matched = v.rows("SELECT count(DISTINCT article_id) FROM matches")[0][0]
    assert matched > 2 and v.rows("SELECT count(*) FROM deliveries") == [(matched,)]
    v.close()


def test_links_reach_readers_without_the_outlets_tracking_parameters(
    tmp_path: Path, server: LoopbackServer, smtp: SmtpServer, receiver: Receiver
) -> None:
    """Links carry campaign tags (`utm_source=rss`) or AT Internet's `#xtor=` so that the outlet
    knows a reader came from its feed; digests and webhooks gave them on, and every forward
    of a digest was counted as that feed's. The parameters that say what the page is stay."""
    tracked = (
        "https://news.example/2026/11/calais-camp-cleared?page=2"
        "&utm_source=rss&utm_medium=feed#xtor=RSS-3-[lestitres]"
    )
    item = Item(
        "c-1",
        "Police fire tear gas as Calais migrant camp is cleared",
        "Officers used tear gas on migrants at the camp near Calais; the prosecutor charged"
        " two smugglers.",
        tracked,
    )
    server.route("/feed.xml", rss([item], title="News Example"))
    t = now()
    path = write_delivery_config(
        tmp_path,
        subscribers=[IMMEDIATE_DESK],
        webhooks=[hook_to(receiver)],
        smtp=smtp.smtp_settings(),
        feeds=[{"url": server.url("/feed.xml"), "name": "News Example"}],
    )
    v = Vigie(path, t)
    try:
        v.poll(t)
        assert [s.status for s in v.dispatch(t)] == ["sent"]
        [digest] = v.send_digests(t)
        assert digest.status == "sent"
    finally:
        v.close()
    clean = "https://news.example/2026/11/calais-camp-cleared?page=2"
    [request] = receiver.requests
    assert request.verify()["data"]["article"]["url"] == clean
    [accepted] = smtp.messages
    message = email.message_from_bytes(accepted.data, policy=email.policy.default)
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert f'href="{clean.replace("&", "&amp;")}"' in html
    assert clean in text
    assert "utm_" not in html + text and "xtor" not in html + text


def test_deliveries_ping_posts_a_signed_event_the_schema_takes(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A consumer could check its endpoint only once an article matched: `deliveries ping`
    sends a signed event of its own, valid against the published schema, and stores nothing."""
    config = write_delivery_config(tmp_path, webhooks=[hook_to(receiver)], feeds=[])
    said = CliRunner().invoke(main, ["deliveries", "ping", "bot", "--config", str(config)])
    assert said.exit_code == 0, said.output
    [ping] = receiver.requests
    event = ping.verify()
    assert event["type"] == "vigie.ping" and event["data"] == {"webhook": "bot"}
    assert event["id"] == ping.headers["webhook-id"]
    jsonschema.validate(event, SCHEMA, format_checker=FORMATS)
    assert re.search(rf"Ping {event['id']} to bot: HTTP 200 in \d+ ms", said.output)
    second = CliRunner().invoke(main, ["deliveries", "ping", "bot", "--config", str(config)])
    assert second.exit_code == 0 and receiver.requests[1].json["id"] != event["id"]
    assert not (tmp_path / "data").exists()  # no database made, nothing queued


def test_a_ping_refused_says_what_to_check(tmp_path: Path, receiver: Receiver) -> None:
    """A consumer verifying with another secret answers 401: the ping says so, exits 1, and
    points at the secret, without a traceback."""
    config = write_delivery_config(tmp_path, webhooks=[hook_to(receiver)], feeds=[])
    receiver.answers = [Answer(401)]
    said = CliRunner().invoke(main, ["deliveries", "ping", "bot", "--config", str(config)])
    assert said.exit_code == 1 and "Traceback" not in said.output
    text = " ".join(said.output.split())
    assert "HTTP 401" in text and "webhooks[0].secret_env" in text
    unknown = CliRunner().invoke(main, ["deliveries", "ping", "boot", "--config", str(config)])
    assert unknown.exit_code == 1 and "did you mean 'bot'?" in unknown.output
    assert len(receiver.requests) == 1


def test_a_consumer_down_is_one_log_line_per_run_not_one_per_webhook(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A consumer answering 500 to each of its 1,270 waiting webhooks made 950 lines in six
    minutes of an NGO's `vigie run` log, a retry wave after another: a run logs one line for
    a consumer's deliveries of one outcome, with how many, the first's id and the error. Each
    delivery is still tried (a 500 may be one event's alone)."""
    items = "".join(
        f"<item><title>Calais: camp report {i}</title><link>https://news.example/{i}</link>"
        f"<description>Migrants near Calais, report number {i} of the day.</description></item>"
        for i in range(25)
    )
    feed = tmp_path / "busy.rss"
    feed.write_text(f'<rss version="2.0"><channel><title>Busy</title>{items}</channel></rss>')
    config = write_delivery_config(
        tmp_path, webhooks=[hook_to(receiver, tags=["calais"])], feeds=[{"url": str(feed)}]
    )
    receiver.answers = [Answer(500)] * 1000
    t = now()
    v = Vigie(config, t)
    try:
        v.poll(t)
        caplog.set_level(logging.INFO, logger="monitor.deliver.dispatch.outcome")
        v.dispatch(t)
        failed = [r for r in caplog.records if r.name == "monitor.deliver.dispatch.outcome"]
        webhooks = len(receiver.requests)
        assert webhooks == 25 and len(failed) == 1, [r.getMessage() for r in failed]
        assert failed[0].levelno == logging.WARNING
        assert failed[0].getMessage().startswith(f"webhook to bot: {webhooks} pending")
        assert failed[0].error.startswith("HTTP 500")  # type: ignore[attr-defined]
        assert failed[0].delivery_id == 1  # type: ignore[attr-defined]
        caplog.clear()
        receiver.answers = []
        v.dispatch(t + timedelta(hours=1))  # every retry due, the consumer back
    finally:
        v.close()
    [sent] = [r for r in caplog.records if r.name == "monitor.deliver.dispatch.outcome"]
    assert sent.levelno == logging.INFO
    assert sent.getMessage().startswith(f"webhook to bot: {webhooks} sent ")


def test_a_ping_without_webhooks_names_the_table_that_makes_one(tmp_path: Path) -> None:
    config = write_delivery_config(tmp_path, feeds=[])
    said = CliRunner().invoke(main, ["deliveries", "ping", "bot", "--config", str(config)])
    assert said.exit_code == 1 and "a [[webhooks]] table names each" in said.output
