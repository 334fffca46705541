"""Crash safety: a real `vigie run` is killed with SIGKILL at random moments (seeded) while it
polls growing feeds, matches, and delivers to a loopback SMTP server and webhook endpoint; it is
started again each time, and finally left to finish.

What an operator can rely on, and this test checks after every kill and at the end: the database
passes `PRAGMA integrity_check`; no article and no match is lost (the killed service ends with
exactly the articles and matches of a service never killed); every match is delivered, by
digest and by webhook; a message is received twice only when a kill fell between sending it
and recording it as sent, at most once per kill, with the same Message-ID or webhook-id.

A short run in CI; VIGIE_LONG_TESTS=1 kills it many more times (VIGIE_KILL_SEED picks the
moments).
"""

from __future__ import annotations

import email
import email.policy
import os
import random
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO, LoopbackServer, Route
from delivery_support import (
    IMMEDIATE_DESK,
    Answer,
    Receiver,
    SmtpServer,
    hook_to,
    write_delivery_config,
)
from identity_support import Item, Service, rss
from process_support import kill, rows, running, stop, wait_until

from monitor.rules.files import load_rules

LONG = os.environ.get("VIGIE_LONG_TESTS") == "1"
KILLS = 25 if LONG else 3
VERSIONS = 30 if LONG else 6  # each feed grows this many times
STEP = 0.4  # seconds between two versions of the feeds
SEED = int(os.environ.get("VIGIE_KILL_SEED", "20261123"))
FEEDS = 3
STORIES = [
    "Police officers beat migrants at the Calais camp, charities say",
    "Asylum seekers crossed the Channel in small boats overnight near Calais",
    "Officer charged after a migrant was slapped by police in Coquelles; trial opens at court",
    "Riot police fired tear gas at exiles in the Grande-Synthe camp",
    "Les CRS ont gazé des exilés à Calais, selon les associations",
    "Un policier jugé pour violences sur un migrant devant le tribunal de Boulogne-sur-Mer",
    "Council approves new cycle lanes for the town centre",
]
WORDS = ["harbour", "ferry", "council", "weather", "market", "school", "rail", "bridge", "port"]


def feed_versions(feed: int, rng: random.Random) -> list[bytes]:
    """VERSIONS successive documents of one feed, each with three more items than the last."""
    items: list[Item] = []
    versions = []
    for version in range(VERSIONS):
        for n in range(3):
            number = version * 3 + n
            story = rng.choice(STORIES)
            padding = " ".join(rng.choice(WORDS) for _ in range(30))
            items.append(
                Item(
                    guid=f"feed{feed}-{number}",
                    title=f"{story} ({feed}.{number})",
                    description=f"{story}. {padding}.",
                    link=f"https://news{feed}.example/{number}",
                )
            )
        versions.append(rss(list(reversed(items)), title=f"Feed {feed}"))
    return versions


class Publisher(threading.Thread):
    """Moves every feed to its next version every STEP seconds, until the last."""

    def __init__(self, server: LoopbackServer, routes: list[Route], versions: list[list[bytes]]):
        super().__init__(daemon=True)
        self.server, self.routes, self.versions = server, routes, versions

    def run(self) -> None:
        for version in range(1, VERSIONS):
            time.sleep(STEP)
            with self.server.lock:
                for route, bodies in zip(self.routes, self.versions, strict=True):
                    route.bodies = [bodies[version]]


@dataclass
class Kill:
    """What the receivers held when a service was killed."""

    after: float
    webhooks: int
    emails: int


def integrity(database: Path) -> str:
    conn = sqlite3.connect(database, timeout=10)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def reference_matches(folder: Path, finals: list[bytes]) -> tuple[set[str], set[tuple[str, str]]]:
    """The guids and (guid, rule) matches of a Vigie that polls the final feeds once, unkilled."""
    folder.mkdir()
    feeds = ""
    for i, body in enumerate(finals):
        (folder / f"feed{i}.xml").write_bytes(body)
        feeds += f'[[feeds]]\nurl = "feed{i}.xml"\n'
    (folder / "config.toml").write_text(f'[storage]\ndatabase = "ref.db"\n{feeds}')
    service = Service(folder / "config.toml")
    try:
        service.poll(matcher=load_rules([REPO / "rules"]).index())
        guids = {r["guid"] for r in service.rows("SELECT guid FROM articles")}
        matches = service.rows(
            "SELECT a.guid, m.rule_id FROM matches m JOIN articles a ON a.id = m.article_id"
        )
    finally:
        service.close()
    return guids, {(m["guid"], m["rule_id"]) for m in matches}


