"""Delivery from the command line: `vigie once` on the bundled configuration leaves a digest in
outbox/, `vigie digest preview | send`, `vigie deliveries list | retry | replay`."""

from __future__ import annotations

import email
import email.policy
import json
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import REPO, SAMPLES
from delivery_support import (
    ALL_TAGS,
    SECRET_ENV,
    Answer,
    Receiver,
    SmtpServer,
    Vigie,
    start,
    write_delivery_config,
)

from monitor.cli import main
from monitor.cli_deliver import print_sent
from monitor.deliver.dispatch import Sent
from monitor.rules.index import compile_rule
from monitor.scheduler import database_lock
from monitor.store import Store


def vigie(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def bundled(tmp_path: Path) -> Path:
    """The committed config.toml, in a folder of its own beside the samples and rules."""
    (tmp_path / "config.toml").write_text((REPO / "config.toml").read_text())
    (tmp_path / "samples").symlink_to(REPO / "samples")
    (tmp_path / "rules").symlink_to(REPO / "rules")
    return tmp_path / "config.toml"


def test_once_on_the_bundled_config_writes_a_digest_and_prints_its_path(bundled: Path) -> None:
    result = vigie("once", "--config", bundled)
    assert result.exit_code == 0, result.output
    found = re.search(r"Digest #1 for newsroom \(\d+ articles\) written: (\S+\.eml)", result.stdout)
    assert found, result.stdout
    path = Path(found.group(1))
    assert path.parent == bundled.parent / "outbox" and path.is_file()
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["To"] == "newsroom <newsroom@example.org>"
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for rule in ("Calais and the Channel route", "Migrants, refugees and asylum"):
        assert f">{rule}" in html
    assert "<b " in html  # matched words highlighted
    again = vigie("once", "--config", bundled)
    assert "Digest for newsroom: nothing new to send" in again.stdout
    assert len(list(path.parent.glob("*.eml"))) == 1


def test_once_reports_the_stories_the_email_lists_by_smtp_and_as_eml(
    smtp: SmtpServer, tmp_path: Path
) -> None:
    """Two outlets carry the same reports: the email lists one entry per story, the other outlet
    under it. `once` says so, by SMTP as in the .eml, not the matches behind the entries."""
    wire = tmp_path / "wire.rss"
    herald = (SAMPLES / "coastal-herald.rss").read_text()
    wire.write_text(herald.replace("The Coastal Herald", "Wire").replace("coastal-herald", "wire"))
    feeds = [
        {"url": str(SAMPLES / "coastal-herald.rss"), "name": "The Coastal Herald"},
        {"url": str(wire), "name": "Wire"},
    ]
    desk = {"name": "desk", "email": "desk@newsroom.test", "tags": ALL_TAGS}
    configs = {}
    for way, smtp_settings in (("smtp", smtp.smtp_settings()), ("eml", None)):
        (tmp_path / way).mkdir()
        configs[way] = write_delivery_config(
            tmp_path / way, subscribers=[desk], smtp=smtp_settings, feeds=feeds
        )
    sent = vigie("once", "--config", configs["smtp"])
    written = vigie("once", "--config", configs["eml"])
    [accepted] = smtp.messages
    subject = email.message_from_bytes(accepted.data, policy=email.policy.default)["Subject"]
    found = re.search(r"\d+ stories\b", subject)
    assert found, subject
    stories = found.group(0)
    assert f"Digest #1 for desk ({stories}) sent" in sent.stdout.splitlines()
    assert f"Digest #1 for desk ({stories}) written: " in written.stdout
    listed = json.loads(vigie("deliveries", "list", "--json", "--config", configs["smtp"]).stdout)
    assert listed[0]["items"] > int(stories.split()[0])  # the matches behind them are more


def test_digest_preview_renders_without_claiming(bundled: Path) -> None:
    vigie("once", "--config", bundled)  # the first digest takes what matched
    preview = vigie("digest", "preview", "newsroom", "--config", bundled)
    assert preview.exit_code == 0, preview.output
    path = Path(preview.stdout.strip().splitlines()[-1])
    assert path == bundled.parent / "outbox" / "preview-newsroom.html"
    assert "Nothing new matched your rules" in path.read_text()
    listed = json.loads(vigie("deliveries", "list", "--json", "--config", bundled).stdout)
    assert [(d["kind"], d["status"]) for d in listed] == [("digest", "sent")]


def test_digest_preview_then_send(tmp_path: Path) -> None:
    desk = {"name": "desk", "email": "d@example.org", "tags": ALL_TAGS}
    polled = Vigie(write_delivery_config(tmp_path, subscribers=[desk]), datetime.now(UTC))
    polled.poll(datetime.now(UTC))
    polled.close()
    config = tmp_path / "config.toml"
    preview = vigie("digest", "preview", "desk", "--config", config)
    path = Path(preview.stdout.strip().splitlines()[-1])
    assert "Calais and the Channel route" in path.read_text()
    assert json.loads(vigie("deliveries", "list", "--json", "--config", config).stdout) == []
    assert vigie("deliveries", "list", "--config", config).stdout == "No deliveries.\n"
    dead = vigie("deliveries", "list", "--status", "dead", "--config", config).stdout
    assert dead == "No deliveries (status dead).\n"  # an empty table read as a failure
    sent = vigie("digest", "send", "desk", "--config", config)
    assert re.search(r"Digest #1 for desk \(\d+ articles\) written: .*\.eml", sent.stdout)
    assert "Nothing new to send." in vigie("digest", "send", "--config", config).stdout


def test_digest_commands_name_the_rules_without_compiling_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 100,000 rules, `digest preview` took 33 s, compiling every rule for its name (as
    `digest send`, `deliveries retry` and `replay` did): the rule files are read, and named."""
    from monitor.rules import files

    desk = {"name": "desk", "email": "d@example.org", "tags": ALL_TAGS}
    polled = Vigie(write_delivery_config(tmp_path, subscribers=[desk]), datetime.now(UTC))
    polled.poll(datetime.now(UTC))
    polled.close()
    compiled: list[str] = []

    def counted_compile(rule, *args, **kwargs):
        compiled.append(rule.id)
        return compile_rule(rule, *args, **kwargs)

    monkeypatch.setattr(files, "compile_rule", counted_compile)
    config = tmp_path / "config.toml"
    preview = vigie("digest", "preview", "desk", "--config", config)
    path = Path(preview.stdout.strip().splitlines()[-1])
    assert "Calais and the Channel route" in path.read_text()
    sent = vigie("digest", "send", "desk", "--config", config)
    assert "Digest #1 for desk" in sent.stdout
    eml = next((tmp_path / "outbox").glob("*.eml")).read_text()
    assert "Calais and the Channel route" in eml
    assert compiled == []


def test_deliveries_failed_by_a_410_show_no_next_attempt(tmp_path: Path) -> None:
    """The deliveries an endpoint's 410 failed still showed their next attempt, never made."""
    hook = {"name": "bot", "url": "http://127.0.0.1:9/", "secret_env": "X", "tags": ALL_TAGS}
    config = write_delivery_config(tmp_path, webhooks=[hook], feeds=[])
    now = datetime.now(UTC)
    store = Store(tmp_path / "data" / "vigie.db")
    try:
        with store.transaction():
            for article_id in (1, 2):
                store.insert_delivery("webhook", "bot", "pending", now, [(article_id, "calais")])
        assert store.disable_endpoint("bot", hook["url"], "HTTP 410", now) == 2
    finally:
        store.close()
    listed = json.loads(vigie("deliveries", "list", "--json", "--config", config).stdout)
    assert [(d["status"], d["next_attempt"]) for d in listed] == [("failed", None)] * 2
    table = vigie("deliveries", "list", "--config", config).stdout
    rows = [line.split() for line in table.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 2 and all(row[-1] == "-" for row in rows), table


def test_once_exits_2_when_a_410_disabled_a_webhooks_endpoint(
    receiver: Receiver, tmp_path: Path
) -> None:
    """`once` from cron exited 0 when a consumer's 410 disabled its endpoint, while `vigie
    status` exited 2 for the same (a re-test): the line says what became of the endpoint and
    how to enable it, and the exit status is status's."""
    hook = {"name": "bot", "url": receiver.url(), "secret_env": SECRET_ENV, "tags": ["calais"]}
    config = write_delivery_config(tmp_path, webhooks=[hook])
    receiver.answers = [Answer(410)]
    result = vigie("once", "--config", config)
    assert result.exit_code == 2
    said = " ".join(result.stdout.split())
    assert "failed: HTTP 410 Gone" in said and "The endpoint is disabled" in said
    assert "`vigie deliveries retry 1` enables it" in said


def test_digest_send_says_once_why_it_will_retry(tmp_path: Path, closed_port: int) -> None:
    """The line for the attempt says it all; no bare `digest to desk: pending` on stderr."""
    desk = {"name": "desk", "email": "d@example.org", "tags": ALL_TAGS}
    smtp = {"host": "127.0.0.1", "port": closed_port, "security": "none", "timeout": "2s"}
    config = write_delivery_config(tmp_path, subscribers=[desk], smtp=smtp)
    polled = Vigie(config, datetime.now(UTC))
    polled.poll(datetime.now(UTC))
    polled.close()
    result = subprocess.run(
        [sys.executable, str(REPO / "service.py"), "digest", "send", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
    found = rf"^Digest #1 for desk \(\d+ articles\) will retry at {when}: connection failed"
    assert re.search(found, result.stdout, re.MULTILINE), result.stdout
    # What to check, and that it is not lost (a wrong port read as failed for good).
    assert f"nothing answers at 127.0.0.1:{closed_port}: check smtp.host, smtp.port)" in (
        result.stdout
    )
    assert "A temporary failure: it is tried again then, or now by `vigie digest send`." in (
        result.stdout
    )
    assert result.stderr == ""


def test_a_digest_failed_for_good_exits_2_says_what_to_do_and_is_not_forgotten(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    """With the default smtp.security = "starttls" against a relay without STARTTLS, `digest
    send` printed the server's words and exited 0; sent again, it said "Nothing new to send.",
    the articles stranded in the failed digest, which only `deliveries retry` sends."""
    desk = {"name": "desk", "email": "d@example.org", "tags": ALL_TAGS}
    settings = {**smtp.smtp_settings(), "security": "starttls"}
    config = write_delivery_config(tmp_path, subscribers=[desk], smtp=settings)
    polled = Vigie(config, datetime.now(UTC))
    polled.poll(datetime.now(UTC))
    polled.close()
    failed = vigie("digest", "send", "desk", "--config", config)
    assert failed.exit_code == 2, failed.output
    [line] = failed.stdout.splitlines()
    assert re.match(r"Digest #1 for desk \(\d+ articles\) failed: server does not support", line)
    assert 'Set smtp.security = "none" for a local relay' in line
    assert '"tls" for a server that expects TLS from the start (port 465)' in line
    assert line.endswith("Once fixed, `vigie deliveries retry 1` sends it again.")
    stranded = (
        "digest #1 failed for good, its articles not sent: once the cause is fixed, "
        "`vigie deliveries retry 1` sends it again"
    )
    again = vigie("digest", "send", "desk", "--config", config)
    assert again.exit_code == 0  # nothing was tried: the failure was said when it happened
    assert again.stdout == f"Nothing new to send.\ndesk: {stranded}.\n"
    once = vigie("once", "--config", config)
    assert once.exit_code == 0, once.output
    assert f"Digest for desk: nothing new to send ({stranded})" in once.stdout
    assert smtp.messages == []
    fixed = config.read_text().replace('security = "starttls"', 'security = "none"')
    config.write_text(fixed)
    retried = vigie("deliveries", "retry", "1", "--config", config)
    assert re.search(r"Digest #1 for desk \(\d+ articles\) sent", retried.stdout)
    assert [m.recipients for m in smtp.messages] == [["d@example.org"]]
    assert vigie("digest", "send", "desk", "--config", config).stdout == "Nothing new to send.\n"


def test_once_exits_2_when_a_digest_failed_for_good(tmp_path: Path, smtp: SmtpServer) -> None:
    """`once` from cron exited 0 when the mail server refused the digest for good."""
    desk = {"name": "desk", "email": "d@example.org", "tags": ALL_TAGS}
    smtp.replies = ["550 5.7.1 Message rejected as spam"]
    config = write_delivery_config(tmp_path, subscribers=[desk], smtp=smtp.smtp_settings())
    result = vigie("once", "--config", config)
    assert result.exit_code == 2, result.output
    assert re.search(
        r"^Digest #1 for desk \(\d+ articles\) failed: 550 5.7.1 Message rejected as spam\. "
        r"Once fixed, `vigie deliveries retry 1` sends it again\.$",
        result.stdout,
        re.MULTILINE,
    ), result.stdout
    assert "Database: " in result.stdout  # the rest of the run was done


@pytest.mark.parametrize(
    ("outbox", "why"),
    [
        ("config.toml", "it is a file, not a folder"),
        ("config.toml/digests", "{config} is a file"),
    ],
)
def test_an_outbox_that_cannot_be_written_is_a_one_line_error(
    tmp_path: Path, outbox: str, why: str
) -> None:
    """`digest preview` printed a traceback (FileExistsError), `once` polled, then logged one
    and marked the digest failed for good. Commands that write digests say, before anything
    is polled or claimed, which setting names which folder and what is wrong with it;
    commands that never write there do not look at it."""
    desk = {"name": "desk", "email": "d@example.org", "tags": ALL_TAGS}
    config = write_delivery_config(tmp_path, subscribers=[desk], delivery={"outbox": outbox})
    Vigie(config, datetime.now(UTC)).close()  # the database, for preview
    for command in (["digest", "preview", "desk"], ["digest", "send"], ["once"]):
        result = vigie(*command, "--config", config)
        assert result.exit_code == 1, (command, result.output)
        [line] = result.stderr.splitlines()
        assert line.startswith(f"error: {config}:") and "Traceback" not in result.output
        assert "delivery.outbox: expected a folder Vigie can write digests and previews" in line
        assert f'({why.format(config=config)}), got "{tmp_path / outbox}"' in line, line
        assert "Polled" not in result.stdout
    service = subprocess.run(
        [sys.executable, str(REPO / "service.py"), "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert service.returncode == 1 and service.stderr.startswith(f"error: {config}:")
    assert "delivery.outbox" in service.stderr and len(service.stderr.splitlines()) == 1
    assert vigie("rules", "check", "--config", config).exit_code == 0
    assert vigie("deliveries", "list", "--json", "--config", config).stdout.strip() == "[]"


def test_a_replay_since_before_the_calendar_is_a_one_line_error(bundled: Path) -> None:
    result = vigie("deliveries", "replay", "--since", "99999999999d", "--config", bundled)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        'error: --since: expected a duration of at most a few centuries, got "99999999999d"'
    ]


def test_unknown_subscriber_is_a_one_line_error(bundled: Path) -> None:
    result = vigie("digest", "preview", "nobody", "--config", bundled)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {bundled.resolve()}: subscribers: no subscriber 'nobody' (known: newsroom)"
    ]


def queued_again(count: int) -> str:
    """What `deliveries replay` says: "1 delivery queued again.", "2 deliveries ..."."""
    return f"{count} {'delivery' if count == 1 else 'deliveries'} queued again."


def test_deliveries_list_retry_and_replay_keep_the_webhook_id(
    receiver: Receiver, tmp_path: Path
) -> None:
    hook = {"name": "bot", "url": receiver.url(), "secret_env": SECRET_ENV, "tags": ["calais"]}
    config = write_delivery_config(tmp_path, webhooks=[hook])
    first = vigie("once", "--config", config)
    assert "Webhook #1 for bot" in first.stdout
    listed = json.loads(vigie("deliveries", "list", "--json", "--config", config).stdout)
    assert listed and {(d["kind"], d["status"], d["attempts"]) for d in listed} == {
        ("webhook", "sent", 1)
    }
    table = vigie("deliveries", "list", "--config", config).stdout
    assert "webhook" in table and "bot" in table
    sent_ids = [r.headers["webhook-id"] for r in receiver.requests]

    retried = vigie("deliveries", "retry", "1", "--config", config)
    assert "Webhook #1 for bot" in retried.stdout and "sent" in retried.stdout
    assert receiver.requests[-1].headers["webhook-id"] == sent_ids[0]
    receiver.requests[-1].verify()

    nothing = vigie("deliveries", "replay", "--since", "1h", "--config", config)
    assert "0 deliveries queued again." in nothing.stdout  # none failed
    replayed = vigie("deliveries", "replay", "--since", "1h", "--include-sent", "--config", config)
    assert queued_again(len(sent_ids)) in replayed.stdout
    assert [r.headers["webhook-id"] for r in receiver.requests[-len(sent_ids) :]] == sent_ids


def test_replay_leaves_deliveries_to_a_disabled_endpoint_as_they_are(
    receiver: Receiver, tmp_path: Path
) -> None:
    """A replay with --include-sent queued a sent delivery for an endpoint a 410 had disabled:
    it was rewritten as failed, and vigie status exited 2 naming it (a consumer's review)."""
    hook = {"name": "bot", "url": receiver.url(), "secret_env": SECRET_ENV, "tags": ["calais"]}
    config = write_delivery_config(tmp_path, webhooks=[hook])
    vigie("once", "--config", config)
    sent = json.loads(vigie("deliveries", "list", "--json", "--config", config).stdout)
    assert sent and {d["status"] for d in sent} == {"sent"}
    with sqlite3.connect(tmp_path / "data" / "vigie.db") as db:  # as a 410 leaves it
        db.execute(
            "INSERT INTO endpoints (name, url, disabled, reason) VALUES (?, ?, ?, ?)",
            ["bot", receiver.url(), "2026-12-05T00:00:00+00:00", "HTTP 410 Gone"],
        )
    requests = len(receiver.requests)
    replayed = vigie("deliveries", "replay", "--since", "1h", "--include-sent", "--config", config)
    assert "0 deliveries queued again." in replayed.stdout
    said = " ".join(replayed.stdout.split())
    assert "to webhook 'bot' left as they are: its endpoint is disabled" in said
    after = json.loads(vigie("deliveries", "list", "--json", "--config", config).stdout)
    assert after == sent and len(receiver.requests) == requests  # nothing sent, nothing rewritten


def test_once_sends_every_due_webhook_and_retry_sends_only_the_one_asked(
    receiver: Receiver, tmp_path: Path
) -> None:
    """`vigie once` from cron: a busy hour must not leave webhooks waiting for the next run."""
    rng = random.Random(3)
    words = [
        "harbour",
        "lorry",
        "ferry",
        "court",
        "tunnel",
        "camp",
        "beach",
        "convoy",
        "patrol",
        "shelter",
    ]
    items = "".join(
        f"<item><title>Calais: {' '.join(rng.sample(words, 5))} {i}</title>"
        f"<link>https://news.example/{i}</link><description>Migrants near Calais, "
        f"{' '.join(rng.choices(words, k=30))} report {i}.</description></item>"
        for i in range(130)
    )
    feed = tmp_path / "busy.rss"
    feed.write_text(f'<rss version="2.0"><channel><title>Busy</title>{items}</channel></rss>')
    hook = {"name": "bot", "url": receiver.url(), "secret_env": SECRET_ENV, "tags": ["calais"]}
    config = write_delivery_config(tmp_path, webhooks=[hook], feeds=[{"url": str(feed)}])
    vigie("once", "--config", config)
    listed = json.loads(
        vigie("deliveries", "list", "--limit", "500", "--json", "--config", config).stdout
    )
    assert len(listed) > 100 and {d["status"] for d in listed} == {"sent"}
    assert len(receiver.requests) == len(listed)
    # The table stopped at the newest 50 without a word (a consumer's review).
    table = vigie("deliveries", "list", "--config", config).stdout
    assert "The newest 50 shown: --limit 500 shows more." in table

    with database_lock(tmp_path / "data" / "vigie.db"):  # queue one, then make another due
        vigie("deliveries", "retry", "2", "--config", config)
    before = len(receiver.requests)
    result = vigie("deliveries", "retry", "1", "--config", config)
    assert "Webhook #1 for bot" in result.stdout and "#2" not in result.stdout
    assert len(receiver.requests) == before + 1


def _calais_feed(folder: Path, count: int) -> Path:
    """A local feed of `count` items that the bundled rule `calais` matches."""
    items = "".join(
        f"<item><title>Calais: camp report {i}</title><link>https://news.example/{i}</link>"
        f"<description>Migrants near Calais, report number {i} of the day.</description></item>"
        for i in range(count)
    )
    feed = folder / "busy.rss"
    feed.write_text(f'<rss version="2.0"><channel><title>Busy</title>{items}</channel></rss>')
    return feed


def test_once_sums_up_a_consumers_many_webhooks_in_a_line_that_says_what_to_do(
    receiver: Receiver, tmp_path: Path
) -> None:
    """The first `vigie once` of 2,000 feeds printed 2,533 lines, one per webhook, 946 of them
    the same 500 of one consumer that was down: past twenty, a consumer's webhooks of one
    outcome are one line, and the one for those given up names the command that sends them
    again, which does."""
    down = Receiver()
    stop_down = start(down)
    try:
        down.answers = [Answer(500)] * 1000
        hooks = [
            {"name": "bot", "url": receiver.url(), "secret_env": SECRET_ENV, "tags": ["calais"]},
            {"name": "down", "url": down.url(), "secret_env": SECRET_ENV, "tags": ["calais"]},
        ]
        feed = _calais_feed(tmp_path, 25)
        config = write_delivery_config(tmp_path, webhooks=hooks, feeds=[{"url": str(feed)}])
        first = vigie("once", "--config", config)
        listed = json.loads(
            vigie("deliveries", "list", "--limit", "500", "--json", "--config", config).stdout
        )
        waiting = [d for d in listed if d["target"] == "down"]
        assert len(waiting) > 20 and {d["status"] for d in waiting} == {"pending"}
        lines = sorted(line for line in first.stdout.splitlines() if "Webhook" in line)
        assert len(lines) == 2, first.stdout  # the consumers are sent to side by side
        sent = len(listed) - len(waiting)
        assert lines[0].startswith(f"Webhooks for bot: {sent} sent ("), lines[0]
        assert re.match(
            rf"Webhooks for down: {len(waiting)} will retry from \d{{4}}-.* UTC: HTTP 500 ",
            lines[1],
        )
        assert "`vigie deliveries list --target down --status pending` lists them" in lines[1]

        # Their last attempt: given up (dead), with the command that sends them again.
        with sqlite3.connect(tmp_path / "data" / "vigie.db") as db:
            db.execute(
                "UPDATE deliveries SET attempts = 7, next_attempt = '2000-01-01T00:00:00+00:00'"
                " WHERE target = 'down'"
            )
        given_up = vigie("once", "--config", config)
        assert given_up.exit_code == 2
        [line] = [line for line in given_up.stdout.splitlines() if "Webhook" in line]
        assert line.startswith(f"Webhooks for down: {len(waiting)} dead: HTTP 500 "), line
        command = re.search(r"once fixed, `(vigie deliveries replay [^`]+)` sends them", line)
        assert command, line
        down.answers = []  # the consumer is back
        replayed = vigie(*command.group(1).split()[1:], "--config", config)
        assert replayed.exit_code == 0, replayed.output
        assert f"Webhooks for down: {len(waiting)} sent" in replayed.stdout
    finally:
        stop_down()


def test_the_summed_up_line_writes_thousands_with_their_separator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A first poll of 2,000 feeds: "Webhooks for casework-bot: 1604 sent (2,292 matches)"."""
    print_sent([Sent(i, "webhook", "bot", "sent", "", 1) for i in range(1, 1201)])
    assert capsys.readouterr().out == "Webhooks for bot: 1,200 sent (1,200 matches)\n"


def test_replay_sends_what_it_queued_again_and_nothing_else(
    receiver: Receiver, tmp_path: Path
) -> None:
    """A replay for one webhook sent every due delivery of every webhook (and digest)."""
    hooks = [
        {
            "name": name,
            "url": receiver.url(f"/{name}"),
            "secret_env": SECRET_ENV,
            "tags": ["calais"],
        }
        for name in ("bot", "other")
    ]
    config = write_delivery_config(tmp_path, webhooks=hooks)
    vigie("once", "--config", config)
    listed = json.loads(vigie("deliveries", "list", "--json", "--config", config).stdout)
    bots = [d["id"] for d in listed if d["target"] == "bot"]
    other = next(d["id"] for d in listed if d["target"] == "other")
    with database_lock(tmp_path / "data" / "vigie.db"):  # one of the other's queued, and due
        vigie("deliveries", "retry", str(other), "--config", config)
    before = len(receiver.requests)

    replayed = vigie(
        "deliveries", "replay", "--since", "1h", "--include-sent", "--target", "bot",
        "--config", config,
    )  # fmt: skip
    assert queued_again(len(bots)) in replayed.stdout
    assert [r.path for r in receiver.requests[before:]] == ["/bot"] * len(bots)
    listed = json.loads(vigie("deliveries", "list", "--json", "--config", config).stdout)
    assert [d["status"] for d in listed if d["id"] == other] == ["pending"]


def test_backtest_apply_does_not_send_what_was_sent_again(tmp_path: Path) -> None:
    """--apply rewrote every match of the rule as made now: a subscriber then got every old
    article in a new digest, though nothing about the rule had changed."""
    vigie("once", "--config", write_delivery_config(tmp_path))  # articles stored, then:
    time.sleep(1.1)  # a subscriber added a second later (times are stored to the second)
    desk = {"name": "desk", "email": "desk@newsroom.test", "tags": ["calais"]}
    config = write_delivery_config(tmp_path, subscribers=[{**desk, "schedule": "immediate"}])
    assert "Digest for desk: nothing new to send" in vigie("once", "--config", config).stdout
    applied = vigie("rules", "backtest", "calais", "--apply", "--config", config)
    assert applied.exit_code == 0, applied.output
    again = vigie("once", "--config", config)
    assert "Digest for desk: nothing new to send" in again.stdout, again.stdout


def test_backtest_apply_keeps_what_a_digest_carried_for_its_replay(tmp_path: Path) -> None:
    """--apply deleted the matches a narrowed rule no longer made, though a digest had carried
    them: `deliveries replay` then rebuilt that digest without them, over the archived .eml, and
    the summary did not say that anything was removed."""
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    desk = {"name": "desk", "email": "desk@newsroom.test", "tags": ["calais"]}
    config = write_delivery_config(tmp_path, subscribers=[{**desk, "schedule": "immediate"}])
    config.write_text(config.read_text().replace(str(REPO / "rules"), str(rules)))
    first = vigie("once", "--config", config).stdout
    sent = re.search(r"Digest #1 for desk \((\d+) articles?\)", first)
    assert sent is not None, first
    topics = (rules / "topics.toml").read_text(encoding="utf-8")
    start = topics.index("query = '''", topics.index('id = "calais"'))
    end = topics.index("'''", start + len("query = '''")) + 3
    narrowed = topics[:start] + 'query = "Sangatte"' + topics[end:]
    (rules / "topics.toml").write_text(narrowed, encoding="utf-8")
    report = json.loads(vigie("rules", "backtest", "calais", "--json", "--config", config).stdout)
    removed = len(report[0]["removed"])
    assert removed > 0
    applied = vigie("rules", "backtest", "calais", "--apply", "--config", config)
    assert f"{removed} removed" in applied.stdout, applied.stdout
    replayed = vigie(
        "deliveries", "replay", "--since", "1h", "--include-sent", "--config", config
    ).stdout
    assert f"Digest #1 for desk ({sent.group(1)} articles" in replayed, replayed
    again = json.loads(vigie("rules", "backtest", "calais", "--json", "--config", config).stdout)
    assert again[0]["removed"] == []  # kept for the record, not as a match


def test_backtest_apply_sends_the_matches_it_adds_to_the_webhooks_following_them(
    receiver: Receiver, tmp_path: Path
) -> None:
    """docs/rules.md says the matches --apply adds are new, sent by an immediate digest or a
    webhook: it stored them, but queued no webhook delivery, so consumers never heard of them."""
    hook = {"name": "bot", "url": receiver.url(), "secret_env": SECRET_ENV, "tags": ["harbour"]}
    config = write_delivery_config(tmp_path, webhooks=[hook])
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    config.write_text(config.read_text().replace(str(REPO / "rules"), str(rules)))
    vigie("once", "--config", config)
    assert receiver.requests == []  # no rule has the tag yet
    (rules / "harbour.toml").write_text(
        '[[rule]]\nid = "harbour"\nquery = "Calais"\ntags = ["harbour"]\n', encoding="utf-8"
    )
    report = vigie("rules", "backtest", "harbour", "--json", "--config", config).stdout
    added = len(json.loads(report)[0]["added"])
    applied = vigie("rules", "backtest", "harbour", "--apply", "--config", config)
    assert added > 0
    assert f"{added} webhook deliveries queued" in applied.stdout, applied.stdout
    db = sqlite3.connect(tmp_path / "data" / "vigie.db")
    made_on = db.execute(
        "SELECT m.revision, m.evidence_revision, a.revision FROM matches m "
        "JOIN articles a ON a.id = m.article_id WHERE m.rule_id = 'harbour'"
    ).fetchall()
    db.close()
    assert len(made_on) == added  # each made on its article's revision, as docs/database.md says
    assert all(ours == evidence == theirs for ours, evidence, theirs in made_on), made_on
    vigie("once", "--config", config)  # sends what is due
    assert len(receiver.requests) == added
    for request in receiver.requests:
        matched = request.verify()["data"]["rules"]
        assert [m["id"] for m in matched] == ["harbour"]
    again = vigie("rules", "backtest", "harbour", "--apply", "--config", config)
    assert "queued" not in again.stdout  # nothing new the second time


def test_backtest_apply_tells_webhooks_that_asked_of_the_matches_it_withdraws(
    receiver: Receiver, tmp_path: Path
) -> None:
    """A rule narrowed and applied undoes matches a consumer was sent: a webhook with
    withdrawals = true is told, article.withdrawn per article, as it is of a correction; the
    rule widened again and applied, each is article.matched again."""
    hook = {
        "name": "bot", "url": receiver.url(), "secret_env": SECRET_ENV, "tags": ["harbour"],
        "withdrawals": True,
    }  # fmt: skip
    config = write_delivery_config(tmp_path, webhooks=[hook])
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    config.write_text(config.read_text().replace(str(REPO / "rules"), str(rules)))
    harbour = rules / "harbour.toml"
    harbour.write_text(
        '[[rule]]\nid = "harbour"\nquery = "Calais"\ntags = ["harbour"]\n', encoding="utf-8"
    )
    vigie("once", "--config", config)
    sent = {request.verify()["data"]["article"]["id"] for request in receiver.requests}
    assert len(sent) > 1
    harbour.write_text(
        '[[rule]]\nid = "harbour"\nquery = "Calais AND zeppelin"\ntags = ["harbour"]\n',
        encoding="utf-8",
    )
    applied = vigie("rules", "backtest", "harbour", "--apply", "--config", config)
    assert f"{len(sent)} removed, {len(sent)} webhook deliveries queued" in applied.stdout
    told = vigie("once", "--config", config).stdout
    assert told.count("(1 match withdrawn) sent") == len(sent), told
    withdrawn = [request.verify() for request in receiver.requests[len(sent) :]]
    assert {p["type"] for p in withdrawn} == {"article.withdrawn"}
    assert {p["data"]["article"]["id"] for p in withdrawn} == sent
    assert all(p["data"]["rules"] == [{"id": "harbour", "name": "harbour"}] for p in withdrawn)

    harbour.write_text(
        '[[rule]]\nid = "harbour"\nquery = "Calais"\ntags = ["harbour"]\n', encoding="utf-8"
    )
    vigie("rules", "backtest", "harbour", "--apply", "--config", config)
    vigie("once", "--config", config)
    again = [request.verify() for request in receiver.requests[2 * len(sent) :]]
    assert {p["type"] for p in again} == {"article.matched"}
    assert {p["data"]["article"]["id"] for p in again} == sent


def test_a_webhook_carries_at_most_100_evidence_items_per_rule_and_their_total(
    receiver: Receiver, tmp_path: Path
) -> None:
    """An article repeating a matched paragraph hundreds of times made a body of megabytes,
    over what many receivers accept (nginx: 1 MB), retried until dead."""
    paragraph = "Migrants crossed the Channel from Calais on a small boat. "
    feed = tmp_path / "long.rss"
    feed.write_text(
        '<rss version="2.0"><channel><title>Long</title><item><title>Calais crossings</title>'
        f"<link>https://news.example/long</link><description>{paragraph * 400}</description>"
        "</item></channel></rss>"
    )
    hook = {"name": "bot", "url": receiver.url(), "secret_env": SECRET_ENV, "tags": ["calais"]}
    vigie(
        "once",
        "--config",
        write_delivery_config(tmp_path, webhooks=[hook], feeds=[{"url": str(feed)}]),
    )
    [request] = receiver.requests
    [rule] = [r for r in request.verify()["data"]["rules"] if r["id"] == "calais"]
    assert len(rule["evidence"]) == 100 < rule["evidence_total"]
    assert len(request.body) < 200_000


def test_commands_queue_while_the_service_holds_the_database(
    receiver: Receiver, tmp_path: Path
) -> None:
    hook = {"name": "bot", "url": receiver.url(), "secret_env": SECRET_ENV, "tags": ["calais"]}
    config = write_delivery_config(tmp_path, webhooks=[hook])
    vigie("once", "--config", config)
    before = len(receiver.requests)
    with database_lock(tmp_path / "data" / "vigie.db"), pytest.MonkeyPatch.context() as env:
        # The service, which has the secret, sends: a shell without it may queue.
        env.delenv(SECRET_ENV)
        result = vigie("deliveries", "retry", "1", "--config", config)
    assert result.exit_code == 0, result.stderr
    assert "Queued: the running service sends it within 5s." in result.stdout
    assert len(receiver.requests) == before
    listed = json.loads(vigie("deliveries", "list", "--json", "--config", config).stdout)
    assert [d["status"] for d in listed if d["id"] == 1] == ["pending"]


def test_retry_of_an_unknown_delivery_is_a_one_line_error(bundled: Path) -> None:
    Store(bundled.parent / "data" / "vigie.db").close()
    result = vigie("deliveries", "retry", "99", "--config", bundled)
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no delivery 99"


def test_replay_refuses_a_bad_since(bundled: Path) -> None:
    result = vigie("deliveries", "replay", "--since", "last week", "--config", bundled)
    assert result.exit_code == 1
    assert 'expected a date like 2026-11-20, a time, or a duration like "24h"' in result.stderr


def test_retry_of_a_digest_whose_articles_were_all_pruned_is_refused(bundled: Path) -> None:
    """Sent again, it would be an email saying nothing matched."""
    assert vigie("once", "--config", bundled).exit_code == 0  # digest #1, written to outbox/
    import sqlite3

    db = sqlite3.connect(bundled.parent / "data" / "vigie.db")
    with db:
        db.execute("UPDATE deliveries SET status = 'pending' WHERE id = 1")
        db.execute("DELETE FROM delivery_matches WHERE delivery_id = 1")
    result = vigie("deliveries", "retry", "1", "--config", bundled)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: digest #1 carries nothing any more: retention pruned it"
    )


def test_only_commands_that_send_need_the_webhook_secret(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's shell lacks the service's environment: checking rules, listing feeds or
    deliveries works there; a command that sends names the variable before doing anything."""
    hook = {"name": "bot", "url": receiver.url(), "secret_env": SECRET_ENV, "tags": ["calais"]}
    desk = {"name": "desk", "email": "desk@example.org", "tags": ["calais"]}
    config = write_delivery_config(tmp_path, webhooks=[hook], subscribers=[desk])
    monkeypatch.delenv(SECRET_ENV)
    Store(tmp_path / "data" / "vigie.db").close()  # as a service started elsewhere made it
    for args in (("rules", "check"), ("feeds", "list"), ("deliveries", "list")):
        result = vigie(*args, "--config", config)
        assert result.exit_code == 0, result.output
    expected = f"webhooks[0].secret_env: environment variable {SECRET_ENV} is not set or empty"
    for args in (("once",), ("deliveries", "replay", "--since", "1d")):
        result = vigie(*args, "--config", config)
        assert result.exit_code == 1
        assert expected in result.stderr
    # Digests need no webhook's secret (a new operator's review: digest send asked for it).
    emailed = vigie("digest", "send", "--config", config)
    assert emailed.exit_code == 0, emailed.stderr
    assert SECRET_ENV not in emailed.output + emailed.stderr
    asked = ("deliveries", "replay", "--since", "1d", "--target", "desk", "--config", config)
    replayed = vigie(*asked)
    assert replayed.exit_code == 0, replayed.stderr  # a subscriber's: no webhook secret needed
    # A mistyped time is said before a missing secret.
    mistyped = vigie("deliveries", "replay", "--since", "last week", "--config", config)
    assert mistyped.exit_code == 1 and "--since" in mistyped.stderr
    assert SECRET_ENV not in mistyped.stderr
    # What is wrong with the command comes first: there is no delivery 1 to send.
    assert vigie("deliveries", "retry", "1", "--config", config).stderr == "error: no delivery 1\n"
    assert receiver.requests == []
    with sqlite3.connect(tmp_path / "data" / "vigie.db") as db:
        assert db.execute("select count(*) from articles").fetchone() == (0,)  # nothing polled


def test_once_sends_no_empty_digest_before_the_slot_but_digest_send_does(tmp_path: Path) -> None:
    """`once` from cron every few minutes sent a "nothing matched" email at every run to a
    subscriber with send_empty; that email belongs to the subscriber's slot, or to an
    operator asking for it."""
    desk = {
        "name": "desk",
        "email": "desk@example.org",
        "tags": ["calais"],
        "schedule": "0 8 1 1 *",  # 1 January: not while this test runs
        "send_empty": True,
    }
    config = write_delivery_config(tmp_path, subscribers=[desk])
    first = vigie("once", "--config", config)
    assert re.search(r"Digest #1 for desk \(\d+ articles\) written", first.stdout)
    second = vigie("once", "--config", config)
    assert "Digest for desk: nothing new to send" in second.stdout
    asked = vigie("digest", "send", "desk", "--config", config)
    assert "Digest #2 for desk (0 articles) written" in asked.stdout
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 2


def test_a_digest_waiting_to_retry_is_said_and_digest_send_sends_it_now(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    """After a 451, `once` said "nothing new to send" and `digest send` sent nothing, though
    a digest was waiting for its retry."""
    desk = {"name": "desk", "email": "d@example.org", "tags": ALL_TAGS}
    smtp.replies = ["451 4.3.0 Try again later"]
    config = write_delivery_config(tmp_path, subscribers=[desk], smtp=smtp.smtp_settings())
    first = vigie("once", "--config", config)
    assert re.search(r"Digest #1 for desk \(\d+ articles\) will retry at .* UTC: 451", first.stdout)
    second = vigie("once", "--config", config)
    assert re.search(
        r"Digest #1 for desk waits to retry at \S+ \S+ UTC: 451 4.3.0 Try again later "
        r"\(`vigie deliveries retry 1` sends it now\)",
        second.stdout,
    ), second.stdout
    assert "nothing new to send" not in second.stdout
    sent = vigie("digest", "send", "desk", "--config", config)
    assert "Nothing new" not in sent.stdout
    assert re.search(r"Digest #1 for desk \(\d+ articles\) sent", sent.stdout), sent.stdout
    assert [m.recipients for m in smtp.messages] == [["d@example.org"]]
    assert vigie("digest", "send", "desk", "--config", config).stdout == "Nothing new to send.\n"


def test_deliveries_list_fits_a_narrow_terminal(bundled: Path) -> None:
    """Full timestamps took the width: the dates were cut to '2026-12-…' at 80 columns."""
    vigie("once", "--config", bundled)
    table = vigie("deliveries", "list", "--config", bundled)
    [line] = [line for line in table.stdout.splitlines() if " digest " in line]
    # "now" under a second after sending; a loaded machine may take a few seconds more.
    assert re.search(r"\bnewsroom\b.* sent +\d+ +1 +(now|\ds ago) +(now|\ds ago)\s*$", line), (
        table.stdout
    )
    assert "…" not in table.stdout


def test_digest_send_sends_a_digest_waiting_to_retry_beside_a_new_one(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    """With something new made for another subscriber, the digest waiting for its retry was
    left to its retry time."""
    desk = {"name": "desk", "email": "d@example.org", "tags": ALL_TAGS}
    team = {**desk, "name": "team", "email": "t@example.org", "schedule": "0 8 1 1 *"}
    config = write_delivery_config(
        tmp_path, subscribers=[desk, {**team, "send_empty": True}], smtp=smtp.smtp_settings()
    )
    smtp.replies = ["451 4.3.0 Try again later", "451 4.3.0 Try again later"]
    vigie("once", "--config", config)  # both digests wait for their retry
    sent = vigie("digest", "send", "--config", config)  # team also gets an empty one
    assert sorted(m.recipients[0] for m in smtp.messages) == [
        "d@example.org",
        "t@example.org",
        "t@example.org",
    ], sent.stdout


CAMP_STORY = (
    "Migrants were moved from a camp near Calais at dawn on Tuesday, volunteers said. Around "
    "80 people had been sleeping under tarpaulins beside the canal since the summer. Aid "
    "groups said the eviction left families without shelter as temperatures fell below "
    "freezing, and that many had nowhere to go but the dunes."
)
TEAR_GAS = " Witnesses said police officers used tear gas on the migrants as they packed."


def brief_feed(path: Path, name: str, items: list[tuple[str, str, str]]) -> None:
    """An RSS file of (guid, title, text) items."""
    entries = "".join(
        f"<item><title>{title}</title><link>https://{guid}.example/story</link>"
        f"<guid>{guid}</guid><pubDate>Tue, 01 Dec 2026 08:00:00 +0000</pubDate>"
        f"<description>{text}</description></item>"
        for guid, title, text in items
    )
    path.write_text(
        f'<rss version="2.0"><channel><title>{name}</title>{entries}</channel></rss>',
        encoding="utf-8",
    )


def camp_story_config(tmp_path: Path, smtp: dict[str, Any] | None = None) -> Path:
    """A wire feed with the camp story, an empty paper feed, and a desk following calais and
    police-violence at once."""
    brief_feed(tmp_path / "wire.rss", "Wire", [("wire-1", "Camp near Calais cleared", CAMP_STORY)])
    brief_feed(tmp_path / "paper.rss", "Daily Post", [])
    desk = {
        "name": "desk",
        "email": "desk@newsroom.test",
        "tags": ["calais", "police-violence"],
        "schedule": "immediate",
    }
    feeds = [
        {"url": str(tmp_path / "wire.rss"), "name": "Wire"},
        {"url": str(tmp_path / "paper.rss"), "name": "Daily Post"},
    ]
    return write_delivery_config(tmp_path, subscribers=[desk], feeds=feeds, smtp=smtp)


def the_paper_copies_it_with_tear_gas(tmp_path: Path) -> None:
    brief_feed(
        tmp_path / "paper.rss",
        "Daily Post",
        [("post-1", "Calais camp cleared", CAMP_STORY + TEAR_GAS)],
    )


def test_a_story_sent_before_says_so_when_a_later_copy_matches_another_rule(
    tmp_path: Path,
) -> None:
    """A later outlet's copy, with one sentence more, matched a rule the story had not: the next
    digest showed the story again as if it were new, its first sending unmentioned."""
    config = camp_story_config(tmp_path)
    first = vigie("once", "--config", config).stdout
    assert "Digest #1 for desk (1 article)" in first, first
    the_paper_copies_it_with_tear_gas(tmp_path)
    second = vigie("once", "--config", config).stdout
    written = re.search(r"Digest #2 for desk \(1 article\) written: (\S+\.eml)", second)
    assert written, second
    message = email.message_from_bytes(Path(written[1]).read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Police" in text and "Calais camp cleared" in text
    [(day, clock)] = re.findall(r"Story first sent to you on (\w{3} \d+ \w{3}), (\d\d:\d\d)", text)
    assert f"Story first sent to you on {day}, {clock}" in html
    listed = json.loads(vigie("deliveries", "list", "--json", "--config", config).stdout)
    [sent] = [datetime.fromisoformat(d["sent"]) for d in listed if d["id"] == 1]
    assert f"{sent:%a} {sent.day} {sent:%b, %H:%M}" == f"{day}, {clock}"


def test_a_story_whose_first_digest_is_still_retrying_is_not_said_sent(
    smtp: SmtpServer, tmp_path: Path
) -> None:
    """The note said "first sent to you" while that digest was still being retried (and might
    never arrive): only a digest the mail server took counts."""
    config = camp_story_config(tmp_path, smtp.smtp_settings())
    smtp.replies = ["451 4.3.0 Try again later"]
    assert "will retry" in vigie("once", "--config", config).stdout
    the_paper_copies_it_with_tear_gas(tmp_path)
    # #1 waits for its retry, not due yet; #2 is taken.
    second = vigie("once", "--config", config).stdout
    assert "Digest #2 for desk (1 article) sent" in second, second
    [taken] = smtp.messages
    text = email.message_from_bytes(taken.data, policy=email.policy.default)
    body = text.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Calais camp cleared" in body and "first sent to you" not in body
