"""A webhook endpoint's state across config edits and operator commands: pauses (429 or 503
with Retry-After), renames, URL changes and swaps, replays. From a code review of the pause,
rename and replay changes of 5 December, each test first failing on them."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from delivery_support import (
    ALL_TAGS,
    SECRET_ENV,
    Answer,
    Receiver,
    SmtpServer,
    Vigie,
    write_delivery_config,
)

from monitor.cli import main


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def hook(receiver: Receiver, name: str = "bot", path: str = "/hook", **more: Any) -> dict:
    return {"name": name, "url": receiver.url(path), "secret_env": SECRET_ENV,
            "tags": ALL_TAGS, **more}  # fmt: skip


def left_waiting(config: Path, receiver: Receiver) -> datetime:
    """Poll now and leave every delivery waiting (the endpoint answers 500); returns now."""
    t = now()
    v = Vigie(config, t)
    v.poll(t)
    receiver.answers = [Answer(500)] * 100
    v.dispatch(t)
    v.close()
    return t


def cli(*args: Any) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)


# vigie status printed the endpoint's answer as Rich markup: "[/]" in it broke the command.


@pytest.fixture
def markup_endpoint() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"[/] maintenance"
            self.send_response(503)
            self.send_header("Retry-After", "600")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    httpd.shutdown()
    httpd.server_close()


def test_status_shows_a_pause_whatever_the_endpoint_answered(
    tmp_path: Path, markup_endpoint: str, receiver: Receiver
) -> None:
    config = write_delivery_config(tmp_path, webhooks=[{**hook(receiver), "url": markup_endpoint}])
    t = now()
    v = Vigie(config, t)
    v.poll(t)
    v.dispatch(t)
    assert v.store.paused_endpoints(t)
    v.close()
    result = cli("status", "--config", config)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "paused until" in result.output


# A replay sent to a paused endpoint, every delivery spending an attempt.


def test_replay_respects_an_endpoints_pause(tmp_path: Path, receiver: Receiver) -> None:
    config = write_delivery_config(tmp_path, webhooks=[hook(receiver)])
    t = now()
    v = Vigie(config, t)
    v.poll(t)
    sent = v.dispatch(t)
    assert len(sent) > 3 and {s.status for s in sent} == {"sent"}
    receiver.requests.clear()
    v.close()
    # The endpoint is down for maintenance: it asks for an hour's pause.
    receiver.answers = [Answer(503, headers={"Retry-After": "3600"})] * 100
    result = cli("deliveries", "replay", "--since", "1h", "--include-sent", "--config", config)
    assert len(receiver.requests) == 1, f"{len(receiver.requests)} POSTs to a paused endpoint"
    assert "to webhook 'bot' wait: its endpoint asked for a pause" in result.output


# Renamed with nothing waiting, a webhook's history did not follow: replay found nothing.


def test_a_renamed_webhooks_dead_deliveries_can_be_replayed(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = write_delivery_config(tmp_path, webhooks=[hook(receiver)])
    t = now()
    v = Vigie(config, t)
    v.poll(t)
    v.store.db.execute("UPDATE deliveries SET status = 'dead', attempts = 8")  # 8 failures
    v.store.db.conn.commit()
    v.close()
    config = write_delivery_config(tmp_path, webhooks=[hook(receiver, name="newsdesk")])
    result = cli("deliveries", "replay", "--since", "1h", "--target", "newsdesk",
                 "--config", config)  # fmt: skip
    assert "9 deliveries queued again." in result.output
    assert result.output.count("for newsdesk") == 9 and "failed" not in result.output


# A removed webhook's deliveries were given to another webhook at the same URL.


def test_a_removed_webhook_sharing_its_url_is_not_taken_for_renamed(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = write_delivery_config(
        tmp_path,
        webhooks=[
            hook(receiver, name="calais", tags=["calais"]),
            hook(receiver, name="courts", tags=["prosecutions"]),
        ],  # fmt: skip
    )
    t = left_waiting(config, receiver)
    # The operator drops the calais webhook; courts, at the same url, stays.
    config = write_delivery_config(
        tmp_path, webhooks=[hook(receiver, name="courts", tags=["prosecutions"])]
    )
    v = Vigie(config, t)
    receiver.answers, receiver.requests[:] = [], []
    sent = v.dispatch(t + timedelta(seconds=10))
    rules = sorted({r["id"] for q in receiver.requests for r in q.verify()["data"]["rules"]})
    v.close()
    assert {s.detail for s in sent if s.target == "calais"} == {"webhook no longer in config.toml"}
    # docs/delivery.md: "removed, its waiting deliveries fail"
    assert "calais" not in rules, f"courts' consumer received rules {rules}"


# Renamed, and the old name reused at another URL: its deliveries went to the other consumer.


def test_deliveries_queued_for_a_url_are_not_posted_to_another_consumer(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = write_delivery_config(tmp_path, webhooks=[hook(receiver, path="/one")])
    t = now()
    v = Vigie(config, t)
    v.poll(t)
    receiver.answers = [Answer(500)] * 100
    assert v.dispatch(t)
    v.close()
    # bot renamed newsdesk (same url); a new consumer takes the name bot, at another url.
    config = write_delivery_config(
        tmp_path,
        webhooks=[
            hook(receiver, name="newsdesk", path="/one"),
            hook(receiver, name="bot", path="/two"),
        ],  # fmt: skip
    )
    v = Vigie(config, t)
    receiver.answers, receiver.requests[:] = [], []
    v.dispatch(t + timedelta(minutes=10))
    paths = sorted({r.path for r in receiver.requests})
    v.close()
    assert paths == ["/one"], f"queued for /one, POSTed to {paths}"


# The pause was lost when the new name had an endpoint row already.


def test_a_renamed_webhook_keeps_its_pause(tmp_path: Path, receiver: Receiver) -> None:
    config = write_delivery_config(tmp_path, webhooks=[hook(receiver, name="old")])
    t = now()
    v = Vigie(config, t)
    v.poll(t)
    # newsdesk was paused once, long ago (a pause row is never removed)
    v.store.pause_endpoint("newsdesk", receiver.url("/x"), t - timedelta(days=30), "HTTP 429")
    receiver.answers = [Answer(503, headers={"Retry-After": "3600"})]
    [paused] = v.dispatch(t)
    assert paused.status == "pending"
    v.close()
    config = write_delivery_config(tmp_path, webhooks=[hook(receiver, name="newsdesk")])
    v = Vigie(config, t)
    sent = v.dispatch(t + timedelta(minutes=1))  # still within the hour asked
    [(name, until)] = v.rows("SELECT name, paused_until FROM endpoints ORDER BY name")
    v.close()
    assert sent == [], f"{len(sent)} sent during the pause"
    assert name == "newsdesk" and datetime.fromisoformat(until) > t + timedelta(minutes=30)


# replay --include-sent of a digest to a subscriber who unsubscribed: rewritten as failed.


def test_replay_leaves_an_unsubscribed_subscribers_digests_as_they_are(
    tmp_path: Path, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_delivery_config(
        tmp_path,
        subscribers=[
            {
                "name": "desk",
                "email": "desk@newsroom.test",
                "tags": ALL_TAGS,
                "schedule": "immediate",
            }
        ],  # fmt: skip
        smtp=smtp.smtp_settings(),
    )
    t = now()
    v = Vigie(config, t)
    v.poll(t)
    sent = v.send_digests(t)
    assert sent and {s.status for s in sent} == {"sent"}
    v.close()
    assert cli("digest", "unsubscribe", "desk", "--config", config).exit_code == 0
    result = cli("deliveries", "replay", "--since", "1h", "--include-sent", "--config", config)
    assert "to digest 'desk' left as they are: unsubscribed" in result.output
    v = Vigie(config, t)
    rows = v.rows("SELECT status, last_error FROM deliveries")
    v.close()
    assert rows == [("sent", "")] * len(rows), rows
    assert " 0 failed or dead;" in cli("status", "--config", config).output


# The pause held the webhook's name, not its endpoint: a new URL stayed paused.


def test_a_pause_ends_when_the_webhooks_url_changes(tmp_path: Path, receiver: Receiver) -> None:
    config = write_delivery_config(tmp_path, webhooks=[hook(receiver, path="/old-host")])
    t = now()
    v = Vigie(config, t)
    v.poll(t)
    receiver.answers = [Answer(503, headers={"Retry-After": "36000"})]
    [paused] = v.dispatch(t)
    v.close()
    # The operator moves the consumer to a new address (as a 410's disable is lifted by)
    config = write_delivery_config(tmp_path, webhooks=[hook(receiver, path="/new-host")])
    v = Vigie(config, t)
    receiver.requests[:] = []
    sent = v.dispatch(t + timedelta(seconds=10))
    v.close()
    assert receiver.requests, "the new url is held by the old one's pause"
    assert sent and {s.status for s in sent} == {"sent"}


# The pause holds for `vigie once` (every_due) and for deliveries made during it.


def test_pause_holds_for_every_due_and_new_deliveries(tmp_path: Path, receiver: Receiver) -> None:
    import random

    from monitor.deliver.dispatch import dispatch_webhooks

    config = write_delivery_config(tmp_path, webhooks=[hook(receiver)])
    t = now()
    v = Vigie(config, t)
    v.poll(t)
    receiver.answers = [Answer(429, headers={"Retry-After": "120"})]
    [paused] = v.dispatch(t)
    [(article, rule)] = v.rows("SELECT article_id, rule_id FROM matches LIMIT 1")
    with v.store.transaction():
        v.store.enqueue_webhook("bot", receiver.url(), False, article, [rule], t)

    def once(at: datetime) -> list:
        return dispatch_webhooks(v.store, v.session, v.config.delivery, v.labels, at,
                                 random.Random(1), every_due=True)  # fmt: skip

    assert once(t + timedelta(seconds=60)) == [] and len(receiver.requests) == 1
    sent = once(t + timedelta(seconds=125))
    assert sent and {s.status for s in sent} == {"sent"}
    assert v.rows("SELECT count(*) FROM deliveries WHERE status != 'sent'") == [(0,)]
    v.close()


# A split batch, the process dying between freeze and send; an operator's retry.


def test_a_split_batch_survives_a_crash_after_freezing(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.deliver import dispatch

    config = write_delivery_config(
        tmp_path, webhooks=[hook(receiver, mode="batched", max_body="6KB")]
    )
    t = now()
    v = Vigie(config, t)
    v.poll(t)
    pairs = set(v.rows("SELECT article_id, rule_id FROM delivery_matches"))

    def die(*args: object) -> None:
        raise SystemExit("killed after the freeze")

    monkeypatch.setattr(dispatch, "_attempt", die)
    with pytest.raises(SystemExit):
        v.dispatch(t)
    monkeypatch.undo()
    v.close()
    v = Vigie(config, t)
    assert set(v.rows("SELECT article_id, rule_id FROM delivery_matches")) == pairs
    for tick in range(30):
        if not v.dispatch(t + timedelta(seconds=tick)):
            break
    got: list[tuple[int, str]] = []
    for r in receiver.requests:
        for e in r.json["data"]["events"]:
            got += [(e["article"]["id"], rule["id"]) for rule in e["rules"]]
    assert sorted(got) == sorted(pairs)  # every match once
    first = v.rows("SELECT id, payload FROM deliveries ORDER BY id LIMIT 1")[0]
    v.store.requeue(first[0], t)
    receiver.requests[:] = []
    again = v.dispatch(t + timedelta(seconds=40))
    assert [s.delivery_id for s in again] == [first[0]]
    assert receiver.requests[0].body.decode() == first[1]
    v.close()


def test_two_webhooks_swapping_urls_keep_their_deliveries_endpoints(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = write_delivery_config(tmp_path, webhooks=[
        hook(receiver, name="a", path="/one", tags=["calais"]),
        hook(receiver, name="b", path="/two", tags=["prosecutions"])])  # fmt: skip
    t = left_waiting(config, receiver)
    config = write_delivery_config(tmp_path, webhooks=[
        hook(receiver, name="a", path="/two", tags=["calais"]),
        hook(receiver, name="b", path="/one", tags=["prosecutions"])])  # fmt: skip
    v = Vigie(config, t)
    receiver.answers, receiver.requests[:] = [], []
    v.dispatch(t + timedelta(seconds=10))
    v.close()
    got = sorted({(r.path, rule["id"]) for r in receiver.requests for e in r.json["data"]
                  .get("events", [r.json["data"]]) for rule in e["rules"]})  # fmt: skip
    assert ("/two", "calais") not in got, got


# A second code review: what a swap, a shared URL, a removed webhook or pruned matches do to
# replays, retries and exit codes.


def test_replay_leaves_the_sent_deliveries_of_swapped_webhooks_as_they_are(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Replayed with --include-sent after two webhooks swapped URLs, 18 sent deliveries were
    rewritten as failed ("not sent"), and status exited 2 for a week."""
    swapped = [hook(receiver, name="a", path="/two"), hook(receiver, name="b", path="/one")]
    config = write_delivery_config(
        tmp_path,
        webhooks=[hook(receiver, name="a", path="/one"), hook(receiver, name="b", path="/two")],
    )
    t = now()
    v = Vigie(config, t)
    v.poll(t)
    assert {s.status for s in v.dispatch(t)} == {"sent"}
    v.close()
    config = write_delivery_config(tmp_path, webhooks=swapped)
    result = cli("deliveries", "replay", "--since", "1h", "--include-sent", "--config", config)
    said = " ".join(result.output.split())
    assert "0 deliveries queued again." in said
    assert "left as they are: not sent: queued for the endpoint that is now webhook 'b''s" in said
    v = Vigie(config, t)
    assert {status for (status,) in v.rows("SELECT status FROM deliveries")} == {"sent"}
    v.close()
    # A retry of one says so, rather than fail it again with "once fixed, retry".
    retried = cli("deliveries", "retry", 1, "--config", config)
    assert retried.exit_code == 1 and "no retry sends it to its consumer" in retried.output


