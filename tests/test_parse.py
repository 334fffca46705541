"""parse_feed: real publishers' feeds, the bundled samples, JSON Feed, HTML, dates, non-feeds."""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import feedparser
import feedparser.mixin
import feedparser.urls
import pytest
from conftest import SAMPLES
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.errors import FeedParseError
from monitor.parse import MAX_ITEMS, parse_feed

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
URL = "https://news.example.com/feed.xml"


def parse(body: bytes | str, content_type: str = "", **kwargs: object):  # noqa: ANN201
    data = body.encode() if isinstance(body, str) else body
    headers = {"content-type": content_type} if content_type else {}
    return parse_feed(data, headers, kwargs.pop("url", URL), now=NOW, **kwargs)  # type: ignore[arg-type]


def rss(items: str, channel_extra: str = "") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>Test &amp; Co</title><link>https://news.example.com/</link>{channel_extra}"
        f"{items}</channel></rss>"
    )


def single_feeds(corpora: Path) -> list[Path]:
    folder = corpora / "feeds" / "single"
    return sorted([*folder.glob("*.xml"), *folder.glob("*.rss")])


def test_every_real_single_feed_parses(shared_corpora: Path) -> None:
    files = single_feeds(shared_corpora)
    assert files, "feeds/single holds no *.xml or *.rss"
    for path in files:
        title, articles = parse(path.read_bytes())
        assert title, path.name
        items = ET.parse(path).getroot().findall("./channel/item")
        assert len(articles) == len(items), path.name
        for article in articles:
            assert article.title.strip(), path.name
            assert "<" not in article.title, path.name
            assert article.published is not None and article.published.utcoffset() == timedelta(0)
            assert article.updated is None or article.updated.utcoffset() == timedelta(0)
            assert article.published <= NOW + timedelta(days=1)
            assert article.guid and article.url.startswith("http"), path.name
        dated = [a for a in articles if a.published != NOW]
        assert dated, f"{path.name}: no item kept its own date"


def test_real_feed_dates_are_converted_to_utc(shared_corpora: Path) -> None:
    # Le Monde 2024 writes "+0000", franceinfo "+0100": the first item is 06:03:35 in Paris.
    path = shared_corpora / "feeds" / "single" / "francetvinfo_titres_2024-01-18.xml"
    if not path.exists():
        pytest.skip(f"{path} absent")
    first = ET.parse(path).getroot().find("./channel/item/pubDate")
    assert first is not None and first.text is not None and first.text.endswith("+0100")
    _, articles = parse(path.read_bytes())
    local = datetime.strptime(first.text.strip(), "%a, %d %b %Y %H:%M:%S %z")
    assert articles[0].published == local.astimezone(UTC)
    assert articles[0].published.tzinfo == UTC


def test_real_french_feed_keeps_accents_and_declared_language(shared_corpora: Path) -> None:
    path = shared_corpora / "feeds" / "single" / "lemonde_une_2024-01-18.xml"
    if not path.exists():
        pytest.skip(f"{path} absent")
    title, articles = parse(path.read_bytes())
    assert "Actualités" in title
    assert {a.language for a in articles} == {"fr"}


@pytest.mark.parametrize(
    ("name", "item_path"),
    [
        ("coastal-herald.rss", "./channel/item"),
        ("nord-actu.atom", "{http://www.w3.org/2005/Atom}entry"),
        ("wire-digest.rdf", "{http://purl.org/rss/1.0/}item"),
    ],
)
def test_bundled_xml_samples_parse(name: str, item_path: str) -> None:
    path = SAMPLES / name
    title, articles = parse(path.read_bytes(), feed_id=7)
    assert title
    assert len(articles) == len(ET.parse(path).getroot().findall(item_path))
    assert len({a.guid for a in articles}) == len(articles)
    for article in articles:
        assert article.feed_id == 7
        assert article.title and article.url.startswith("https://")
        assert article.published is not None and article.published.tzinfo == UTC
        assert article.published != NOW  # every sample item is dated
        assert article.feed_name == title
        assert article.authors


