"""Fetch one feed over HTTP (or from a local file the config lists), politely and within limits.

What the caller may rely on: `fetch_feed` never raises for an expected failure; it returns a
FetchResult whose `error` says what went wrong in one line. Conditional GET validators are sent
back exactly as received; a body whose hash equals the last one comes back `unchanged`.
"""

from __future__ import annotations

import email.utils
import hashlib
import math
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import requests
from requests.cookies import RequestsCookieJar
from urllib3.exceptions import HTTPError

from .config import FetchConfig
from .errors import BlockedAddressError
from .netguard import AddressPolicy, SocketWatch, guarded_session, send
from .records import Feed, FetchResult
from .text import printable

_REDIRECTS = {301, 302, 303, 307, 308}
_PERMANENT = {301, 308}
_SHORT_BODY = 64 * 1024  # bodies read only to keep their connection (_finish)
_CHUNK = 16 * 1024


class _BodyTooLarge(Exception):
    pass


def make_session(config: FetchConfig) -> requests.Session:
    policy = AddressPolicy(config.allow_private, config.allow_hosts)
    return guarded_session(policy, config.user_agent, pool_size=max(config.concurrency, 4))


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def fetch_feed(session: requests.Session, feed: Feed, config: FetchConfig) -> FetchResult:
    """Fetch `feed.url` once. Sends validators, follows up to max_redirects, caps size and time."""
    if feed.url.startswith("file://"):
        return _fetch_file(feed, config)
    headers = {
        "Accept": "application/rss+xml, application/atom+xml, application/feed+json, "
        "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
    }
    if feed.etag:
        headers["If-None-Match"] = feed.etag
    if feed.last_modified:
        headers["If-Modified-Since"] = feed.last_modified
    return _fetch_within_deadline(session, feed, config, headers)


def fetch_page(session: requests.Session, url: str, config: FetchConfig) -> FetchResult:
    """Fetch an article page (for full text) with the same limits as a feed: deadline, size
    cap, redirects and network guard. Only http(s): a feed cannot make Vigie read a local file.
    Never raises for an expected failure; `error` says what went wrong."""
    headers = {"Accept": "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"}
    return _fetch_within_deadline(session, Feed(id=0, url=url), config, headers)


def _fetch_within_deadline(
    session: requests.Session, feed: Feed, config: FetchConfig, headers: dict[str, str]
) -> FetchResult:
    deadline = time.monotonic() + config.deadline
    with SocketWatch(config.deadline) as watch:
        result = _fetch_http(session, feed, config, headers, deadline, watch)
    if watch.expired and result.error:
        # Whatever the cut socket raised (reset, short body), the cause was the deadline.
        return _too_slow(result.url, f"deadline of {config.deadline:g}s exceeded")
    return result


def _fetch_http(
    session: requests.Session,
    feed: Feed,
    config: FetchConfig,
    headers: dict[str, str],
    deadline: float,
    watch: SocketWatch,
) -> FetchResult:
    url, permanent, moved_permanently = feed.url, None, True
    cookies = RequestsCookieJar()  # this fetch's, for its redirects (netguard.send)
    try:
        for _hop in range(config.max_redirects + 1):
            scheme = urlsplit(url).scheme.lower()
            if scheme not in ("http", "https"):
                return _failed(url, f"refused to fetch a {scheme or 'relative'}: URL")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _too_slow(url, f"deadline of {config.deadline:g}s exceeded")
            timeout = (min(config.connect_timeout, remaining), min(config.deadline, remaining))
            response = send(session, "GET", url, headers, timeout, cookies=cookies)
            if response.status_code in _REDIRECTS and "location" in response.headers:
                _finish(response)
                moved_permanently &= response.status_code in _PERMANENT
                location = response.headers["location"]
                try:
                    url = urljoin(url, location)
                except ValueError:  # "http://[::1": urljoin raised, and the feed got a traceback
                    return _failed(url, f"redirect to a malformed address: {printable(location)}")
                if moved_permanently:
                    permanent = url
                continue
            return _read_response(response, feed, config, watch, permanent)
        return _failed(url, f"more than {config.max_redirects} redirects")
    except BlockedAddressError as e:
        return _failed(url, e.reason)
    except requests.exceptions.ConnectTimeout:
        return _too_slow(url, f"connection timed out after {config.connect_timeout:g}s")
    except requests.exceptions.ReadTimeout:
        return _too_slow(url, f"deadline of {config.deadline:g}s exceeded")
    except requests.exceptions.ConnectionError as e:
        if _timed_out(e):  # requests reports a read timeout in the body as a connection error
            return _too_slow(url, f"deadline of {config.deadline:g}s exceeded")
        return _failed(url, f"connection failed: {_root_cause(e)}")
    except requests.exceptions.RequestException as e:
        return _failed(url, f"request failed: {_root_cause(e)}")


