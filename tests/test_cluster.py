"""The cache on a real three-master Redis Cluster, including a node dying."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis.cluster import RedisCluster

import rbac_abac_cache.cache
from rbac_abac_cache import AttributeCache, RefreshHandler
from rbac_abac_cache.invalidation import encode_message

from .cluster import (
    CACHE_ACL_RULES,
    CLUSTER_ACL_RULES,
    LocalCluster,
    cluster_stampede,
    cluster_state,
    hammer,
    join_processes,
    spread_user_ids,
    start_or_skip,
    wait_until,
)
from .conftest import CountingFetcher
from .redis_server import RedisServer
from .workers import CALLS_KEY, ROLES_KEY, RedisBackedFetcher

pytestmark = pytest.mark.slow
spawn = multiprocessing.get_context("spawn")
MakeCache = Callable[..., AttributeCache]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Three masters on free loopback ports, shared by this module."""
    deployment = start_or_skip(lambda: LocalCluster().start())
    yield deployment
    deployment.stop()


@pytest.fixture
def users() -> CountingFetcher:
    """A counting fetcher that knows 300 users, all admins."""
    return CountingFetcher({uid: {"roles": ["admin"]} for uid in spread_user_ids(300)})


@pytest.fixture
def make_cache(cluster: LocalCluster, users: CountingFetcher) -> Iterator[MakeCache]:
    """Build caches with a cluster client of their own each; closed after the test."""
    cluster.wait_ok()
    cluster.flush()
    caches: list[AttributeCache] = []

    def make(**options: Any) -> AttributeCache:
        options.setdefault("service_name", "billing_api")
        options.setdefault("fetcher", users)
        cache = AttributeCache.from_env(
            redis=cluster.url, redis_cluster=True, **options
        )
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()


@pytest.fixture
def redis_pubsub_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make Redis pub/sub the only way an invalidation reaches another cache."""
    monkeypatch.setattr(rbac_abac_cache.cache, "deliver_in_process", lambda *args: None)


def test_cluster_setting_builds_a_cluster_client_from_any_node(
    cluster: LocalCluster, users: CountingFetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``RBAC_ABAC_REDIS_CLUSTER=1`` and the URL of the last node are enough."""
    monkeypatch.setenv("RBAC_ABAC_REDIS_CLUSTER", "1")
    monkeypatch.setenv("RBAC_ABAC_REDIS_URL", cluster.nodes[-1].url)

    with AttributeCache.from_env(fetcher=users, service_name="billing_api") as cache:
        assert isinstance(cache.redis, RedisCluster)
        assert len(cache.redis.get_primaries()) == 3
        value = cache.get("user-1")

    assert value is not None

    assert value.has_role("admin")


def test_keys_of_a_user_share_a_slot_and_users_cover_every_node(
    make_cache: MakeCache, cluster: LocalCluster
) -> None:
    """Entry, lock, generation and rate-limit keys share a slot; users spread."""
    cache = make_cache()
    keys = cache._keys
    client = cluster.client()

    for uid in spread_user_ids(50):
        family = [keys.entry(uid), keys.lock(uid), keys.generation(uid)]
        slots = {client.keyslot(key) for key in [*family, keys.rate_limit(uid)]}
        assert len(slots) == 1

    ports = {
        client.get_node_from_key(cache.key_for(uid)).port for uid in spread_user_ids(50)
    }
    assert ports == {node.port for node in cluster.nodes}
    client.close()


def test_get_refresh_and_invalidate_work_on_a_cluster(
    make_cache: MakeCache, users: CountingFetcher
) -> None:
    """A miss fetches once, a hit does not, refresh and invalidate refetch."""
    cache = make_cache()

    assert cache.get("user-7") is not None
    assert cache.get("user-7") is not None
    assert users.count("user-7") == 1

    users.users["user-7"]["roles"] = ["viewer"]
    refreshed = cache.refresh("user-7")
    assert refreshed is not None
    assert refreshed.has_role("viewer")
    assert cache.get("user-7").has_role("viewer")
    assert users.count("user-7") == 2

    cache.invalidate("user-7")
    assert cache.get("user-7") is not None
    assert users.count("user-7") == 3
    assert cache.stats()["redis_errors"] == 0


