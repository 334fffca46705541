"""config.toml loading: typed values, relative paths, one-line errors (file, key, expectation)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO

from monitor.config import load_config, parse_duration, parse_size
from monitor.errors import ConfigError


def config_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    where = re.match(rf"{re.escape(str(path))}(:[0-9]+)?: ", message)
    assert where, message
    return message[where.end() :]


def test_bundled_config_loads() -> None:
    config = load_config(REPO / "config.toml")
    assert len(config.feeds) == 4
    assert config.fetch.allow_private is False
    assert config.fetch.max_bytes == 10_000_000
    assert config.polling.interval == 1800
    assert config.feeds[2].interval == 900
    assert config.feeds[1].language == "fr"
    assert config.feeds[0].tags == ("uk", "local")
    for feed in config.feeds:
        assert feed.url.startswith("file://")
        assert Path(feed.url.removeprefix("file://")).is_file()


def test_a_config_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    """Windows Notepad saves UTF-8 with a byte order mark, which TOML parsers refuse."""
    path = tmp_path / "config.toml"
    path.write_text((REPO / "config.toml").read_text(encoding="utf-8"), encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert len(load_config(path).feeds) == 4


def test_a_config_saved_as_windows_1252_names_the_line_and_the_mend(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes('[storage]\n# données de Vigie\ndatabase = "vigie.db"\n'.encode("cp1252"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}:2: cannot be read: not UTF-8 (byte 0xe9, 'é' in Windows-1252): save the file"
        " as UTF-8"
    )


def test_written_config_has_typed_values(write_config: Callable[..., Path]) -> None:
    path = write_config(
        [{"url": "http://127.0.0.1:9/feed", "interval": "90s", "tags": ["a", "b"]}],
        fetch={"max_bytes": "512KB", "max_redirects": 2, "deadline": "1.5s"},
    )
    config = load_config(path)
    assert config.fetch.max_bytes == 512_000
    assert config.fetch.max_redirects == 2
    assert config.fetch.deadline == 1.5
    assert config.fetch.allow_private is True
    assert config.feeds[0].interval == 90
    assert config.feeds[0].tags == ("a", "b")
    assert config.feeds[0].url == "http://127.0.0.1:9/feed"


def test_defaults_apply_to_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("", encoding="utf-8")
    config = load_config(path)
    assert config.feeds == ()
    assert config.fetch.deadline == 30
    assert config.fetch.allow_private is False
    assert config.polling.max_backoff == 86400
    assert config.polling.max_cycle == 60
    assert config.database == tmp_path / "data" / "vigie.db"


def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "site"
    (folder / "feeds").mkdir(parents=True)
    (folder / "config.toml").write_text(
        '[storage]\ndatabase = "db/v.db"\n[rules]\npaths = ["my rules"]\n'
        '[[feeds]]\nurl = "feeds/local feed.rss"\n',
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("..") / "site" / "config.toml")
    assert config.feeds[0].url == (folder / "feeds" / "local feed.rss").resolve().as_uri()
    assert config.database == folder.resolve() / "db" / "v.db"
    assert config.rules.paths == (folder.resolve() / "my rules",)


def test_bad_feed_interval_names_index_key_and_expectation(tmp_path: Path) -> None:
    message = config_error(
        tmp_path,
        '[[feeds]]\nurl = "a.rss"\n\n[[feeds]]\nurl = "b.rss"\ninterval = "fast"\n',
    )
    assert message.startswith('feeds[1].interval: expected a duration like "15m", got ')
    assert message.endswith("fast'") or message.endswith('fast"')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[fetch]\nmax_bytes = "lots"',
            'fetch.max_bytes: expected a size like "10MB", with its unit',
        ),
        ('[fetch]\nallow_private = "yes"', "fetch.allow_private: expected true or false"),
        (
            "[fetch]\nmax_redirects = -1",
            "fetch.max_redirects: expected a whole number from 1 to 1000",
        ),
        ("[fetch]\nconcurrency = 2.5", "fetch.concurrency: expected a whole number from 1 to 1000"),
        (
            "[fetch]\nconcurrency = 1000000000",
            "fetch.concurrency: expected a whole number from 1 to 1000",
        ),
        ("[smtp]\nport = 99999", "smtp.port: expected a port number from 1 to 65535"),
        ("[fetch]\nmax_bytes = 5", 'fetch.max_bytes: expected a size like "10MB", with its unit'),
        ('[polling]\ntick = "-5m"', 'polling.tick: expected a duration like "15m"'),
        ("[polling]\nmax_cycle = 60", 'polling.max_cycle: expected a duration like "15m"'),
        (
            '[polling]\nmax_cycle = "0"',
            'polling.max_cycle: expected a duration like "15m", more than 0',
        ),
        # A timeout of 0 failed every feed with a traceback; a century overflowed the dates.
        (
            '[fetch]\nconnect_timeout = "0"',
            'fetch.connect_timeout: expected a duration like "15m", more than 0',
        ),
        (
            '[[feeds]]\nurl = "a.rss"\ninterval = "99999999999d"',
            'feeds[0].interval: expected a duration like "15m", at most 100 years',
        ),
        (
            '[storage]\nretention = "3000000d"',
            'storage.retention: expected a duration like "15m", at most 100 years',
        ),
        ('[rules]\npaths = "rules"', "rules.paths: expected a list of strings"),
        ('[storage]\ndatabase = ""', "storage.database: expected a file path"),
        ('[[feeds]]\nurl = "a.rss"\ntags = "uk"', "feeds[0].tags: expected a list of strings"),
        ("[[feeds]]\nurl = 42", "feeds[0].url: expected a string"),
    ],
)
def test_wrong_type_names_key_and_expectation(tmp_path: Path, text: str, expected: str) -> None:
    assert config_error(tmp_path, text).startswith(expected + ", got ")


CONFIG_WITH_FEEDS = """\
[fetch]
deadline = "30s"

