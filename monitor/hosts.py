"""The hosts of one poll cycle: whose turn it is to be fetched, and which has stopped answering.

Politeness and containment, per host rather than per feed: 200 sections of one newspaper must
not be 8 parallel requests (fetch.per_host at once, the hosts taken in turn), and one server
that answers nothing must not hold the cycle of every other feed.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from itertools import zip_longest
from urllib.parse import urlsplit

from .records import Feed, FetchResult

# Fetches of one host that ran out of time, with no answer from it between, after which a
# cycle asks it nothing more (HostTurns).
HOST_SILENT = 2


class HostTurns:
    """For one cycle, each host's turn (fetch.per_host feeds at once) and whether it answers.
    A host whose fetches run out of time HOST_SILENT times, with no answer from it in the
    cycle, is not asked again in it: its other feeds fail at once, saying why, and are asked
    at their next poll. A big outlet's server that stopped answering stalled an NGO's cycle
    of 1,880 feeds: its 100 sections went two at a time, 30 s each, and the fetch threads
    waiting for its turn held every other feed with them (375 still waiting after ten
    minutes, about 25 minutes in all)."""

    def __init__(self, hosts: Iterable[str], per_host: int) -> None:
        self.turns = {host: threading.Semaphore(per_host) for host in hosts if host}
        self.lock = threading.Lock()
        self.slow: Counter[str] = Counter()  # host -> fetches out of time
        self.first: dict[str, str] = {}  # host -> the first of those errors
        self.answered: set[str] = set()

    def take_turn(self, host: str) -> None:
        if host in self.turns:
            self.turns[host].acquire()

    def end_turn(self, host: str) -> None:
        if host in self.turns:
            self.turns[host].release()

    def heard(self, host: str, result: FetchResult) -> None:
        """What a fetch of `host` gave: an answer, or a failure by time."""
        with self.lock:
            if result.timed_out:
                self.slow[host] += 1
                self.first.setdefault(host, result.error or "")
            elif result.status:
                self.answered.add(host)

    def silent(self, host: str) -> str | None:
        """Why `host` is not asked again in this cycle, or None."""
        with self.lock:
            if not host or host in self.answered or self.slow[host] < HOST_SILENT:
                return None
            return (
                f"not asked: {host} answered none of its feeds asked before in this poll in"
                f" time ({self.first[host]})"
            )


def host_of_feed(feed: Feed) -> str:
    """The host a feed is fetched from ("" for a local file)."""
    try:
        return (urlsplit(feed.url).hostname or "").lower()
    except ValueError:
        return ""


def host_by_host(feeds: list[Feed], host_of: Mapping[int, str]) -> list[Feed]:
    """The feeds in turn by host (a1, b1, c1, a2, b2, a3...), each host's in their order, so
    the fetch threads are not all waiting on one host's turn while others wait unasked."""
    by_host: dict[str, list[Feed]] = {}
    for feed in feeds:
        by_host.setdefault(host_of[feed.id], []).append(feed)
    rounds = zip_longest(*by_host.values())
    return [feed for round_ in rounds for feed in round_ if feed is not None]