def test_atom_sample_is_french_with_paragraphs() -> None:
    _, articles = parse((SAMPLES / "nord-actu.atom").read_bytes())
    assert {a.language for a in articles} == {"fr"}
    first = articles[0]
    assert first.title.startswith("Calais : un policier jugé")
    assert first.published == datetime(2026, 11, 24, 6, 30, tzinfo=UTC)  # 07:30+01:00
    assert first.authors == ("Clémence Vandamme",)
    assert "justice" in first.categories
    paragraphs = first.content.split("\n\n")
    assert len(paragraphs) >= 3
    assert paragraphs[0].startswith("Le procès s'est ouvert mardi matin")
    assert "<p>" not in first.content
    assert first.content_html.startswith("<p>")


def test_rss_sample_language_comes_from_the_channel() -> None:
    _, articles = parse((SAMPLES / "coastal-herald.rss").read_bytes())
    assert {a.language for a in articles} == {"en"}  # <language>en-gb</language>
    assert articles[0].guid == "coastal-herald-2026-11-23-0001"
    assert articles[0].content and articles[0].summary
    assert articles[0].content != articles[0].summary


def test_json_feed_sample_parses() -> None:
    path = SAMPLES / "border-watch.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    title, articles = parse(path.read_bytes(), "application/feed+json")
    assert title == "Border Watch"
    assert [a.guid for a in articles] == [item["id"] for item in doc["items"]]
    first = articles[0]
    assert first.title == doc["items"][0]["title"]
    assert first.url == doc["items"][0]["url"]
    assert first.language == "en"
    assert "\n\n" in first.content and "<p>" not in first.content
    assert first.published is not None and first.published.tzinfo == UTC


def test_json_feed_is_recognised_without_a_content_type() -> None:
    _, articles = parse((SAMPLES / "border-watch.json").read_bytes())
    assert len(articles) == 6


def test_json_feed_details() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "J",
        "authors": [{"name": "Newsroom"}],
        "items": [
            {
                "id": "1",
                "url": "/a/1",
                "title": "First",
                "content_text": "Para one.\n\nPara two.",
                "date_published": "2026-11-20T10:00:00+02:00",
                "tags": ["x"],
            },
            {"id": "2", "title": "Second", "authors": [{"name": "Ana"}], "language": "fr"},
            {"id": "3"},  # nothing to show: skipped
            "not an item",
        ],
    }
    _, articles = parse(json.dumps(doc), "application/feed+json")
    assert [a.guid for a in articles] == ["1", "2"]
    first, second = articles
    assert first.url == "https://news.example.com/a/1"
    assert first.content == "Para one.\n\nPara two."
    assert first.content_html == "<p>Para one.</p><p>Para two.</p>"
    assert first.published == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert first.authors == ("Newsroom",) and first.categories == ("x",)
    assert second.authors == ("Ana",) and second.language == "fr"
    assert second.published == NOW  # no date: first seen now


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "not a feed: invalid JSON"),
        ('{"title": "x", "items": []}', "not a feed: JSON without a jsonfeed.org version"),
        ('{"version": "https://jsonfeed.org/version/1", "items": {}}', "JSON Feed items is not"),
    ],
)
def test_bad_json_feed_raises(body: str, reason: str) -> None:
    with pytest.raises(FeedParseError) as caught:
        parse(body, "application/json")
    assert caught.value.reason.startswith(reason)
    assert str(caught.value).startswith(URL + ": ")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("<!DOCTYPE html><html><body><p>News</p></body></html>", "an HTML page (its <link rel"),
        ("\n  <!-- cms --> <html lang='en'><body>x</body></html>", "an HTML page (its <link rel"),
        ("[1, 2]", "JSON, but not a JSON Feed"),
    ],
)
def test_a_page_or_plain_json_is_named_as_what_it_is(body: str, reason: str) -> None:
    """feedparser's reasons for these ("no Content-type specified", "<unknown>:2:0: syntax
    error") told an operator nothing about the address they had given."""
    with pytest.raises(FeedParseError) as caught:
        parse(body)
    assert caught.value.reason.startswith(f"not a feed: {reason}")


def test_a_feed_cut_off_before_its_first_item_is_an_error(shared_corpora: Path) -> None:
    """It counted as a successful poll with no items: a feed broken for good looked healthy."""
    snapshot = sorted((shared_corpora / "feeds" / "bbc-snapshots").glob("*.xml"))[0]
    with pytest.raises(FeedParseError) as caught:
        parse_feed(snapshot.read_bytes()[:1000], {}, URL)
    assert caught.value.reason.startswith("broken XML, no item could be read: ")
    _, articles = parse_feed(snapshot.read_bytes()[:20000], {}, URL)  # cut later: items kept
    assert articles


