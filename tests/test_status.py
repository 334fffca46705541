"""`vigie status`: what an operator (or the monitoring system that runs the command) learns about
an unattended Vigie. Each problem that would leave subscribers thinking the news was quiet is
named and makes the command exit with status 2; the rest is reported and exits 0."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import REPO, LoopbackServer
from delivery_support import (
    ALL_TAGS,
    SAMPLE_FEEDS,
    SECRET_ENV,
    Answer,
    Receiver,
    SmtpServer,
    write_delivery_config,
)

from monitor.cli import main

DESK = {
    "name": "desk",
    "email": "desk@newsroom.test",
    "tags": ["calais"],
    "schedule": "immediate",
}


def vigie(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def config(tmp_path: Path, smtp: SmtpServer) -> Path:
    """The sample feeds, one feed whose file is gone, a copy of the bundled rules (to edit), a
    subscriber served by the loopback SMTP server; polled and delivered once."""
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    gone = {"url": str(tmp_path / "gone.rss"), "name": "Gone Gazette"}
    path = write_delivery_config(
        tmp_path, subscribers=[DESK], smtp=smtp.smtp_settings(), feeds=[*SAMPLE_FEEDS, gone]
    )
    path.write_text(path.read_text().replace(str(REPO / "rules"), str(tmp_path / "rules")))
    (tmp_path / "gone.rss").write_text(
        "<rss version='2.0'><channel><title>Gone Gazette</title><item><guid>g1</guid>"
        "<title>Harbour fête draws crowds</title></item></channel></rss>"
    )
    assert vigie("once", "--config", path).exit_code == 0
    (tmp_path / "gone.rss").unlink()  # the feed worked, and now fails
    assert vigie("once", "--config", path).exit_code == 0
    return path


def status(config: Path, *options: str) -> tuple[int, dict]:
    result = vigie("status", "--config", config, "--json", *options)
    return result.exit_code, json.loads(result.output)


def test_a_polling_service_with_one_broken_feed_is_healthy(config: Path) -> None:
    result = vigie("status", "--config", config)
    assert result.exit_code == 0, result.output
    assert "healthy" in result.output.splitlines()[0]
    assert "Gone Gazette" in result.output  # reported, but one feed down is not a problem
    code, found = status(config)
    assert code == 0 and found["problems"] == []
    assert found["feeds"] == 5 and found["sent"] == {"digest": 1, "webhook": 0}
    assert [f["name"] for f in found["failing_feeds"]] == ["Gone Gazette"]
    assert found["articles"] > 0 and found["rules"] > 0
    assert "." not in found["checked"]  # to the second, as every stored time
    # how far back the database reaches, and how long it keeps articles (a researcher's review)
    assert found["oldest_article"] <= found["newest_article"]
    assert found["retention_seconds"] == 90 * 86400
    assert "each kept 90 days after first seen (storage.retention)" in result.output


def test_feeds_left_unpolled_are_a_problem(config: Path) -> None:
    """As when `vigie run` stopped two hours ago: every feed came due and none was polled."""
    database = config.parent / "data" / "vigie.db"
    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).isoformat(timespec="seconds")
    with sqlite3.connect(database) as db:
        db.execute("UPDATE feeds SET next_poll = ?", [two_hours_ago])
    db.close()
    code, found = status(config)
    assert code == 2
    [problem] = found["problems"]
    assert "5 of 5 feeds due since" in problem and "no `vigie run` is polling" in problem
    assert status(config, "--stale", "3h")[0] == 0  # a cron job polling every few hours


def test_a_rule_file_that_does_not_load_is_a_problem(config: Path) -> None:
    """The running service keeps its last good rules: the edit is not in force, and nothing
    else would tell the operator who made it."""
    rules = config.parent / "rules" / "topics.toml"
    text = rules.read_text()
    rules.write_text(text.replace("query = '''", "query = '''(calais AND ", 1))
    result = vigie("status", "--config", config)
    assert result.exit_code == 2
    assert f"{rules}:" in result.output
    assert "keeps the rules it loaded before" in result.output


def test_a_refused_digest_is_a_problem_until_it_is_sent(config: Path, smtp: SmtpServer) -> None:
    newer = config.parent / "samples-news.rss"
    newer.write_bytes((REPO / "samples" / "feeds" / "coastal-herald.rss").read_bytes())
    smtp.replies = ["550 5.7.1 Message rejected as spam"]
    text = config.read_text().replace(
        str(REPO / "samples" / "feeds" / "coastal-herald.rss"), str(newer)
    )
    config.write_text(text)
    # A new item in a feed, matched and sent at once, and refused by the mail server.
    body = newer.read_text()
    item = body.index("<item>")
    extra = (
        "<item><title>Calais: migrants' camp cleared again</title>"
        "<link>https://coastal-herald.example.org/news/calais-camp-cleared</link>"
        "<guid>calais-camp-cleared-2</guid>"
        "<description>Police cleared the migrants' camp near Calais at dawn.</description></item>"
    )
    newer.write_text(body[:item] + extra + body[item:])
    assert vigie("once", "--config", config).exit_code == 2  # a digest failed for good
    code, found = status(config)
    assert code == 2
    [problem] = found["problems"]
    assert "550 5.7.1 Message rejected as spam" in problem
    delivery = problem.split("#", 1)[1].split(" ", 1)[0]
    assert f"vigie deliveries retry {delivery}" in problem
    assert vigie("deliveries", "retry", delivery, "--config", config).exit_code == 0
    code, found = status(config)
    assert code == 0 and found["problems"] == []
    assert found["sent"]["digest"] == 2  # the first digest, and the one retried


def test_a_webhook_endpoint_gone_is_a_problem_until_its_url_changes(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.answers = [Answer(410)]
    hook = {"name": "bot", "url": receiver.url(), "secret_env": SECRET_ENV, "tags": ALL_TAGS}
    path = write_delivery_config(tmp_path, webhooks=[hook])
    assert vigie("once", "--config", path).exit_code == 2  # as status: a consumer misses news
    code, found = status(path)
    assert code == 2
    assert found["disabled_webhooks"][0]["name"] == "bot"
    assert any(p.startswith("webhook 'bot' disabled since") for p in found["problems"])
    path.write_text(path.read_text().replace(receiver.url(), receiver.url("/v2/hook")))
    code, found = status(path)
    assert found["disabled_webhooks"] == []
    assert not any("disabled since" in p for p in found["problems"])
    # Its failed deliveries can go to the new url (`deliveries replay`): still problems.
    assert found["failed_or_dead"] > 0 and code == 2
    # Once it is removed, no retry can send them: no problem any more.
    text = path.read_text()
    path.write_text(text[: text.index("[[webhooks]]")])
    code, found = status(path)
    assert (code, found["problems"]) == (0, [])


def test_a_feed_never_read_is_a_problem(tmp_path: Path) -> None:
    """Never once read since it was added: a mistyped address, more likely than an outage."""
    typo = {"url": str(tmp_path / "feeds" / "border-wacth.rss"), "name": "Border Watch"}
    path = write_delivery_config(tmp_path, feeds=[*SAMPLE_FEEDS, typo])
    vigie("once", "--config", path)
    code, found = status(path)
    assert code == 2
    [problem] = found["problems"]
    assert problem.startswith("Border Watch has never been read (cannot read file")
    assert problem.endswith("check its address")


def test_a_feed_never_read_because_its_server_asks_for_time_is_not_a_typo(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """After a 2,000-feed import, the ten feeds status named were 429s, each told "check its
    address": the server asked for time, and nothing is wrong with the address."""
    server.route("/busy.rss", b"slow down", status=429, headers={"Retry-After": "3600"})
    busy = {"url": server.url("/busy.rss"), "name": "Busy Wire"}
    path = write_delivery_config(tmp_path, feeds=[*SAMPLE_FEEDS, busy])
    vigie("once", "--config", path)
    code, found = status(path)
    [problem] = found["problems"]
    assert code == 2 and problem.startswith("Busy Wire has never been read (HTTP 429")
    assert problem.endswith("its server asks Vigie to wait, and is asked again when it said")