def test_killed_at_random_moments_nothing_is_lost_and_duplicates_are_bounded(
    tmp_path: Path, server: LoopbackServer, smtp: SmtpServer, receiver: Receiver
) -> None:
    receiver.answers = [Answer(delay=0.01) for _ in range(10_000)]  # a window to be killed in
    rng = random.Random(SEED)
    versions = [feed_versions(feed, rng) for feed in range(FEEDS)]
    routes = [server.route(f"/feed{i}.xml", bodies[0]) for i, bodies in enumerate(versions)]
    config = write_delivery_config(
        tmp_path,
        feeds=[{"url": server.url(f"/feed{i}.xml"), "interval": "0.5s"} for i in range(FEEDS)],
        subscribers=[IMMEDIATE_DESK],
        webhooks=[hook_to(receiver)],
        smtp=smtp.smtp_settings(),
        delivery={"tick": "0.2s"},
    )
    text = config.read_text().replace("[storage]", '[polling]\ntick = "0.3s"\n[storage]')
    config.write_text(text)
    database, log = tmp_path / "data" / "vigie.db", tmp_path / "run.log"
    expected_guids, expected = reference_matches(tmp_path / "reference", [v[-1] for v in versions])
    assert len(expected) > 20

    publisher = Publisher(server, routes, versions)
    publisher.start()
    kills: list[Kill] = []
    for _ in range(KILLS):
        with running(config, log, "run") as service:
            after = rng.uniform(0.3, 2.5)
            time.sleep(after)
            kill(service)
        time.sleep(0.3)  # let the receivers finish reading what the dead process had sent
        kills.append(Kill(after, len(receiver.requests), len(smtp.messages)))
        if database.exists():
            assert integrity(database) == "ok"

    publisher.join()
    offset = log.stat().st_size
    with running(config, log, "run") as service:

        def started() -> bool:  # SIGTERM is handled from then on
            return "vigie running" in log.read_text()[offset:]

        wait_until(started, "the service to start", log, limit=60, pause=0.1)

        def finished() -> bool:
            try:
                guids = {g for (g,) in rows(database, "SELECT guid FROM articles")}
                waiting = rows(database, "SELECT count(*) FROM deliveries WHERE status != 'sent'")
                carried = rows(
                    database,
                    "SELECT count(*) FROM (SELECT DISTINCT d.kind, dm.article_id, dm.rule_id "
                    "FROM delivery_matches dm JOIN deliveries d ON d.id = dm.delivery_id)",
                )
                matches = rows(database, "SELECT count(*) FROM matches")
            except sqlite3.OperationalError:
                return False
            return (
                guids == expected_guids
                and waiting == [(0,)]
                and carried[0][0] == 2 * matches[0][0]
                and matches[0][0] == len(expected)
            )

        wait_until(finished, "every article matched and delivered", log, limit=60, pause=0.1)
        stop(service, log)
    assert integrity(database) == "ok"
    assert "Traceback" not in log.read_text()

    # No article and no match lost: exactly those of a service never killed.
    stored = rows(
        database, "SELECT a.guid, m.rule_id FROM matches m JOIN articles a ON a.id = m.article_id"
    )
    assert set(stored) == expected
    matches = {(a, r) for a, r in rows(database, "SELECT article_id, rule_id FROM matches")}

    # Each match is carried by exactly one digest and one webhook delivery, and all were sent.
    for kind in ("digest", "webhook"):
        carried = rows(
            database,
            "SELECT dm.article_id, dm.rule_id FROM delivery_matches dm "
            f"JOIN deliveries d ON d.id = dm.delivery_id WHERE d.kind = '{kind}'",
        )
        assert Counter(carried) == Counter(matches), kind

    # Webhooks: every match arrived, signed; duplicates only across a kill, at most one per kill.
    delivered = set()
    for request in receiver.requests:
        payload = request.verify()
        delivered |= {(payload["data"]["article"]["id"], r["id"]) for r in payload["data"]["rules"]}
    assert delivered == matches
    ids = [request.headers["webhook-id"] for request in receiver.requests]
    assert_duplicates_bounded(ids, [k.webhooks for k in kills], "webhook")

    # Digests: every sent digest arrived; duplicates bounded the same way.
    received = [
        email.message_from_bytes(m.data, policy=email.policy.default)["Message-ID"]
        for m in smtp.messages
    ]
    sent = rows(database, "SELECT id, key FROM deliveries WHERE kind = 'digest'")
    assert {f"<vigie.digest.{i}.{key}@vigie.test>" for i, key in sent} == set(received)
    assert_duplicates_bounded(received, [k.emails for k in kills], "digest")


def assert_duplicates_bounded(ids: list[str], boundaries: list[int], kind: str) -> None:
    """`ids` in the order received; `boundaries[k]` is how many had arrived when kill k ended
    a run. A repeated id must come from a later run than its first copy (never resent within a
    run), and each kill may account for at most one repeat."""
    run_of = [sum(1 for b in boundaries if position >= b) for position in range(len(ids))]
    first_run: dict[str, int] = {}
    per_kill: Counter[int] = Counter()
    for position, message_id in enumerate(ids):
        run = run_of[position]
        if message_id in first_run:
            previous = first_run[message_id]
            assert run > previous, f"{kind} {message_id} sent twice by one run"
            per_kill[previous] += 1  # the kill that ended the run of the copy before
        first_run[message_id] = run
    assert all(count <= 1 for count in per_kill.values()), (kind, per_kill)
    assert sum(per_kill.values()) <= len(boundaries)
