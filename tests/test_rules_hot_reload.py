"""`vigie run` picks up edited rule files; a broken edit is logged and the last good rules stay."""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO, SAMPLES, LoopbackServer
from test_cli import wait_for

GOOD = '[[rule]]\nid = "storms"\ntags = ["weather"]\nquery = "storm~ NEAR/5 warning~"\n'
BROKEN = '[[rule]]\nid = "storms"\ntags = ["weather"]\nquery = "storm~ NEAR/5 (warning~"\n'
FIXED = '[[rule]]\nid = "gales"\ntags = ["weather"]\nquery = "gusts"\n'


def matched_rules(database: Path) -> set[tuple[str, str]]:
    try:
        with sqlite3.connect(database) as conn:
            rows = conn.execute(
                "SELECT f.name, m.rule_id FROM matches m JOIN articles a ON a.id = m.article_id "
                "JOIN feeds f ON f.id = a.feed_id"
            ).fetchall()
    except sqlite3.OperationalError:
        return set()
    return set(rows)


def test_broken_edit_is_logged_and_last_good_rules_stay(
    server: LoopbackServer, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    rss = (SAMPLES / "coastal-herald.rss").read_bytes()
    server.route("/first.rss", rss)
    server.route("/second.rss", rss.replace(b"coastal-herald", b"second-herald"))
    server.route("/third.rss", rss.replace(b"coastal-herald", b"third-herald"))
    rules = tmp_path / "rules"
    rules.mkdir()
    rule_file = rules / "weather.toml"
    rule_file.write_text(GOOD, encoding="utf-8")
    config = write_config(
        [{"url": server.url("/first.rss"), "name": "first"}],
        polling={"tick": "0.2s"},
        rules={"paths": ["rules"], "reload": "0.2s"},
    )
    database = tmp_path / "data" / "vigie.db"
    log = tmp_path / "run.log"

    def add_feed(name: str) -> None:
        subprocess.run(
            [
                sys.executable,
                str(REPO / "service.py"),
                "feeds",
                "add",
                server.url(f"/{name}.rss"),
                "--name",
                name,
                "--config",
                str(config),
            ],
            check=True,
            capture_output=True,
        )

    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "service.py"), "run", "--config", str(config)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_for(lambda: ("first", "storms") in matched_rules(database), "first match", log)

        rule_file.write_text(BROKEN, encoding="utf-8")
        wait_for(lambda: "rule file error" in log.read_text(), "the error to be logged", log)
        # The rules kept are counted, as `vigie status` counts them: not what the files hold.
        assert f"rule file error, keeping the last good 1 rule: {rule_file}:4:" in log.read_text()
        add_feed("second")  # polled while the broken file is on disk
        wait_for(lambda: ("second", "storms") in matched_rules(database), "old rules", log)

        rule_file.write_text(FIXED, encoding="utf-8")
        wait_for(lambda: log.read_text().count("rules loaded") >= 2, "the fixed rules", log)
        add_feed("third")
        wait_for(lambda: ("third", "gales") in matched_rules(database), "new rules", log)
        assert ("third", "storms") not in matched_rules(database)
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    assert "Traceback" not in log.read_text(), log.read_text()[-6000:]


def test_rules_replaced_by_a_reload_are_freed(tmp_path: Path) -> None:
    """The service keeps its rules out of garbage collections (scheduler.keep_long_lived):
    rules replaced by an edit must still be freed, not kept for the life of the process."""
    import gc
    import weakref

    from monitor.rules.files import RuleBook
    from monitor.scheduler import reload_rules_job

    rule_file = tmp_path / "weather.toml"
    rule_file.write_text(GOOD, encoding="utf-8")
    book = RuleBook([tmp_path])
    try:
        reload_rules_job(book)
        first = weakref.ref(book.index)
        assert gc.get_freeze_count() > 0  # the rules in force are set apart
        rule_file.write_text(FIXED, encoding="utf-8")
        reload_rules_job(book)  # sees the edit
        reload_rules_job(book)  # loads it, unchanged since
        assert [r.rule.id for r in book.index.rules] == ["gales"]
        assert first() is None  # the replaced rules are gone, frozen or not
    finally:
        gc.unfreeze()


def test_a_reload_that_drops_a_followed_tag_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A tag renamed in the rule files leaves a subscriber that follows it with nothing."""
    import gc

    from monitor.config_delivery import DeliveryConfig, SubscriberConfig
    from monitor.rules.files import RuleBook
    from monitor.scheduler import reload_rules_job

    rule_file = tmp_path / "weather.toml"
    rule_file.write_text(GOOD, encoding="utf-8")
    desk = SubscriberConfig(name="desk", email="desk@example.org", tags=("weather",))
    delivery = DeliveryConfig(subscribers=(desk,))
    book = RuleBook([tmp_path])
    try:
        with caplog.at_level(logging.WARNING):
            reload_rules_job(book, delivery)
            assert not caplog.records
            rule_file.write_text(GOOD.replace('["weather"]', '["wind"]'), encoding="utf-8")
            reload_rules_job(book, delivery)
            reload_rules_job(book, delivery)
        assert [c.rule.tags for c in book.index.rules] == [("wind",)]
        assert [r.getMessage() for r in caplog.records] == [
            "subscribers[0].tags: desk follows tag 'weather', which no enabled rule has"
        ]
    finally:
        gc.unfreeze()


def test_rules_taken_out_of_the_files_are_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A rule file deleted under `vigie run` (or rewritten by a copy that removes it first) was
    logged at INFO as "0 rules loaded": the articles stored meanwhile went unmatched by its
    rules without a word."""
    from monitor.rules.files import RuleBook

    (tmp_path / "weather.toml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "wind.toml").write_text(FIXED, encoding="utf-8")
    book = RuleBook([tmp_path])
    book.reload_if_changed()
    (tmp_path / "weather.toml").unlink()
    with caplog.at_level(logging.WARNING):
        book.reload_if_changed()
        assert book.reload_if_changed()  # the edit settled
    assert [c.rule.id for c in book.index.rules] == ["gales"]
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("1 rule no longer in the rule files: storms; ")