def test_many_feeds_never_read_are_ten_named_and_the_rest_counted(tmp_path: Path) -> None:
    """An OPML of 2,000 feeds imported at once had 107 never read: status listed 107 problems,
    a page of them, each saying the same."""
    typos = [{"url": str(tmp_path / f"typo-{i:02}.rss"), "name": f"Typo {i:02}"} for i in range(13)]
    path = write_delivery_config(tmp_path, feeds=[*SAMPLE_FEEDS, *typos])
    vigie("once", "--config", path)
    code, found = status(path)
    assert code == 2
    assert len(found["failing_feeds"]) == 13  # every one, for scripts
    named = [p for p in found["problems"] if "has never been read" in p]
    assert len(named) == 10 and len(found["problems"]) == 11
    assert found["problems"][-1] == (
        "and 3 more feeds never read since they were added (`vigie feeds list --failing`"
        " lists them)"
    )
    shown = vigie("status", "--config", path).output
    assert "11 problems" in shown.splitlines()[0]
    assert "and 3 more (`vigie feeds list --failing`)" in shown  # the failing feeds' list


def test_following_a_tag_no_rule_has_is_a_problem(tmp_path: Path) -> None:
    """A subscriber following "migrant" (no rule has that tag) receives nothing, silently."""
    desk = {**DESK, "tags": ["migrant"]}
    path = write_delivery_config(tmp_path, subscribers=[desk])
    vigie("once", "--config", path)
    code, found = status(path)
    assert code == 2
    assert found["problems"] == [
        "desk follows tag 'migrant', which no enabled rule has: they receive nothing of it"
    ]