def test_get_many_reads_users_from_every_slot(
    make_cache: MakeCache, users: CountingFetcher
) -> None:
    """get_many fills 300 misses, then serves all of them from the cluster."""
    cache = make_cache()
    ids = spread_user_ids(300)

    first = cache.get_many([*ids, "nobody"])
    assert sorted(first) == sorted(ids)
    assert users.count() == 301

    second = cache.get_many(ids)
    assert second == first
    assert users.count() == 301
    assert cache.stats()["hits_redis"] == 300


def test_refresh_rate_limit_counts_in_the_cluster(make_cache: MakeCache) -> None:
    """The refresh endpoint's per-user limit holds on a cluster: the sixth is 429."""
    handler = RefreshHandler(make_cache(), tokens=["t0ken"])
    headers = {"Authorization": "Bearer t0ken", "Content-Type": "application/json"}
    body = b'{"user_id": "user-3", "service_name": "billing_api"}'

    statuses = [handler.handle("POST", headers, body).status for _ in range(6)]

    assert statuses == [200] * 5 + [429]


def test_stampede_over_threads_and_processes_fetches_once(
    cluster: LocalCluster, redis_server: RedisServer, real_redis: Any
) -> None:
    """Ten threads here and ten in each of two processes make exactly one fetch."""
    cluster.wait_ok()
    cluster.flush()
    real_redis.sadd(ROLES_KEY.format("cold"), "admin")
    start = spawn.Event()
    results = spawn.Queue()
    readies = [spawn.Event() for _ in range(2)]
    processes = [
        spawn.Process(
            target=cluster_stampede,
            args=(cluster.url, redis_server.url, ready, start, 10, 0.2, results),
        )
        for ready in readies
    ]
    for process in processes:
        process.start()
    cache = AttributeCache.from_env(
        redis=cluster.url,
        redis_cluster=True,
        fetcher=RedisBackedFetcher(redis_server.url, 0.2),
        service_name="billing_api",
    )
    try:
        cache.get("warm-up-connections", auto_refresh=False)
        assert all(ready.wait(30) for ready in readies)

        start.set()
        outcomes = [hammer(cache, "cold", start, 10)]
        outcomes += [results.get(timeout=30) for _ in processes]
    finally:
        cache.close()
        failures = list(join_processes(processes, 30))

    assert failures == []
    assert [answered for answered, _ in outcomes] == [10, 10, 10]
    assert [errors for _, errors in outcomes] == [[], [], []]
    assert int(real_redis.get(CALLS_KEY)) == 1


def test_refresh_evicts_another_clients_local_tier(
    make_cache: MakeCache, users: CountingFetcher, redis_pubsub_only: None
) -> None:
    """A refresh through one cluster client evicts the user from another's tier."""
    writer = make_cache(local_ttl=30)
    reader = make_cache(local_ttl=30)
    assert reader._bus is not None
    assert reader._bus.wait_confirmed(5)

    reader.get("user-5")
    reader.get("user-5")
    assert reader.stats()["hits_local"] == 1

    users.users["user-5"]["roles"] = ["viewer"]
    writer.refresh("user-5")

    wait_until(
        lambda: reader.get("user-5").has_role("viewer"),
        2.0,
        "the reader to see the refresh",
        interval=0.005,
    )


