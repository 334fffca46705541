"""Full text for feeds that ask for it (`full_text = true`): fetch each new or changed item's
page and let rules match its main text instead of the feed's summary.

Pages are fetched like feeds (fetch.fetch_page: same User-Agent, deadline, size cap, redirect
limit and network guard) but only for items the database does not hold unchanged, and through a
pool of their own (`fetch.page_concurrency`), shared by every feed worker of a poll cycle, so a
feed of a hundred new items neither hammers its publisher nor holds up the other feeds' workers.

When the page cannot be used (an HTTP error, not HTML, no main text found, or less text than the
feed already gave), the item keeps the feed's text and `full_text_error` says why; the failure is
logged and stored on the article. The page's `<link rel="canonical">` replaces the item's URL as
its identity when it points into the same site.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import requests

from .config import FetchConfig
from .extract import extract_page
from .fetch import fetch_page
from .identity import TrackingParams, identity_url, same_site
from .records import Article

log = logging.getLogger(__name__)

_HTML_TYPES = ("text/html", "application/xhtml+xml")


class PageFetcher:
    """Fetches and extracts article pages for one poll cycle; `close` when the cycle ends."""

    def __init__(
        self, session: requests.Session, config: FetchConfig, tracking: TrackingParams
    ) -> None:
        self.session, self.config, self.tracking = session, config, tracking
        self.pool = ThreadPoolExecutor(
            max_workers=max(1, config.page_concurrency), thread_name_prefix="page"
        )

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PageFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def enrich(self, articles: Sequence[Article], known: Mapping[str, str | None]) -> list[Article]:
        """The items with their pages' text, for those not already stored unchanged (`known`
        maps a stored item's guid to its feed fingerprint; None for a pruned item)."""
        futures = {
            i: self.pool.submit(self.with_page, article)
            for i, article in enumerate(articles)
            if article.guid not in known
            or (known[article.guid] is not None and known[article.guid] != article.fingerprint)
        }
        out = list(articles)
        for i, future in futures.items():
            out[i] = future.result()
        return out

    def with_page(self, article: Article) -> Article:
        """The article with its page's main text, or with the reason it could not get it."""
        if not article.url.lower().startswith(("http://", "https://")):
            return self._failed(article, "the item has no web page address")
        result = fetch_page(self.session, article.url, self.config)
        if result.error or result.body is None:
            return self._failed(article, result.error or "empty response")
        content_type = result.headers.get("content-type", "text/html").lower()
        if not content_type.startswith(_HTML_TYPES):
            return self._failed(article, f"not an HTML page ({content_type.split(';')[0]})")
        page = extract_page(result.body, result.url)
        if not page.text:
            return self._failed(article, "no main text found on the page")
        if len(page.text) < len(article.summary) + len(article.content):
            return self._failed(article, "the page has less text than the feed")
        declared = page.canonical_url if same_site(page.canonical_url, result.url) else ""
        canonical = identity_url(declared or result.url, self.tracking)
        return replace(
            article,
            content=page.text,
            full_text=True,
            full_text_error="",
            canonical_url=canonical or article.canonical_url,
            language=article.language or page.language,
        )

    @staticmethod
    def _failed(article: Article, reason: str) -> Article:
        log.warning(
            "full text of %s unavailable, using the feed's text",
            article.url,
            extra={"feed_id": article.feed_id, "error": reason},
        )
        return replace(article, full_text_error=reason)
