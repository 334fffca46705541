"""A cycle's hosts (monitor/hosts.py): whose turn it is, without servers."""

from __future__ import annotations

import threading
import time

from monitor.hosts import HostTurns, host_of_feed
from monitor.records import Feed


def turns(urls: list[str], per_host: int, until: float | None = None) -> HostTurns:
    feeds = [Feed(id=i, url=url) for i, url in enumerate(urls)]
    return HostTurns(feeds, {f.id: host_of_feed(f) for f in feeds}, per_host, until)


def test_the_hosts_take_turns_each_up_to_per_host_at_once() -> None:
    hosts = turns(["http://a/1", "http://a/2", "http://a/3", "http://b/1", "http://c/1"], 2)
    given = [hosts.take() for _ in range(4)]
    assert [f.url for f in given if f] == ["http://a/1", "http://b/1", "http://c/1", "http://a/2"]
    hosts.end_turn(given[0])  # a's first is fetched: its third has a turn
    assert (hosts.take() or Feed(0, "")).url == "http://a/3"
    assert hosts.take() is None  # every feed given out


def test_a_busy_hosts_feed_waits_while_another_hosts_feed_is_given_out() -> None:
    """Threads waiting for the turn of a slow publisher's 300 sections held every other
    host's feeds: a feed is given out only when its host has a turn."""
    hosts = turns(["http://slow/1", "http://slow/2", "http://slow/3", "http://quick/1"], 1)
    first = hosts.take()
    assert first is not None and first.url == "http://slow/1"
    assert (hosts.take() or Feed(0, "")).url == "http://quick/1"  # not slow/2
    taken: list[Feed | None] = []
    waiting = threading.Thread(target=lambda: taken.append(hosts.take()))
    waiting.start()  # every feed left is of the busy host: this one waits
    waiting.join(0.2)
    assert taken == []
    hosts.end_turn(first)
    waiting.join(5)
    assert [f.url for f in taken if f] == ["http://slow/2"]


def test_local_files_have_no_turns_to_wait_for() -> None:
    hosts = turns(["file:///a.xml", "file:///b.xml", "file:///c.xml"], 1)
    assert [f.url for f in (hosts.take(), hosts.take(), hosts.take()) if f] == [
        "file:///a.xml",
        "file:///b.xml",
        "file:///c.xml",
    ]


def test_no_feed_is_given_out_after_until_and_those_not_given_are_left() -> None:
    hosts = turns(["http://a/1", "http://a/2", "http://b/1"], 1, until=time.monotonic() + 0.2)
    first = hosts.take()
    assert first is not None and hosts.take() is not None  # a/1, b/1
    started = time.monotonic()
    assert hosts.take() is None  # a/2 waits for a's turn, then the cycle's time is up
    assert 0.1 < time.monotonic() - started < 2
    assert [f.url for f in hosts.left()] == ["http://a/2"]


def test_close_lets_a_thread_waiting_for_a_turn_go() -> None:
    hosts = turns(["http://a/1", "http://a/2"], 1)
    assert hosts.take() is not None
    taken: list[Feed | None] = []
    waiting = threading.Thread(target=lambda: taken.append(hosts.take()))
    waiting.start()
    hosts.close()
    waiting.join(5)
    assert taken == [None] and [f.url for f in hosts.left()] == ["http://a/2"]
