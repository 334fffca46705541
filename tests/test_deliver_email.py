"""Digests through a real SMTP server on loopback (aiosmtpd): what arrives parses back with
`email`; 4xx and connection failures are retried with the same Message-ID; 5xx replies and refused
recipients fail with the server's words; without SMTP the digest is an .eml file."""

from __future__ import annotations

import email
import email.policy
import random
import re
import ssl
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from delivery_support import ALL_TAGS, SmtpServer, Vigie, write_delivery_config
from identity_support import Item, rss

from bench.newsgen import pool
from monitor.config_delivery import SmtpConfig
from monitor.deliver.email import _tls_hint, send_smtp

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SLOT = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)  # 08:00 in Paris
DESK = {
    "name": "desk",
    "email": "desk@newsroom.test",
    "tags": ALL_TAGS,
    "schedule": "daily 08:00",
    "timezone": "Europe/Paris",
}


@pytest.fixture
def vigie(tmp_path: Path) -> Iterator[Callable[..., Vigie]]:
    made: list[Vigie] = []

    def make(**settings: Any) -> Vigie:
        made.append(Vigie(write_delivery_config(tmp_path, **settings), NOW))
        made[-1].poll(NOW)
        return made[-1]

    yield make
    for v in made:
        v.close()


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def status(v: Vigie, delivery_id: int) -> tuple:
    return v.rows(
        "SELECT status, attempts, last_status, last_error FROM deliveries WHERE id = ?",
        (delivery_id,),
    )[0]


def test_digest_reaches_the_server_and_parses_back(
    smtp: SmtpServer, vigie: Callable[..., Vigie]
) -> None:
    v = vigie(subscribers=[DESK], smtp=smtp.smtp_settings())
    assert v.send_digests(NOW) == []  # not due before 08:00
    [sent] = v.send_digests(SLOT)
    assert sent.status == "sent"
    [accepted] = smtp.messages
    assert accepted.sender == "vigie@vigie.test" and accepted.recipients == ["desk@newsroom.test"]
    message = parse(accepted.data)
    assert message["To"] == "desk <desk@newsroom.test>"
    assert message["Message-ID"].startswith(f"<vigie.digest.{sent.delivery_id}.")
    assert message["Subject"].startswith("Vigie: ")
    assert message.get_content_type() == "multipart/alternative"
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "<b " in html and "Calais and the Channel route" in html
    assert "== Calais and the Channel route" in text
    urls = v.rows("SELECT DISTINCT url FROM articles JOIN matches ON id = article_id")
    assert urls and all(html.count(f'href="{url}"') == 1 for (url,) in urls)  # each once
    assert status(v, sent.delivery_id) == ("sent", 1, 250, "")
    assert v.send_digests(SLOT + timedelta(minutes=1)) == []  # sent once


def test_421_then_success_retries_with_the_same_message_id(
    smtp: SmtpServer, vigie: Callable[..., Vigie]
) -> None:
    smtp.replies = ["421 4.3.2 Service not available, try later"]
    v = vigie(subscribers=[DESK], smtp=smtp.smtp_settings())
    [first] = v.send_digests(SLOT)
    assert first.status == "pending"
    state, attempts, code, error = status(v, first.delivery_id)
    assert (state, attempts, code) == ("pending", 1, 421)
    assert "Service not available" in error
    assert smtp.messages == []
    assert v.send_digests(SLOT + timedelta(seconds=30)) == []  # backoff: not yet
    [second] = v.send_digests(SLOT + timedelta(minutes=2))
    assert second.status == "sent" and second.delivery_id == first.delivery_id
    assert smtp.attempts == 2
    [accepted] = smtp.messages
    assert f"<vigie.digest.{first.delivery_id}." in parse(accepted.data)["Message-ID"]


def test_550_fails_with_the_server_reason(smtp: SmtpServer, vigie: Callable[..., Vigie]) -> None:
    smtp.replies = ["550 5.7.1 Message rejected as spam"]
    v = vigie(subscribers=[DESK], smtp=smtp.smtp_settings())
    [sent] = v.send_digests(SLOT)
    assert sent.status == "failed"
    assert status(v, sent.delivery_id) == ("failed", 1, 550, "550 5.7.1 Message rejected as spam")
    assert v.send_digests(SLOT + timedelta(days=1, minutes=1)) == []  # not retried


