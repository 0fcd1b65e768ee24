"""SharedResources: one listener per channel, bounded background work, closing once."""

from __future__ import annotations

import threading
from typing import Any

from rbac_abac_cache.config import CacheSettings
from rbac_abac_cache.resources import SharedResources

from .redis_server import RedisServer


def make_resources(client: Any, owns_client: bool = False) -> SharedResources:
    """Resources for a cache of billing_api."""
    return SharedResources(client, owns_client, None, CacheSettings("billing_api"))


def test_one_bus_per_channel(fake_redis: Any) -> None:
    """Siblings asking for the same channel share one listener."""
    resources = make_resources(fake_redis)

    assert resources.bus("a:invalidations") is resources.bus("a:invalidations")
    assert resources.bus("a:invalidations") is not resources.bus("b:invalidations")
    resources.close()


def test_submit_runs_a_key_once_at_a_time(fake_redis: Any) -> None:
    """A key already queued is not queued again until its task ends."""
    resources = make_resources(fake_redis)
    release = threading.Event()
    done = threading.Event()

    assert resources.submit(("billing_api", "1"), release.wait)
    assert not resources.submit(("billing_api", "1"), done.set)
    release.set()

    for _ in range(100):
        if resources.submit(("billing_api", "1"), done.set):
            break
        threading.Event().wait(0.01)
    assert done.wait(5)
    resources.close()


def test_close_is_idempotent_and_refuses_new_work(fake_redis: Any) -> None:
    """After close nothing more is queued, and closing again is harmless."""
    resources = make_resources(fake_redis)

    resources.close()
    resources.close()

    assert not resources.submit(("billing_api", "1"), lambda: None)


def test_close_closes_only_a_client_built_here(redis_server: RedisServer) -> None:
    """A caller's client stays usable; an owned one is closed."""
    theirs = redis_server.client()
    make_resources(theirs).close()
    assert theirs.ping()
    theirs.close()

    ours = redis_server.client()
    ours.ping()
    make_resources(ours, owns_client=True).close()
    idle = ours.connection_pool._available_connections
    assert all(connection._sock is None for connection in idle)
