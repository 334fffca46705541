"""Full text: feeds with `full_text = true` get their items' pages fetched (real article pages
from the extraction benchmark, served on loopback) and rules match the main text; failures keep
the feed's text and say why; pages obey the same limits and network guard as feeds."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import LoopbackServer
from identity_support import NOW, Item, Service, Services, rss, rule_index

PAGE_IDS = ("a078b365", "686bb170", "c7e39ac4")  # Forbes, Space.com, BBC News


@pytest.fixture
def pages(shared_corpora: Path) -> dict[str, tuple[bytes, str]]:
    """page id -> (HTML bytes, ground-truth body) for a few real article pages."""
    folder = shared_corpora / "pages" / "article-extraction-benchmark"
    truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    out = {}
    for prefix in PAGE_IDS:
        [key] = [k for k in truth if k.startswith(prefix)]
        html = gzip.decompress((folder / "html" / f"{key}.html.gz").read_bytes())
        out[prefix] = (html, truth[key]["articleBody"])
    return out


@pytest.fixture
def service(services: Services) -> Callable[..., Service]:
    """A Service on these feeds, their pages fetched unless `full_text` is false."""

    def make(urls: list[str], full_text: bool = True, allow_private: bool = True) -> Service:
        config = (
            '[storage]\ndatabase = "vigie.db"\n'
            f'[fetch]\nallow_private = {str(allow_private).lower()}\ndeadline = "3s"\n'
        )
        return services.make(config, urls, f"full_text = {str(full_text).lower()}\n")

    return make


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def test_rules_match_the_pages_main_text_not_just_the_summary(
    tmp_path: Path,
    pages: dict[str, tuple[bytes, str]],
    server: LoopbackServer,
    service: Callable[..., Service],
) -> None:
    items = []
    for prefix, (html, _) in pages.items():
        server.route(f"/story/{prefix}", html, content_type="text/html; charset=utf-8")
        items.append(Item(prefix, f"Story {prefix}", "Read more.", server.url(f"/story/{prefix}")))
    server.route("/feed.xml", rss(items))
    # A word only the end of the BBC article has: the feed's teaser cannot match it.
    last = pages["c7e39ac4"][1].split("\n")[-1]
    word = max((w for w in re.findall(r"[A-Za-z]+", last) if len(w) > 4), key=len)
    rules = rule_index(tmp_path, {"deep": word.lower()})
    svc = service([server.url("/feed.xml")])

    summary = svc.poll(matcher=rules)

    rows = {r["guid"]: r for r in svc.rows("SELECT * FROM articles")}
    for prefix, (_, body) in pages.items():
        row = rows[prefix]
        assert row["full_text"] == 1 and row["full_text_error"] is None
        found = words(row["content"])
        assert len(found & words(body)) >= 0.8 * len(words(body))
        assert row["summary"] == "Read more."  # the feed's own text is kept beside it
    matched = [c.article.guid for c in summary.changes if c.new_matches]
    assert matched == ["c7e39ac4"]


def test_pages_are_fetched_only_for_new_or_changed_items(
    pages: dict[str, tuple[bytes, str]], server: LoopbackServer, service: Callable[..., Service]
) -> None:
    for prefix, (html, _) in pages.items():
        server.route(f"/story/{prefix}", html, content_type="text/html")
    a = Item("a", "First", "Teaser.", server.url("/story/a078b365"))
    b = Item("b", "Second", "Teaser.", server.url("/story/686bb170"))
    a_changed = Item("a", "First, updated", "Teaser.", server.url("/story/a078b365"))
    server.route("/feed.xml", bodies=[rss([a]), rss([a, b]), rss([a_changed, b])])
    svc = service([server.url("/feed.xml")])
    svc.poll()
    svc.poll(NOW + timedelta(hours=1))
    assert len(server.requests_to("/story/a078b365")) == 1
    assert len(server.requests_to("/story/686bb170")) == 1
    summary = svc.poll(NOW + timedelta(hours=2))
    assert summary.updated_articles == 1
    assert len(server.requests_to("/story/a078b365")) == 2
    assert len(server.requests_to("/story/686bb170")) == 1


@pytest.mark.parametrize(
    ("status", "content_type", "body", "reason"),
    [
        (404, "text/html", b"<p>gone</p>", "HTTP 404"),
        (200, "application/pdf", b"%PDF-1.7", "not an HTML page (application/pdf)"),
        (200, "text/html", b"<html><body></body></html>", "no main text"),
        (200, "text/html", b"<html><body><p>Home | News</p></body></html>", "less text than"),
    ],
)
def test_an_unusable_page_keeps_the_feed_text_and_says_why(
    tmp_path: Path,
    server: LoopbackServer,
    service: Callable[..., Service],
    status: int,
    content_type: str,
    body: bytes,
    reason: str,
) -> None:
    server.route("/story", body, status=status, content_type=content_type)
    teaser = "Firefighters contained the blaze at the harbour warehouse overnight."
    server.route("/feed.xml", rss([Item("x", "Harbour fire", teaser, server.url("/story"))]))
    rules = rule_index(tmp_path, {"fire": "firefighters"})
    svc = service([server.url("/feed.xml")])
    summary = svc.poll(matcher=rules)
    [row] = svc.rows("SELECT * FROM articles")
    assert row["full_text"] == 0 and reason in row["full_text_error"]
    assert row["summary"] == teaser
    assert [m.rule_id for c in summary.changes for m in c.new_matches] == ["fire"]


def test_pages_go_through_the_network_guard(
    tmp_path: Path, server: LoopbackServer, service: Callable[..., Service]
) -> None:
    server.route("/story", b"<html><body><p>secret</p></body></html>", content_type="text/html")
    feed = tmp_path / "local.xml"  # a local feed file whose item points at a loopback page
    feed.write_bytes(rss([Item("x", "Title", "Teaser text.", server.url("/story"))]))
    svc = service([str(feed)], allow_private=False)
    svc.poll()
    [row] = svc.rows("SELECT * FROM articles")
    assert "non-public address" in row["full_text_error"]
    assert server.requests_to("/story") == []


def test_pages_are_not_fetched_for_feeds_without_full_text(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    server.route("/story", b"<html><body><p>text</p></body></html>", content_type="text/html")
    server.route("/feed.xml", rss([Item("x", "Title", "Teaser.", server.url("/story"))]))
    svc = service([server.url("/feed.xml")], full_text=False)
    svc.poll()
    assert server.requests_to("/story") == []
    [row] = svc.rows("SELECT full_text, full_text_error FROM articles")
    assert row == {"full_text": 0, "full_text_error": None}


def article_page(canonical: str) -> bytes:
    paragraphs = "".join(
        f"<p>Paragraph {i} of the report on the harbour fire, with enough words to be "
        f"taken for the main text of the page by the extractor.</p>"
        for i in range(8)
    )
    return (
        f'<html lang="en"><head><title>Fire</title><link rel="canonical" href="{canonical}">'
        f"</head><body><article><h1>Harbour fire</h1>{paragraphs}</article></body></html>"
    ).encode()


def test_the_pages_canonical_link_on_its_own_site_makes_two_urls_one_article(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    canonical = server.url("/news/harbour-fire")
    server.route("/amp/harbour-fire", article_page(canonical), content_type="text/html")
    server.route("/news/harbour-fire", article_page(canonical), content_type="text/html")
    server.route("/a.xml", rss([Item("a", "Fire", "Teaser.", server.url("/amp/harbour-fire"))]))
    server.route("/b.xml", bodies=[rss([]), rss([Item("b", "Fire", "Teaser.", canonical)])])
    svc = service([server.url("/a.xml"), server.url("/b.xml")])
    svc.poll()
    svc.poll(NOW + timedelta(hours=1))
    [row] = svc.rows("SELECT canonical_url, language FROM articles")
    assert row == {"canonical_url": canonical, "language": "en"}


def test_a_canonical_link_to_another_site_is_ignored(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    page = article_page("https://elsewhere.example/news/harbour-fire")
    server.route("/story", page, content_type="text/html")
    server.route("/feed.xml", rss([Item("x", "Fire", "Teaser.", server.url("/story"))]))
    svc = service([server.url("/feed.xml")])
    svc.poll()
    [row] = svc.rows("SELECT canonical_url, full_text FROM articles")
    assert row == {"canonical_url": server.url("/story"), "full_text": 1}
