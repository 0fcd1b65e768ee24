"""The two functions kept from the original services."""

from __future__ import annotations

from typing import Any

import pytest

from rbac_abac_cache import (
    AttributeCache,
    get_user_attributes,
    refresh_user_attributes_from_identity_provider,
    set_default_cache,
)

from .conftest import CountingFetcher
from .redis_server import RedisServer


def test_functions_use_a_cache_built_from_the_environment(
    redis_server: RedisServer, real_redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only environment variables set, the old calls work unchanged."""
    monkeypatch.setenv("RBAC_ABAC_REDIS_URL", redis_server.url)
    monkeypatch.setenv("IDENTITY_PROVIDER_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("RBAC_ABAC_CACHE_TTL", "600")

    assert get_user_attributes(1, "billing_api", auto_refresh=False) is None

    cache = AttributeCache.from_env(service_name="billing_api")
    assert cache.settings.ttl == 600
    cache.close()


def test_functions_serve_every_service_from_one_default_cache(
    real_redis: Any, fetcher: CountingFetcher
) -> None:
    """get and refresh reach siblings of the default cache for other services."""
    set_default_cache(AttributeCache(real_redis, fetcher, service_name="billing_api"))

    assert get_user_attributes("1", "billing_api").has_role("admin")
    assert get_user_attributes(1, "inventory_api").service_name == "inventory_api"

    fetcher.users["1"]["roles"] = ["revoked"]
    assert refresh_user_attributes_from_identity_provider(1, "inventory_api").roles == {
        "revoked"
    }
    assert get_user_attributes("1", "inventory_api").roles == {"revoked"}
    assert get_user_attributes("1", "billing_api").roles == {"admin"}
    assert fetcher.calls == [
        ("1", "billing_api"),
        ("1", "inventory_api"),
        ("1", "inventory_api"),
    ]