def test_a_webhook_leaving_a_shared_url_takes_its_deliveries_along(
    tmp_path: Path, receiver: Receiver
) -> None:
    """`a` and `b` shared /one; `a` moved to /two: its waiting deliveries failed as if `b` had
    taken /one from it, against docs/delivery.md."""
    config = write_delivery_config(
        tmp_path,
        webhooks=[
            hook(receiver, name="a", path="/one", tags=["calais"]),
            hook(receiver, name="b", path="/one", tags=["prosecutions"]),
        ],  # fmt: skip
    )
    t = left_waiting(config, receiver)
    config = write_delivery_config(
        tmp_path,
        webhooks=[
            hook(receiver, name="a", path="/two", tags=["calais"]),
            hook(receiver, name="b", path="/one", tags=["prosecutions"]),
        ],  # fmt: skip
    )
    receiver.answers, receiver.requests[:] = [], []
    v = Vigie(config, t)
    sent = v.dispatch(t + timedelta(minutes=10))
    v.close()
    assert sent and {s.status for s in sent} == {"sent"}
    assert {r.path for r in receiver.requests if "calais" in r.body.decode()} >= {"/two"}


def test_once_does_not_exit_2_for_what_no_retry_can_send(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A webhook removed on purpose failed its waiting deliveries, and once exited 2 with
    "once fixed, retry", while status, rightly, saw no problem."""
    config = write_delivery_config(
        tmp_path, webhooks=[hook(receiver), hook(receiver, name="other", path="/other")]
    )
    receiver.answers = [Answer(500)] * 100
    cli("once", "--config", config)
    with sqlite3.connect(tmp_path / "data" / "vigie.db") as db:
        db.execute("UPDATE deliveries SET next_attempt = '2000-01-01T00:00:00+00:00'")
    config = write_delivery_config(tmp_path, webhooks=[hook(receiver, name="other", path="/other")])
    receiver.answers = []
    result = cli("once", "--config", config)
    said = " ".join(result.output.split())
    assert "failed: webhook no longer in config.toml" in said
    assert "no longer in config.toml. Once fixed" not in said
    assert result.exit_code == 0 and cli("status", "--config", config).exit_code == 0


def test_one_of_two_webhooks_sharing_a_url_renamed_keeps_its_deliveries(
    tmp_path: Path, receiver: Receiver
) -> None:
    """`a` and `b` share /one; `b` renamed `b2`: two webhooks were at the URL, so none was
    taken for the new name, and b's waiting deliveries failed (a third review)."""
    both = [hook(receiver, name="a", path="/one", tags=["calais"]),
            hook(receiver, name="b", path="/one", tags=["prosecutions"])]  # fmt: skip
    config = write_delivery_config(tmp_path, webhooks=both)
    t = left_waiting(config, receiver)
    renamed = [both[0], {**both[1], "name": "b2"}]
    config = write_delivery_config(tmp_path, webhooks=renamed)
    receiver.answers = []
    v = Vigie(config, t)
    sent = v.dispatch(t + timedelta(minutes=10))
    v.close()
    assert sent and {(s.target, s.status) for s in sent} <= {("a", "sent"), ("b2", "sent")}
    assert "b2" in {s.target for s in sent}


def test_status_offers_no_retry_for_a_delivery_whose_url_was_taken(
    tmp_path: Path, receiver: Receiver
) -> None:
    """status said "`vigie deliveries retry 15` sends it again" of a delivery retry refuses."""
    config = write_delivery_config(
        tmp_path,
        webhooks=[hook(receiver, name="a", path="/one"), hook(receiver, name="b", path="/two")],
    )
    left_waiting(config, receiver)
    with sqlite3.connect(tmp_path / "data" / "vigie.db") as db:  # due now
        db.execute("UPDATE deliveries SET next_attempt = '2000-01-01T00:00:00+00:00'")
    swapped = [hook(receiver, name="a", path="/two"), hook(receiver, name="b", path="/one")]
    config = write_delivery_config(tmp_path, webhooks=swapped)
    receiver.answers = []
    once = cli("once", "--config", config)
    assert once.exit_code == 2  # as status: news its consumer did not get
    status = cli("status", "--config", config)
    lines = [line for line in status.output.splitlines() if "now webhook" in line]
    assert status.exit_code == 2 and lines
    assert not any("deliveries retry" in line for line in lines)
