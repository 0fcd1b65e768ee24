"""Shared fixtures: private Redis servers, fake Redis, a fetcher that counts."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import fakeredis
import pytest
import redis

from rbac_abac_cache import AttributeCache, UserAttributes, set_default_cache

from .redis_server import RedisServer, RedisServerUnavailableError


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep the library's environment variables from leaking into tests."""
    for name in list(os.environ):
        if name.startswith("RBAC_ABAC_") or name in (
            "REDIS_URL",
            "IDENTITY_PROVIDER_URL",
        ):
            monkeypatch.delenv(name)
    yield
    set_default_cache(None)


def _start_server() -> RedisServer:
    try:
        return RedisServer().start()
    except RedisServerUnavailableError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs a real redis-server: {exc}")
        pytest.skip(f"no redis-server: {exc}")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server shared by the session; flush between tests."""
    server = _start_server()
    yield server
    server.stop()


@pytest.fixture
def fresh_redis_server() -> Iterator[RedisServer]:
    """A private redis-server of this test's own, which it may kill and restart."""
    server = _start_server()
    yield server
    server.stop()


@pytest.fixture
def real_redis(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the shared private server, emptied before the test."""
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def fake_redis() -> Iterator[fakeredis.FakeRedis]:
    """An in-memory Redis with Lua support."""
    client = fakeredis.FakeRedis()
    yield client
    client.close()


@pytest.fixture(params=["fake", "real"])
def any_redis(request: pytest.FixtureRequest) -> Any:
    """Each test using it runs against fakeredis and against a real server."""
    if request.param == "fake":
        return request.getfixturevalue("fake_redis")
    return request.getfixturevalue("real_redis")


class CountingFetcher:
    """A fetcher that serves a dict of users and records every call."""

    def __init__(self, users: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.users: dict[str, dict[str, Any]] = {
            uid: dict(data) for uid, data in (users or {}).items()
        }
        self.calls: list[tuple[str, str]] = []
        self.error: Exception | None = None
        self.delay = 0.0
        self._lock = threading.Lock()

    def __call__(self, user_id: str, service_name: str) -> dict[str, Any] | None:
        with self._lock:
            self.calls.append((user_id, service_name))
        if self.delay:
            threading.Event().wait(self.delay)
        if self.error is not None:
            raise self.error
        data = self.users.get(user_id)
        if data is None:
            return None
        return {
            "user_id": user_id,
            "service_name": service_name,
            "roles": data.get("roles", []),
            "permissions": data.get("permissions", []),
            "attributes": data.get("attributes", {}),
        }

    def count(self, user_id: str | None = None) -> int:
        return sum(1 for uid, _ in self.calls if user_id is None or uid == user_id)


@pytest.fixture
def fetcher() -> CountingFetcher:
    """A counting fetcher that knows users 1, 2 and alice."""
    return CountingFetcher(
        {
            "1": {
                "roles": ["admin"],
                "permissions": ["invoices.*"],
                "attributes": {"department": "finance"},
            },
            "2": {
                "roles": ["viewer"],
                "permissions": ["invoices.read"],
                "attributes": {"department": "sales"},
            },
            "alice": {"roles": ["viewer"], "permissions": [], "attributes": {}},
        }
    )


@pytest.fixture
def make_cache(any_redis: Any, fetcher: CountingFetcher) -> Iterator[Any]:
    """Build caches on ``any_redis`` with the counting fetcher; closed after."""
    caches: list[AttributeCache] = []

    def make(**options: Any) -> AttributeCache:
        options.setdefault("service_name", "billing_api")
        cache = AttributeCache(any_redis, options.pop("fetcher", fetcher), **options)
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()


def attributes(
    user_id: str = "1", service_name: str = "billing_api", **fields: Any
) -> UserAttributes:
    """Build UserAttributes with defaults for tests."""
    return UserAttributes(user_id, service_name, **fields)
