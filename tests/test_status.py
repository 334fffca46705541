"""`vigie status`: what an operator (or the monitoring system that runs the command) learns about
an unattended Vigie. Each problem that would leave subscribers thinking the news was quiet is
named and makes the command exit with status 2; the rest is reported and exits 0."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Callable
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
from process_support import rows, running, stop, wait_until

from monitor.cli import main
from monitor.rules.index import compile_rule
from monitor.scheduler import database_lock

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


def break_first_query(rule_file: Path) -> None:
    """An edit that does not load: the file's first rule (of 5 in the bundled rules) is left
    with an unclosed bracket, the others load."""
    text = rule_file.read_text()
    rule_file.write_text(text.replace("query = '''", "query = '''(calais AND ", 1))


def test_a_rule_file_that_does_not_load_is_a_problem(config: Path) -> None:
    """No service runs: status says what the files hold, and that no service starts on them
    (it said "the running service keeps the rules it loaded before" of a stopped one)."""
    rules = config.parent / "rules" / "topics.toml"
    break_first_query(rules)
    result = vigie("status", "--config", config)
    assert result.exit_code == 2
    assert "  service     not running\n" in result.output
    assert "  rules       4 rules in 2 files, 1 error\n" in result.output
    [problem] = [line for line in result.output.splitlines() if f"{rules}:" in line]
    assert problem.endswith("(`vigie run` and `vigie once` refuse to start until it is fixed)")
    assert "running service" not in result.output


def test_status_says_which_matcher_this_install_runs(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installed without a C compiler, Vigie matches at about a third of the speed and said
    nothing of it: status names the loops the install has, and how to get the C ones."""
    from monitor.rules import native

    result = vigie("status", "--config", config)
    shown = "C loops" if native.NATIVE else "Python loops"
    assert f"  matcher     {shown}" in result.output
    monkeypatch.setattr(native, "NATIVE", False)
    result = vigie("status", "--config", config)
    assert "  matcher     Python loops, about a third of the speed" in result.output
    assert "install them and reinstall Vigie" in result.output
    result = vigie("status", "--config", config, "--json")
    assert json.loads(result.output)["matcher"] == "python"