def test_every_feed_failing_is_a_problem(tmp_path: Path) -> None:
    path = write_delivery_config(
        tmp_path, feeds=[{"url": str(tmp_path / f"gone-{i}.rss")} for i in range(3)]
    )
    vigie("once", "--config", path)
    code, found = status(path)
    assert code == 2
    assert any("every feed fails" in p for p in found["problems"])


def test_a_disk_about_to_fill_is_a_problem(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash review filled the disk under a running service: nothing was stored for 40 s
    and status said healthy, as it would have for the 30 minutes before feeds were overdue."""
    code, found = status(config)
    free = shutil.disk_usage(config.parent).free
    assert code == 0 and abs(found["disk_free_bytes"] - free) < 100_000_000
    from monitor import health

    monkeypatch.setattr(health, "LOW_DISK", free * 2)  # this disk, as if it were that full
    code, found = status(config)
    assert code == 2
    assert any("free on the database's disk" in p for p in found["problems"]), found
    assert "GB free" in vigie("status", "--config", config).output


def test_status_before_any_database_is_a_one_line_error(tmp_path: Path) -> None:
    path = write_delivery_config(tmp_path)
    result = CliRunner().invoke(main, ["status", "--config", str(path)])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "no database there yet" in result.output
    assert not (tmp_path / "data" / "vigie.db").exists()


def test_a_folder_given_as_config_is_an_error_not_a_problem(tmp_path: Path) -> None:
    """--config naming a folder exited 2, click's usage error: what status says of problems
    that make subscribers miss news (a new operator's review). A config that cannot be read
    exits 1, as every other."""
    result = CliRunner().invoke(main, ["status", "--config", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output == f"error: {tmp_path}: is a folder: pass the config.toml file in it\n"


def test_a_bad_duration_is_a_one_line_error(config: Path) -> None:
    result = CliRunner().invoke(main, ["status", "--config", str(config), "--stale", "soon"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        'error: --stale: expected a duration like "30m", "12h" or "7d", got "soon"'
    )
