"""Reading fetched feeds on every core: worker processes that parse, identify, sketch and match.

Python runs one thread at a time, so a poll cycle whose feeds changed was bound to one core:
parsing, language detection, story sketches, matching and the stems search indexes. `ReaderPool`
moves that work (pipeline.read_feed and pipeline.prepare, pure functions) to worker processes; the
polling process keeps fetching (network-bound threads) and storing (SQLite has one writer). Each
worker receives the rule index once, when it starts; a new index (the rule files changed) starts new
workers. The pool starts with the first cycle of at least `min_feeds` due feeds, since a few feeds
are read faster where they were fetched than workers start. Workers are started by a fork server,
never forked from the threaded polling process, and exit when the service does.

If a worker dies (killed, out of memory), the feeds it held are read in the polling process,
so nothing is lost, and the next cycle starts new workers. If workers cannot be started at all
(no more processes; a script that polls without the `if __name__ == "__main__":` guard that
multiprocessing needs), everything is read in the polling process, as with processes = 0.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from datetime import datetime

from .identity import TrackingParams
from .pipeline import Matcher, PollOutcome, prepare, read_feed
from .records import Feed, FetchResult

log = logging.getLogger(__name__)

MIN_FEEDS = 16  # a cycle of fewer due feeds is read in the polling process

_matcher: Matcher | None = None  # in a worker: the rules it was started with


def _start_worker(matcher: Matcher | None) -> None:
    global _matcher
    _matcher = matcher
    # Ctrl+C reaches the whole process group: the service stops its workers itself, and each
    # worker interrupted while waiting for work printed a KeyboardInterrupt traceback. So does a
    # SIGTERM sent to the group (a service manager's stop, `kill -- -PGID`): a worker killed
    # mid-feed logged "a feed reader process died" at every stop. Workers end when the service
    # shuts them down, kills them (process.kill: a broken pool), or exits (_exit_with_parent),
    # and on SIGTERM once it is gone (_on_sigterm).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    threading.Thread(target=_exit_with_parent, name="parent-watch", daemon=True).start()


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM while the service runs is the service's to act on (it stops its readers after
    the feeds they hold); once the service is gone, a reader ends at once. One busy in a long
    C call when the service was killed outlived it: its watch on the service could not run,
    and SIGTERM was ignored (a security review). Handlers run between such calls' steps."""
    parent = multiprocessing.parent_process()
    if parent is None or not parent.is_alive():
        os._exit(0)


def _exit_with_parent() -> None:
    """End this worker when the process that started it is gone, even killed with SIGKILL:
    a worker waiting for work would otherwise wait forever, holding a copy of the rules."""
    parent = multiprocessing.parent_process()
    if parent is not None and parent.sentinel is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)


def _read_in_worker(
    result: FetchResult, feed: Feed, tracking: TrackingParams, now: datetime
) -> tuple[PollOutcome, int, float]:
    """read_feed and prepare in a worker, with the worker's pid and the CPU time it has used so
    far. The body is not sent back: the fetch thread still holds it."""
    outcome = prepare(read_feed(result, feed, tracking, now), _matcher)
    outcome = replace(outcome, fetch=replace(result, body=None))
    return outcome, os.getpid(), time.process_time()


def _context() -> multiprocessing.context.BaseContext:
    """A fork server where the platform has one (the modules workers need loaded once), else
    spawn: forking the polling process itself, with its threads and locks, is not safe."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["monitor.readers", "monitor.reader_server"])
        return context
    return multiprocessing.get_context("spawn")  # pragma: no cover - not Linux


def _kill_workers(executor: ProcessPoolExecutor) -> None:
    """ProcessPoolExecutor.kill_workers where Python has it (3.14); before, its processes."""
    kill = getattr(executor, "kill_workers", None)
    if kill is not None:  # pragma: no cover - Python 3.14
        kill()
        return
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        if process.is_alive():
            process.kill()


def _lost_a_worker(executor: ProcessPoolExecutor) -> bool:
    """Whether a worker died, seen by a read or not. Python then stops the others with
    SIGTERM, which readers ignore, and waits for them: a worker killed between reads (the
    out-of-memory killer) may die holding the lock of the queue the others take work from, and
    they, and a shutdown, waited for ever."""
    processes = (getattr(executor, "_processes", None) or {}).values()
    return bool(getattr(executor, "_broken", False)) or any(
        process.exitcode is not None for process in list(processes)
    )


class ReaderPool:
    """Worker processes that read fetched feed bodies: parse, identify, sketch, match."""

    def __init__(self, processes: int, min_feeds: int = MIN_FEEDS) -> None:
        self.processes = processes
        self.min_feeds = min_feeds
        self._executor: ProcessPoolExecutor | None = None
        self._matcher: Matcher | None = None
        self._cpu: dict[int, float] = {}  # pid -> CPU seconds it reported last
        self._cpu_done = 0.0  # CPU seconds of workers already stopped
        self._broken = False  # a worker died: the next cycle starts new ones
        self._failed = False  # workers could not be started: never try again
        self._lock = threading.Lock()

    def use(self, matcher: Matcher | None, feeds: int) -> bool:
        """Make the workers hold `matcher` (starting new ones when it changed); False when this
        cycle is better read in the polling process (no workers asked for, or too few feeds
        while none run)."""
        if self.processes < 1 or self._failed:
            return False
        if self._executor is not None and (self._broken or matcher is not self._matcher):
            self.close()  # the rules changed, or a worker died: start new workers
        if self._executor is None:
            if feeds < self.min_feeds:
                return False
            self._executor = ProcessPoolExecutor(
                self.processes, _context(), initializer=_start_worker, initargs=(matcher,)
            )
            self._matcher = matcher
            log.info("reading feeds in %d worker processes", self.processes)
        return True

    def read(
        self, result: FetchResult, feed: Feed, tracking: TrackingParams, now: datetime
    ) -> PollOutcome:
        """read_feed in a worker (called from the fetch threads, which wait for it); in this
        process when the workers are gone."""
        executor = self._executor
        if executor is not None and not self._failed:
            future = None
            try:
                future = executor.submit(_read_in_worker, result, feed, tracking, now)
                outcome, pid, cpu = future.result()
            except BrokenProcessPool:
                if not self._broken:
                    self._broken = True
                    log.error("a feed reader process died; the polling process reads the rest")
            except Exception as e:
                if future is not None:
                    raise  # a bug the feed's bytes trigger: recorded on the feed
                if not self._failed:  # the workers cannot start: read everything here
                    self._failed = True
                    log.error("cannot start feed reader processes (%s); reading in place", e)
            else:
                with self._lock:
                    self._cpu[pid] = max(cpu, self._cpu.get(pid, 0.0))
                return replace(outcome, fetch=result)
        return read_feed(result, feed, tracking, now)

    def cpu_seconds(self) -> float:
        """CPU time the workers have used, as they last reported it: with the polling process's
        own, what reading and matching cost in all."""
        with self._lock:
            return self._cpu_done + sum(self._cpu.values())

    def close(self) -> None:
        """Stop the workers (after the feeds they hold). Workers of a broken pool are killed
        first: waiting for them to stop could hang on a queue left half-written."""
        executor = self._executor
        if executor is None:
            return
        if self._broken or _lost_a_worker(executor):
            _kill_workers(executor)
        executor.shutdown(wait=True, cancel_futures=True)
        self._executor = None
        self._broken = False
        with self._lock:
            self._cpu_done += sum(self._cpu.values())
            self._cpu.clear()

    def __enter__(self) -> ReaderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