[[feeds]]
url = "a.rss"

[[feeds]]   # the second
url = "b.rss"
'tags' = ["uk"]
"""


@pytest.mark.parametrize(
    ("edit", "line", "key"),
    [
        (('deadline = "30s"', 'deadline "30s"'), 0, "not valid TOML"),  # says its own line
        (('deadline = "30s"', 'deadline = "soon"'), 2, "fetch.deadline"),
        (('url = "b.rss"\n', 'url = "b.rss"\ninterval = "fast"\n'), 9, "feeds[1].interval"),
        (("'tags' = [\"uk\"]", "'tags' = 3"), 9, "feeds[1].tags"),
        (('url = "b.rss"\n', 'name = "B"\n'), 7, "feeds[1].url"),  # missing: the table's header
        (('url = "b.rss"', 'url = "a.rss"'), 8, "feeds[1].url"),  # listed twice
        (("[fetch]", "[fetch]\ntimout = 3"), 2, "fetch.timout"),
    ],
)
def test_an_error_names_the_line_of_its_key(
    tmp_path: Path, edit: tuple[str, str], line: int, key: str
) -> None:
    """Rule files' errors gave file:line:column; config.toml's only a key path, "feeds[5]" for
    the sixth [[feeds]] table, to be counted by hand in a long file."""
    path = tmp_path / "config.toml"
    path.write_text(CONFIG_WITH_FEEDS.replace(*edit), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    where = f"{path}:{line}: " if line else f"{path}: "
    assert str(caught.value).startswith(where + key), str(caught.value)


def test_unknown_setting_is_refused_with_known_ones(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[fetch]\ntimeout = "5s"\n')
    assert message.startswith("fetch.timeout: unknown setting (known: ")
    assert "deadline" in message and "connect_timeout" in message


def test_unknown_section_is_refused(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[stroage]\ndatabase = "x.db"\n')
    assert message.startswith("stroage: unknown section (known: ")
    assert "storage" in message


def test_unknown_feed_key_is_refused(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[[feeds]]\nurl = "a.rss"\ntitel = "A"\n')
    assert message.startswith("feeds[0].titel: unknown setting (known: ")


def test_feed_without_url_is_refused(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[[feeds]]\nname = "A"\n')
    assert message == "feeds[0].url: is required: the address of the feed"


def test_feeds_written_as_a_table_is_refused(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[feeds]\nurl = "a.rss"\n')
    assert message.startswith("feeds: expected an array of tables written [[feeds]]")


def test_bad_toml_is_one_line_with_position(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[fetch]\ndeadline "30s"\n')
    assert message.startswith("not valid TOML: ")
    assert "line 2" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.toml")
    assert str(caught.value) == (
        f"{tmp_path / 'absent.toml'}: file not found (pass --config PATH, or set VIGIE_CONFIG)"
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604800), ("1.5s", 1.5), (0, 0), ("0", 0)],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


# A number without its unit is refused: `retention = 90` read as seconds pruned everything.
@pytest.mark.parametrize("text", ["fast", "", "-1s", "10 minutes", True, [1], 45, "90", 2.5])
def test_parse_duration_refuses(text: object) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(
    ("text", "size"),
    [("512KB", 512_000), ("10MB", 10_000_000), ("1MiB", 1_048_576), ("100B", 100), ("2 kb", 2000)],
)
def test_parse_size(text: object, size: int) -> None:
    assert parse_size(text) == size


# A number needs its unit: `max_bytes = 5` meant 5 bytes and refused every feed.
@pytest.mark.parametrize("text", ["big", "0", 0, -5, "10 TB", False, 5, "100", 2048])
def test_parse_size_refuses(text: object) -> None:
    assert parse_size(text) is None


def test_a_feed_language_is_a_code_as_articles_carry_it(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[[feeds]]\nurl = "a.rss"\nlanguage = "english"\n')
    expected = 'feeds[0].language: expected a language code such as "en" or "fr", got "english"'
    assert message == expected
    path = tmp_path / "regional.toml"
    path.write_text('[[feeds]]\nurl = "a.rss"\nlanguage = "fr-FR"\n', encoding="utf-8")
    assert load_config(path).feeds[0].language == "fr"


@pytest.mark.parametrize(
    "url", ["ftp://x/y", "gopher://127.0.0.1:70/", "https://", "http:/news.example/rss", ""]
)
def test_a_feed_url_no_poll_could_fetch_is_refused(tmp_path: Path, url: str) -> None:
    message = config_error(tmp_path, f'[[feeds]]\nurl = "a.rss"\n\n[[feeds]]\nurl = "{url}"\n')
    expected = "feeds[1].url: expected an http(s):// URL with a host, a file:// URL or a local path"
    assert message == f'{expected}, got "{url}"'


def test_http_file_urls_and_paths_are_feed_urls(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    local = tmp_path / "feeds" / "local.rss"
    resolved = []
    for url in (
        "https://news.example/rss",
        "HTTP://127.0.0.1:8080/feed",
        "https://user:Secret@News.Example/Path?Q=1",
        local.as_uri(),
        "FILE://" + local.as_posix(),
        "feeds/local.rss",
    ):  # one config each: the last three are one feed, which a config may list once
        path.write_text(f'[[feeds]]\nurl = "{url}"\n', encoding="utf-8")
        resolved += [feed.url for feed in load_config(path).feeds]
    assert resolved == [
        "https://news.example/rss",
        "http://127.0.0.1:8080/feed",  # scheme and host in any case are one feed
        "https://user:Secret@news.example/Path?Q=1",  # the rest is the server's
        local.as_uri(),
        local.as_uri(),
        local.as_uri(),
    ]


def test_a_feed_listed_twice_with_its_host_in_another_case_is_refused(tmp_path: Path) -> None:
    """Both were polled, each match sent twice: the host's case names no other server."""
    text = '[[feeds]]\nurl = "http://LOCALHOST:8080/f.xml"\n\n'
    text += '[[feeds]]\nurl = "http://localhost:8080/f.xml"\n'
    assert config_error(tmp_path, text).startswith("feeds[1].url: already listed as feeds[0]")


def test_a_retention_of_0_keeps_everything_while_a_timeout_of_0_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[storage]\nretention = "0"\n', encoding="utf-8")
    assert load_config(path).retention == 0
    assert "more than 0" in config_error(tmp_path, '[smtp]\ntimeout = "0s"\n')


def test_a_feed_listed_twice_is_refused_not_overwritten(tmp_path: Path) -> None:
    message = config_error(
        tmp_path,
        '[[feeds]]\nurl = "https://a.example/f"\ntags = ["first"]\n\n'
        '[[feeds]]\nurl = "https://b.example/g"\n\n'
        '[[feeds]]\nurl = "https://a.example/f"\ntags = ["second"]\n',
    )
    assert message == 'feeds[2].url: already listed as feeds[0], got "https://a.example/f"'