def test_refused_recipient_fails_with_the_server_reason(
    smtp: SmtpServer, vigie: Callable[..., Vigie]
) -> None:
    smtp.refuse["desk@newsroom.test"] = "550 5.1.1 No such user here"
    v = vigie(subscribers=[DESK], smtp=smtp.smtp_settings())
    [sent] = v.send_digests(SLOT)
    assert sent.status == "failed"
    state, _, code, error = status(v, sent.delivery_id)
    assert (state, code) == ("failed", 550)
    assert error == "recipient desk@newsroom.test refused: 550 5.1.1 No such user here"


def test_unreachable_server_is_retried_then_dead(
    closed_port: int, vigie: Callable[..., Vigie]
) -> None:
    settings = {"host": "127.0.0.1", "port": closed_port, "security": "none", "timeout": "2s"}
    v = vigie(subscribers=[DESK], smtp=settings)
    [sent] = v.send_digests(SLOT)
    assert sent.status == "pending" and "connection failed" in sent.detail
    when = SLOT
    outcomes = []
    for _ in range(5):  # the remaining attempts, each when it comes due
        [delivery] = v.store.list_deliveries(kind="digest")
        assert delivery.next_attempt is not None
        when = delivery.next_attempt
        outcomes += [s.status for s in v.send_digests(when)]
    assert outcomes == ["pending"] * 4 + ["dead"]
    assert v.rows("SELECT attempts FROM deliveries") == [(6,)]


