"""Real `vigie` processes. One is killed (SIGKILL) between sending and recording: the receiver has
the whole message and is holding its answer. Started again, Vigie sends that message once more
with the same webhook-id or Message-ID, and every match still arrives: at most one duplicate,
which the receiver recognises, and nothing lost. And `vigie run` delivers from its own jobs."""

from __future__ import annotations

import email
import email.policy
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from delivery_support import (
    ALL_TAGS,
    IMMEDIATE_DESK,
    SECRET_ENV,
    Answer,
    Receiver,
    SmtpServer,
    Vigie,
    hook_to,
    write_delivery_config,
)
from process_support import kill, rows, running, start_vigie, stop, wait_until


def test_webhook_killed_between_send_and_mark(receiver: Receiver, tmp_path: Path) -> None:
    hook = {"name": "bot", "url": receiver.url(), "secret_env": SECRET_ENV, "tags": ALL_TAGS}
    config = write_delivery_config(tmp_path, webhooks=[hook])
    log = tmp_path / "once.log"
    held = threading.Event()
    receiver.answers = [Answer(200), Answer(200), Answer(200, hold=held)]
    first = start_vigie(config, log, "once")
    wait_until(lambda: len(receiver.requests) == 3, "the third delivery", log)
    kill(first)  # the endpoint has the third message; Vigie never heard back
    held.set()
    second = start_vigie(config, log, "once")
    assert second.wait(timeout=60) == 0, log.read_text()

    ids = [request.headers["webhook-id"] for request in receiver.requests]
    interrupted = ids[2]
    assert [i for i, n in Counter(ids).items() if n > 1] == [interrupted]
    assert Counter(ids)[interrupted] == 2  # at most one duplicate, with the same webhook-id
    delivered = set()
    for request in receiver.requests:
        payload = request.verify()
        assert payload["id"] == request.headers["webhook-id"]
        delivered |= {(payload["data"]["article"]["id"], r["id"]) for r in payload["data"]["rules"]}
    database = tmp_path / "data" / "vigie.db"
    matches = set(rows(database, "SELECT article_id, rule_id FROM matches"))
    assert delivered == matches and matches  # no match lost
    assert set(rows(database, "SELECT status FROM deliveries")) == {("sent",)}


def test_digest_killed_between_send_and_mark(smtp: SmtpServer, tmp_path: Path) -> None:
    desk = {"name": "desk", "email": "desk@newsroom.test", "tags": ALL_TAGS}
    config = write_delivery_config(tmp_path, subscribers=[desk], smtp=smtp.smtp_settings())
    log = tmp_path / "once.log"
    smtp.hold = threading.Event()
    held = smtp.hold
    first = start_vigie(config, log, "once")
    wait_until(lambda: len(smtp.received) == 1, "the digest", log)
    kill(first)  # the server has the whole digest and has not said 250 yet
    held.set()
    second = start_vigie(config, log, "once")
    assert second.wait(timeout=60) == 0, log.read_text()

    copies = [email.message_from_bytes(m.data, policy=email.policy.default) for m in smtp.received]
    assert len(copies) == 2
    assert copies[0]["Message-ID"] == copies[1]["Message-ID"]  # the receiver can tell
    html = copies[1].get_body(("html",)).get_content()  # type: ignore[union-attr]
    database = tmp_path / "data" / "vigie.db"
    urls = rows(database, "SELECT DISTINCT url FROM articles JOIN matches ON id = article_id")
    assert urls and all(f'href="{url}"' in html for (url,) in urls)  # every matched article
    assert rows(database, "SELECT kind, status FROM deliveries") == [("digest", "sent")]
    carried = rows(database, "SELECT count(*) FROM delivery_matches")
    assert carried == rows(database, "SELECT count(*) FROM matches")