def test_status_compiles_no_rule_while_the_files_are_as_the_last_poll_read_them(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 100,000 rules, each `vigie status` (from cron, every quarter of an hour) compiled
    them all, 30 s, to find the errors that `vigie once` or the service had just looked for.
    While the files are as that load read them, its count of errors is taken; a file edited
    since is compiled again, and its error found."""
    from monitor.rules import files

    compiled: list[str] = []

    def counted_compile(rule, *args, **kwargs):
        compiled.append(rule.id)
        return compile_rule(rule, *args, **kwargs)

    monkeypatch.setattr(files, "compile_rule", counted_compile)
    result = vigie("status", "--config", config)
    assert "  rules       5 rules in 2 files, 0 errors\n" in result.output
    assert compiled == []

    break_first_query(config.parent / "rules" / "topics.toml")
    result = vigie("status", "--config", config)
    assert result.exit_code == 2
    assert "  rules       4 rules in 2 files, 1 error\n" in result.output
    assert "calais" in compiled


@pytest.fixture
def served(tmp_path: Path, write_config: Callable[..., Path]) -> Path:
    """A config for `vigie run` over the sample feeds, with a copy of the bundled rules (5 in
    2 files) that it checks for edits every 0.2 s."""
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    return write_config(
        SAMPLE_FEEDS,
        polling={"tick": "0.5s"},
        rules={"paths": ["rules"], "reload": "0.2s"},
    )


def rules_loaded(log: Path) -> int:
    return log.read_text().count("rules loaded:")


def test_status_counts_the_rules_the_running_service_keeps_not_the_broken_files(
    served: Path,
) -> None:
    """An edit that does not load leaves the service matching with its 5 last good rules:
    status counted the files on disk ("4 rules"), and the operator took the edit's loss of a
    rule for what was in force."""
    log = served.parent / "run.log"
    rule_file = served.parent / "rules" / "topics.toml"
    with running(served, log, "run") as service:
        wait_until(lambda: "vigie running" in log.read_text(), "the service to start", log)
        assert "vigie running: 4 feeds, 5 rules" in log.read_text()
        code, found = status(served)
        assert code == 0 and (found["rules"], found["rule_files"]) == (5, 2), found

        break_first_query(rule_file)
        wait_until(lambda: "rule file error" in log.read_text(), "the error to be logged", log)
        code, found = status(served)
        assert (code, found["rules"], found["rule_files"]) == (2, 5, 2)
        [error] = found["rule_errors"]
        assert error.startswith(f"{rule_file}:")
        assert found["rules_loaded"] is not None  # what tells a script the 5 are in force
        result = vigie("status", "--config", served)
        assert result.exit_code == 2, result.output
        assert re.search(
            r"\n  rules       5 rules in force from 2 files, loaded (\d+s ago|just now);"
            r" 1 error in the files on disk, which are not loaded\n",
            result.output,
        ), result.output
        [problem] = [line for line in result.output.splitlines() if f"{rule_file}:" in line]
        assert re.search(
            r"\(not loaded: the running service keeps the 5 rules it loaded at"
            r" \d{4}-\d\d-\d\d \d\d:\d\d UTC, its last good ones\)$",
            problem,
        ), problem
        stop(service, log)
    # Stopped, the files on disk are what the next start would load: it refuses to.
    result = vigie("status", "--config", served)
    assert "  rules       4 rules in 2 files, 1 error\n" in result.output
    assert "refuse to start until it is fixed" in result.output


def test_status_follows_the_rules_the_running_service_reloads(served: Path) -> None:
    """A good edit comes into force: status says so once the service has loaded it, and
    counts a disabled rule apart, as the service's log leaves it out."""
    log = served.parent / "run.log"
    rule_file = served.parent / "rules" / "topics.toml"
    with running(served, log, "run") as service:
        wait_until(lambda: rules_loaded(log) == 1, "the service to start", log)
        text = rule_file.read_text()
        rule_file.write_text(text.replace('id = "calais"', 'id = "calais"\nenabled = false'))
        wait_until(lambda: rules_loaded(log) == 2, "the edit to load", log)
        assert "rules loaded: 4 rules" in log.read_text()
        # Recorded just after that line is logged.
        database = served.parent / "data" / "vigie.db"
        in_force = "SELECT rules, disabled FROM rules_in_force"
        wait_until(lambda: rows(database, in_force) == [(4, 1)], "the edit's record", log)
        result = vigie("status", "--config", served)
        assert result.exit_code == 0, result.output
        shown = "  rules       4 rules in force (and 1 disabled) from 2 files, loaded"
        assert shown in result.output
        assert "0 errors in the files on disk\n" in result.output
        code, found = status(served)
        assert (found["rules"], found["rules_disabled"]) == (4, 1)
        stop(service, log)


def test_a_service_still_loading_its_rules_is_not_taken_for_the_one_before(config: Path) -> None:
    """The record of the rules in force is the latest service's: one that holds the database
    and has not recorded its own (it is loading them) is not said to run on its predecessor's,
    which may be other rules; status then counts the files, and says so."""
    database = config.parent / "data" / "vigie.db"
    with sqlite3.connect(database) as db:
        # As a previous service, another process, recorded them.
        db.execute("UPDATE rules_in_force SET rules = 99, pid = pid + 1")
    db.close()
    with database_lock(database):  # a service of this process, which recorded nothing
        result = vigie("status", "--config", config)
    assert "  rules       5 rules in 2 files on disk, 0 errors\n" in result.output
    assert "99" not in result.output


def test_a_disabled_rule_is_counted_apart(config: Path) -> None:
    """The service logs the rules that match ("4 rules"); status counted every rule in the
    files, the disabled one too ("5 rules")."""
    rule_file = config.parent / "rules" / "topics.toml"
    text = rule_file.read_text()
    rule_file.write_text(text.replace('id = "calais"', 'id = "calais"\nenabled = false'))
    result = vigie("status", "--config", config)
    assert "  rules       4 rules (and 1 disabled) in 2 files, 0 errors\n" in result.output


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
