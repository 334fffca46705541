"""Unsubscribe links answered by the service (delivery.listen): the link a real digest carries,
requested over HTTP on loopback, stops that subscriber's digests and no one else's; a GET (a
link scanner) unsubscribes no one; a wrong token is not found."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import requests
from click.testing import CliRunner
from conftest import REPO
from delivery_support import ALL_TAGS, SmtpServer, Vigie, write_delivery_config
from process_support import running, stop, wait_until

from monitor.cli import main
from monitor.deliver.dispatch import open_digests
from monitor.deliver.unsubscribe import (
    MOST_AT_ONCE,
    READING_AT_ONCE,
    REQUEST_DEADLINE,
    UnsubscribeServer,
)
from monitor.records import Match
from monitor.store import database

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BASE = "https://vigie.example.org"
DESK = {"name": "desk", "email": "desk@newsroom.test", "tags": ALL_TAGS, "schedule": "immediate"}
TEAM = {**DESK, "name": "team", "email": "team@newsroom.test"}


@pytest.fixture
def vigie(tmp_path: Path, smtp: SmtpServer) -> Iterator[Vigie]:
    config = write_delivery_config(
        tmp_path,
        subscribers=[DESK, TEAM],
        smtp=smtp.smtp_settings(),
        delivery={"public_base_url": BASE},
    )
    made = Vigie(config, NOW)
    made.poll(NOW)
    yield made
    made.close()


@pytest.fixture
def page(vigie: Vigie) -> Iterator[UnsubscribeServer]:
    server = UnsubscribeServer(("127.0.0.1", 0), vigie.config.database, lambda: NOW).start()
    yield server
    server.close()


def link_of(smtp: SmtpServer, recipient: str) -> str:
    """The one-click link of the digest `recipient` received."""
    [data] = [m.data for m in smtp.messages if m.recipients == [recipient]]
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [link] = [u.strip(" <>") for u in message["List-Unsubscribe"].split(",") if "https:" in u]
    return link


def served(page: UnsubscribeServer, link: str) -> str:
    """The link as the operator's https server forwards it to delivery.listen."""
    assert link.startswith(BASE + "/unsubscribe/")
    host, port = page.address
    return f"http://{host}:{port}{urlsplit(link).path}"


def unsubscribed(vigie: Vigie) -> dict[str, str | None]:
    return dict(vigie.rows("SELECT name, unsubscribed FROM subscribers ORDER BY name"))


def test_the_one_click_link_of_a_digest_stops_that_subscribers_digests(
    vigie: Vigie, smtp: SmtpServer, page: UnsubscribeServer
) -> None:
    assert {s.target for s in vigie.send_digests(NOW)} == {"desk", "team"}
    link = served(page, link_of(smtp, "desk@newsroom.test"))

    scanned = requests.get(link, timeout=5)  # a mail scanner, a link preview: nothing happens
    assert scanned.status_code == 200 and "Stop these digests?" in scanned.text
    assert '<form method="post">' in scanned.text
    assert unsubscribed(vigie) == {"desk": None, "team": None}

    # RFC 8058: the mail client POSTs this body to the link.
    clicked = requests.post(link, data={"List-Unsubscribe": "One-Click"}, timeout=5)
    assert clicked.status_code == 200 and "Unsubscribed" in clicked.text
    assert unsubscribed(vigie) == {"desk": NOW.isoformat(), "team": None}

    # A rule added later matches a stored article: news for both, a digest for team only.
    later = NOW + timedelta(hours=1)
    [(article,)] = vigie.rows("SELECT min(id) FROM articles")
    with vigie.store.transaction():
        vigie.store.record_matches(
            article, 1, [Match(article, "added-later", 1.0, (), tags=tuple(ALL_TAGS))], later
        )
    [made] = open_digests(vigie.store, vigie.config.delivery, later)
    assert vigie.store.delivery(made).target == "team"  # type: ignore[union-attr]