def test_a_json_feed_is_cleaned_as_rss_is() -> None:
    """A security review: C1 controls (U+009B is a terminal's CSI) kept in titles; JSON Feed
    authors and tags stored raw, escape sequences and line breaks included; its display HTML's
    relative links left unresolved."""
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "J",
        "items": [
            {
                "id": "1",
                "url": "https://news.example.com/a/1",
                "title": "Police \u009b2J\u009b31mRED",
                "content_html": '<p>See <a href="/more">more</a> and <img src="//t.example/p"></p>',
                "authors": [{"name": "Bob\u001b[31mRED\nX-Injected: yes"}],
                "tags": ["calais\u0007\nX: y"],
            }
        ],
    }
    [article] = parse(json.dumps(feed), "application/feed+json")[1]
    assert article.title == "Police 2J31mRED"
    assert article.authors == ("Bob[31mRED X-Injected: yes",)
    assert article.categories == ("calais X: y",)
    assert 'href="https://news.example.com/more"' in article.content_html


def test_html_description_becomes_plain_text_and_display_html_is_safe() -> None:
    description = (
        "<p>Police <b>cleared</b> the camp &amp; left.</p>"
        "<script>alert('x')</script>"
        '<p onclick="steal()">Second <a href="javascript:evil()">para</a>'
        '<img src="https://img.example.com/a.jpg" onerror="steal()"></p>'
        '<style>p { color: red }</style><iframe src="https://evil.example"></iframe>'
    )
    _, [article] = parse(
        rss(
            f"<item><title>T</title><link>https://x.example/1</link>"
            f"<description><![CDATA[{description}]]></description></item>"
        )
    )
    assert article.summary == "Police cleared the camp & left.\n\nSecond para"
    assert "alert" not in article.summary and "color" not in article.summary
    html = article.content_html.lower()
    assert "<p>" in html and "<b>cleared</b>" in html
    assert "<script" not in html and "alert" not in html
    assert "<style" not in html and "<iframe" not in html
    assert " on" not in html.replace("<p>", "")  # no onclick / onerror attributes
    assert "javascript:" not in html
    assert 'src="https://img.example.com/a.jpg"' in html


def test_html_entities_in_titles_become_text() -> None:
    _, [escaped, plain] = parse(
        rss(
            "<item><title>Fish &amp;amp; chips &lt;b&gt;now&lt;/b&gt;</title><guid>1</guid></item>"
            "<item><title>Tom &amp; Jerry say 3 &lt; 4</title><guid>2</guid></item>"
        )
    )
    assert escaped.title == "Fish & chips now"
    assert plain.title == "Tom & Jerry say 3 < 4"


def test_a_title_written_over_several_lines_is_one_line() -> None:
    """Pretty-printed XML breaks titles over lines; a digest prints a title as one line."""
    _, [broken, unnamed] = parse(
        rss(
            "<item><title>\n   Police beat migrants\n   near the camp\n </title>"
            "<guid>1</guid></item>"
            "<item><title>No guid\n\n== FAKE ==</title><description>d</description></item>"
        )
    )
    assert broken.title == "Police beat migrants near the camp"
    assert unnamed.title == "No guid == FAKE =="
    # An item without guid or link keeps the id it was stored under before titles were joined.
    assert unnamed.guid == "sha1:" + hashlib.sha1(b"No guid\n\n== FAKE ==\nd").hexdigest()


