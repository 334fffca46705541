"""An article page's main text, canonical link and declared language. Pure: bytes in, text out.

trafilatura finds the main text (boilerplate, menus, related links and comments left out); on the
article-extraction benchmark its precision-favouring mode scores the best token F1 of its modes
(see bench/extraction.py and docs/identity.md). The page's `<link rel="canonical">` and
`<html lang>` are read from the same parsed tree.

What the caller may rely on: `extract_page` never raises for a malformed page; it returns a
PageText whose `text` is "" when no main text was found.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from urllib.parse import urljoin

import trafilatura

from .text import base_language, normalise_space

_MAX_TEXT = 200_000  # characters kept, as for feed text

# trafilatura logs each page it cannot make sense of; the caller records that once, on the item.
logging.getLogger("trafilatura").setLevel(logging.ERROR)


@dataclass(frozen=True)
class PageText:
    text: str  # paragraphs separated by blank lines; "" when nothing was found
    canonical_url: str = ""  # absolute, as the page declares it; "" when it declares none
    language: str = ""  # base code from <html lang>, "" when absent
    title: str = ""  # the headline, when asked for; "" when the page gives none


# One extraction at a time: trafilatura parses with one lxml parser shared by the whole module
# and copies trees it made, and pages extracted in the page pool's threads at once aborted the
# process now and then (libxml2, in copy.copy of a tree while another thread parsed). Extraction
# holds the GIL almost throughout, so taking turns costs little.
_ONE_AT_A_TIME = threading.Lock()


def extract_page(body: bytes, url: str, *, title: bool = False) -> PageText:
    """The main text of an HTML page fetched from `url`; with `title`, its headline too (a
    page tested alone, with no feed item to give one)."""
    with _ONE_AT_A_TIME:
        return _extract_page(body, url, title)


def _extract_page(body: bytes, url: str, with_title: bool) -> PageText:
    try:
        tree = trafilatura.load_html(body)
    except (ValueError, TypeError):
        tree = None
    if tree is None:
        return PageText("")
    canonical = next(iter(tree.xpath('//head/link[@rel="canonical"]/@href')), "")
    language = next(iter(tree.xpath("/html/@lang")), "")
    headline = _headline(tree, url) if with_title else ""
    try:
        text = trafilatura.extract(
            tree, url=url, include_comments=False, favor_precision=True, deduplicate=False
        )
    except (ValueError, TypeError, AttributeError):  # a tree trafilatura cannot walk
        text = None
    paragraphs = (text or "").replace("\r", "").split("\n")
    clean = "\n\n".join(p for p in (normalise_space(p) for p in paragraphs) if p)
    return PageText(
        text=clean[:_MAX_TEXT],
        canonical_url=urljoin(url, canonical.strip()) if canonical.strip() else "",
        language=base_language(language),
        title=headline,
    )


def _headline(tree: object, url: str) -> str:
    """The page's headline as trafilatura reads it (og:title, h1, <title> without the site's
    name after it): the <title> alone was "… | World | News | Express.co.uk"."""
    try:
        found = trafilatura.extract_metadata(tree, default_url=url, extensive=False).title
    except (ValueError, TypeError, AttributeError):  # a tree trafilatura cannot walk
        found = None
    return normalise_space(found or "")
