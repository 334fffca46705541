"""Lanes (monitor/deliver/lanes.py): each key's items in order and one at a time, keys side by
side, and the caller's thread the only one that starts and finishes items (the store's)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from monitor.deliver.lanes import run_lanes

WAIT = 10  # seconds a step waits for another before the test gives up on it


@dataclass
class Recorder:
    """Steps that note what happened, where, and which works overlapped."""

    gates: dict[str, threading.Event] = field(default_factory=dict)  # work waits for its gate
    stop_lane: set[str] = field(default_factory=set)
    worked: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    started_on: set[int] = field(default_factory=set)
    finished_on: set[int] = field(default_factory=set)
    busy: Counter[str] = field(default_factory=Counter)
    most_busy: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, item: str) -> str | None:
        self.started_on.add(threading.get_ident())
        return None if item.endswith("!") else item  # "!": settled without work

    def work(self, job: str) -> str:
        lane = job[0]
        with self.lock:
            self.busy[lane] += 1
            self.most_busy[lane] = max(self.most_busy[lane], self.busy[lane])
        gate = self.gates.get(job)
        if gate is not None:
            gate.wait(WAIT)
        with self.lock:
            self.busy[lane] -= 1
            self.worked.append(job)
        return job.upper()

    def finish(self, job: str, result: str) -> bool:
        self.finished_on.add(threading.get_ident())
        assert result == job.upper()
        self.finished.append(job)
        return job not in self.stop_lane


def lane_of(item: str) -> str:
    return item[0]


def test_keys_go_side_by_side_each_in_order_one_at_a_time() -> None:
    steps = Recorder()
    b_done = threading.Event()
    steps.gates["a1"] = b_done  # a's first work waits for b to have finished all of its own
    items = ["a1", "b1", "a2", "b2", "a3!", "b3", "a4"]
    seen_b: list[str] = []

    def finish(job: str, result: str) -> bool:
        going_on = Recorder.finish(steps, job, result)
        if job.startswith("b"):
            seen_b.append(job)
            if len(seen_b) == 3:
                b_done.set()
        return going_on

    steps.finish = finish  # type: ignore[method-assign]
    run_lanes(items, lane_of, steps, workers=4)
    assert b_done.is_set() and steps.worked.index("b3") < steps.worked.index("a1")
    assert [j for j in steps.finished if j[0] == "a"] == ["a1", "a2", "a4"]  # a3! needed none
    assert [j for j in steps.finished if j[0] == "b"] == ["b1", "b2", "b3"]
    assert steps.most_busy == Counter({"a": 1, "b": 1})
    assert steps.started_on == steps.finished_on == {threading.get_ident()}


def test_with_one_worker_the_lanes_take_turns() -> None:
    steps = Recorder()
    run_lanes(["a1", "a2", "a3", "b1", "b2"], lane_of, steps, workers=1)
    assert steps.worked.index("b1") < steps.worked.index("a2")  # not all of a's first
    assert [j for j in steps.worked if j[0] == "a"] == ["a1", "a2", "a3"]


def test_false_from_finish_ends_that_lane_only() -> None:
    steps = Recorder(stop_lane={"a1"})
    run_lanes(["a1", "a2", "b1", "b2"], lane_of, steps, workers=2)
    assert sorted(steps.finished) == ["a1", "b1", "b2"]


def test_a_lane_takes_no_new_item_once_its_budget_is_spent() -> None:
    steps = Recorder()
    work = steps.work

    def slow_a(job: str) -> str:
        if job[0] == "a":
            time.sleep(0.3)  # more than the budget: after a1, a's time is up
        return work(job)

    steps.work = slow_a  # type: ignore[method-assign]
    run_lanes(["a1", "a2", "a3", "b1", "b2", "b3"], lane_of, steps, workers=2, budget=0.2)
    assert sorted(steps.finished) == ["a1", "b1", "b2", "b3"]


def test_no_work_starts_once_stop_is_set_and_the_work_out_is_finished() -> None:
    stop = threading.Event()
    steps = Recorder(gates={"a1": stop})  # a1 is out when the stop comes
    threading.Timer(0.2, stop.set).start()
    run_lanes(["a1", "a2", "a3"], lane_of, steps, workers=2, stop=stop)
    assert steps.finished == ["a1"]


def test_work_out_when_the_caller_fails_is_still_finished() -> None:
    """An error recording one outcome ended the run: what the other endpoints had received by
    then must be recorded too, or it is sent again."""
    failing = threading.Event()
    steps = Recorder(gates={"a1": failing})  # a1 is out when b1 cannot be recorded

    def finish(job: str, result: str) -> bool:
        if job == "b1":
            failing.set()
            raise RuntimeError("cannot record b1")
        return Recorder.finish(steps, job, result)

    steps.finish = finish  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="cannot record b1"):
        run_lanes(["a1", "a2", "b1", "b2"], lane_of, steps, workers=2)
    assert steps.finished == ["a1"]  # a1 was out: finished; nothing new was started
    assert steps.worked == ["b1", "a1"]


def test_a_lane_waiting_for_a_thread_keeps_its_budget() -> None:
    """With more lanes than threads, the budget counted from when a lane's first work was
    handed out: a lane that waited for the thread longer than its budget sent one item a run."""
    steps = Recorder(gates={"a1": threading.Event()})
    threading.Timer(0.5, steps.gates["a1"].set).start()  # a slow answer holds the one thread
    run_lanes(["a1", "b1", "b2", "b3"], lane_of, steps, workers=1, budget=0.3)
    assert steps.worked == ["a1", "b1", "b2", "b3"]