def test_without_smtp_the_digest_is_an_eml_file(
    vigie: Callable[..., Vigie], tmp_path: Path
) -> None:
    v = vigie(subscribers=[DESK])
    [sent] = v.send_digests(SLOT)
    path = Path(sent.detail)
    assert sent.status == "sent" and path.parent == tmp_path / "outbox"
    assert path.name.endswith(f"-desk-{sent.delivery_id}.eml")
    message = parse(path.read_bytes())
    assert message["To"] == "desk <desk@newsroom.test>"
    assert "Calais" in message.get_body(("html",)).get_content()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_an_outbox_that_cannot_be_written_is_retried_and_sent_once_it_can(
    vigie: Callable[..., Vigie], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A delivery.outbox naming a file: the digest was marked failed for good, with a
    traceback in the log, and its articles never went. It waits for its retry, as a refused
    connection does, saying which folder and why, and is written once the folder can be."""
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the outbox folder should be")
    v = vigie(subscribers=[DESK], delivery={"outbox": "blocked"})
    [first] = v.send_digests(SLOT)
    assert first.status == "pending" and first.retry_at is not None
    assert first.detail == (
        f"could not be written to delivery.outbox ({blocked}: it is a file, not a folder)"
    )
    assert not [r for r in caplog.records if r.exc_info]  # no traceback
    blocked.unlink()
    blocked.mkdir()
    [second] = v.send_digests(first.retry_at)
    assert second.status == "sent" and Path(second.detail).parent == blocked
    assert status(v, second.delivery_id)[:2] == ("sent", 2)


def test_urgent_immediate_subscriber_gets_only_urgent_matches_at_once(
    smtp: SmtpServer, vigie: Callable[..., Vigie]
) -> None:
    alerts = {**DESK, "name": "alerts", "schedule": "immediate", "min_priority": "urgent"}
    v = vigie(subscribers=[alerts], smtp=smtp.smtp_settings())
    [sent] = v.send_digests(NOW + timedelta(seconds=5))
    urgent = v.rows("SELECT count(*) FROM matches WHERE priority = 'urgent'")[0][0]
    assert (
        sent.status == "sent"
        and 0 < urgent == v.rows("SELECT count(*) FROM delivery_matches")[0][0]
    )
    assert v.send_digests(NOW + timedelta(seconds=10)) == []  # nothing new, no email


def test_a_name_written_in_the_address_heads_the_to_header_in_any_script(
    smtp: SmtpServer, vigie: Callable[..., Vigie]
) -> None:
    """ "Name <address>", as config errors suggest writing it, made `To: desk <Name <a>>`, and
    with an accent the digest could not be written at all."""
    people = [
        {**DESK, "name": "dave", "email": "Dave Dupont-Émile <dave@newsroom.test>"},
        {**DESK, "name": "team", "email": "Desk Team <team@newsroom.test>"},
        {**DESK, "name": "ines", "email": "ines@newsroom.test"},
    ]
    v = vigie(subscribers=people, smtp=smtp.smtp_settings())
    assert [s.status for s in v.send_digests(SLOT)] == ["sent"] * 3
    received = {tuple(m.recipients): parse(m.data) for m in smtp.messages}
    assert received.keys() == {
        ("dave@newsroom.test",),
        ("team@newsroom.test",),
        ("ines@newsroom.test",),
    }
    assert received[("dave@newsroom.test",)]["To"] == "Dave Dupont-Émile <dave@newsroom.test>"
    assert received[("team@newsroom.test",)]["To"] == "Desk Team <team@newsroom.test>"
    assert received[("ines@newsroom.test",)]["To"] == "ines <ines@newsroom.test>"
    assert all(not m["To"].defects for m in received.values())


def test_a_digest_that_cannot_be_written_fails_alone(
    smtp: SmtpServer, vigie: Callable[..., Vigie], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug met writing one subscriber's digest (here made to happen) is recorded on that
    delivery; the digests due after it still go, and it does not come back at every tick."""
    import monitor.deliver.dispatch as dispatch

    build = dispatch.build_digest

    def broken_for_dave(items, subscriber, *args):  # noqa: ANN001, ANN202
        if subscriber.name == "dave":
            raise UnicodeEncodeError("ascii", "É", 0, 1, "ordinal not in range(128)")
        return build(items, subscriber, *args)

    monkeypatch.setattr(dispatch, "build_digest", broken_for_dave)
    people = [{**DESK, "name": "dave"}, {**DESK, "name": "team", "email": "team@newsroom.test"}]
    v = vigie(subscribers=people, smtp=smtp.smtp_settings())
    sent = {s.target: s for s in v.send_digests(SLOT)}
    assert (sent["dave"].status, sent["team"].status) == ("failed", "sent")
    assert [m.recipients for m in smtp.messages] == [["team@newsroom.test"]]
    state, attempts, _, error = status(v, sent["dave"].delivery_id)
    assert (state, attempts) == ("failed", 1)
    assert error.startswith("could not be written (UnicodeEncodeError: ")
    assert v.send_digests(SLOT + timedelta(minutes=5)) == []


def test_a_stopping_service_leaves_the_digests_it_has_not_sent_due(
    smtp: SmtpServer, vigie: Callable[..., Vigie], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A concurrency review: the digest job went on sending every due digest once the service
    was told to stop; against a slow mail server that outlasted the stop's timeout, and a kill
    between a send and its record sends that digest twice."""
    import threading

    import monitor.deliver.dispatch as dispatch

    stop = threading.Event()
    send = dispatch._send_digest

    def send_then_stop(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        sent = send(*args, **kwargs)
        stop.set()  # SIGTERM arrives while the first digest is sent
        return sent

    monkeypatch.setattr(dispatch, "_send_digest", send_then_stop)
    people = [{**DESK, "name": name, "email": f"{name}@newsroom.test"} for name in "abc"]
    v = vigie(subscribers=people, smtp=smtp.smtp_settings())
    labels = v.labels
    [first] = dispatch.send_due_digests(v.store, v.config.delivery, labels, SLOT, stop=stop)
    assert first.status == "sent" and len(smtp.messages) == 1
    monkeypatch.setattr(dispatch, "_send_digest", send)
    later = dispatch.send_due_digests(v.store, v.config.delivery, labels, SLOT)
    assert sorted(s.target for s in later) == sorted({"a", "b", "c"} - {first.target})
    assert len(smtp.messages) == 3  # each once


def test_tls_to_a_plain_server_says_which_setting_to_change(smtp: SmtpServer) -> None:
    """smtp.security = "tls" against a server that starts in plain text failed with "[SSL:
    WRONG_VERSION_NUMBER]" alone, retried to its death 4.5 hours later (a re-test)."""
    config = SmtpConfig("127.0.0.1", smtp.port, "tls", "", 5.0, "Vigie <vigie@vigie.test>")
    message = EmailMessage()
    message["Subject"] = "test"
    outcome = send_smtp(message, config, "desk@example.org")
    assert outcome.status == "retry" and "WRONG_VERSION_NUMBER" in outcome.error
    assert 'does not start with TLS: smtp.security = "starttls"' in outcome.error
    assert smtp.received == []


def test_a_certificate_for_another_name_says_smtp_host_must_be_its_name() -> None:
    """A certificate for "localhost" reached at 127.0.0.1 was called one this machine does not
    trust (a review): the fix is the host name, not the trust store. OpenSSL's verify code
    tells the cases apart (62 host name, 64 IP address; 10, expired, needs no hint)."""
    config = SmtpConfig("127.0.0.1", 465, "tls", "", 5.0, "Vigie <vigie@vigie.test>")
    mismatch = ssl.SSLCertVerificationError("[SSL: CERTIFICATE_VERIFY_FAILED] IP address mismatch")
    mismatch.verify_code = 64
    assert _tls_hint(mismatch, config).startswith("smtp.host must be the name")
    expired = ssl.SSLCertVerificationError(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate has expired"
    )
    expired.verify_code = 10
    assert _tls_hint(expired, config) == ""
    untrusted = ssl.SSLCertVerificationError("[SSL: CERTIFICATE_VERIFY_FAILED] self-signed")
    untrusted.verify_code = 18
    assert "not one this machine trusts" in _tls_hint(untrusted, config)


def test_sends_an_operator_asks_for_do_not_give_a_digest_up_early(
    closed_port: int, vigie: Callable[..., Vigie]
) -> None:
    """Five `vigie digest send` in a minute against a mail server down spent the schedule's
    six attempts and gave the digest up at once (a re-test): it stays to be retried until the
    schedule's span (4 hours 20 minutes, less its jitter) has passed."""
    settings = {"host": "127.0.0.1", "port": closed_port, "security": "none", "timeout": "2s"}
    v = vigie(subscribers=[DESK], smtp=settings)
    outcomes = []
    for second in range(8):  # `digest send`: what waits is made due now, and tried
        at = SLOT + timedelta(seconds=second * 5)
        v.store.hasten("digest", ["desk"], at)
        outcomes += [s.status for s in v.send_digests(at)]
    assert outcomes == ["pending"] * 8
    [delivery] = v.store.list_deliveries(kind="digest")
    assert delivery.attempts == 8 and delivery.next_attempt is not None
    assert delivery.next_attempt - delivery.created == timedelta(seconds=15660 * 0.9)
    assert [s.status for s in v.send_digests(delivery.next_attempt)] == ["dead"]


def test_each_empty_digest_names_the_period_it_covers(
    smtp: SmtpServer, vigie: Callable[..., Vigie]
) -> None:
    """With send_empty, every "nothing matched" digest had one subject: mail clients threaded
    them into one conversation of identical emails, and a subscriber could not tell the days
    apart. Each after the first says since when nothing matched: the digest before it."""
    quiet = {**DESK, "send_empty": True}
    french = {**quiet, "name": "redaction", "email": "redaction@newsroom.test", "language": "fr"}
    v = vigie(subscribers=[quiet, french], smtp=smtp.smtp_settings(), feeds=[])
    for day in range(3):
        assert [s.status for s in v.send_digests(SLOT + timedelta(days=day))] == ["sent"] * 2
    received: dict[str, list[email.message.EmailMessage]] = {}
    for accepted in smtp.messages:
        received.setdefault(accepted.recipients[0], []).append(parse(accepted.data))
    english = received["desk@newsroom.test"]
    assert [m["Subject"] for m in english] == [
        "Vigie: nothing new matched your rules",  # the first: no digest before it
        "Vigie: nothing new since Tue 24 Nov, 08:00",
        "Vigie: nothing new since Wed 25 Nov, 08:00",
    ]
    assert "Nothing new matched your rules since Wed 25 Nov, 08:00." in " ".join(
        english[2].get_body(("plain",)).get_content().split()
    )
    assert "since Wed 25 Nov, 08:00." in english[2].get_body(("html",)).get_content()
    assert [m["Subject"] for m in received["redaction@newsroom.test"]][1:] == [
        "Vigie\u00a0: rien de nouveau depuis le mar. 24 nov., 08:00",
        "Vigie\u00a0: rien de nouveau depuis le mer. 25 nov., 08:00",
    ]
    assert len({m["Message-ID"] for ms in received.values() for m in ms}) == 6
    # The first has no digest before it: it said "since the last digest" all the same.
    for address, said, wrong in (
        (
            "desk@newsroom.test",
            "Your first digest: nothing has matched your rules yet.",
            "last digest",
        ),
        (
            "redaction@newsroom.test",
            "Votre premier résumé\u00a0: rien ne correspond encore à vos règles.",
            "dernier résumé",
        ),
    ):
        first = received[address][0]
        for part in ("plain", "html"):
            shown = re.sub(r"[ \r\n]+", " ", unescape(first.get_body((part,)).get_content()))
            assert said in shown and wrong not in shown, (address, part)


def test_a_retried_digest_keeps_the_period_it_was_made_for(
    smtp: SmtpServer, vigie: Callable[..., Vigie]
) -> None:
    """Each attempt sends the same email: a retry names the digest before it, not itself."""
    v = vigie(subscribers=[{**DESK, "send_empty": True}], smtp=smtp.smtp_settings(), feeds=[])
    v.send_digests(SLOT)
    smtp.replies = ["421 4.3.2 Service not available, try later"]
    [first] = v.send_digests(SLOT + timedelta(days=1))
    assert first.status == "pending" and first.retry_at is not None
    [retried] = v.send_digests(first.retry_at)
    assert retried.status == "sent"
    assert [parse(m.data)["Subject"] for m in smtp.received[1:]] == [
        "Vigie: nothing new since Tue 24 Nov, 08:00"
    ] * 2


def test_digests_of_the_same_counts_are_told_apart_by_their_period(
    smtp: SmtpServer, vigie: Callable[..., Vigie], tmp_path: Path
) -> None:
    """A quiet rule's digest read "Vigie: 2 articles — Calais and the Channel route 2" on
    every day it had two articles: one thread, its days impossible to tell apart. A digest
    that follows another names the period it tells of."""
    feed = tmp_path / "littoral.rss"
    items = [Item(f"a{i}", f"Boats leave Calais at dawn, day {i}") for i in range(4)]
    feed.write_bytes(rss(items[:2]))
    desk = {**DESK, "tags": [], "rules": ["calais"]}
    v = vigie(subscribers=[desk], smtp=smtp.smtp_settings(), feeds=[{"url": str(feed)}])
    [first] = v.send_digests(SLOT)
    feed.write_bytes(rss(items))
    v.poll(SLOT + timedelta(hours=1))
    [second] = v.send_digests(SLOT + timedelta(days=1))
    assert first.status == second.status == "sent"
    subjects = [parse(m.data)["Subject"] for m in smtp.messages]
    assert subjects == [
        "Vigie: 2 articles — Calais and the Channel route 2",
        "Vigie: 2 articles — Calais and the Channel route 2 (since Tue 24 Nov, 08:00)",
    ]


def test_a_french_subject_keeps_its_no_break_spaces(
    smtp: SmtpServer, vigie: Callable[..., Vigie]
) -> None:
    """French puts a no-break space before ":", so that "Vigie :" never wraps with its ":"
    alone; the digest's words had them, and its Subject arrived with ordinary spaces."""
    french = {**DESK, "language": "fr"}
    v = vigie(subscribers=[french], smtp=smtp.smtp_settings())
    v.send_digests(SLOT)
    [accepted] = smtp.messages
    subject = parse(accepted.data)["Subject"]
    assert subject.startswith("Vigie\u00a0: "), subject


def test_the_html_part_is_carried_as_written(smtp: SmtpServer, vigie: Callable[..., Vigie]) -> None:
    """Gmail clips an email whose HTML passes about 102 KB as it arrives. The email library
    sent every digest's HTML quoted-printable (its lines pass 78 columns): 7% larger on the
    way in English, more in French, threefold in Arabic. It travels as it is written."""
    v = vigie(subscribers=[{**DESK, "language": "fr"}], smtp=smtp.smtp_settings())
    v.send_digests(SLOT)
    [accepted] = smtp.messages
    html = parse(accepted.data).get_body(("html",))
    assert html["Content-Transfer-Encoding"] == "8bit"
    written = html.get_content().replace("\r\n", "\n").encode()
    assert "exilé".encode() in written
    assert written.replace(b"\n", b"\r\n") in accepted.data  # as SMTP carried it


def test_a_digest_of_the_most_entries_is_not_clipped_by_gmail(
    shared_corpora: Path, smtp: SmtpServer, vigie: Callable[..., Vigie], tmp_path: Path
) -> None:
    """Gmail shows about 102 KB of an email's HTML, then "[Message clipped]": a digest took
    about 1 KB an entry, and from its 90th or so, the entries and the footer with its
    unsubscribe link were behind the link. A digest of max_entries' default, 200 entries of
    real headlines and sentences, arrives with less than that: its best entries in full, the
    others by their linked headline alone, and a line under its summary saying so; every
    entry's link and the unsubscribe link are in it, and the plain text has every entry in
    full."""
    made = pool()
    rng = random.Random(7)
    items = []
    for number, title in enumerate(rng.sample(made.titles["en"], 230)):
        said = [rng.choice(made.sentences["en"]) for _ in range(3)]
        slug = "-".join(re.findall(r"[a-z0-9]+", title.lower()))[:80]
        link = f"https://news.example/2026/11/23/{slug}-{number}"
        items.append(Item(f"a{number}", title, " ".join([said[0], *CALAIS, *said[1:]]), link))
    feed = tmp_path / "coast.rss"
    feed.write_bytes(rss(items))
    desk = {**DESK, "tags": [], "rules": ["calais"]}
    base = "https://vigie.newsroom.example"
    v = vigie(
        subscribers=[desk],
        smtp=smtp.smtp_settings(),
        feeds=[{"url": str(feed), "name": "The Coastal Herald"}],
        delivery={"public_base_url": base},
    )
    [sent] = v.send_digests(SLOT)
    assert sent.status == "sent"
    [accepted] = smtp.messages
    message = parse(accepted.data)
    counted = re.search(r"(\d+) articles", message["Subject"])
    assert counted and int(counted.group(1)) > 200  # past max_entries: 200 are shown
    html_part = message.get_body(("html",))
    assert html_part["Content-Transfer-Encoding"] in ("7bit", "8bit")  # carried as written
    html = html_part.get_content().replace("\r\n", "\n")
    assert len(html.encode()) + html.count("\n") < 102_000  # as carried, lines ending in CRLF
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    linked = re.findall(r'href="(https://news\.example/[^"]+)"', html)
    listed = [line.strip() for line in text.split("\n") if "https://news.example/" in line]
    assert len(linked) == len(set(linked)) == 200 and set(linked) == set(listed)
    full = html.count("Matched:")
    headlines = 200 - full
    assert 40 <= full < 200 and text.count("Matched:") == 200
    note = f"listed by their headline alone ({headlines} articles); its plain-text version"
    assert note in " ".join(html.split())
    token = v.store.subscriber_state("desk")["token"]
    footer = html[html.index("You receive this digest") :]
    assert f'href="{base}/unsubscribe/desk/{token}"' in footer and "</html>" in footer


CALAIS = ("Boats left Calais at dawn, the prefecture said.",)


def reflowed(text: str) -> list[str]:
    """The lines a mail client that reads format=flowed with DelSp=yes (RFC 3676) shows, before
    it wraps them to its window: each line without its first space (stuffing), and each line
    that ends with a space joined to the next, that space deleted ("-- " is not flowed)."""
    shown, joined = [], ""
    for line in text.split("\n"):
        line = line.removeprefix(" ")
        if line.endswith(" ") and line != "-- ":
            joined += line[:-1]
        else:
            shown.append(joined + line)
            joined = ""
    return shown


def test_the_plain_text_reflows_and_keeps_each_link_whole(
    smtp: SmtpServer, vigie: Callable[..., Vigie]
) -> None:
    """Hard-wrapped at 76 columns, the plain text broke mid-sentence on screens narrower than
    that, every other line short, and the unsubscribe link shared its line with a word, past
    what clients show. It is format=flowed: a client that reflows joins each paragraph to the
    width of its window; one that does not shows lines of at most 78 columns, but for a link
    too long for that, alone on its line. No link is ever wrapped or broken."""
    base = "https://vigie.newsroom.example/alerts/notifications/subscriptions"
    people = [DESK, {**DESK, "name": "redaction", "email": "redac@newsroom.test", "language": "fr"}]
    v = vigie(subscribers=people, smtp=smtp.smtp_settings(), delivery={"public_base_url": base})
    assert [s.status for s in v.send_digests(SLOT)] == ["sent"] * 2
    articles = dict(
        v.rows("SELECT DISTINCT url, title FROM articles JOIN matches ON id = article_id")
    )
    names = "|".join(re.escape(name) for name in v.labels.rules.values())
    footers = {
        "desk@newsroom.test": (
            "Matched: ",
            "You receive this digest because you follow the tags migrants, calais,"
            " police-violence and prosecutions (daily 08:00, Europe/Paris).",
        ),
        "redac@newsroom.test": (
            "Règles\u00a0: ",
            "Vous recevez ce résumé parce que vous suivez les thèmes migrants, calais,"
            " police-violence et prosecutions (chaque jour à 08:00, Europe/Paris).",
        ),
    }
    for accepted in smtp.messages:
        [name] = [p["name"] for p in people if p["email"] == accepted.recipients[0]]
        unsubscribe = f"{base}/unsubscribe/{name}/{v.store.subscriber_state(name)['token']}"
        plain = parse(accepted.data).get_body(("plain",))
        assert plain.get_param("format") == "flowed" and plain.get_param("delsp") == "yes"
        text = plain.get_content().replace("\r\n", "\n")  # as SMTP carried it
        # As written, for clients that show it so.
        lines = [line.strip() for line in text.split("\n")]
        assert articles.keys() | {unsubscribe} <= set(lines)  # each link alone on its line
        long = {line for line in text.split("\n") if len(line) > 78}
        assert long and {line.strip() for line in long} <= articles.keys() | {unsubscribe}
        # Reflowed: each headline, each list of rules and the footer one line, words whole.
        shown = reflowed(text)
        titles = [line[2:].replace("*", "") for line in shown if line.startswith("* ")]
        assert sorted(titles) == sorted(articles.values())
        matched, footer = footers[accepted.recipients[0]]
        rules = re.compile(f"{matched}(?:{names})(?:\u00a0?; (?:{names}))*")
        listed = [line.strip() for line in shown if line.strip().startswith(matched)]
        assert len(listed) == len(titles) and all(rules.fullmatch(line) for line in listed)
        assert footer in shown and shown[shown.index(footer) - 1] == "-- "
        assert shown[-2:] == [unsubscribe, ""]


def test_no_line_of_the_plain_text_starts_with_closing_punctuation(
    smtp: SmtpServer, vigie: Callable[..., Vigie]
) -> None:
    """Nord Actu's « violences volontaires par personne dépositaire de l'autorité publique »
    was wrapped with its "»" starting the next line, which French typesetting never does: the
    space before » : ; ! and ? (and after «) is no place to break a line."""
    v = vigie(subscribers=[DESK], smtp=smtp.smtp_settings())
    v.send_digests(SLOT)
    [accepted] = smtp.messages
    text = parse(accepted.data).get_body(("plain",)).get_content()
    lines = [line.strip() for line in text.splitlines()]
    assert "publique » sur un *exilé* afghan" in " ".join(lines)  # the words are still there
    assert [line for line in lines if line.startswith(tuple("»:;!?"))] == []
    assert [line for line in lines if line.endswith("«")] == []