def _read_response(
    response: requests.Response,
    feed: Feed,
    config: FetchConfig,
    watch: SocketWatch,
    permanent: str | None,
) -> FetchResult:
    headers = {k.lower(): v for k, v in response.headers.items()}
    status = response.status_code
    common = dict(url=response.url, status=status, headers=headers, permanent_url=permanent)
    if status == 304:
        _finish(response)
        return FetchResult(
            **common,
            unchanged=True,
            etag=feed.etag,
            last_modified=feed.last_modified,
            body_hash=feed.body_hash,  # kept, so a later 200 with the same body is unchanged
        )
    if status == 410:
        # Gone: the publisher says the feed was removed for good. It is asked no more often
        # than polling.max_backoff (retry_after is capped there), by `vigie once` too, rather
        # than every interval doubled, a few times a day.
        _finish(response)
        return FetchResult(
            **common,
            retry_after=math.inf,
            error="HTTP 410 Gone: the publisher removed this feed; asked again once per"
            " polling.max_backoff",
        )
    if status in (429, 503) or status >= 400:
        _finish(response)
        retry_after = (
            parse_retry_after(headers.get("retry-after")) if status in (429, 503) else None
        )
        return FetchResult(
            **common,
            retry_after=retry_after,
            error=printable(f"HTTP {status} {response.reason or ''}"),
        )
    if status != 200:
        _finish(response)
        return FetchResult(**common, error=f"unexpected HTTP status {status}")
    try:
        body = _read_body(response, config.max_bytes, watch, config.deadline)
    except _BodyTooLarge:
        return FetchResult(**common, error=f"body larger than {config.max_bytes} bytes")
    digest = body_hash(body)
    etag, modified = headers.get("etag"), headers.get("last-modified")
    if digest == feed.body_hash:
        return FetchResult(
            **common, body_hash=digest, etag=etag, last_modified=modified, unchanged=True
        )
    return FetchResult(**common, body=body, body_hash=digest, etag=etag, last_modified=modified)


def _finish(response: requests.Response) -> None:
    """Close a response whose body is not wanted. A body known to be short (a 304 has none, a
    redirect or an error page says its length) is read first, so that the connection goes back
    to the pool for the next feed of the same host: closing a half-read response closes its
    connection, and each poll then paid for a new one. Any other body is left unread and its
    connection dropped, so a hostile server cannot make Vigie read what it does not want."""
    length = response.headers.get("content-length", "")
    if response.status_code == 304 or (length.isdigit() and int(length) <= _SHORT_BODY):
        # The bytes as sent, never decompressed: 6.6 KB of gzip inside gzip is 4 GB of zeros,
        # half a minute of CPU past the deadline (the watchdog cuts the socket, not the work).
        try:
            while response.raw.read(_CHUNK, decode_content=False):
                pass
        except (OSError, HTTPError, requests.exceptions.RequestException):
            pass  # the connection is dropped below, as before
    response.close()


def _read_body(
    response: requests.Response, max_bytes: int, watch: SocketWatch, limit: float
) -> bytes:
    """Read the decompressed body; the fetch's watchdog cuts the socket at the deadline."""
    parts, size = [], 0
    try:
        for chunk in response.iter_content(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise _BodyTooLarge
            parts.append(chunk)
        if watch.expired:  # the cut may look like a clean end of a body without a length
            raise requests.exceptions.ReadTimeout(f"deadline of {limit:g}s exceeded")
    finally:
        response.close()
    return b"".join(parts)


def _fetch_file(feed: Feed, config: FetchConfig) -> FetchResult:
    path = Path(unquote(urlsplit(feed.url).path))
    try:
        size = path.stat().st_size
        if size > config.max_bytes:
            return _failed(feed.url, f"file larger than {config.max_bytes} bytes")
        body = path.read_bytes()
    except OSError as e:
        return _failed(feed.url, f"cannot read file: {e.strerror or e}")
    digest = body_hash(body)
    if digest == feed.body_hash:
        return FetchResult(url=feed.url, status=200, body_hash=digest, unchanged=True)
    content_type = "application/feed+json" if path.suffix == ".json" else "application/xml"
    return FetchResult(
        url=feed.url,
        status=200,
        headers={"content-type": content_type},
        body=body,
        body_hash=digest,
    )


def _failed(url: str, reason: str) -> FetchResult:
    return FetchResult(url=url, status=0, error=reason)


def _too_slow(url: str, reason: str) -> FetchResult:
    """A failure by time: the server gave no whole answer within connect_timeout or the
    deadline (the poll cycle stops asking a host that does this, hosts.HostTurns)."""
    return FetchResult(url=url, status=0, error=reason, timed_out=True)


def _timed_out(error: BaseException | None) -> bool:
    """A read timed out: reads wait at most the time left, so the deadline has passed."""
    while error is not None:
        if isinstance(error, TimeoutError):
            return True
        error = error.__cause__ or error.__context__
    return False


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    text = printable(str(error))  # a bad status line is quoted in it as the server sent it
    # urllib3 wraps errors in "<urllib3.connection.HTTPConnection object at 0x...>: Failed to ..."
    if ">: " in text:
        text = text.split(">: ", 1)[1]
    return text or type(error).__name__
