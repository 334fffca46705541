"""The hosts of one poll cycle: whose turn it is to be fetched, and which has stopped answering.

Politeness and containment, per host rather than per feed: 200 sections of one newspaper must
not be 8 parallel requests (fetch.per_host at once, the hosts taken in turn), and one server
that answers slowly, or nothing, must not hold the cycle of every other feed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from .records import Feed, FetchResult

# Fetches of one host that ran out of time, with no answer from it between, after which a
# cycle asks it nothing more (HostTurns).
HOST_SILENT = 2


class HostTurns:
    """For one cycle, the feeds by host: which may be fetched now (fetch.per_host of a host at
    once, the hosts in turn), and which host answers. A fetch thread is given a feed only when
    its host has a free turn, so it never waits for a busy host while another host's feed could
    go: threads waiting for one slow publisher's turns held every other host's feeds (on a
    loopback farm, 150 sections of 1.6 s kept ten quick hosts' feeds waiting up to 12.4 s
    into the cycle; 2.9 s since, the time storing their first articles took).

    A host whose fetches run out of time HOST_SILENT times, with no answer from it in the
    cycle, is not asked again in it: its other feeds fail at once, saying why, and are asked
    at their next poll. A big outlet's server that stopped answering stalled an NGO's cycle
    of 1,880 feeds: its 100 sections went two at a time, 30 s each (375 feeds still waiting
    after ten minutes, about 25 minutes in all).

    With `until` (a time.monotonic() value), no feed is given out after it: those not given
    out yet are `left`, for the next cycle."""

    def __init__(
        self,
        feeds: Iterable[Feed],
        host_of: Mapping[int, str],
        per_host: int,
        until: float | None = None,
    ) -> None:
        self.host_of = host_of
        self.per_host = per_host
        self.until = until
        self.waiting: dict[str, deque[Feed]] = {}  # host -> its feeds not given out, in order
        for feed in feeds:
            self.waiting.setdefault(host_of[feed.id], deque()).append(feed)
        self.ready = deque(self.waiting)  # hosts with a feed waiting and a free turn, in turn
        self.busy: Counter[str] = Counter()  # host -> its feeds being fetched
        self.closed = False
        self.changed = threading.Condition()
        self.slow: Counter[str] = Counter()  # host -> fetches out of time
        self.first: dict[str, str] = {}  # host -> the first of those errors
        self.answered: set[str] = set()

    def take(self) -> Feed | None:
        """The next feed whose host has a free turn, its turn taken (end it with `end_turn`),
        waiting only when every feed left is of a busy host. None when none is left to give
        out: all given, the cycle's time is up, or `close` was called."""
        with self.changed:
            while True:
                if self.closed or self._time_left() == 0.0:
                    return None
                if self.ready:
                    return self._give(self.ready.popleft())
                if not self.waiting:
                    return None
                self.changed.wait(self._time_left())

    def end_turn(self, feed: Feed) -> None:
        host = self.host_of[feed.id]
        with self.changed:
            self.busy[host] -= 1
            if host in self.waiting and self.busy[host] == self._turns(host) - 1:
                self.ready.append(host)  # it was at its limit: it has a turn again
            self.changed.notify()

    def close(self) -> None:
        """Give out no more feeds; wake the threads waiting for a turn."""
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def left(self) -> list[Feed]:
        """The feeds not given out."""
        with self.changed:
            return [feed for feeds in self.waiting.values() for feed in feeds]

    def heard(self, host: str, result: FetchResult) -> None:
        """What a fetch of `host` gave: an answer, or a failure by time."""
        with self.changed:
            if result.timed_out:
                self.slow[host] += 1
                self.first.setdefault(host, result.error or "")
            elif result.status:
                self.answered.add(host)

    def silent(self, host: str) -> str | None:
        """Why `host` is not asked again in this cycle, or None."""
        with self.changed:
            if not host or host in self.answered or self.slow[host] < HOST_SILENT:
                return None
            return (
                f"not asked: {host} answered none of its feeds asked before in this poll in"
                f" time ({self.first[host]})"
            )

    def _give(self, host: str) -> Feed:
        feeds = self.waiting[host]
        feed = feeds.popleft()
        self.busy[host] += 1
        if not feeds:
            del self.waiting[host]
        elif self.busy[host] < self._turns(host):
            self.ready.append(host)  # its next feed after every other host's
        return feed

    def _turns(self, host: str) -> float:
        return self.per_host if host else float("inf")  # local files: no server to spare

    def _time_left(self) -> float | None:
        if self.until is None:
            return None
        return max(0.0, self.until - time.monotonic())


def host_of_feed(feed: Feed) -> str:
    """The host a feed is fetched from ("" for a local file)."""
    try:
        return (urlsplit(feed.url).hostname or "").lower()
    except ValueError:
        return ""
