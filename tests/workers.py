"""Code that runs in child processes of the multi-process tests.

Children are started with the ``spawn`` method, so everything they run must
be importable; they talk to the parent through a real Redis server.
"""

from __future__ import annotations

import threading
import time
from multiprocessing.synchronize import Event
from typing import Any

import redis

from rbac_abac_cache import AttributeCache, AttributesUnavailableError

CALLS_KEY = "test-idp:calls"
ROLES_KEY = "test-idp:roles:{}"


class RedisBackedFetcher:
    """An identity provider whose users live in Redis, shared by every process.

    It counts its calls in Redis and sleeps ``delay`` seconds per call, like a
    slow provider.
    """

    def __init__(self, url: str, delay: float = 0.0) -> None:
        self.client = redis.Redis.from_url(url)
        self.delay = delay

    def __call__(self, user_id: str, service_name: str) -> dict[str, Any] | None:
        self.client.incr(CALLS_KEY)
        if self.delay:
            time.sleep(self.delay)
        roles = self.client.smembers(ROLES_KEY.format(user_id))
        if not roles:
            return None
        return {
            "user_id": user_id,
            "service_name": service_name,
            "roles": sorted(r.decode() for r in roles),
            "permissions": [],
            "attributes": {},
        }


def stampede(url: str, start: Event, threads: int, delay: float, results: Any) -> None:
    """Hit one cold user from ``threads`` threads once ``start`` is set."""
    cache = AttributeCache(
        url, RedisBackedFetcher(url, delay), service_name="billing_api"
    )
    cache.get("warm-up-connections", auto_refresh=False)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        start.wait(30)
        began = time.monotonic()
        try:
            value = cache.get("cold")
            ok = value is not None and value.has_role("admin")
        except AttributesUnavailableError as exc:
            ok, value = False, exc
        with lock:
            latencies.append(time.monotonic() - began)
            if not ok:
                errors.append(repr(value))

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    results.put((latencies, errors))
    cache.close()


def watch_for_role(url: str, ready: Event, role: str, results: Any) -> None:
    """Hold user 7 in the local tier, then report how soon ``role`` appears."""
    cache = AttributeCache(
        url, RedisBackedFetcher(url), service_name="billing_api", local_ttl=30
    )
    bus = cache._bus
    assert bus is not None
    bus.wait_confirmed(5)
    cache.get("7")
    cache.get("7")
    local_hits = cache.stats()["hits_local"]
    ready.set()

    deadline = time.monotonic() + 10
    seen_at = None
    while time.monotonic() < deadline:
        if cache.get("7").has_role(role):
            seen_at = time.time()
            break
        time.sleep(0.001)
    results.put((seen_at, local_hits))
    cache.close()