def test_a_lone_surrogate_is_replaced_not_the_end_of_the_feed() -> None:
    """Half a UTF-16 pair, as an XML character reference or a JSON escape, is a character no
    encoder takes: feedparser raised on it, and SQLite and hashing would have."""
    item = "<item><title>&#xD800; Police &#56320; &#x1F600;</title><guid>g&#55296;</guid></item>"
    _, [xml] = parse(rss(item))
    escaped = "\\ud800 Police \\ud83d\\ude00"  # a lone half, then a pair (an emoji)
    _, [jsonfeed] = parse(
        '{"version": "https://jsonfeed.org/version/1.1", "title": "T",'
        f' "items": [{{"id": "1\\udc00", "title": "{escaped}", "tags": ["a\\ud800"]}}]}}'
    )
    assert xml.title == "\ufffd Police \ufffd \U0001f600" and xml.guid.endswith("g\ufffd")
    assert jsonfeed.title == "\ufffd Police \U0001f600"
    assert (jsonfeed.guid, jsonfeed.categories) == ("1\ufffd", ("a\ufffd",))
    for article in (xml, jsonfeed):
        for value in (article.title, article.guid, *article.categories):
            value.encode("utf-8")  # what SQLite does with it


def test_a_long_feed_gives_its_thousand_newest_items() -> None:
    """A feed of 50,000 matching items cost minutes and 790 MB to parse, and made as many
    alerts in one poll (security review): the MAX_ITEMS at its newest end are read, in the
    feed's order: its start, or its end when it lists the oldest first (an archive)."""

    def dated(i: int) -> str:
        when = format_datetime(NOW - timedelta(hours=5000 - i))
        return f"<item><title>Item {i}</title><guid>g{i}</guid><pubDate>{when}</pubDate></item>"

    _, articles = parse(rss("".join(dated(i) for i in reversed(range(2500)))))
    assert MAX_ITEMS == 1000 and len(articles) == 1000
    assert (articles[0].title, articles[-1].title) == ("Item 2499", "Item 1500")
    _, articles = parse(rss("".join(dated(i) for i in range(2500))))
    assert (articles[0].title, articles[-1].title) == ("Item 1500", "Item 2499")
    undated = "".join(f"<item><title>Item {i}</title><guid>g{i}</guid></item>" for i in range(1500))
    assert [a.title for a in parse(rss(undated))[1]] == [f"Item {i}" for i in range(1000)]
    entries = ",".join(
        f'{{"id": "j{i}", "title": "Item {i}", "date_published": '
        f'"{(NOW - timedelta(hours=5000 - i)).isoformat()}"}}'
        for i in range(2500)
    )
    _, articles = parse(f'{{"version": "https://jsonfeed.org/version/1.1", "items": [{entries}]}}')
    assert (articles[0].title, articles[-1].title) == ("Item 1500", "Item 2499")


def test_missing_date_falls_back_to_now() -> None:
    _, [article] = parse(rss("<item><title>No date</title><guid>g1</guid></item>"))
    assert article.published == NOW and article.updated is None  # not made up


def test_future_date_is_replaced_by_now() -> None:
    _, [article] = parse(
        rss(
            "<item><title>Tomorrow+</title><guid>g1</guid>"
            "<pubDate>Sat, 28 Nov 2026 12:00:00 +0000</pubDate></item>"
        )
    )
    assert article.published == NOW


def test_date_within_a_day_ahead_is_kept_as_clock_skew() -> None:
    _, [article] = parse(
        rss(
            "<item><title>Skew</title><guid>g1</guid>"
            "<pubDate>Wed, 25 Nov 2026 20:00:00 +0000</pubDate></item>"
        )
    )
    assert article.published == datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("written", "utc"),
    [
        ("Mon, 23 Nov 2026 22:55:00 CET", "2026-11-23 21:55"),
        ("Tue, 07 Jul 2026 10:00:00 CEST", "2026-07-07 08:00"),
        ("Tue, 07 Jul 2026 10:00:00 BST", "2026-07-07 09:00"),
        ("23 Nov 2026 22:55 cet", "2026-11-23 21:55"),
        ("Mon, 23 Nov 2026 22:55:00 MEST", "2026-11-23 20:55"),  # feedparser's own names
        ("Mon, 23 Nov 2026 22:55:00 EST", "2026-11-24 03:55"),
        ("Mon, 23 Nov 2026 22:55:00 GMT", "2026-11-23 22:55"),
    ],
)
def test_european_zone_names_are_not_read_as_utc(written: str, utc: str) -> None:
    """A French feed's "22:55:00 CET" was read as UTC: stored an hour late, in the future."""
    _, [article] = parse(
        rss(f"<item><title>T</title><guid>g1</guid><pubDate>{written}</pubDate></item>")
    )
    assert f"{article.published:%Y-%m-%d %H:%M}" == utc


