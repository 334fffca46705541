"""Article identity: one article per canonical URL across feeds, updates as revisions (rules
re-run, only new matches reported), detected languages. Real feeds on loopback, real SQLite."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import LoopbackServer
from hypothesis import given, settings
from hypothesis import strategies as st
from identity_support import NOW, Item, Service, rss, rule_index

from monitor import identity
from monitor.config import load_config
from monitor.config_delivery import DeliveryConfig, SubscriberConfig
from monitor.deliver.digest import build_digest, render
from monitor.deliver.dispatch import open_digests, sync_subscribers
from monitor.deliver.outbox import Labels
from monitor.identity import (
    TrackingParams,
    canonical_url,
    fingerprint,
    identify,
    identity_url,
    link_url,
    lsh_layout,
    same_site,
    similarity,
    sketch,
    sketches,
)
from monitor.records import Article


@pytest.fixture
def service(write_config: Callable[..., Path]) -> Iterator[Callable[..., Service]]:
    made: list[Service] = []

    def make(feeds: list, **sections: object) -> Service:
        made.append(Service(write_config(feeds, **sections)))
        return made[-1]

    yield make
    for svc in made:
        svc.close()


# Canonical URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        "https://www.bbc.co.uk/news/uk-53704809?at_medium=RSS&at_campaign=KARANGA",
        "https://www.bbc.co.uk/news/uk-53704809?ns_mchannel=social&ns_source=twitter",
        "https://www.bbc.co.uk/news/uk-53704809#comments",
        "HTTPS://WWW.BBC.CO.UK/news/uk-53704809",
        "https://www.bbc.co.uk:443/news/uk-53704809/",
        "https://www.bbc.co.uk/news/uk-53704809?utm_source=rss&utm_medium=feed&fbclid=IwAR0x",
        "https://www.bbc.co.uk/news/uk-53704809?gclid=abc&ito=xyz",
    ],
)
def test_tracking_and_spelling_variants_have_one_canonical_url(variant: str) -> None:
    assert canonical_url(variant) == "https://www.bbc.co.uk/news/uk-53704809"


def test_meaningful_query_parameters_are_kept_in_any_order() -> None:
    a = canonical_url("https://example.org/story?id=42&page=2&utm_source=x")
    b = canonical_url("https://example.org/story?page=2&utm_campaign=y&id=42")
    assert a == b == "https://example.org/story?id=42&page=2"
    assert canonical_url("https://example.org/story?id=43") != a


def test_home_pages_and_non_web_urls_identify_nothing() -> None:
    assert identity_url("https://www.francetvinfo.fr/#xtor=RSS-3-[lestitres]") == ""
    assert identity_url("https://example.org/?utm_source=rss") == ""
    assert identity_url("mailto:desk@example.org") == ""
    assert identity_url("urn:uuid:1234") == ""
    assert identity_url("http://example.org:8080/a/") == "http://example.org:8080/a"


def test_operators_choose_the_tracking_parameters(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[identity]\ntracking_params = ["src", "campaign_*"]\n', encoding="utf-8")
    config = load_config(path)
    tracking = TrackingParams.of(config.identity.tracking_params)
    url = "https://example.org/a?src=rss&campaign_id=3&utm_source=x"
    assert canonical_url(url, tracking) == "https://example.org/a?utm_source=x"


def test_links_lose_only_their_tracking_parameters() -> None:
    """What subscribers follow: as the outlet wrote it (host, case, slash, order, a fragment
    that finds a place in the page), less what only counts the visit."""
    kept = {
        "https://www.lemonde.fr/a/b.html?xtor=RSS-3208": "https://www.lemonde.fr/a/b.html",
        "https://www.francetvinfo.fr/a.html#xtor=RSS-3-[lestitres]": "https://www.francetvinfo.fr/a.html",
        "https://WWW.N.example/A/?b=2&utm_source=rss&a=1#live": "https://WWW.N.example/A/?b=2&a=1#live",
        "https://n.example/a?UTM_Medium=feed&fbclid=x": "https://n.example/a",
        "https://n.example/a#x=1&xtor=2": "https://n.example/a#x=1&xtor=2",  # app state, kept
        "https://n.example/a?page=2": "https://n.example/a?page=2",
        "mailto:desk@n.example?utm_source=x": "mailto:desk@n.example?utm_source=x",
        "https://[::1/a?utm_source=x": "https://[::1/a?utm_source=x",  # unparsable: as it is
        # What stands before an @ in the host is no article's: it made a link read as another's.
        "http://bank.example@evil.example/a": "http://evil.example/a",
        "https://u:p@n.example:8443/a?utm_source=x": "https://n.example:8443/a",
        "https://n.example/@desk/a": "https://n.example/@desk/a",
        # A browser goes to a.example (the backslash ends the host): left as the outlet wrote it.
        "http://a.example\\@b.example/": "http://a.example\\@b.example/",
    }
    assert {url: link_url(url) for url in kept} == kept


@pytest.mark.parametrize(
    "edition",
    [
        "https://www.dailypost.example/amp/news/2026/12/02/calais-boat-disaster.amp",
        "https://m.dailypost.example/news/2026/12/02/calais-boat-disaster?utm_source=rss",
        "https://mobile.dailypost.example/news/2026/12/02/calais-boat-disaster/amp/",
        "https://amp.dailypost.example/news/2026/12/02/calais-boat-disaster?amp",
        "https://dailypost.example/news/2026/12/02/calais-boat-disaster?amp=1",
        "https://www.dailypost.example/news/2026/12/02/calais-boat-disaster?outputType=amp",
    ],
)
def test_an_outlets_www_mobile_and_amp_addresses_of_a_page_are_one_identity(
    edition: str,
) -> None:
    assert identity_url(edition) == "https://dailypost.example/news/2026/12/02/calais-boat-disaster"


def test_edition_marks_are_folded_only_where_they_cannot_be_part_of_the_name() -> None:
    folded = {
        "https://amp.bbc.co.uk/a.amp.html?id=3&amp=1": "https://bbc.co.uk/a.html?id=3",
        "https://www.bbc.co.uk/news/uk-53704809": "https://bbc.co.uk/news/uk-53704809",
        "https://m.example/x": "https://m.example/x",  # only "example" would remain
        "https://www.co.uk/x": "https://www.co.uk/x",  # only a registry zone would remain
        "https://example.org/news/camp/ampersand.html": "https://example.org/news/camp/ampersand.html",
        "https://example.org/x?amp=yes": "https://example.org/x?amp=yes",
        "https://example.org/x?outputType=html": "https://example.org/x?outputType=html",
    }
    assert {url: identity_url(url) for url in folded} == folded


def test_an_amp_or_mobile_page_may_name_its_www_edition_as_canonical() -> None:
    assert same_site("https://amp.n.example/a", "https://www.n.example/news/a")
    assert same_site("https://mobile.n.example/a", "https://n.example/news/a")
    assert not same_site("https://m.co.uk/a", "https://co.uk/a")


def test_an_amp_home_page_identifies_nothing() -> None:
    assert identity_url("https://www.dailypost.example/amp/") == ""


def test_fingerprint_ignores_case_and_spacing_but_not_words() -> None:
    assert fingerprint("Floods in  Calais", "Rain.\n\nMore rain.") == fingerprint(
        "floods in calais", "Rain. More rain."
    )
    assert fingerprint("Floods in Calais", "Rain.") != fingerprint("Floods in Dunkirk", "Rain.")


# Sketches ---------------------------------------------------------------------------------

TEXT = (
    "The regional council approved the new flood defences on Tuesday after a long debate about "
    'the cost of the sea wall. "We cannot wait for the next storm," the mayor said, adding '
    "that work on the dunes and the pumping stations along the estuary would start in spring."
)


def test_sketches_see_through_case_quotes_and_dashes() -> None:
    typeset = TEXT.replace('"We', "“We").replace('storm,"', "storm,”").upper()
    assert similarity(sketch(TEXT), sketch(typeset)) == 1.0  # type: ignore[arg-type]
    # French quotes and no-break spaces are punctuation too, the text's last character as well.
    french = TEXT.replace('"We', "« We").replace('storm,"', "storm »,") + "\u00a0»"
    assert similarity(sketch(TEXT), sketch(french)) == 1.0  # type: ignore[arg-type]
    other = "Ferry services between Dover and Calais were cancelled for a second day by strikes."
    assert similarity(sketch(TEXT), sketch(other * 2)) < 0.1  # type: ignore[arg-type]
    assert sketch("Too short to say anything") is None


def test_sketches_are_the_same_in_every_process() -> None:
    """Sketches are stored: a restarted service must compute the very same values."""
    code = f"from monitor.identity import sketch; print(sketch({TEXT!r}).tolist())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(sketch(TEXT).tolist())  # type: ignore[union-attr]


def test_sketches_are_those_stored_by_earlier_versions() -> None:
    """Stored sketches are compared with new ones: a change to how they are computed must come
    with a new SKETCH_ALGORITHM (which rebuilds the index), never by accident. The digests are
    of signatures computed before sketches were batched (c7dcc8a)."""
    digest = hashlib.sha256(sketch(TEXT).tobytes()).hexdigest()[:16]  # type: ignore[union-attr]
    assert digest == "6aec715173c42779"
    dashed = hashlib.sha256(sketch(TEXT[:-3] + "—" + TEXT).tobytes()).hexdigest()[:16]  # type: ignore[union-attr]
    assert dashed == "5e81792be2aded7c"


SKETCH_TEXTS = st.lists(
    st.text(alphabet="ab É—“”«»\u00a0.\n", max_size=120).map(lambda t: t * 3), max_size=12
)


@settings(max_examples=200, deadline=None)
@given(SKETCH_TEXTS)
def test_texts_sketched_together_get_the_sketch_each_gets_alone(texts: list[str]) -> None:
    """The pipeline sketches a feed's items in one batch: no word or shingle may run from one
    text into the next, whatever stands at their edges."""
    together = sketches(texts)
    assert len(together) == len(texts)
    for text, found in zip(texts, together, strict=True):
        alone = sketch(text)
        assert (found is None) == (alone is None)
        assert found is None or found.tolist() == alone.tolist()  # type: ignore[union-attr]


def test_texts_cut_to_the_maximum_and_split_into_batches_keep_their_sketch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Texts are cut at MAX_SKETCH_BYTES, maybe inside a character (a dash cut short stays part
    of its word), and batches hold at most that many bytes."""
    monkeypatch.setattr(identity, "MAX_SKETCH_BYTES", 60)
    cut = "word " * 11 + "xyz\u2014"  # the dash's three bytes start at byte 58: cut after two
    texts = [cut, TEXT, cut.upper(), "short one", TEXT[:58] + "\u2014", TEXT]
    assert [s is None for s in sketches(texts)] == [s is None for s in map(sketch, texts)]
    for found, alone in zip(sketches(texts), map(sketch, texts), strict=True):
        assert found is None or found.tolist() == alone.tolist()  # type: ignore[union-attr]
    # The cut dash is part of the last word: not the sketch of the text with a whole dash.
    assert sketch(cut).tolist() != sketch("word " * 11 + "xyz").tolist()  # type: ignore[union-attr]


