"""The deadline watchdog (monitor/netguard.py): one thread serves every fetch's deadline."""

from __future__ import annotations

import threading
import time

from monitor.netguard import SocketWatch, Watchdog


def test_functions_run_in_deadline_order_and_cancelled_ones_never() -> None:
    dog = Watchdog()
    ran: list[str] = []
    done = threading.Event()
    start = time.monotonic()
    dog.schedule(0.10, lambda: ran.append("third"))
    dog.schedule(0.02, lambda: ran.append("first"))
    dropped = dog.schedule(0.05, lambda: ran.append("cancelled"))
    dog.schedule(0.06, lambda: ran.append("second"))
    dog.schedule(0.12, done.set)
    dog.cancel(dropped)
    assert done.wait(5)
    assert ran == ["first", "second", "third"]
    assert time.monotonic() - start >= 0.12


def test_a_failing_function_does_not_stop_later_deadlines() -> None:
    dog = Watchdog()
    done = threading.Event()

    def fail() -> None:
        raise RuntimeError("a bug in one deadline's function")

    dog.schedule(0.01, fail)
    dog.schedule(0.03, done.set)
    assert done.wait(5)


def test_many_watched_fetches_share_one_thread() -> None:
    with SocketWatch(30):
        pass  # the process's watchdog thread exists from here on
    before = threading.active_count()
    for _ in range(500):
        with SocketWatch(30) as watch:
            assert not watch.expired
    assert threading.active_count() == before


def test_a_watch_expires_when_its_block_outlives_its_limit() -> None:
    with SocketWatch(0.05) as watch:
        deadline = time.monotonic() + 5
        while not watch.expired and time.monotonic() < deadline:
            time.sleep(0.01)
    assert watch.expired


def test_a_deadline_that_fires_as_its_fetch_ends_cuts_nothing_handed_back() -> None:
    """A concurrency review: a deadline taken off the watchdog's heap just as its fetch ended
    could not be cancelled, and shut down sockets the fetch had handed back to the connection
    pool, which another fetch of the same host may be using."""
    import socket

    mine, theirs = socket.socketpair()
    with mine, theirs:
        with SocketWatch(30) as watch:
            watch.add(mine)  # the fetch's connection, back in the pool when the block ends
        watch.expire()  # the deadline's function, run late
        assert not watch.expired
        mine.sendall(b"still open")
        assert theirs.recv(20) == b"still open"


def test_a_watch_entered_again_watches_afresh() -> None:
    """A code review: once a block had ended, a watch entered again never cut anything."""
    import socket

    watch = SocketWatch(0.05)
    with watch:
        pass
    mine, theirs = socket.socketpair()
    with mine, theirs, watch:
        watch.add(mine)
        deadline = time.monotonic() + 5
        while not watch.expired and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watch.expired
        assert theirs.recv(10) == b""  # cut: the other end reads the end of the stream