def test_a_publish_on_any_node_reaches_the_subscriber(
    make_cache: MakeCache, cluster: LocalCluster, redis_pubsub_only: None
) -> None:
    """Classic pub/sub is relayed cluster-wide: every node's publish evicts."""
    reader = make_cache(local_ttl=30)
    assert reader._bus is not None
    assert reader._bus.wait_confirmed(5)

    for number, node in enumerate(cluster.nodes):
        uid = f"user-{number}"
        reader.get(uid)
        assert reader._local is not None
        assert reader._local.get(uid) is not None
        publisher = node.client()
        publisher.publish(reader._keys.channel, encode_message("billing_api", uid))
        publisher.close()

        wait_until(
            lambda uid=uid: reader._local.get(uid) is None,
            2.0,
            f"an invalidation published on {node.port}",
            interval=0.005,
        )


def test_cache_user_with_the_minimal_acl_works_on_a_cluster(
    cluster: LocalCluster, users: CountingFetcher
) -> None:
    """A user with the documented ACL and its two cluster additions can do it all."""
    cluster.wait_ok()
    rules = [*CACHE_ACL_RULES, *CLUSTER_ACL_RULES]
    for node in cluster.nodes:
        admin = node.client()
        admin.acl_setuser("cluster-cache", enabled=True, reset=True)
        admin.execute_command("ACL", "SETUSER", "cluster-cache", ">pw", *rules)
        admin.close()

    port = cluster.nodes[0].port
    url = f"redis://cluster-cache:pw@127.0.0.1:{port}/0"
    with AttributeCache.from_env(
        redis=url, redis_cluster=True, fetcher=users, service_name="billing_api"
    ) as cache:
        assert cache.get_many(spread_user_ids(20)).keys() == set(spread_user_ids(20))
        assert cache.refresh("user-1") is not None
        cache.invalidate("user-1")
        assert cache.get("user-1") is not None
        assert cache.stats()["redis_errors"] == 0


def _assert_all_answered_quickly(cache: AttributeCache, ids: list[str]) -> None:
    began = time.monotonic()
    answers = [cache.get(uid) for uid in ids]
    elapsed = time.monotonic() - began

    assert all(value is not None for value in answers)
    assert elapsed < 2.0


def test_a_dead_node_costs_little_and_get_never_raises(
    make_cache: MakeCache, cluster: LocalCluster, users: CountingFetcher
) -> None:
    """The subscriber's node dies: reads keep answering, and all recovers after."""
    ids = spread_user_ids(30)
    cache = make_cache(redis_retry_interval=0.2)
    reader = make_cache(local_ttl=30, redis_retry_interval=0.2)
    assert reader._bus is not None
    assert reader._bus.wait_confirmed(5)
    cache.get_many(ids)
    victim = cluster.node_for(cache._keys.channel)
    survivor = next(node for node in cluster.nodes if node is not victim)

    victim.kill()
    try:
        _assert_all_answered_quickly(cache, ids)
        wait_until(
            lambda: cluster_state(survivor) == "fail", 10, "the cluster to notice"
        )
        _assert_all_answered_quickly(cache, ids)
        assert len(cache.get_many(ids)) == len(ids)
        assert cache.stats()["corrupt_entries"] == 0
        assert reader.get("user-1") is not None
    finally:
        cluster.restart(victim)

    assert reader._bus.wait_confirmed(5)
    hits = cache.stats()["hits_redis"]
    wait_until(
        lambda: cache.get("user-2") is not None and cache.stats()["hits_redis"] > hits,
        5,
        "Redis hits again",
    )

    reader.get("user-1")
    assert reader._local is not None
    assert reader._local.get("user-1") is not None
    users.users["user-1"]["roles"] = ["viewer"]
    cache.refresh("user-1")
    wait_until(
        lambda: reader.get("user-1").has_role("viewer"),
        2.0,
        "the reader to hear of the refresh again",
        interval=0.005,
    )


def test_threads_share_one_cluster_client_safely(make_cache: MakeCache) -> None:
    """Eight threads reading 300 users through one cluster client all succeed."""
    cache = make_cache()
    ids = spread_user_ids(300)
    cache.get_many(ids)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for uid in ids:
                assert cache.get(uid) is not None
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=read) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)

    assert errors == []
    assert cache.stats()["redis_errors"] == 0
