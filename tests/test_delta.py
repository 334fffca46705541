"""Cutting the items a feed already sent out of its next document (monitor/delta.py), and what a
poll does with it: parse only the new items and still store exactly what is new."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import SAMPLES, LoopbackServer

from monitor import delta, pipeline
from monitor.config import Config, load_config
from monitor.fetch import make_session
from monitor.parse import parse_feed
from monitor.pipeline import CycleSummary, poll_due
from monitor.store import Store

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def guid(n: int) -> str:
    return f"tag:news.example.org,2026:{n}"


def item(n: int, link: str | None = None, text: str = "") -> str:
    return (
        f"<item><title>Item {n}: harbour works go on</title>"
        f"<link>{link or f'https://news.example.org/{n}'}</link><guid>{guid(n)}</guid>"
        f"<description>{text or f'Day {n} of the works on the harbour wall.'}</description></item>"
    )


def rss(*items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Harbour</title>'
        "<language>en</language>" + "".join(items) + "</channel></rss>"
    ).encode()


def digests(body: bytes) -> set[str]:
    cut = delta.cut(body, set())
    assert cut is not None
    return set(cut.digests)


def test_items_seen_before_are_cut_out_byte_for_byte() -> None:
    before = rss(item(2), item(1))
    after = rss(item(3), item(2), item(1, text="Day 1, corrected."))
    cut = delta.cut(after, digests(before))
    assert cut is not None
    assert len(cut.digests) == 3 and len(cut.kept) == 2 and len(cut.skipped) == 1
    assert cut.body == rss(item(3), item(1, text="Day 1, corrected."))
    assert cut.digests[1] == cut.skipped[0]  # document order


def test_atom_entries_are_cut_too() -> None:
    atom = (SAMPLES / "nord-actu.atom").read_bytes()
    cut = delta.cut(atom, digests(atom))
    assert cut is not None and not cut.kept and len(cut.skipped) > 1
    assert b"<entry" not in cut.body and b"<feed" in cut.body


def test_the_cut_document_parses_to_the_same_new_items() -> None:
    old = (SAMPLES / "coastal-herald.rss").read_bytes()
    spans = list(re.finditer(rb"<item>.*?</item>", old, re.DOTALL))
    earlier = old[: spans[0].start()] + old[spans[2].start() :]  # the first two items are new
    cut = delta.cut(old, digests(earlier))
    assert cut is not None and len(cut.kept) == 2
    full = parse_feed(old, {}, "https://coastal.example/rss", 1, "", "", NOW)
    new = parse_feed(cut.body, {}, "https://coastal.example/rss", 1, "", "", NOW)
    assert new == (full[0], full[1][:2])


@pytest.mark.parametrize(
    "body",
    [
        rss(item(1), "<!-- an <item> in a comment -->"),
        rss(item(1, text="<![CDATA[ a </item> in CDATA ]]>")),
        rss(item(1), "<item/>"),
        rss(item(1)).replace(b"<item>", b"<rss:item>").replace(b"</item>", b"</rss:item>"),
        rss(item(1)).replace(b"</channel>", b"<entry><title>x</title></entry></channel>"),
        rss(),
        rss(item(1)).replace(b"</item></channel></rss>", b"</item "),
        b'{"version": "https://jsonfeed.org/version/1.1", "items": []}',
    ],
    ids=[
        "comment",
        "cdata",
        "self-closing",
        "prefixed",
        "mixed kinds",
        "no items",
        "truncated",
        "json",
    ],
)
def test_a_document_whose_items_cannot_be_told_apart_is_left_whole(body: bytes) -> None:
    assert delta.cut(body, set()) is None


# The poll cycle ------------------------------------------------------------------------------


class Service:
    def __init__(self, config: Config) -> None:
        self.config, self.store = config, Store(config.database)
        for feed in config.feeds:
            self.store.upsert_feed(feed.url, now=NOW)
        self.session = make_session(config.fetch)

    def poll(self, now: datetime) -> CycleSummary:
        return poll_due(
            self.store, self.session, self.config, None, now, force=True, keep_changes=True
        )


@pytest.fixture
def service(
    write_config: Callable[..., Path], server: LoopbackServer
) -> Iterator[Callable[[list[bytes]], Service]]:
    made: list[Service] = []

    def make(bodies: list[bytes]) -> Service:
        server.route("/feed.xml", bodies=bodies)
        made.append(Service(load_config(write_config([server.url("/feed.xml")]))))
        return made[-1]

    yield make
    for svc in made:
        svc.store.close()


def parsed_bodies(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    seen: list[bytes] = []
    parse = pipeline.parse_feed

    def spy(body: bytes, *args: object) -> object:
        seen.append(body)
        return parse(body, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "parse_feed", spy)
    return seen


def test_a_changed_feed_parses_only_its_new_items_and_stores_exactly_those(
    service: Callable[[list[bytes]], Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = service([rss(item(2), item(1)), rss(item(4), item(3), item(2), item(1))])
    parsed = parsed_bodies(monkeypatch)
    assert svc.poll(NOW).new_articles == 2
    second = svc.poll(NOW + timedelta(hours=1))
    assert second.new_articles == 2
    assert [c.article.guid for c in second.changes] == [guid(4), guid(3)]
    assert parsed[1] == rss(item(4), item(3))  # items 1 and 2 were not parsed again


def test_a_document_with_nothing_new_is_not_parsed(
    service: Callable[[list[bytes]], Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = rss(item(2), item(1))
    svc = service([body, body.replace(b"<title>Harbour</title>", b"<title>Harbour!</title>")])
    parsed = parsed_bodies(monkeypatch)
    svc.poll(NOW)
    assert svc.poll(NOW + timedelta(hours=1)).new_articles == 0
    assert len(parsed) == 1


def test_an_item_whose_bytes_changed_is_parsed_again_and_revised(
    service: Callable[[list[bytes]], Service],
) -> None:
    svc = service([rss(item(2), item(1)), rss(item(2), item(1, text="Day 1: the wall is done."))])
    svc.poll(NOW)
    [change] = svc.poll(NOW + timedelta(hours=1)).changes
    assert change.article.guid == guid(1) and change.updated


def test_a_link_shared_with_an_item_not_parsed_again_still_identifies_neither(
    service: Callable[[list[bytes]], Service],
) -> None:
    """A live page that every item links to is no article's address, even when the other
    items that link to it were cut out of the document as unchanged."""
    live = "https://news.example.org/live"
    svc = service([rss(item(1, live)), rss(item(2, live), item(1, live))])
    svc.poll(NOW)
    [change] = svc.poll(NOW + timedelta(hours=1)).changes
    assert change.article.guid == guid(2) and not change.updated
    assert change.article.canonical_url == ""
    assert svc.store.count("articles") == 2


def test_items_that_give_no_article_make_the_whole_document_parsed(
    service: Callable[[list[bytes]], Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = f"<item><guid>{guid(0)}</guid></item>"
    svc = service([rss(item(1), empty), rss(item(2), item(1), empty)])
    parsed = parsed_bodies(monkeypatch)
    svc.poll(NOW)
    assert [c.article.guid for c in svc.poll(NOW + timedelta(hours=1)).changes] == [guid(2)]
    assert parsed[-1] == rss(item(2), item(1), empty)  # nothing remembered, nothing cut


def shared_guid_item(link: str, title: str, text: str) -> str:
    return (
        f"<item><title>{title}</title><link>{link}</link><guid>{guid(0)}</guid>"
        f"<description>{text}</description></item>"
    )


def test_items_sharing_a_guid_keep_their_own_articles_when_one_changes_beside_the_other(
    service: Callable[[list[bytes]], Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The changed item's guid is also an unchanged item's, cut out of the document: the whole
    document is parsed, so the changed one is told apart and revises its own article only."""
    x, y = "https://news.example.org/x", "https://news.example.org/y"
    zebra = shared_guid_item(x, "Zebra escapes", "Keepers are looking for it.")
    zebra_found = shared_guid_item(x, "Zebra escapes", "Keepers found it in a park.")
    football = shared_guid_item(y, "Football result", "Harbour 2, Dunes 1.")
    late_goal = shared_guid_item(y, "Football result", "Harbour 2, Dunes 1 after a late goal.")
    bodies = [rss(zebra, football), rss(zebra, late_goal), rss(zebra_found, late_goal)]
    svc = service(bodies)
    parsed = parsed_bodies(monkeypatch)
    assert svc.poll(NOW).new_articles == 2
    for hours, (changed, text) in enumerate([(y, "late goal"), (x, "park")], start=1):
        [change] = svc.poll(NOW + timedelta(hours=hours)).changes
        assert change.updated and change.article.url == changed and text in change.article.text
        assert parsed[-1] == bodies[hours]
    rows = svc.store.db.query("SELECT url, revision FROM articles ORDER BY url")
    assert [(r["url"], r["revision"]) for r in rows] == [(x, 2), (y, 2)]


def test_items_remembered_without_their_guid_are_parsed_again(
    service: Callable[[list[bytes]], Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A feed's items remembered before guids were (digest and URL) cannot say whether a new
    item shares their guid: the next changed document is parsed whole, once."""
    svc = service([rss(item(1)), rss(item(2), item(1)), rss(item(3), item(2), item(1))])
    parsed = parsed_bodies(monkeypatch)
    svc.poll(NOW)
    [feed] = svc.store.feeds()
    svc.store.db.execute(
        "UPDATE feeds SET seen_items = ? WHERE id = ?",
        [
            json.dumps([[d, "https://news.example.org/1"] for d in digests(rss(item(1)))]),
            feed["id"],
        ],
    )
    svc.store.db.conn.commit()
    svc.poll(NOW + timedelta(hours=1))
    assert parsed[-1] == rss(item(2), item(1))
    svc.poll(NOW + timedelta(hours=2))
    assert parsed[-1] == rss(item(3))
