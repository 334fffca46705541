"""The running service's threads (monitor/scheduler.py), run in this process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import REPO, SAMPLES, LoopbackServer, serving

from monitor import scheduler
from monitor.cli import load_rulebook
from monitor.cli_common import open_store
from monitor.config import load_config
from monitor.fetch import make_session
from monitor.rules.files import RuleBook
from monitor.store import iso


def test_the_poll_connection_is_the_poll_jobs_alone_once_the_scheduler_runs(
    tmp_path: Path,
    server: LoopbackServer,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One SQLite connection used by two threads at once can end one thread's transaction under
    the other: CI saw a first poll fail with "no such savepoint" while the service's start
    counted the feeds on the poll's connection."""
    server.route("/feed.xml", (SAMPLES / "coastal-herald.rss").read_bytes())
    config = load_config(
        write_config([server.url("/feed.xml")], rules={"paths": [str(REPO / "rules")]})
    )
    store = open_store(config, holding_lock=True)
    book = load_rulebook(config, store)
    main = threading.get_ident()
    started = threading.Event()
    polled = threading.Event()
    on_main_once_started: list[str] = []

    def trace(statement: str) -> None:
        if threading.get_ident() != main:
            polled.set()
        elif started.is_set():
            on_main_once_started.append(statement)

    start = scheduler.BackgroundScheduler.start

    def start_and_say_so(self: scheduler.BackgroundScheduler, *args: object) -> None:
        start(self, *args)
        started.set()

    monkeypatch.setattr(scheduler.BackgroundScheduler, "start", start_and_say_so)
    stop = threading.Event()
    threading.Thread(target=lambda: polled.wait(10) and stop.set(), daemon=True).start()
    store.db.conn.set_trace_callback(trace)
    try:
        scheduler.run_service(config, store, make_session(config.fetch), book, stop)
    finally:
        store.db.conn.set_trace_callback(None)
        store.close()
    assert polled.is_set()  # the poll job did use the connection
    assert on_main_once_started == []


def test_the_stop_signal_handler_never_waits_for_the_lock_its_own_thread_holds() -> None:
    """A concurrency review: SIGTERM at a service's start left 22 of 60 running for good. The
    handler runs on the main thread, which may be inside stop.wait() holding the Event's lock:
    setting the Event there waited for that lock for ever."""
    stop = threading.Event()
    handler = scheduler.stop_on_signal(stop)
    returned = threading.Event()

    def signalled_inside_wait() -> None:
        with stop._cond:  # where Event.wait holds it, as the signal lands
            handler(15, None)
            returned.set()

    threading.Thread(target=signalled_inside_wait, daemon=True).start()
    assert returned.wait(5)  # the handler came back at once
    assert stop.wait(5)  # and the service is told to stop


def test_a_stopping_service_does_not_start_pruning(
    tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A code review: with stop set the poll did nothing, but pruning (up to 20 batches of a
    thousand articles) still ran before the service could stop."""
    from monitor.rules.files import RuleBook

    config = load_config(write_config([]))
    store = open_store(config, holding_lock=True)
    pruned: list[object] = []
    monkeypatch.setattr(scheduler, "prune_expired", lambda *args: pruned.append(args))
    stop = threading.Event()
    book = RuleBook([])
    try:
        scheduler.poll_job(store, make_session(config.fetch), config, book, None, stop)
        assert len(pruned) == 1  # running: polls, then prunes
        stop.set()
        scheduler.poll_job(store, make_session(config.fetch), config, book, None, stop)
        assert len(pruned) == 1
    finally:
        store.close()


QUIET = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet</title>'
    b"<link>http://x.example/</link><description>nothing new</description></channel></rss>"
)


def test_a_feed_due_while_a_slow_host_is_polled_waits_about_max_cycle_not_for_all_of_it(
    server: LoopbackServer, write_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    """A feed that came due during a cycle waited for its end, and one slow publisher's
    hundreds of sections made that an hour (300 of 25 s, two at a time). The running service
    starts no fetch after polling.max_cycle and begins the next cycle at once, with the feeds
    left and those that came due meanwhile, and says which host could not keep up."""
    caplog.set_level(logging.INFO, logger="monitor.scheduler")
    for i in range(12):
        server.route(f"/section{i}.xml", QUIET, delay=0.5)  # 6 s of the publisher's turns
    slow = [server.url(f"/section{i}.xml") for i in range(12)]
    with serving(LoopbackServer()) as quick:
        quick.route("/feed.xml", QUIET)
        fast = quick.url("/feed.xml").replace("127.0.0.1", "localhost")
        config = load_config(
            write_config(
                [*slow, fast],
                fetch={"per_host": 1},
                polling={"max_cycle": "1s", "processes": 0},
            )
        )
        store = open_store(config, holding_lock=True)
        # Due after the first cycle has begun, however slowly the service starts on a loaded
        # machine (due 1 s from now, it was due in the first cycle when the start took longer,
        # 2 of 3 full runs of the suite one afternoon), and long before the 6 s of sections end.
        due = datetime.now(UTC) + timedelta(seconds=2.5)
        with store.db.conn:
            store.db.execute("UPDATE feeds SET next_poll = ? WHERE url = ?", [iso(due), fast])
        stop = threading.Event()

        def stop_once_asked() -> None:
            deadline = time.monotonic() + 15
            while not quick.requests and time.monotonic() < deadline:
                time.sleep(0.02)
            asked.append(len(server.requests))  # the publisher's sections asked by then
            stop.set()

        asked: list[int] = []
        threading.Thread(target=stop_once_asked, daemon=True).start()
        try:
            scheduler.run_service(config, store, make_session(config.fetch), RuleBook([]), stop)
        finally:
            store.close()

    assert quick.requests, "the quick feed was never asked"
    # Before: after all the publisher's 12 sections (5 s after it came due). Counted, not
    # timed, so that a loaded machine does not fail it.
    assert asked[0] < 12, f"{asked[0]} of the publisher's sections were asked first"
    assert "left for the next cycle (polling.max_cycle), of 127.0.0.1 (" in caplog.text
