"""Tests for :mod:`rbac_abac_cache.stats`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from rbac_abac_cache.stats import EVENTS, Stats


def test_every_event_starts_at_zero() -> None:
    """A new Stats has one counter per event, all zero."""
    assert dict(Stats().snapshot()) == dict.fromkeys(EVENTS, 0)


def test_design_counters_are_events() -> None:
    """The counters the design lists for stats() are all present."""
    required = {
        "hits_local",
        "hits_redis",
        "misses",
        "fetches",
        "fetch_errors",
        "stale_served",
        "redis_errors",
        "invalidations",
    }

    assert required <= set(EVENTS)


def test_count_adds_one() -> None:
    """Each count() adds one to its event only."""
    stats = Stats()

    stats.count("misses")
    stats.count("misses")
    stats.count("fetches")

    snapshot = stats.snapshot()
    assert snapshot["misses"] == 2
    assert snapshot["fetches"] == 1
    assert snapshot["hits_redis"] == 0


def test_unknown_event_is_a_key_error() -> None:
    """A misspelt event name fails loudly instead of creating a counter."""
    with pytest.raises(KeyError):
        Stats().count("hitz")


def test_snapshot_is_a_read_only_copy() -> None:
    """A snapshot cannot be changed and does not move with later counts."""
    stats = Stats()
    snapshot = stats.snapshot()

    stats.count("misses")

    assert snapshot["misses"] == 0
    with pytest.raises(TypeError):
        snapshot["misses"] = 5  # type: ignore[index]


def test_hook_receives_event_and_details() -> None:
    """The hook is called with the event name and its details, read-only."""
    seen: list[tuple[str, Mapping[str, Any]]] = []
    stats = Stats(hook=lambda event, details: seen.append((event, details)))

    stats.count("fetches", user_id="42", seconds=0.1)

    assert seen == [("fetches", {"user_id": "42", "seconds": 0.1})]
    with pytest.raises(TypeError):
        seen[0][1]["user_id"] = "43"  # type: ignore[index]


def test_failing_hook_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    """A hook that raises is logged; the counter still counts and nothing raises."""

    def broken(event: str, details: Mapping[str, Any]) -> None:
        raise RuntimeError("metrics backend down")

    stats = Stats(hook=broken)

    with caplog.at_level(logging.ERROR, logger="rbac_abac_cache.stats"):
        stats.count("misses")

    assert stats.snapshot()["misses"] == 1
    assert "misses" in caplog.text


def test_counts_from_many_threads_add_up() -> None:
    """Concurrent counts are never lost."""
    stats = Stats()

    def work() -> None:
        for _ in range(2000):
            stats.count("misses")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert not any(thread.is_alive() for thread in threads)
    assert stats.snapshot()["misses"] == 16_000


def test_hit_counters_are_reported_in_the_snapshot() -> None:
    """The inline hit counters the cache increments appear in the snapshot."""
    stats = Stats()

    stats.hits_local += 2
    stats.hits_redis += 3

    snapshot = stats.snapshot()
    assert snapshot["hits_local"] == 2
    assert snapshot["hits_redis"] == 3


def test_counting_a_hit_event_shows_in_the_snapshot() -> None:
    """count("hits_redis") is not silently lost."""
    stats = Stats()

    stats.count("hits_redis")

    assert stats.snapshot()["hits_redis"] == 1


def test_report_calls_the_hook_without_counting() -> None:
    """report() tells the hook about an event whose counter is kept elsewhere."""
    seen: list[str] = []
    stats = Stats(hook=lambda event, details: seen.append(event))

    stats.report("hits_local", {"user_id": "42"})

    assert seen == ["hits_local"]
    assert stats.snapshot()["hits_local"] == 0


def test_report_without_a_hook_does_nothing() -> None:
    """report() is harmless when no hook is set."""
    Stats().report("hits_redis", {"user_id": "42"})


def test_report_isolates_a_failing_hook(caplog: pytest.LogCaptureFixture) -> None:
    """A hook that raises from report() is logged, not propagated."""

    def broken(event: str, details: Mapping[str, Any]) -> None:
        raise RuntimeError("metrics backend down")

    with caplog.at_level(logging.ERROR, logger="rbac_abac_cache.stats"):
        Stats(hook=broken).report("hits_redis", {})

    assert "hits_redis" in caplog.text