def test_the_running_service_delivers_digests_and_webhooks(
    smtp: SmtpServer, receiver: Receiver, tmp_path: Path
) -> None:
    hook = {"name": "bot", "url": receiver.url(), "secret_env": SECRET_ENV, "tags": ["calais"]}
    alerts = {
        "name": "alerts",
        "email": "alerts@newsroom.test",
        "tags": ALL_TAGS,
        "schedule": "immediate",
        "min_priority": "urgent",
    }
    config = write_delivery_config(
        tmp_path,
        subscribers=[alerts],
        webhooks=[hook],
        smtp=smtp.smtp_settings(),
        delivery={"tick": "0.2s"},
    )
    log = tmp_path / "run.log"
    with running(config, log, "run") as service:
        database = tmp_path / "data" / "vigie.db"

        def urgent_and_carried() -> tuple[list, list]:
            urgent = rows(
                database,
                "SELECT article_id, rule_id FROM matches WHERE priority = 'urgent' ORDER BY 1, 2",
            )
            carried = rows(
                database,
                "SELECT m.article_id, m.rule_id FROM delivery_matches m "
                "JOIN deliveries d ON d.id = m.delivery_id WHERE d.kind = 'digest' ORDER BY 1, 2",
            )
            return urgent, carried

        def all_sent() -> bool:
            try:
                # Every feed stored (its poll is recorded in the transaction of its articles,
                # matches and webhooks), every delivery sent, every urgent match in a digest.
                if rows(database, "SELECT count(*) FROM feeds WHERE last_polled IS NULL")[0][0]:
                    return False
                states = rows(database, "SELECT kind, status FROM deliveries")
                urgent, carried = urgent_and_carried()
            except sqlite3.OperationalError:  # not created yet
                return False
            kinds = {kind for kind, _ in states}
            sent = kinds == {"digest", "webhook"} and {s for _, s in states} == {"sent"}
            return sent and urgent == carried

        wait_until(all_sent, "every delivery sent", log)
        stop(service, log)
    # `immediate` sends as soon as urgent matches are stored: one digest, or one for each moment
    # feeds with urgent matches were stored more than a delivery tick apart. Each urgent match
    # goes out once, in one of them.
    digests = rows(database, "SELECT id FROM deliveries WHERE kind = 'digest'")
    assert len(smtp.messages) == len(digests) >= 1
    assert all(digest.recipients == ["alerts@newsroom.test"] for digest in smtp.messages)
    urgent, carried = urgent_and_carried()
    assert urgent and carried == urgent
    calais = rows(
        database, "SELECT count(DISTINCT article_id) FROM matches WHERE rule_id = 'calais'"
    )
    assert len(receiver.requests) == calais[0][0]
    for request in receiver.requests:
        request.verify()
    assert "Traceback" not in log.read_text()


def _synced_wal_while(
    monkeypatch: pytest.MonkeyPatch, delivered: Callable[[], int]
) -> list[tuple[str, int]]:
    """Spy on os.fsync: (file synced, what had been delivered by then) for each call."""
    synced: list[tuple[str, int]] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), delivered()))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return synced


def test_what_is_sent_is_on_disk_before_it_goes(
    receiver: Receiver, smtp: SmtpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power cut takes back the commits SQLite left in the WAL unsynced (synchronous=NORMAL):
    a crash review restored a snapshot taken seconds before a kill and got news sent a second
    time under new webhook-ids, and article ids naming two articles. The WAL holding the
    articles, matches and deliveries is synced before the first webhook or email goes out.
    (A power cut cannot be made here: the spy checks the order of the sync and the sends.)"""
    config = write_delivery_config(
        tmp_path,
        subscribers=[IMMEDIATE_DESK],
        webhooks=[hook_to(receiver)],
        smtp=smtp.smtp_settings(),
    )
    now = datetime.now(UTC)
    v = Vigie(config, now)
    try:
        v.poll(now)
        wal = str(tmp_path / "data" / "vigie.db-wal")

        def unsent_or_unfrozen() -> int:
            """Requests received, plus webhook bodies not yet frozen, when the WAL is synced:
            a body frozen after the sync could be lost, then sent rebuilt."""
            with sqlite3.connect(tmp_path / "data" / "vigie.db") as db:
                [(unfrozen,)] = db.execute(
                    "SELECT count(*) FROM deliveries WHERE kind = 'webhook' AND payload IS NULL"
                )
            db.close()
            return len(receiver.requests) + unfrozen

        synced = _synced_wal_while(monkeypatch, unsent_or_unfrozen)
        assert v.dispatch(now) and receiver.requests
        assert synced and synced[0] == (wal, 0)  # frozen, synced, then sent

        synced = _synced_wal_while(monkeypatch, lambda: len(smtp.messages))
        assert v.send_digests(now) and smtp.messages
        assert synced and synced[0] == (wal, 0)
    finally:
        v.close()


def test_a_digest_written_to_the_outbox_folder_is_on_disk_before_it_counts_as_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recorded as sent, an .eml file never synced could be empty or gone after a power cut."""
    config = write_delivery_config(tmp_path, subscribers=[IMMEDIATE_DESK])
    now = datetime.now(UTC)
    v = Vigie(config, now)
    try:
        v.poll(now)
        synced = _synced_wal_while(monkeypatch, lambda: 0)
        [sent] = v.send_digests(now)
    finally:
        v.close()
    outbox = tmp_path / "outbox"
    [eml] = outbox.glob("*.eml")
    assert sent.status == "sent" and eml.stat().st_size > 1000
    files = [path for path, _ in synced]
    assert any(p.startswith(str(outbox / ".")) and p.endswith(".eml.tmp") for p in files), files
    assert str(outbox) in files  # the folder, for the file's new name