def test_date_before_1990_is_not_trusted() -> None:
    _, [article] = parse(
        rss(
            "<item><title>Epoch</title><guid>g1</guid>"
            "<pubDate>Thu, 01 Jan 1970 00:00:00 +0000</pubDate></item>"
        )
    )
    assert article.published == NOW


def test_published_falls_back_to_updated() -> None:
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>urn:a</id>'
        "<updated>2026-11-20T10:00:00Z</updated><entry><id>urn:a:1</id><title>Only updated</title>"
        "<updated>2026-11-20T10:00:00-05:00</updated></entry></feed>"
    )
    _, [article] = parse(atom)
    assert article.published == datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    assert article.updated == article.published


def test_relative_links_resolve_against_the_feed_url() -> None:
    _, [article] = parse(rss("<item><title>Rel</title><link>/news/42</link></item>"))
    assert article.url == "https://news.example.com/news/42"
    assert article.guid  # the link stands in for a missing guid


def test_relative_links_in_item_html_resolve_against_the_feed_url() -> None:
    # A digest shows the item's HTML far from the publisher's site: /story/7 must still lead there.
    item = (
        "<item><title>Rel</title><guid>g</guid><description>"
        '&lt;p&gt;&lt;a href="/story/7"&gt;Read&lt;/a&gt; &lt;img src="pics/7.jpg"&gt;'
        '&lt;a href="https://other.example/x"&gt;Other&lt;/a&gt; &lt;a href="//cdn.example/y"&gt;'
        "CDN&lt;/a&gt;&lt;/p&gt;</description></item>"
    )
    _, [article] = parse(rss(item), url="https://news.example.com/rss/world.xml")
    html = article.content_html
    assert 'href="https://news.example.com/story/7"' in html
    assert 'src="https://news.example.com/rss/pics/7.jpg"' in html
    assert 'href="https://other.example/x"' in html
    assert 'href="https://cdn.example/y"' in html


def test_relative_links_in_atom_html_follow_xml_base() -> None:
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>urn:a</id>'
        '<updated>2026-11-20T10:00:00Z</updated><entry xml:base="https://blog.example.org/2026/">'
        "<id>urn:a:1</id><title>Based</title><updated>2026-11-20T10:00:00Z</updated>"
        '<content type="html">&lt;a href="post.html"&gt;post&lt;/a&gt;</content></entry></feed>'
    )
    _, [article] = parse(atom)
    assert 'href="https://blog.example.org/2026/post.html"' in article.content_html


def test_feedparser_shortcuts_change_no_parse(
    shared_corpora: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # monitor/parse.py caches feedparser's base-URI function, copies its content parameters
    # itself and skips joining plain absolute links: what feedparser makes of every real feed,
    # and of entries whose xml:base and xml:lang differ, must be what it made without them.
    entry = (
        '<entry xml:base="https://{host}/{n}/" xml:lang="{lang}">'
        "<id>urn:a:{n}</id><title>E{n}</title>"
        '<updated>2026-11-20T10:00:00Z</updated><link href="story.html"/>'
        '<content type="html">&lt;a href="more.html"&gt;more&lt;/a&gt;</content></entry>'
    )
    entries = "".join(
        entry.format(host=host, n=n, lang=lang)
        for n in range(3)
        for host, lang in (("a.example", "fr"), ("b.example", "en-GB"))
    )
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://feeds.example/x/">'
        f"<title>A</title><id>urn:a</id><updated>2026-11-20T10:00:00Z</updated>{entries}</feed>"
    ).encode()
    bodies = [atom, *(path.read_bytes() for path in single_feeds(shared_corpora))]

    def parsed() -> list[tuple[object, object]]:
        out = [
            feedparser.parse(
                body,
                response_headers={"content-location": URL},
                sanitize_html=False,
                resolve_relative_uris=False,
            )
            for body in bodies
        ]
        return [(p.feed, p.entries) for p in out]

    cached = parsed()
    remembered = feedparser.mixin.make_safe_absolute_uri
    assert remembered is not feedparser.urls.make_safe_absolute_uri  # the cache is in place
    assert feedparser.mixin.copy is not copy  # the content parameters' own copy is in place
    monkeypatch.setattr(feedparser.mixin, "make_safe_absolute_uri", remembered.__wrapped__)
    monkeypatch.setattr(feedparser.mixin, "copy", copy)
    monkeypatch.setattr(feedparser.mixin, "_urljoin", feedparser.urls._urljoin)
    assert cached == parsed()
    assert cached[0][1][0].content[0].language == "fr"
    links = [e.link for e in cached[0][1]]
    assert links[:2] == ["https://a.example/0/story.html", "https://b.example/0/story.html"]