def test_default_band_layout_finds_copies_just_over_the_threshold() -> None:
    layout = lsh_layout(0.5)
    assert layout.bands * layout.rows <= 128
    assert layout.candidate_probability(0.6) > 0.95
    assert layout.candidate_probability(0.1) < 0.01


# One article per canonical URL ------------------------------------------------------------


def test_same_item_under_urls_differing_only_in_tracking_is_one_article(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    plain = Item("a-1", "Border talks resume", "Ministers met again.", "https://n.example/talks")
    tracked = Item(
        "b-77",
        "Border talks resume",
        "Ministers met again.",
        "https://N.example/talks/?utm_source=partner&fbclid=XYZ#top",
    )
    server.route("/a.xml", rss([plain]))
    server.route("/b.xml", rss([tracked], title="Partner feed"))
    svc = service([server.url("/a.xml"), server.url("/b.xml")])
    summary = svc.poll()
    assert summary.new_articles == 1
    assert svc.store.count("articles") == 1
    [article] = svc.rows("SELECT * FROM articles")
    assert article["canonical_url"] == "https://n.example/talks"
    assert [a["guid"] for a in svc.store.aliases(article["id"])] in (["a-1"], ["b-77"])
    assert svc.poll(NOW + timedelta(hours=1)).new_articles == 0  # and it stays one


def test_one_outlets_mobile_and_amp_links_of_a_page_are_one_article(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """A bare headline, too short for stories to group: only the URL can tell it is one."""
    amp = Item(
        "dp-amp-1",
        "Calais boat disaster",
        link="https://www.dailypost.example/amp/news/2026/12/02/calais-boat-disaster.amp",
    )
    mobile = Item(
        "dp-m-1",
        "Calais boat disaster",
        link="https://m.dailypost.example/news/2026/12/02/calais-boat-disaster?utm_source=rss",
    )
    server.route("/amp.xml", rss([amp], title="Daily Post"))
    server.route("/mobile.xml", rss([mobile], title="Daily Post mobile"))
    svc = service([server.url("/amp.xml"), server.url("/mobile.xml")])
    assert svc.poll().new_articles == 1
    [article] = svc.rows("SELECT * FROM articles")
    # readers get the link a feed gave, less its tracking parameters
    assert article["url"] in (amp.link, mobile.link.removesuffix("?utm_source=rss"))
    assert len(svc.store.aliases(article["id"])) == 1
    assert svc.poll(NOW + timedelta(hours=1)).new_articles == 0


def test_real_franceinfo_items_with_tracking_links_are_not_stored_twice(
    shared_corpora: Path, server: LoopbackServer, service: Callable[..., Service]
) -> None:
    body = (shared_corpora / "feeds" / "single" / "francetvinfo_titres_2024-01-18.xml").read_bytes()
    items = len(ET.fromstring(body).findall("./channel/item"))
    # The partner republishes the same items with campaign tags and without the #xtor fragment.
    partner = re.sub(
        rb"<link>([^<#]*)#xtor=[^<]*</link>", rb"<link>\1?utm_source=partner</link>", body
    )
    partner = re.sub(rb"<guid[^>]*>[^<]*</guid>", b"", partner)
    assert partner != body
    server.route("/franceinfo.xml", body, content_type="application/rss+xml")
    server.route("/partner.xml", partner, content_type="application/rss+xml")
    svc = service([server.url("/franceinfo.xml"), server.url("/partner.xml")])
    summary = svc.poll()
    assert summary.errors == []
    assert svc.store.count("articles") == items
    assert svc.store.count("article_aliases") == items


def test_items_of_one_feed_sharing_a_link_stay_apart(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    live = "https://n.example/live-updates"
    server.route(
        "/live.xml",
        rss(
            [
                Item("u1", "Storm reaches the coast", "Winds of 120 km/h.", live),
                Item("u2", "Ferries cancelled", "All crossings suspended.", live),
            ]
        ),
    )
    svc = service([server.url("/live.xml")])
    assert svc.poll().new_articles == 2


def test_one_article_listed_twice_under_two_headlines_is_one_article(
    shared_corpora: Path, server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """BBC's feed of 8 August 2024 lists one article twice, guids #0 and #10, with two
    headlines over one summary, link and date: two articles, two stories, sent twice."""
    body = (shared_corpora / "feeds" / "single" / "bbc_2024-08-08.xml").read_bytes()
    assert body.count(b"<link>https://www.bbc.com/news/articles/c78l1kj1yv4o</link>") == 2
    server.route("/bbc.xml", body, content_type="application/rss+xml")
    svc = service([server.url("/bbc.xml")])
    summary = svc.poll()
    assert summary.errors == []
    rows = svc.rows("SELECT title FROM articles WHERE url LIKE '%c78l1kj1yv4o%'")
    assert [r["title"] for r in rows] == ["Edwards stripped of one of Wales's highest accolades"]
    links = [i.findtext("link") for i in ET.fromstring(body).findall("./channel/item")]
    assert len(links) == 54 and len(set(links)) == 50  # four articles listed twice that day
    assert summary.new_articles == 50
    assert svc.poll(NOW + timedelta(hours=1)).new_articles == 0


def test_items_sharing_a_link_and_date_but_not_their_text_stay_apart(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    live = "https://n.example/live-updates"
    server.route(
        "/live.xml",
        rss(
            [
                Item("u1", "Storm reaches the coast", "Winds of 120 km/h.", live),
                Item("u2", "Storm: ferries cancelled", "Winds of 120 km/h.", live),
                Item("u3", "Storm: schools closed", "", live),
                Item("u4", "Storm: roads closed", "", live),
                # A live page's updates under guids of their own, one stock summary, no date.
                Item(
                    "live-0#a", "Update 1: camp cleared", "Follow our live coverage.", live + "#b1"
                ),
                Item(
                    "live-0#b", "Update 2: buses leave", "Follow our live coverage.", live + "#b2"
                ),
            ]
        ),
    )
    svc = service([server.url("/live.xml")])
    assert svc.poll().new_articles == 6  # each headline is news of its own


ZEBRA = Item(
    "d", "Zebra escapes from the city zoo", "Keepers found it in a park.", "https://n.example/x"
)
FOOTBALL = Item(
    "d", "Football result: Harbour 2, Dunes 1", "A late goal won it.", "https://n.example/y"
)


def json_feed(items: list[Item], title: str = "Test feed") -> bytes:
    """A JSON Feed 1.1 document with these items."""
    return json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": title,
            "language": "en",
            "items": [
                {"id": i.guid, "url": i.link, "title": i.title, "content_text": i.description}
                for i in items
            ],
        }
    ).encode()


FORMATS = {"json": (json_feed, "application/feed+json"), "rss": (rss, "application/rss+xml")}


def test_a_guid_shared_by_items_of_one_document_identifies_none_of_them() -> None:
    tracking = TrackingParams.of([])
    live = Item("d", "Ferries cancelled", "All crossings suspended.", "https://n.example/live")
    later = Item("d", "Ferries resume", "Crossings start again at noon.", "https://n.example/live")
    items = [ZEBRA, FOOTBALL, ZEBRA, live, later]
    articles = [
        Article(feed_id=1, guid=i.guid, url=i.link, title=i.title, summary=i.description)
        for i in items
    ]
    guids = [a.guid for a in identify(articles, tracking)]
    zebra, football, copy, live_guid, later_guid = guids
    assert (zebra, football) == ("d https://n.example/x", "d https://n.example/y")  # links differ
    assert copy == zebra  # an exact copy is still the same item
    assert live_guid != later_guid and live_guid.startswith("d ")  # same link: texts tell apart
    alone = identify(articles[:1], tracking)
    assert alone[0].guid == "d"  # a guid no other item shares identifies its item as before


@pytest.mark.parametrize("kind", FORMATS)
def test_items_of_one_feed_sharing_a_guid_are_two_articles_that_stay_apart(
    kind: str, server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """Polled again and again (the document changing around them), neither item becomes a
    revision of the other."""
    write, content_type = FORMATS[kind]
    other = Item("e", "Tide tables for the week", "High water at 6.", "https://n.example/e")
    bodies = [
        write([ZEBRA, FOOTBALL]),
        write([ZEBRA, FOOTBALL], title="Test feed, updated"),
        write([other, ZEBRA, FOOTBALL]),
    ]
    server.route("/f", bodies=bodies, content_type=content_type)
    svc = service([server.url("/f")])
    summary = svc.poll()
    assert (summary.new_articles, summary.updated_articles) == (2, 0)
    for hours in (1, 2):
        summary = svc.poll(NOW + timedelta(hours=hours))
        assert summary.updated_articles == 0
    assert summary.new_articles == 1  # the tide tables
    rows = svc.rows(
        "SELECT title, url, revision FROM articles WHERE title != ? ORDER BY url", [other.title]
    )
    assert rows == [
        {"title": ZEBRA.title, "url": ZEBRA.link, "revision": 1},
        {"title": FOOTBALL.title, "url": FOOTBALL.link, "revision": 1},
    ]
    assert [r["title"] for r in svc.store.search_articles("zebra")] == [ZEBRA.title]
    assert [r["title"] for r in svc.store.search_articles("goal")] == [FOOTBALL.title]


@pytest.mark.parametrize("kind", FORMATS)
def test_an_item_stored_alone_stays_one_article_when_another_takes_its_guid(
    kind: str, server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """The item stored under its bare guid is found again by its link (its new guid becomes an
    alias of the stored article) and the newcomer is new. In RSS the unchanged item is cut out
    of the next document (monitor/delta.py) until the newcomer's guid makes it parsed again."""
    write, content_type = FORMATS[kind]
    bodies = [write([ZEBRA]), write([FOOTBALL, ZEBRA]), write([FOOTBALL, ZEBRA], title="Later")]
    server.route("/f", bodies=bodies, content_type=content_type)
    svc = service([server.url("/f")])
    assert svc.poll().new_articles == 1
    summary = svc.poll(NOW + timedelta(hours=1))
    assert (summary.new_articles, summary.updated_articles) == (1, 0)
    assert [c.article.title for c in summary.changes] == [FOOTBALL.title]
    summary = svc.poll(NOW + timedelta(hours=2))
    assert (summary.new_articles, summary.updated_articles) == (0, 0)
    rows = svc.rows("SELECT id, guid, title, revision FROM articles ORDER BY id")
    assert [(r["guid"], r["title"], r["revision"]) for r in rows] == [
        ("d", ZEBRA.title, 1),
        ("d https://n.example/y", FOOTBALL.title, 1),
    ]
    assert [a["guid"] for a in svc.store.aliases(rows[0]["id"])] == ["d https://n.example/x"]


@pytest.mark.parametrize("kind", FORMATS)
def test_when_one_item_keeps_a_guid_they_shared_it_stays_its_own_article(
    kind: str, server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """Once the other item leaves the feed, the guid is no longer shared: the item left is
    found again under the guid it was given, not taken for the item stored under the bare one."""
    write, content_type = FORMATS[kind]
    football = Item(FOOTBALL.guid, FOOTBALL.title, "Match report, corrected.", FOOTBALL.link)
    bodies = [write([ZEBRA]), write([FOOTBALL, ZEBRA]), write([FOOTBALL]), write([football])]
    server.route("/f", bodies=bodies, content_type=content_type)
    svc = service([server.url("/f")])
    for hours in range(3):
        svc.poll(NOW + timedelta(hours=hours))
    summary = svc.poll(NOW + timedelta(hours=3))
    assert (summary.new_articles, summary.updated_articles) == (0, 1)
    assert [c.article.title for c in summary.changes] == [FOOTBALL.title]
    rows = svc.rows("SELECT title, summary || content AS text, revision FROM articles ORDER BY id")
    assert [(r["title"], r["revision"]) for r in rows] == [(ZEBRA.title, 1), (FOOTBALL.title, 2)]
    assert rows[1]["text"] == "Match report, corrected."


def test_bbc_replay_stores_each_item_once_and_each_headline_change_as_a_revision(
    shared_corpora: Path, server: LoopbackServer, service: Callable[..., Service]
) -> None:
    bodies = [
        f.read_bytes() for f in sorted((shared_corpora / "feeds" / "bbc-snapshots").glob("*.xml"))
    ]
    last_seen: dict[str, tuple[str, str]] = {}
    changes = 0
    for body in bodies:  # expected from the raw XML: each change of an item's title or text
        for item in ET.fromstring(body).iter("item"):
            guid = (item.findtext("guid") or item.findtext("link") or "").strip()
            words = tuple(
                " ".join((item.findtext(tag) or "").split()).casefold()
                for tag in ("title", "description")
            )
            if guid in last_seen and last_seen[guid] != words:
                changes += 1
            last_seen[guid] = words  # type: ignore[assignment]
    server.route("/bbc.xml", bodies=bodies)
    svc = service([server.url("/bbc.xml")])
    new = updated = 0
    for i in range(len(bodies)):
        summary = svc.poll(NOW + timedelta(hours=i))
        new, updated = new + summary.new_articles, updated + summary.updated_articles
    assert svc.store.count("articles") == new == len(last_seen)
    assert updated == changes > 0
    assert svc.store.count("revisions") == len(last_seen) + changes


# Revisions --------------------------------------------------------------------------------


def test_changed_headline_is_a_revision_of_the_same_article(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    first = Item("g1", "Three arrested after harbour fire", "Police say the fire was set.")
    second = Item("g1", "Five charged over harbour fire", "Police say the fire was set.")
    server.route("/f.xml", bodies=[rss([first]), rss([first]), rss([second])])
    svc = service([server.url("/f.xml")])
    assert svc.poll().new_articles == 1
    assert svc.poll(NOW + timedelta(hours=1)).updated_articles == 0  # same text: nothing new
    summary = svc.poll(NOW + timedelta(hours=2))
    assert (summary.new_articles, summary.updated_articles) == (0, 1)
    [change] = summary.changes
    assert change.updated and change.article.revision == 2
    assert svc.store.count("articles") == 1
    assert [r["title"] for r in svc.store.revisions(change.article.id)] == [
        first.title,
        second.title,
    ]
    assert [r["title"] for r in svc.store.search_articles("charged")] == [second.title]
    assert svc.store.search_articles("arrested") == []


def test_an_update_is_announced_only_for_rules_that_newly_match(
    tmp_path: Path, server: LoopbackServer, service: Callable[..., Service]
) -> None:
    rules = rule_index(tmp_path, {"fire": "fire", "charges": "charged"})
    first = Item("g1", "Harbour fire under investigation", "Firefighters worked all night.")
    second = Item("g1", "Two charged over harbour fire", "Firefighters worked all night.")
    third = Item("g1", "Two charged over harbour fire", "Firefighters worked all night. Bail set.")
    server.route("/f.xml", bodies=[rss([first]), rss([second]), rss([third])])
    svc = service([server.url("/f.xml")])

    [new] = svc.poll(matcher=rules).changes
    assert not new.updated and [m.rule_id for m in new.new_matches] == ["fire"]
    [update] = svc.poll(NOW + timedelta(hours=1), matcher=rules).changes
    assert update.updated and [m.rule_id for m in update.new_matches] == ["charges"]
    [again] = svc.poll(NOW + timedelta(hours=2), matcher=rules).changes
    assert again.updated and again.new_matches == ()  # still matching: nothing to announce
    rows = svc.rows("SELECT rule_id, revision FROM matches ORDER BY rule_id")
    assert rows == [{"rule_id": "charges", "revision": 2}, {"rule_id": "fire", "revision": 1}]


def test_a_digest_of_an_update_shows_the_headline_before_it(
    tmp_path: Path, server: LoopbackServer, service: Callable[..., Service]
) -> None:
    """The digest of a match the update made reads the headline the article had before it,
    from the stored revisions; the article's first match has none to show."""
    rules = rule_index(tmp_path, {"fire": "fire", "charges": "charged"})
    first = Item("g1", "Harbour fire under investigation", "Firefighters worked all night.")
    second = Item("g1", "Two charged over harbour fire", "Firefighters worked all night.")
    server.route("/f.xml", bodies=[rss([first]), rss([second])])
    svc = service([server.url("/f.xml")])
    delivery = desk_following(tmp_path, "fire", "charges")
    sync_subscribers(svc.store, delivery, NOW)
    svc.poll(matcher=rules)
    svc.poll(NOW + timedelta(hours=1), matcher=rules)
    [digest] = open_digests(svc.store, delivery, NOW + timedelta(hours=2), force=True)
    items = svc.store.delivery_items(digest)
    assert {i.match.rule_id: (i.updated, i.earlier_title) for i in items} == {
        "charges": (True, first.title),
        "fire": (False, ""),
    }
    [subscriber] = delivery.subscribers
    built = build_digest(items, subscriber, Labels(), NOW + timedelta(hours=2))
    footer = {"follows": "rules", "schedule": "daily 08:00", "unsubscribe_url": "mailto:x@y"}
    html, text = render(built, footer)
    assert "Headline before the update: Harbour fire under investigation" in text
    assert html.count("Headline before the update:") == 1


def desk_following(tmp_path: Path, *rule_ids: str) -> DeliveryConfig:
    """Delivery settings with one subscriber, `desk`, following these rules."""
    desk = SubscriberConfig("desk", "desk@example.org", rules=rule_ids)
    return DeliveryConfig(outbox=tmp_path / "outbox", subscribers=(desk,))


def match_rows(svc: Service) -> dict[str, dict]:
    rows = svc.rows("SELECT * FROM matches ORDER BY rule_id")
    return {r["rule_id"]: {**r, "evidence": json.loads(r["evidence"])} for r in rows}


def test_a_correction_that_no_longer_matches_withdraws_the_match(
    tmp_path: Path, server: LoopbackServer, service: Callable[..., Service]
) -> None:
    rules = rule_index(tmp_path, {"z": "zebra OR giraffe", "zoo": "zoo"})
    first = Item("g1", "Zebra escapes from zoo")
    corrected = Item("g1", "Correction: lemur escapes from zoo")
    server.route("/f.xml", bodies=[rss([first]), rss([corrected])])
    svc = service([server.url("/f.xml")])
    delivery = desk_following(tmp_path, "z", "zoo")
    sync_subscribers(svc.store, delivery, NOW)
    svc.poll(matcher=rules)
    before = match_rows(svc)["z"]

    summary = svc.poll(NOW + timedelta(hours=1), matcher=rules)
    assert (summary.new_articles, summary.updated_articles, summary.new_matches) == (0, 1, 0)
    [digest] = open_digests(svc.store, delivery, NOW + timedelta(hours=2), force=True)
    carried = svc.rows("SELECT rule_id FROM delivery_matches WHERE delivery_id = ?", [digest])
    assert carried == [{"rule_id": "zoo"}]

    rows = match_rows(svc)
    z, zoo = rows["z"], rows["zoo"]
    assert (z["revision"], z["evidence_revision"], z["withdrawn_revision"]) == (1, 1, 2)
    # Its evidence and snippet still describe revision 1, whose words they quote.
    assert (z["snippet"], z["evidence"]) == (before["snippet"], before["evidence"])
    [evidence] = z["evidence"]
    assert first.title[evidence["start"] : evidence["end"]] == evidence["text"] == "Zebra"
    assert (zoo["evidence_revision"], zoo["withdrawn_revision"]) == (2, None)


def test_a_rule_that_still_matches_a_revision_describes_that_revision(
    tmp_path: Path, server: LoopbackServer, service: Callable[..., Service]
) -> None:
    rules = rule_index(tmp_path, {"z": "zebra OR giraffe"})
    first = Item("g1", "Zebra escapes from zoo")
    second = Item("g1", "Update: zebra escapes from city zoo")
    server.route("/f.xml", bodies=[rss([first]), rss([second])])
    svc = service([server.url("/f.xml")])
    svc.poll(matcher=rules)
    before = match_rows(svc)["z"]

    [change] = svc.poll(NOW + timedelta(hours=1), matcher=rules).changes
    assert change.updated and change.new_matches == ()  # not announced again
    z = match_rows(svc)["z"]
    assert (z["revision"], z["matched_at"]) == (1, before["matched_at"])
    assert (z["evidence_revision"], z["withdrawn_revision"]) == (2, None)
    [evidence] = z["evidence"]
    assert evidence["start"] == 8
    assert second.title[evidence["start"] : evidence["end"]] == evidence["text"] == "zebra"


def test_a_revision_that_matches_again_clears_the_withdrawal(
    tmp_path: Path, server: LoopbackServer, service: Callable[..., Service]
) -> None:
    rules = rule_index(tmp_path, {"z": "zebra OR giraffe"})
    bodies = [
        rss([Item("g1", "Zebra escapes from zoo")]),
        rss([Item("g1", "Correction: lemur escapes from zoo")]),
        rss([Item("g1", "Correction: lemur escapes from zoo, keepers say")]),
        rss([Item("g1", "Zebra and lemur escape from zoo, keepers say")]),
    ]
    server.route("/f.xml", bodies=bodies)
    svc = service([server.url("/f.xml")])
    delivery = desk_following(tmp_path, "z")
    sync_subscribers(svc.store, delivery, NOW)
    svc.poll(matcher=rules)
    withdrawn = []
    for hours in (1, 2, 3):
        [change] = svc.poll(NOW + timedelta(hours=hours), matcher=rules).changes
        assert change.updated and change.new_matches == ()
        z = match_rows(svc)["z"]
        withdrawn.append((z["evidence_revision"], z["withdrawn_revision"]))
    # Withdrawn by revision 2 and still at 3 (kept from the first), matching again at 4.
    assert withdrawn == [(1, 2), (1, 2), (4, None)]
    assert z["revision"] == 1
    [digest] = open_digests(svc.store, delivery, NOW + timedelta(hours=4), force=True)
    carried = svc.rows("SELECT rule_id FROM delivery_matches WHERE delivery_id = ?", [digest])
    assert carried == [{"rule_id": "z"}]


def test_another_feeds_copy_never_revises_the_article(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    original = Item("a", "Bridge closes for repairs", "Works start Monday.", "https://n.example/b")
    copy = Item("b", "Bridge shut", "Works start Monday. Detours signed.", "https://n.example/b")
    server.route("/a.xml", rss([original]))
    server.route("/b.xml", bodies=[rss([copy]), rss([copy])])
    svc = service([server.url("/a.xml"), server.url("/b.xml")])
    svc.poll()
    summary = svc.poll(NOW + timedelta(hours=1))
    assert (summary.new_articles, summary.updated_articles) == (0, 0)
    [row] = svc.rows("SELECT title, revision FROM articles")
    assert row["revision"] == 1


# Language ---------------------------------------------------------------------------------


def test_language_is_detected_when_the_feed_declares_none(
    shared_corpora: Path, server: LoopbackServer, service: Callable[..., Service]
) -> None:
    body = (shared_corpora / "feeds" / "single" / "lemonde_une_2018-06-27.xml").read_bytes()
    assert b"<language>" not in body
    server.route("/lemonde.xml", body)
    svc = service([server.url("/lemonde.xml")])
    svc.poll()
    languages = [r["language"] for r in svc.rows("SELECT language FROM articles")]
    assert languages.count("fr") >= 0.9 * len(languages) > 0


def test_declared_language_wins_over_detection(
    server: LoopbackServer, service: Callable[..., Service]
) -> None:
    text = "Les exilés de Calais dénoncent des violences policières lors des évacuations."
    server.route("/a.xml", rss([Item("x", "Calais", text)], language=None))
    server.route("/b.xml", rss([Item("y", "Calais", text + " Bis")], language="de"))
    svc = service([server.url("/a.xml"), server.url("/b.xml")])
    svc.poll()
    rows = svc.rows("SELECT guid, language FROM articles ORDER BY guid")
    assert rows == [{"guid": "x", "language": "fr"}, {"guid": "y", "language": "de"}]
