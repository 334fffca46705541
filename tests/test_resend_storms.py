"""No resend storms: whatever a feed does between two good polls (fails, answers an empty body,
an empty feed or a challenge page, drops items that come back later, reorders them with
tracking parameters added to their links, gives them new guids, touches up their titles),
nothing is delivered twice: each matched article reaches the webhook once and appears in one
digest entry, once.

Each case polls the feed, sends due digests and dispatches webhooks after every step, as
`vigie run` does, with time as a parameter.
"""

from __future__ import annotations

import email
import email.policy
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import SAMPLES, LoopbackServer
from delivery_support import (
    IMMEDIATE_DESK,
    Receiver,
    Vigie,
    hook_to,
    write_delivery_config,
)
from html_support import Markup

RSS = (SAMPLES / "coastal-herald.rss").read_bytes()
CHALLENGE = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
    b"<p>Checking your browser before accessing the site.</p></body></html>"
)


def rss_with(transform: str) -> bytes:
    """The sample feed with its items dropped, reordered, or their links tagged."""
    root = ET.fromstring(RSS)
    channel = root.find("channel")
    assert channel is not None
    items = channel.findall("item")
    for item in items:
        channel.remove(item)
    if transform == "first-only":
        kept = items[:1]
    elif transform == "none":
        kept = []
    elif transform == "new-guids":  # a CMS migration: same articles, new guids
        kept = items
        for item in kept:
            guid = item.find("guid")
            if guid is not None:
                guid.text = f"migrated:{guid.text}"
    elif transform == "edited":  # titles touched up: a new revision, no new rule
        kept = items
        for item in kept:
            title = item.find("title")
            if title is not None and title.text:
                title.text = title.text + " (updated)"
    else:  # "reordered-tracked": newest last, every link with campaign parameters
        kept = list(reversed(items))
        for item in kept:
            link = item.find("link")
            if link is not None and link.text:
                link.text = link.text.strip() + "?utm_source=rss&utm_medium=feed&fbclid=x1"
    channel.extend(kept)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# name -> what the feed answers between two good polls: (status, body, content type)
TROUBLE = {
    "fails": [(500, b"Internal error", "text/plain"), (503, b"busy", "text/plain")],
    "empty body": [(200, b"", "application/rss+xml")],
    "empty feed": [(200, rss_with("none"), "application/rss+xml")],
    "challenge page": [(200, CHALLENGE, "text/html"), (403, CHALLENGE, "text/html")],
    "drops items": [(200, rss_with("first-only"), "application/rss+xml")] * 2,
    "reorders and tags links": [(200, rss_with("reordered-tracked"), "application/rss+xml")],
    "renames guids": [(200, rss_with("new-guids"), "application/rss+xml")],
    "edits titles": [(200, rss_with("edited"), "application/rss+xml")],
}


def digest_links(outbox: Path) -> list[str]:
    """The article link of every entry of every digest written, in order."""
    links = []
    for path in sorted(outbox.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        links += [
            attrs["href"]
            for tag, attrs in Markup(html).tags
            if tag == "a" and attrs.get("dir") == "auto"  # a headline: the entry's own link
        ]
    return links


@pytest.mark.parametrize("trouble", TROUBLE)
def test_nothing_is_delivered_twice_when_a_feed_misbehaves(
    trouble: str, tmp_path: Path, server: LoopbackServer, receiver: Receiver
) -> None:
    route = server.route("/feed.xml", RSS)
    config = write_delivery_config(
        tmp_path,
        feeds=[{"url": server.url("/feed.xml"), "name": "Herald"}],
        subscribers=[IMMEDIATE_DESK],
        webhooks=[hook_to(receiver)],
    )
    start_time = datetime.now(UTC).replace(microsecond=0)
    vigie = Vigie(config, start_time)
    steps = [
        (200, RSS, "application/rss+xml"),
        *TROUBLE[trouble],
        (200, RSS, "application/rss+xml"),
    ]
    try:
        for i, (status, body, content_type) in enumerate(steps):
            with server.lock:
                route.status, route.bodies = status, [body]
                route.headers["Content-Type"] = content_type
            now = start_time + timedelta(seconds=i)
            vigie.poll(now)
            vigie.send_digests(now)
            vigie.dispatch(now)
            if i == 0:
                first = (len(receiver.requests), len(digest_links(tmp_path / "outbox")))
        matched = vigie.rows("SELECT count(DISTINCT article_id) FROM matches")[0][0]
        statuses = vigie.rows("SELECT kind, status, count(*) FROM deliveries GROUP BY 1, 2")
    finally:
        vigie.close()

    assert matched > 0 and first == (matched, matched)  # all delivered after the first poll
    ids = Counter(request.headers["webhook-id"] for request in receiver.requests)
    articles = Counter(request.json["data"]["article"]["id"] for request in receiver.requests)
    assert len(receiver.requests) == matched  # nothing more after the trouble
    assert max(ids.values()) == 1 and max(articles.values()) == 1
    links = digest_links(tmp_path / "outbox")
    assert len(links) == matched and max(Counter(links).values()) == 1
    assert statuses == [("digest", "sent", 1), ("webhook", "sent", matched)]
