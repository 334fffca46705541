"""Helpers for the identity tests: RSS written at test time, a service on a real database, and
a real rule index from a rule file written in tmp_path.

The `services` fixture is registered by conftest.py (pytest_plugins)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from bench.wirecopy import Corpus, load_corpus
from monitor.config import Config, load_config
from monitor.fetch import make_session
from monitor.pipeline import CycleSummary, poll_due
from monitor.rules.files import load_rules
from monitor.rules.index import RuleIndex
from monitor.store import Store

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Item:
    guid: str
    title: str
    description: str = ""
    link: str = ""


def rss(items: Sequence[Item], title: str = "Test feed", language: str | None = "en") -> bytes:
    """An RSS 2.0 document with these items, published an hour before NOW."""
    when = format_datetime(NOW.replace(hour=11))
    lang = f"<language>{language}</language>" if language else ""
    body = "".join(
        f"<item><guid isPermaLink='false'>{escape(i.guid)}</guid><title>{escape(i.title)}</title>"
        f"<link>{escape(i.link or 'https://news.example/' + i.guid)}</link>"
        f"<description>{escape(i.description)}</description><pubDate>{when}</pubDate></item>"
        for i in items
    )
    return (
        f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>{escape(title)}</title><link>https://news.example/</link>{lang}{body}"
        "</channel></rss>"
    ).encode()


def rule_index(folder: Path, rules: dict[str, str]) -> RuleIndex:
    """A real rule index: rule id -> query, written as a rule file and compiled."""
    text = "".join(
        f"[[rule]]\nid = \"{rule_id}\"\nname = \"{rule_id}\"\nquery = '''{query}'''\n\n"
        for rule_id, query in rules.items()
    )
    path = folder / "test-rules.toml"
    path.write_text(text, encoding="utf-8")
    loaded = load_rules([path])
    assert loaded.ok, loaded.errors
    return loaded.index()


class Service:
    """A config, its database with the config's feeds, and a guarded session, as the CLI has."""

    def __init__(self, config_path: Path) -> None:
        self.config: Config = load_config(config_path)
        self.store = Store(self.config.database)
        for feed in self.config.feeds:
            self.store.upsert_feed(
                feed.url,
                name=feed.name,
                language=feed.language,
                full_text=feed.full_text,
                now=NOW,
            )
        self.session = make_session(self.config.fetch)

    def poll(self, now: datetime = NOW, matcher: RuleIndex | None = None) -> CycleSummary:
        return poll_due(
            self.store, self.session, self.config, matcher, now, force=True, keep_changes=True
        )

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[dict]:
        return list(self.store.db.query(sql, params))

    def close(self) -> None:
        self.store.close()


class Services:
    """The Services a test makes on config files in its folder, closed together when it ends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.made: list[Service] = []

    def make(self, config: str, urls: Sequence[str], feed_keys: str = "") -> Service:
        """A Service on config.toml: `config` (TOML), then a [[feeds]] table for each url with
        `feed_keys` (TOML lines) in it."""
        feeds = "".join(f'[[feeds]]\nurl = "{url}"\n{feed_keys}' for url in urls)
        path = self.folder / "config.toml"
        path.write_text(config + feeds, encoding="utf-8")
        self.made.append(Service(path))
        return self.made[-1]

    def close(self) -> None:
        for service in self.made:
            service.close()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    """Services on config files in tmp_path; each test file says what its config holds."""
    made = Services(tmp_path)
    yield made
    made.close()


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    """The real articles the wire-copy pairs are built from (bench/wirecopy.py), read once per
    test module."""
    path = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    if not path.is_dir():
        pytest.skip(f"real-world corpora not found at {path} (clone shared/ beside the repo)")
    return load_corpus(path)
