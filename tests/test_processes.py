"""Real processes racing on one cold key, and revocations reaching every process."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pytest

from rbac_abac_cache import AttributeCache

from .redis_server import RedisServer
from .workers import CALLS_KEY, ROLES_KEY, RedisBackedFetcher, stampede, watch_for_role

pytestmark = pytest.mark.slow
spawn = multiprocessing.get_context("spawn")


def _join_all(processes: list[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.1, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(5)
            pytest.fail("a child process did not finish in time")


def test_cold_key_stampede_reaches_the_provider_once(
    redis_server: RedisServer, real_redis: Any
) -> None:
    """4 processes x 25 threads on one cold key make exactly one fetch."""
    real_redis.sadd(ROLES_KEY.format("cold"), "admin")
    start = spawn.Event()
    results = spawn.Queue()
    processes = [
        spawn.Process(
            target=stampede, args=(redis_server.url, start, 25, 0.05, results)
        )
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    time.sleep(2.0)  # let every child import, connect and park its threads

    start.set()
    outcomes = [results.get(timeout=60) for _ in processes]
    _join_all(processes, 30)

    latencies = [latency for found, _ in outcomes for latency in found]
    errors = [error for _, found in outcomes for error in found]
    assert errors == []
    assert len(latencies) == 100
    assert int(real_redis.get(CALLS_KEY)) == 1
    assert max(latencies) < 2.0


def test_refresh_reaches_the_local_tier_of_every_process(
    redis_server: RedisServer, real_redis: Any
) -> None:
    """A refresh in one process evicts the user from three others' local tiers."""
    real_redis.sadd(ROLES_KEY.format("7"), "editor")
    results = spawn.Queue()
    readies = [spawn.Event() for _ in range(3)]
    processes = [
        spawn.Process(
            target=watch_for_role, args=(redis_server.url, ready, "viewer", results)
        )
        for ready in readies
    ]
    for process in processes:
        process.start()
    for ready in readies:
        assert ready.wait(30)

    real_redis.delete(ROLES_KEY.format("7"))
    real_redis.sadd(ROLES_KEY.format("7"), "viewer")
    cache = AttributeCache(
        redis_server.url,
        RedisBackedFetcher(redis_server.url),
        service_name="billing_api",
    )
    refreshed_at = time.time()
    assert cache.refresh("7").roles == {"viewer"}

    outcomes = [results.get(timeout=30) for _ in processes]
    _join_all(processes, 30)
    cache.close()

    for seen_at, local_hits in outcomes:
        assert local_hits >= 1, "the local tier was never used"
        assert seen_at is not None, "a process never saw the refresh"
        assert seen_at - refreshed_at < 1.0


def _forked_child(cache: AttributeCache, ready: Any, results: Any) -> None:
    inherited = len(cache._local or ())
    hits_before = cache.stats()["hits_local"]
    bus = cache._bus
    assert bus is not None
    cache.get("7")
    confirmed = bus.wait_confirmed(5)
    cache.get("7")
    cache.get("7")
    ready.set()

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not cache.get("7").has_role("viewer"):
        time.sleep(0.005)
    hits = cache.stats()["hits_local"] - hits_before
    results.put((inherited, confirmed, hits, cache.get("7").roles))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_listener_restarts_in_a_forked_child(
    redis_server: RedisServer, real_redis: Any
) -> None:
    """After fork() the child drops inherited entries and listens on its own."""
    real_redis.sadd(ROLES_KEY.format("7"), "editor")
    cache = AttributeCache(
        redis_server.url,
        RedisBackedFetcher(redis_server.url),
        service_name="billing_api",
        local_ttl=30,
    )
    assert cache._bus is not None
    assert cache._bus.wait_confirmed(5)
    cache.get("7")
    cache.get("7")
    assert cache.stats()["hits_local"] == 1

    fork = multiprocessing.get_context("fork")
    ready, results = fork.Event(), fork.Queue()
    child = fork.Process(target=_forked_child, args=(cache, ready, results))
    child.start()
    assert ready.wait(30)
    real_redis.delete(ROLES_KEY.format("7"))
    real_redis.sadd(ROLES_KEY.format("7"), "viewer")
    cache.refresh("7")

    inherited, confirmed, local_hits, roles = results.get(timeout=30)
    _join_all([child], 10)
    cache.close()

    assert inherited == 0
    assert confirmed
    assert local_hits >= 1
    assert roles == {"viewer"}
