"""The cache behind Redis Sentinel: a master, a replica, three sentinels, a failover."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

import rbac_abac_cache.cache
from rbac_abac_cache import AttributeCache

from .cluster import SentinelSet, start_or_skip, wait_until
from .conftest import CountingFetcher

pytestmark = pytest.mark.slow
MakeCache = Callable[..., AttributeCache]


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSet]:
    """A master, a replica and three sentinels, shared by this module."""
    deployment = start_or_skip(lambda: SentinelSet().start())
    yield deployment
    deployment.stop()


@pytest.fixture
def make_cache(sentinels: SentinelSet, fetcher: CountingFetcher) -> Iterator[MakeCache]:
    """Build caches from the Sentinel URL, on an emptied master; closed after."""
    master = sentinels.server_on(sentinels.master_port()).client()
    master.flushall()
    master.close()
    caches: list[AttributeCache] = []

    def make(**options: Any) -> AttributeCache:
        options.setdefault("service_name", "billing_api")
        cache = AttributeCache(sentinels.url, fetcher, **options)
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()


def test_sentinel_url_gives_a_plain_client_of_the_master(
    make_cache: MakeCache, sentinels: SentinelSet, fetcher: CountingFetcher
) -> None:
    """Reads, refreshes and invalidations go to the master the sentinels name."""
    cache = make_cache()

    assert type(cache.redis) is redis.Redis
    assert cache.get("1") is not None
    assert cache.get("1") is not None
    assert fetcher.count("1") == 1
    cache.refresh("2")
    cache.invalidate("1")
    assert cache.get_many(["1", "2", "nobody"]).keys() == {"1", "2"}
    assert cache.stats()["redis_errors"] == 0

    master = sentinels.server_on(sentinels.master_port()).client()
    assert master.exists(cache.key_for("1"), cache.key_for("2")) == 2
    master.close()


def test_sentinel_url_is_read_from_the_environment(
    sentinels: SentinelSet, fetcher: CountingFetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``RBAC_ABAC_REDIS_URL=redis+sentinel://...`` is all a service needs."""
    monkeypatch.setenv("RBAC_ABAC_REDIS_URL", sentinels.url)
    monkeypatch.setenv("RBAC_ABAC_SERVICE_NAME", "billing_api")

    with AttributeCache.from_env(fetcher=fetcher) as cache:
        assert cache.get("alice") is not None
        assert cache.stats()["redis_errors"] == 0


def test_refresh_evicts_another_clients_local_tier(
    make_cache: MakeCache, fetcher: CountingFetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invalidations travel through the master's pub/sub to another client."""
    monkeypatch.setattr(rbac_abac_cache.cache, "deliver_in_process", lambda *args: None)
    writer = make_cache(local_ttl=30)
    reader = make_cache(local_ttl=30)
    assert reader._bus is not None
    assert reader._bus.wait_confirmed(5)
    reader.get("1")
    reader.get("1")
    assert reader.stats()["hits_local"] == 1

    fetcher.users["1"]["roles"] = ["viewer"]
    writer.refresh("1")

    wait_until(
        lambda: reader.get("1").has_role("viewer"),
        2.0,
        "the reader to see the refresh",
        interval=0.005,
    )


def test_closing_the_cache_closes_its_sentinel_connections(
    make_cache: MakeCache,
) -> None:
    """close() also drops the connections used to ask sentinels for the master."""
    cache = make_cache()
    cache.get("1")
    sentinel_pools = [
        sentinel.connection_pool
        for sentinel in cache.redis.connection_pool.sentinel_manager.sentinels
    ]
    assert any(pool._created_connections for pool in sentinel_pools)

    cache.close()

    for pool in sentinel_pools:
        assert all(not c.is_connected for c in pool._available_connections)


def test_failover_serves_from_the_fetcher_then_from_the_new_master(
    make_cache: MakeCache,
    sentinels: SentinelSet,
    fetcher: CountingFetcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGKILL the master: reads keep answering, then use the promoted replica."""
    monkeypatch.setattr(rbac_abac_cache.cache, "deliver_in_process", lambda *args: None)
    cache = make_cache(redis_retry_interval=0.2)
    reader = make_cache(local_ttl=30, redis_retry_interval=0.2)
    assert cache.get("1") is not None
    old_port = sentinels.master_port()
    _wait_replicated(sentinels, cache.key_for("1"))

    sentinels.server_on(old_port).kill()
    began = time.monotonic()
    slowest = 0.0
    while sentinels.master_port() == old_port:
        assert time.monotonic() - began < 15, "the sentinels never promoted"
        request_began = time.monotonic()
        value = cache.get("1")
        slowest = max(slowest, time.monotonic() - request_began)
        assert value is not None
        assert value.has_role("admin")
        time.sleep(0.02)

    assert slowest < 1.0
    assert cache.stats()["redis_errors"] >= 1
    hits = cache.stats()["hits_redis"]
    wait_until(
        lambda: cache.get("1") is not None and cache.stats()["hits_redis"] > hits,
        5,
        "a Redis hit on the promoted replica",
    )
    fetches = fetcher.count("1")
    for _ in range(5):
        assert cache.get("1") is not None
    assert fetcher.count("1") == fetches

    assert reader._bus is not None
    assert reader._bus.wait_confirmed(5)
    reader.get("1")
    assert reader._local is not None
    assert reader._local.get("1") is not None
    fetcher.users["1"]["roles"] = ["viewer"]
    assert cache.refresh("1").has_role("viewer")
    assert cache.get("1").has_role("viewer")
    wait_until(
        lambda: reader.get("1").has_role("viewer"),
        2.0,
        "the reader, subscribed to the new master, to see the refresh",
        interval=0.005,
    )


def _wait_replicated(sentinels: SentinelSet, key: str) -> None:
    """Wait until the replica holds ``key``, so a failover keeps it."""
    replica = next(
        server for server in sentinels.servers if server.port != sentinels.master_port()
    )
    client = replica.client(socket_timeout=0.5)
    try:
        wait_until(lambda: bool(client.exists(key)), 5, "the replica to copy the entry")
    finally:
        client.close()
