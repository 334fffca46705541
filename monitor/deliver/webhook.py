"""POST one signed webhook message, the Standard Webhooks way.

Headers: `webhook-id` (the same on every attempt of a delivery), `webhook-timestamp` (seconds,
this attempt's) and `webhook-signature` (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` keyed
with the decoded `whsec_` secret), computed by the `standardwebhooks` library that consumers
verify with. What the caller may rely on: `post` never raises for an endpoint's answer or a network
failure. A 2xx is success; a redirect is not followed and is a failure; 410 says the endpoint is
gone. Connections go through the network guard and are cut at `timeout`, however slowly the
endpoint trickles its answer. A failure says whether the consumer may have handled the event all
the same (`Attempt.maybe_handled`): only a connection never made, or a 4xx, says it did not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import requests
import urllib3
from standardwebhooks.webhooks import Webhook

from ..errors import BlockedAddressError
from ..fetch import parse_retry_after
from ..netguard import SocketWatch, send
from ..text import printable

_REASON_BYTES = 300  # of an error response's body, kept as the failure's reason
_DRAIN_BYTES = 64 * 1024  # of a success's body, read so the connection can be reused


@dataclass(frozen=True)
class Attempt:
    """What one POST achieved."""

    ok: bool
    status: int  # HTTP status; 0 when no answer came
    error: str = ""
    retry_after: float | None = None  # seconds, from a Retry-After header
    gone: bool = False  # 410: the consumer asked us to stop
    # False only when the consumer cannot have handled the event: no connection was made (so
    # no request was sent), or it answered 4xx, refusing it. A 5xx or a redirect may come
    # after its handler did its work, and an answer too late or a connection cut after the
    # request went may follow a handler that finished (docs/delivery.md, "How to answer").
    maybe_handled: bool = True

    @property
    def paused(self) -> bool:
        """A 429 or 503 with Retry-After: the consumer asked for a pause (docs/delivery.md)."""
        return self.status in (429, 503) and self.retry_after is not None


def signed_headers(webhook_id: str, secret: str, body: str, when: datetime) -> dict[str, str]:
    """Standard Webhooks headers; with several secrets (space-separated, while rotating), one
    `v1,` signature for each, as the specification allows."""
    signatures = " ".join(Webhook(one).sign(webhook_id, when, body) for one in secret.split())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }


def post(
    session: requests.Session,
    url: str,
    body: str,
    webhook_id: str,
    secret: str,
    timeout: float,
    now: datetime,
) -> Attempt:
    """One attempt. `now` stamps and signs the request."""
    headers = signed_headers(webhook_id, secret, body, now)
    with SocketWatch(timeout) as watch:
        attempt = _post(session, url, body.encode(), headers, timeout)
    if watch.expired and not attempt.ok:
        # The watch holds only connections made: one never made was never sent on either.
        return Attempt(
            False, 0, f"no answer within {timeout:g}s", maybe_handled=attempt.maybe_handled
        )
    return attempt


def _post(
    session: requests.Session, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> Attempt:
    try:
        response = send(session, "POST", url, headers, timeout, body)
    except BlockedAddressError as e:
        return Attempt(False, 0, e.reason, maybe_handled=False)
    except requests.exceptions.RequestException as e:
        if isinstance(e, requests.exceptions.Timeout):
            error = f"no answer within {timeout:g}s"
        else:
            error = f"connection failed: {_cause(e)}"
        return Attempt(False, 0, error, maybe_handled=not _never_connected(e))
    with response:
        status = response.status_code
        if 200 <= status < 300:
            _drain(response)
            return Attempt(True, status)
        if 300 <= status < 400:
            where = printable(response.headers.get("location", "nowhere"))[:_REASON_BYTES]
            return Attempt(False, status, f"HTTP {status}: redirect to {where} not followed")
        reason = printable(f"HTTP {status} {response.reason or ''}")
        detail = _peek(response)
        return Attempt(
            False,
            status,
            f"{reason}: {detail}" if detail else reason,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            gone=status == 410,
            maybe_handled=not 400 <= status < 500,
        )


def _drain(response: requests.Response) -> None:
    """Read the rest of a short answer, so its connection goes back to the pool: closing a
    half-read stream closes the connection, and each delivery then paid a new TCP connection.
    A long answer is left unread and its connection dropped."""
    read = 0
    try:
        for chunk in response.iter_content(_DRAIN_BYTES):
            read += len(chunk)
            if read > _DRAIN_BYTES:
                return
    except requests.exceptions.RequestException:
        return


def _peek(response: requests.Response) -> str:
    try:
        raw = next(response.iter_content(_REASON_BYTES), b"")
    except requests.exceptions.RequestException:
        return ""
    return printable(" ".join(raw.decode("utf-8", errors="replace").split()))[:_REASON_BYTES]


def _never_connected(error: BaseException) -> bool:
    """Whether a request failed before it had a connection to be sent on: refused, a name
    that does not resolve, the connection itself out of time (urllib3's NewConnectionError
    and NameResolutionError are ConnectTimeoutErrors), or the network guard's refusal."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, urllib3.exceptions.ConnectTimeoutError | BlockedAddressError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _cause(error: BaseException) -> str:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    if isinstance(error, BlockedAddressError):
        return error.reason
    text = printable(str(error))
    return text.split(">: ", 1)[1] if ">: " in text else (text or type(error).__name__)
