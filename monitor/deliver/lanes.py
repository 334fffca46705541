"""Lanes: work for several endpoints at once, each endpoint's items in their order and one at a
time, so an endpoint that answers slowly delays its own items only.

Only `Steps.work` runs on the pool's threads. `start` and `finish` run on the caller's thread,
one after the other: the Store's one connection is used by one thread at a time
(store/database.py), and each outcome is recorded as soon as it is known, by that thread. One
item at a time per endpoint also keeps it to one kept-alive connection, and its items in order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")  # an item: a delivery
J = TypeVar("J")  # the work `start` made of an item: a request ready to send
R = TypeVar("R")  # what the work gave: an answer

_SKIPPED = object()  # work not done: the run was stopped while it waited for a thread


class Steps(Protocol[T, J, R]):
    """What run_lanes does with each item."""

    def start(self, item: T) -> J | None:
        """On the caller's thread: the work for `item`, or None when it needs none (the step
        settled it at once)."""
        ...

    def work(self, job: J) -> R:
        """On a pool thread: must not use the caller's store."""
        ...

    def finish(self, job: J, result: R) -> bool:
        """On the caller's thread, with the work's result; False: the lane takes no other item
        in this run."""
        ...


@dataclass
class _Lane(Generic[T]):
    """One endpoint's items in this run, in order."""

    waiting: deque[T] = field(default_factory=deque)
    started: float | None = None  # time.monotonic() when its first work began on a thread


def run_lanes(
    items: Iterable[T],
    key: Callable[[T], Hashable],
    steps: Steps[T, J, R],
    *,
    workers: int,
    budget: float | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Take every item through `steps`: items of one `key` in the order given, one at a time;
    up to `workers` keys at once, in turn. A lane takes no new item once `budget` seconds have
    passed since its first work was handed out, and none does once `stop` is set: the work
    under way is finished, and recorded."""
    lanes: dict[Hashable, _Lane[T]] = {}
    for item in items:
        lanes.setdefault(key(item), _Lane()).waiting.append(item)
    if not lanes:
        return
    # Threads start with the first work handed out, none when every item is settled by `start`.
    with ThreadPoolExecutor(min(workers, len(lanes)), thread_name_prefix="lane") as pool:
        _Run(steps, pool, budget, stop).go(list(lanes.values()))


class _Run(Generic[T, J, R]):
    """One run_lanes: which work is out, for which lane."""

    def __init__(
        self,
        steps: Steps[T, J, R],
        pool: ThreadPoolExecutor,
        budget: float | None,
        stop: threading.Event | None,
    ) -> None:
        self.steps, self.pool, self.budget, self.stop = steps, pool, budget, stop
        self.out: dict[Future, tuple[_Lane[T], J]] = {}
        self.halted = False

    def go(self, lanes: list[_Lane[T]]) -> None:
        try:
            for lane in lanes:
                self._next(lane)
            while self.out:
                done, _ = wait(self.out, return_when=FIRST_COMPLETED)
                for future in done:
                    lane, job = self.out.pop(future)
                    self._land(lane, job, future)
                    self._next(lane)
        finally:
            self._settle()

    def _next(self, lane: _Lane[T]) -> None:
        """Hand out the lane's next work; items that need none are settled on the way. The pool
        runs work in the order handed out, so lanes waiting for a thread take turns."""
        while lane.waiting and self._may_start(lane):
            job = self.steps.start(lane.waiting.popleft())
            if job is not None:
                self.out[self.pool.submit(self._work, lane, job)] = (lane, job)
                return

    def _may_start(self, lane: _Lane[T]) -> bool:
        if self.halted or (self.stop is not None and self.stop.is_set()):
            return False
        if self.budget is None or lane.started is None:
            return True
        return time.monotonic() - lane.started < self.budget

    def _work(self, lane: _Lane[T], job: J) -> R | object:
        if self.stop is not None and self.stop.is_set():
            return _SKIPPED
        # The budget counts from here, not from when the work was handed out: with more lanes
        # than threads, a lane waiting for one spent its budget waiting.
        if lane.started is None:
            lane.started = time.monotonic()
        return self.steps.work(job)

    def _land(self, lane: _Lane[T], job: J, future: Future) -> None:
        result = future.result()
        if result is not _SKIPPED and not self.steps.finish(job, result):
            lane.waiting.clear()

    def _settle(self) -> None:
        """When an error (or Ctrl+C) ends the run on the caller's thread, the work already out
        is waited for and recorded all the same: what an endpoint received and was not recorded
        would be sent again."""
        self.halted = True
        while self.out:
            future, (lane, job) = self.out.popitem()
            try:
                self._land(lane, job, future)
            except Exception:
                log.exception("an outcome could not be recorded")
