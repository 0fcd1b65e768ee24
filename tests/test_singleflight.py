"""Tests for :mod:`rbac_abac_cache.singleflight`."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from rbac_abac_cache.singleflight import SingleFlight

FOLLOWERS = 8
WAIT = 5.0


class Gate:
    """A function that blocks until released, counting its executions."""

    def __init__(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result = result if result is not None else object()
        self.error = error
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        self.started.set()
        assert self.release.wait(WAIT), "the test never released the gate"
        if self.error is not None:
            raise self.error
        return self.result


def run_concurrently(
    flight: SingleFlight[Any], gate: Gate, key: str = "user:42"
) -> list[tuple[str, Any]]:
    """Call ``flight.do(key, gate)`` from a leader and followers; return outcomes.

    The leader starts first; the followers join while it is blocked, then the
    gate opens. Every thread is joined with a timeout.
    """
    outcomes: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def call() -> None:
        try:
            value = flight.do(key, gate)
        except BaseException as exc:
            with lock:
                outcomes.append(("error", exc))
        else:
            with lock:
                outcomes.append(("value", value))

    leader = threading.Thread(target=call)
    leader.start()
    assert gate.started.wait(WAIT)

    followers = [threading.Thread(target=call) for _ in range(FOLLOWERS)]
    for thread in followers:
        thread.start()
    # Followers need only take a lock and start waiting; give them ample time.
    time.sleep(0.1)
    gate.release.set()

    for thread in [leader, *followers]:
        thread.join(timeout=WAIT)
        assert not thread.is_alive()
    return outcomes


def test_single_call_returns_the_result() -> None:
    """Without contention, do() returns the function's result."""
    assert SingleFlight[int]().do("k", lambda: 7) == 7


def test_concurrent_callers_share_one_execution() -> None:
    """Callers arriving while a call runs get its result without running it."""
    flight: SingleFlight[Any] = SingleFlight()
    gate = Gate()

    outcomes = run_concurrently(flight, gate)

    assert gate.calls == 1
    assert len(outcomes) == FOLLOWERS + 1
    assert all(kind == "value" and value is gate.result for kind, value in outcomes)


def test_concurrent_callers_share_the_exception() -> None:
    """When the shared call raises, every waiting caller gets that exception."""
    flight: SingleFlight[Any] = SingleFlight()
    error = ValueError("identity provider down")
    gate = Gate(error=error)

    outcomes = run_concurrently(flight, gate)

    assert gate.calls == 1
    assert len(outcomes) == FOLLOWERS + 1
    assert all(kind == "error" and value is error for kind, value in outcomes)


def test_next_call_after_completion_runs_anew() -> None:
    """Results are not cached: a call after the previous one ends runs again."""
    flight: SingleFlight[int] = SingleFlight()
    calls: list[int] = []

    def function() -> int:
        calls.append(1)
        return len(calls)

    assert flight.do("k", function) == 1
    assert flight.do("k", function) == 2


def test_next_call_after_an_exception_runs_anew() -> None:
    """A failed call is not remembered; the next call runs the function."""
    flight: SingleFlight[str] = SingleFlight()

    def failing() -> str:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        flight.do("k", failing)

    assert flight.do("k", lambda: "ok") == "ok"
    assert not flight.running("k")


def test_different_keys_do_not_wait_for_each_other() -> None:
    """A call for one key runs while another key's call is in progress."""
    flight: SingleFlight[Any] = SingleFlight()
    gate = Gate()
    blocked = threading.Thread(target=flight.do, args=("a", gate))
    blocked.start()

    try:
        assert gate.started.wait(WAIT)
        assert flight.do("b", lambda: "b") == "b"
        assert flight.running("a")
    finally:
        gate.release.set()
        blocked.join(timeout=WAIT)

    assert not blocked.is_alive()
    assert not flight.running("a")


def test_running_reports_calls_in_progress() -> None:
    """running(key) is true only while a call for key runs."""
    flight: SingleFlight[bool] = SingleFlight()
    seen: list[bool] = []

    def probe() -> bool:
        seen.append(flight.running("k"))
        return True

    flight.do("k", probe)

    assert seen == [True]
    assert not flight.running("k")