_URI_PARTS = st.sampled_from(
    [
        ":",
        "//",
        "/",
        "a.example",
        "b-c.example",
        ":8080",
        "[::1]",
        "[",
        "@",
        "user@",
        "..",
        ".",
        "?",
        "?q=1",
        "#",
        "#top",
        ";p",
        "%20",
        "%zz",
        "~x",
        " ",
        "\t",
        "\n",
        "\\",
        "é",
        "ｅ",
        "x",
        "0",
        "!$&'()*+,=",
        "\x00",
    ]
)
_URIS = st.tuples(
    st.sampled_from(["http", "https", "HTTP", "Https", "ftp", "file", "", " "]),
    st.sampled_from(["://", ":", ":///", ":/", "//", ""]),
    st.sampled_from(["a.example", "b-c.example:8080", "[::1]", "user@a.example", "ｅ.example", ""]),
    st.lists(st.sampled_from(["/", "/x", "/.."]), max_size=2).map("".join),
    st.lists(_URI_PARTS, max_size=6).map("".join),
).map("".join)


@settings(max_examples=1000, deadline=None)
@example(uri="http://a.example/?", base="http://b.example/")
@example(uri="http://a.example/x;", base="http://b.example/")
@example(uri="http://a.example/#", base="http://b.example/")
@example(uri="http://a.example/ ", base="http://b.example/")
@example(uri="HTTP://a.example/x", base="http://b.example/")
@example(uri="http:///a.example", base="http://b.example/")
@example(uri="http://a.example\t/x", base="http://b.example/")
@example(uri="http://[::1/x", base="http://b.example/")
@example(uri="http://\uff45.example/", base="http://b.example/")
@example(uri="http://a.example:80/x/../y", base="http://b.example/")
@example(uri="http://user@a.example/", base="http://b.example/")
@given(
    uri=_URIS,
    base=st.sampled_from(
        ["", "https://feeds.example/x/", "http://a.example/", "HTTP://A.example", "file:///tmp/"]
    ),
)
def test_plain_links_are_joined_as_feedparser_joins_them(uri: str, base: str) -> None:
    # Links that monitor/parse.py gives back without joining must be exactly what the join
    # gives; every other link is joined as before.
    assert feedparser.mixin._urljoin is not feedparser.urls._urljoin  # the shortcut is in place
    assert feedparser.mixin._urljoin(base, uri) == feedparser.urls._urljoin(base, uri)


def test_a_body_naming_a_local_file_is_not_read_from_disk(tmp_path: Path) -> None:
    # feedparser opens bytes given to it as a file name if one exists: a server answering with
    # the path of a feed on this machine must not have that file parsed and stored.
    local = tmp_path / "private.xml"
    local.write_text(
        "<rss version='2.0'><channel><title>Private</title><item><title>Secret</title>"
        "<link>https://private.example/1</link></item></channel></rss>",
        encoding="utf-8",
    )
    with pytest.raises(FeedParseError, match="not a feed"):
        parse_feed(str(local).encode(), {}, URL)


def test_long_base_uris_are_not_kept() -> None:
    # A feed's xml:base of any length must not stay in the process's memory after parsing.
    entry = (
        '<entry xml:base="https://long.example/{n}/{padding}/"><id>urn:l:{n}</id><title>L</title>'
        '<updated>2026-11-20T10:00:00Z</updated><link href="story.html"/></entry>'
    )
    entries = "".join(entry.format(n=n, padding="p" * 3000) for n in range(50))
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>L</title><id>urn:l</id>'
        f"<updated>2026-11-20T10:00:00Z</updated>{entries}</feed>"
    )
    feedparser.mixin.make_safe_absolute_uri.cache_clear()  # a full cache would not grow at all
    before = feedparser.mixin.make_safe_absolute_uri.cache_info().currsize
    _, articles = parse(atom, url="https://long.example/feed.xml")
    after = feedparser.mixin.make_safe_absolute_uri.cache_info().currsize
    assert len(articles) == 50
    assert articles[7].url.startswith("https://long.example/7/ppp")  # resolved, then cut
    assert after - before < 50  # the ordinary feed URL's pairs only, not one per long base