def test_mail_clients_read_the_one_click_link_from_the_header_as_sent(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    """A link longer than a header line (a base URL with a path, as docs/delivery.md shows)
    was sent RFC 2047-encoded, `List-Unsubscribe: =?utf-8?q?=3Chttps=3A//...`: mail clients
    look for <...> in the header as it is, found no https link and offered no one-click
    button (a subscribers' review). The header is read here undecoded, as they read it."""
    base = "https://news.ngo.example/vigie"
    team = {**DESK, "name": "calais-ngo-dunkirk"}
    config = write_delivery_config(
        tmp_path, subscribers=[team], smtp=smtp.smtp_settings(), delivery={"public_base_url": base}
    )
    made = Vigie(config, NOW)
    try:
        made.poll(NOW)
        made.send_digests(NOW)
    finally:
        made.close()
    [data] = [m.data for m in smtp.messages]
    raw = email.message_from_bytes(data, policy=email.policy.compat32)["List-Unsubscribe"]
    assert "=?" not in raw
    links = re.findall(r"<([^<>]*)>", " ".join(raw.split()))
    assert len(links) == 2 and links[0].startswith(base + "/unsubscribe/calais-ngo-dunkirk/")
    assert links[1].endswith("?subject=unsubscribe%20calais-ngo-dunkirk")
    assert all(len(line) <= 998 for line in data.split(b"\r\n\r\n")[0].split(b"\r\n"))


@pytest.mark.parametrize("forwarded", ["as written", "prefix stripped"])
@pytest.mark.parametrize("prefix", ["/vigie", "/désabonnement", "/d%C3%A9sabonnement"])
def test_links_under_a_base_url_with_a_path_are_answered(
    tmp_path: Path, smtp: SmtpServer, forwarded: str, prefix: str
) -> None:
    """public_base_url = "https://.../vigie": digests linked to /vigie/unsubscribe/..., and
    the page answered only /unsubscribe/... (404 "Link not recognised"). A reverse proxy may
    forward the path as written or strip its prefix: both are answered. A path with an accent
    arrives percent-encoded, as clients send it (and as List-Unsubscribe writes it), which the
    page compared with the path as written: 404 too (a code review). Decoded, it no longer
    matched a base URL written percent-encoded, as copied from a browser (a review)."""
    base = BASE + prefix
    config = write_delivery_config(
        tmp_path, subscribers=[DESK], smtp=smtp.smtp_settings(), delivery={"public_base_url": base}
    )
    made = Vigie(config, NOW)
    made.poll(NOW)
    server = UnsubscribeServer(("127.0.0.1", 0), made.config.database, lambda: NOW, base_url=base)
    server.start()
    try:
        made.send_digests(NOW)
        link = link_of(smtp, "desk@newsroom.test")
        assert link.startswith(BASE + quote(prefix, safe="/%") + "/unsubscribe/desk/")
        path = urlsplit(link).path
        if forwarded == "prefix stripped":
            path = path.removeprefix(quote(prefix, safe="/%"))
        host, port = server.address
        asked = requests.get(f"http://{host}:{port}{path}", timeout=5)
        assert asked.status_code == 200 and "Stop these digests?" in asked.text
        clicked = requests.post(
            f"http://{host}:{port}{path}", data={"List-Unsubscribe": "One-Click"}, timeout=5
        )
        assert clicked.status_code == 200 and "Unsubscribed" in clicked.text
        assert unsubscribed(made) == {"desk": NOW.isoformat()}
        elsewhere = requests.get(f"http://{host}:{port}/other{path}", timeout=5)
        assert elsewhere.status_code == 404  # only the base URL's path, or none
    finally:
        server.close()
        made.close()


def test_a_click_under_way_when_the_service_stops_is_answered_and_kept(
    vigie: Vigie, smtp: SmtpServer
) -> None:
    """A concurrency review: stopping the service closed the page's database while a click
    was being answered; the subscriber got a 503 and stayed subscribed."""
    import threading

    vigie.send_digests(NOW)
    path = urlsplit(link_of(smtp, "desk@newsroom.test")).path
    page = UnsubscribeServer(("127.0.0.1", 0), vigie.config.database, lambda: NOW).start()
    body = b"List-Unsubscribe=One-Click"
    with socket.create_connection(page.address, timeout=5) as click:
        click.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode())  # under way
        time.sleep(0.2)
        closing = threading.Thread(target=page.close)
        closing.start()  # the service stops
        time.sleep(1.0)  # past serve_forever's half-second poll
        click.sendall(
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        answer = click.recv(200).split(b"\r\n")[0]
        closing.join(10)
    assert answer in (b"HTTP/1.0 200 OK", b"HTTP/1.1 200 OK"), answer
    assert unsubscribed(vigie)["desk"] == NOW.isoformat()


def test_a_click_the_database_cannot_record_is_told_in_the_subscribers_language(
    vigie: Vigie, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database locked past its wait: the page says to try again, and a French subscriber
    read it in English (a subscribers' review)."""
    monkeypatch.setattr(database, "WRITE_WAIT", 0.3)
    vigie.send_digests(NOW)
    link = link_of(smtp, "desk@newsroom.test")
    page = UnsubscribeServer(
        ("127.0.0.1", 0), vigie.config.database, lambda: NOW, languages={"desk": "fr"}
    ).start()
    holder = sqlite3.connect(vigie.config.database)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another writer holds the database
        answer = requests.post(served(page, link), data=b"List-Unsubscribe=One-Click", timeout=10)
    finally:
        holder.rollback()
        holder.close()
        page.close()
    assert answer.status_code == 503
    assert "Réessayez dans un instant" in answer.text and "Rien n'a été changé" in answer.text
    assert unsubscribed(vigie)["desk"] is None


def test_a_wrong_token_or_name_is_not_found_and_changes_nothing(
    vigie: Vigie, smtp: SmtpServer, page: UnsubscribeServer
) -> None:
    vigie.send_digests(NOW)
    link = served(page, link_of(smtp, "desk@newsroom.test"))
    token = link.rsplit("/", 1)[1]
    for wrong in (link[:-1] + ("x" if link[-1] != "x" else "y"), link.replace("/desk/", "/team/")):
        answer = requests.post(wrong, timeout=5)
        assert answer.status_code == 404 and "not recognised" in answer.text
        assert token not in answer.text and "desk" not in answer.text
    assert requests.get(served(page, BASE + "/unsubscribe/nobody/x"), timeout=5).status_code == 404
    assert unsubscribed(vigie) == {"desk": None, "team": None}


def test_a_digest_made_before_the_click_is_not_sent_after_it(
    vigie: Vigie, smtp: SmtpServer, page: UnsubscribeServer
) -> None:
    """A digest waiting for a retry when its subscriber unsubscribed is not sent."""
    smtp.replies = ["451 4.3.0 Try again later", "451 4.3.0 Try again later"]
    pending = {s.target: s for s in vigie.send_digests(NOW)}
    assert {s.status for s in pending.values()} == {"pending"}
    token = vigie.store.subscriber_state("desk")["token"]  # type: ignore[index]
    assert requests.post(served(page, f"{BASE}/unsubscribe/desk/{token}"), timeout=5).ok
    retried = {s.target: s for s in vigie.send_digests(NOW + timedelta(hours=1))}
    assert retried["desk"].status == "failed"
    assert retried["desk"].detail == f"not sent: unsubscribed {NOW.isoformat()}"
    assert retried["team"].status == "sent"
    assert [m.recipients for m in smtp.messages] == [["team@newsroom.test"]]


def test_the_operator_unsubscribes_and_resubscribes_from_the_command_line(
    vigie: Vigie, tmp_path: Path
) -> None:
    """A request that came by email (the mailto: of List-Unsubscribe); back, the subscriber
    gets what matches from then on, not what they missed."""
    runner = CliRunner()
    config = str(tmp_path / "config.toml")
    done = runner.invoke(main, ["digest", "unsubscribe", "desk", "--config", config])
    assert done.exit_code == 0 and "desk unsubscribed" in done.stdout
    refused = runner.invoke(main, ["digest", "send", "desk", "--config", config])
    assert refused.exit_code == 1 and "vigie digest resubscribe desk" in refused.stderr
    # `once` said "nothing new to send", as if no news had matched (a re-test).
    once = runner.invoke(main, ["once", "--config", config])
    assert "Digest for desk: none, unsubscribed 20" in once.stdout, once.stdout
    back = runner.invoke(main, ["digest", "resubscribe", "desk", "--config", config])
    assert back.exit_code == 0 and "from now on" in back.stdout
    assert unsubscribed(vigie)["desk"] is None
    sent = runner.invoke(main, ["digest", "send", "desk", "--config", config])
    assert "Nothing new to send." in sent.stdout  # the samples' matches were before it came back


def test_a_subscriber_back_gets_a_new_link_and_the_old_one_no_longer_works(
    vigie: Vigie, smtp: SmtpServer, page: UnsubscribeServer
) -> None:
    """The old link, in digests forwarded or left in a shared mailbox, unsubscribed a
    subscriber who had come back (a security review)."""
    vigie.send_digests(NOW)
    old = served(page, link_of(smtp, "desk@newsroom.test"))
    assert requests.post(old, timeout=5).ok
    assert vigie.store.resubscribe("desk", NOW + timedelta(hours=1))
    assert requests.post(old, timeout=5).status_code == 404
    assert unsubscribed(vigie)["desk"] is None
    token = vigie.store.subscriber_state("desk")["token"]  # type: ignore[index]
    assert token and token not in old
    assert requests.post(served(page, f"{BASE}/unsubscribe/desk/{token}"), timeout=5).ok


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("prefix", ["", "/vigie"])
def test_vigie_run_answers_the_links_at_delivery_listen(tmp_path: Path, prefix: str) -> None:
    port = free_port()
    config = write_delivery_config(
        tmp_path,
        subscribers=[DESK],
        delivery={"public_base_url": BASE + prefix, "listen": f"127.0.0.1:{port}"},
    )
    log = tmp_path / "run.log"
    with running(config, log, "run") as process:
        wait_until(lambda: "vigie running" in log.read_text(), "the service to start", log)
        assert f"unsubscribe links answered at 127.0.0.1:{port}" in log.read_text()
        database = tmp_path / "data" / "vigie.db"
        with sqlite3.connect(database) as db:
            [(token,)] = db.execute("SELECT token FROM subscribers WHERE name = 'desk'")
        link = f"http://127.0.0.1:{port}{prefix}/unsubscribe/desk/{token}"
        assert requests.post(link, data={"List-Unsubscribe": "One-Click"}, timeout=5).ok
        with sqlite3.connect(database) as db:
            [(when,)] = db.execute("SELECT unsubscribed FROM subscribers WHERE name = 'desk'")
        assert when is not None
        stop(process, log)
    assert "Traceback" not in log.read_text()


def test_the_page_names_the_address_the_digests_go_to(tmp_path: Path) -> None:
    """The page said "Vigie envoie des résumés à calais-ngo": a name from the operator's
    config.toml, which the subscriber never saw (a subscribers' review). It names the address
    their digests go to, as their To: line does."""
    port = free_port()
    ngo = {**DESK, "name": "calais-ngo", "email": "Inès Morel <ines@ngo.test>", "language": "fr"}
    config = write_delivery_config(
        tmp_path,
        subscribers=[ngo],
        delivery={"public_base_url": BASE, "listen": f"127.0.0.1:{port}"},
    )
    log = tmp_path / "run.log"
    with running(config, log, "run") as process:
        wait_until(lambda: "vigie running" in log.read_text(), "the service to start", log)
        with sqlite3.connect(tmp_path / "data" / "vigie.db") as db:
            [(token,)] = db.execute("SELECT token FROM subscribers WHERE name = 'calais-ngo'")
        link = f"http://127.0.0.1:{port}/unsubscribe/calais-ngo/{token}"
        asked = requests.get(link, timeout=5).text
        done = requests.post(link, data={"List-Unsubscribe": "One-Click"}, timeout=5).text
        again = requests.get(link, timeout=5).text
        stop(process, log)
    assert "Vigie envoie des résumés à <strong>ines@ngo.test</strong>." in asked
    assert "<strong>ines@ngo.test</strong> ne recevra plus de résumés Vigie." in done
    assert "<strong>ines@ngo.test</strong> ne reçoit pas de résumés Vigie." in again
    assert "calais-ngo" not in asked + done + again


def test_vigie_run_says_when_it_cannot_listen_there(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_delivery_config(
            tmp_path, subscribers=[DESK], delivery={"listen": f"127.0.0.1:{port}"}
        )
        result = subprocess.run(
            [sys.executable, str(REPO / "service.py"), "run", "--config", str(config)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert (
        f'delivery.listen: cannot listen there (Address already in use), got "127.0.0.1:{port}"'
        in line
    )
    assert "Traceback" not in result.stderr


def raw(page: UnsubscribeServer, request: bytes) -> bytes:
    with socket.create_connection(page.address, timeout=5) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_after_unsubscribing_the_link_says_so_and_other_requests_are_refused(
    vigie: Vigie, page: UnsubscribeServer
) -> None:
    token = vigie.store.subscriber_state("desk")["token"]  # type: ignore[index]
    link = served(page, f"{BASE}/unsubscribe/desk/{token}")
    assert "Unsubscribed" in requests.post(link, timeout=5).text
    again = requests.get(link, timeout=5)
    assert again.status_code == 200 and "Already unsubscribed" in again.text
    assert "<form" not in again.text
    head = requests.head(link, timeout=5)
    assert head.status_code == 405 and head.headers["Allow"] == "GET, POST"
    path = f"/unsubscribe/team/{token}".encode()
    for length in (b"abc", b"-1", b"1e3"):  # parsed by int() or read until the client left
        answer = raw(
            page, b"POST " + path + b" HTTP/1.1\r\nContent-Length: " + length + b"\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.0 400 "), answer[:60]
    assert unsubscribed(vigie) == {"desk": NOW.isoformat(), "team": None}


def test_connections_that_send_nothing_hold_the_page_only_so_many_at_a_time(
    vigie: Vigie, page: UnsubscribeServer
) -> None:
    """Each idle connection held a thread for as long as it stayed open, with no limit: a
    review's 3,000 slow connections stalled the whole service."""
    idle = [socket.create_connection(page.address, timeout=5) for _ in range(READING_AT_ONCE)]
    try:
        for connection in idle:
            connection.sendall(b"GET /unsubscribe/desk/x HTTP/1.1\r\nX-Slow: ")
        time.sleep(0.5)
        assert raw(page, b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 503 ")
    finally:
        for connection in idle:
            connection.close()
    time.sleep(0.5)
    assert raw(page, b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 404 ")


def test_a_few_connections_trickling_a_byte_at_a_time_hold_back_no_click(
    vigie: Vigie, smtp: SmtpServer, page: UnsubscribeServer
) -> None:
    """16 connections sending a byte every few seconds, never more than the per-read timeout
    apart, held every answering turn: each subscriber's one-click request got 503 for as long
    as they went on. They are cut off at the request's deadline, and never hold an answer."""
    vigie.send_digests(NOW)
    link = served(page, link_of(smtp, "desk@newsroom.test"))
    slow = [socket.create_connection(page.address, timeout=5) for _ in range(MOST_AT_ONCE * 2)]
    try:
        for connection in slow:
            connection.sendall(b"G")
        time.sleep(0.3)
        assert requests.get(link, timeout=5).status_code == 200  # at once, not after them
        started = time.monotonic()
        cut = 0
        while cut < len(slow) and time.monotonic() - started < REQUEST_DEADLINE + 5:
            cut = 0
            for connection in slow:
                try:
                    connection.sendall(b"E")
                except OSError:  # reset: the server cut it off
                    cut += 1
            time.sleep(0.5)
        assert cut == len(slow), "the trickling connections were never cut off"
    finally:
        for connection in slow:
            connection.close()


def test_a_token_with_other_characters_is_not_found_whoever_is_named(
    vigie: Vigie, page: UnsubscribeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A non-ASCII token raised inside the comparison for a name that exists only: 503 for
    "desk", 404 for "nobody" told which names subscribe, with a traceback in the log each."""
    host, port = page.address
    for name in ("desk", "nobody"):
        answer = requests.get(f"http://{host}:{port}/unsubscribe/{name}/%C3%A9", timeout=5)
        assert answer.status_code == 404
    assert "Traceback" not in caplog.text and not [r for r in caplog.records if r.exc_info]


def test_a_french_subscriber_unsubscribes_in_french(vigie: Vigie, smtp: SmtpServer) -> None:
    server = UnsubscribeServer(
        ("127.0.0.1", 0), vigie.config.database, lambda: NOW, languages={"desk": "fr"}
    ).start()
    try:
        vigie.send_digests(NOW)
        desk = served(server, link_of(smtp, "desk@newsroom.test"))
        team = served(server, link_of(smtp, "team@newsroom.test"))
        asked = requests.get(desk, timeout=5)
        assert '<html lang="fr">' in asked.text
        assert "Ne plus recevoir ces résumés\u00a0?" in asked.text
        assert "Vigie envoie des résumés à <strong>desk</strong>." in asked.text
        done = requests.post(desk, data={"List-Unsubscribe": "One-Click"}, timeout=5)
        assert "Désabonnement effectué" in done.text
        assert "Stop these digests?" in requests.get(team, timeout=5).text  # team reads English
    finally:
        server.close()