def test_relative_links_of_a_local_feed_are_dropped() -> None:
    # A feed read from a file has no web address to resolve against; file: links are not shown.
    item = (
        "<item><title>T</title><guid>g</guid>"
        '<description>&lt;a href="a.html"&gt;A&lt;/a&gt;</description></item>'
    )
    _, [article] = parse(rss(item), url="file:///srv/feeds/local.xml")
    assert "href" not in article.content_html and "A" in article.content_html


def test_unreadable_relative_links_are_dropped_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    # nh3 reports an exception in its URL hook on sys.unraisablehook: a traceback on stderr.
    reported: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    item = (
        "<item><title>T</title><guid>g</guid><description>"
        '&lt;a href="//[::1"&gt;A&lt;/a&gt; &lt;img src="//[bad"&gt;</description></item>'
    )
    _, [article] = parse(rss(item))
    assert "href" not in article.content_html and "src" not in article.content_html
    assert reported == []


def test_item_without_guid_or_link_gets_a_stable_guid() -> None:
    body = rss("<item><title>Orphan</title><description>Text</description></item>")
    _, [first] = parse(body)
    _, [again] = parse(body)
    assert first.guid.startswith("sha1:") and first.guid == again.guid


def test_empty_item_is_skipped() -> None:
    _, articles = parse(rss("<item><guid>g0</guid></item><item><title>Kept</title></item>"))
    assert [a.title for a in articles] == ["Kept"]


def test_configured_language_applies_when_the_feed_has_none() -> None:
    _, [article] = parse(rss("<item><title>T</title><guid>g</guid></item>"), language="fr")
    assert article.language == "fr"


def test_configured_language_wins_over_what_the_feed_declares() -> None:
    """A French blog whose CMS declares its default, en-US: the operator says French."""
    body = rss(
        "<language>en-US</language><item><title>Calais : des exilés expulsés</title>"
        "<guid>g</guid></item>"
    )
    assert parse(body)[1][0].language == "en"
    assert parse(body, language="fr-FR")[1][0].language == "fr"
    json_feed = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "Blog",
            "language": "en-US",
            "items": [{"id": "1", "title": "Des exilés expulsés", "language": "en"}],
        }
    )
    assert parse(json_feed, "application/feed+json", language="fr")[1][0].language == "fr"


def test_html_page_is_not_a_feed() -> None:
    page = (
        "<!DOCTYPE html><html><head><title>Welcome</title></head>"
        "<body><h1>Our news</h1><p>Subscribe!</p></body></html>"
    )
    with pytest.raises(FeedParseError) as caught:
        parse(page, "text/html; charset=utf-8")
    assert caught.value.reason.startswith("not a feed")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("body", [b"", b"just some text", b"\x89PNG\r\n\x1a\n\0\0\0"])
def test_other_non_feeds_raise(body: bytes) -> None:
    with pytest.raises(FeedParseError):
        parse(body)


def test_items_without_an_updated_date_need_no_deprecated_feedparser_fallback() -> None:
    """feedparser answers a missing `updated_parsed` with `published_parsed` and a
    DeprecationWarning, a fallback it says it will remove: Vigie falls back itself, so
    parsing works the same with deprecations made errors (as a future feedparser would)."""
    import warnings

    body = (SAMPLES / "coastal-herald.rss").read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        _, articles = parse(body)
    assert articles and all(a.updated is None and a.published != NOW for a in articles)


def test_decomposed_accents_are_composed_so_words_stay_whole() -> None:
    """ "é" sent as "e" and a combining accent (as some Mac software writes it) is stored as "é":
    otherwise the matcher sees "exile" and "s", and `exilés` never matches."""
    title = "Les exile\u0301s de Calais e\u0301vacue\u0301s"
    _, (article,) = parse(
        rss(f"<item><title>{title}</title><description>Re\u0301cit</description></item>")
    )
    assert article.title == "Les exilés de Calais évacués"
    assert article.summary == "Récit"
