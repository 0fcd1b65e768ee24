"""Tests of settings read at use time, and of the cache built from them."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
import redis
import responses
from django.test import Client, override_settings

from rbac_abac_cache import AttributeCache, ConfigurationError, HttpIdentityProvider
from rbac_abac_cache.contrib.django import conf, get_cache, reset, set_cache
from rbac_abac_cache.testing import StaticFetcher, make_test_cache

from ...redis_server import RedisServer


@pytest.fixture
def on_redis(redis_server: RedisServer, real_redis: redis.Redis) -> dict[str, Any]:
    """Cache settings pointing at the private real Redis, emptied first."""
    return {"SERVICE_NAME": "billing_api", "REDIS_URL": redis_server.url}


def _closed(cache: AttributeCache) -> bool:
    return bool(cache._shared.closed)


def test_cache_is_built_once_from_the_settings(on_redis: dict[str, Any]) -> None:
    """get_cache builds one cache from RBAC_ABAC_CACHE and then reuses it."""
    with override_settings(RBAC_ABAC_CACHE={**on_redis, "TTL": 600, "LOCAL_TTL": 5}):
        first = get_cache()
        second = get_cache()

    assert first is second
    assert first.service_name == "billing_api"
    assert first.settings.ttl == 600
    assert first.settings.local_ttl == 5


def test_override_settings_rebuilds_the_cache_and_closes_the_old_one(
    on_redis: dict[str, Any],
) -> None:
    """A settings change takes effect at once; the cache built before is closed."""
    with override_settings(RBAC_ABAC_CACHE=on_redis):
        before = get_cache()
        with override_settings(
            RBAC_ABAC_CACHE={**on_redis, "SERVICE_NAME": "inventory_api"}
        ):
            during = get_cache()

    assert before.service_name == "billing_api"
    assert during.service_name == "inventory_api"
    assert _closed(before)
    assert _closed(during)


def test_top_level_settings_are_honoured(on_redis: dict[str, Any]) -> None:
    """RBAC_ABAC_CACHE_TTL and IDENTITY_PROVIDER_URL apply when the dict is silent."""
    with override_settings(
        RBAC_ABAC_CACHE=on_redis,
        RBAC_ABAC_CACHE_TTL=120,
        IDENTITY_PROVIDER_URL="https://idp.example",
    ):
        cache = get_cache()

    assert cache.settings.ttl == 120
    assert isinstance(cache.fetcher, HttpIdentityProvider)


def test_dict_wins_over_top_level_settings_and_environment(
    on_redis: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """RBAC_ABAC_CACHE comes first, then the top-level setting, then the environment."""
    monkeypatch.setenv("RBAC_ABAC_CACHE_TTL", "30")
    monkeypatch.setenv("RBAC_ABAC_CACHE_STALE_GRACE", "7")
    with override_settings(
        RBAC_ABAC_CACHE={**on_redis, "TTL": 600}, RBAC_ABAC_CACHE_TTL=120
    ):
        settings, _ = conf.load()

    assert settings.ttl == 600
    assert settings.stale_grace == 7


def test_environment_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without RBAC_ABAC_CACHE, the environment variables are read."""
    monkeypatch.setenv("RBAC_ABAC_SERVICE_NAME", "inventory_api")
    monkeypatch.setenv("RBAC_ABAC_REDIS_URL", "redis://127.0.0.1:1/3")
    with override_settings(RBAC_ABAC_CACHE=None):
        settings, connection = conf.load()

    assert settings.service_name == "inventory_api"
    assert connection.redis_url == "redis://127.0.0.1:1/3"


def test_malformed_value_names_its_key() -> None:
    """A malformed value raises ConfigurationError naming the key it came from."""
    with (
        override_settings(RBAC_ABAC_CACHE={"SERVICE_NAME": "billing_api", "TTL": -5}),
        pytest.raises(ConfigurationError, match=r"RBAC_ABAC_CACHE\['TTL'\]"),
    ):
        get_cache()


def test_setting_that_is_not_a_dict_is_refused() -> None:
    """RBAC_ABAC_CACHE must be a dict."""
    with (
        override_settings(RBAC_ABAC_CACHE=["SERVICE_NAME"]),
        pytest.raises(ConfigurationError, match="must be a dict"),
    ):
        conf.options()


def test_injected_cache_comes_first_and_is_never_closed() -> None:
    """set_cache overrides the settings; the adapter leaves closing to the owner."""
    injected = make_test_cache(service_name="billing_api")
    set_cache(injected)

    with override_settings(RBAC_ABAC_CACHE={"SERVICE_NAME": "other_api"}):
        assert get_cache() is injected
    reset()

    assert get_cache() is injected
    assert not _closed(injected)
    injected.close()


def test_cache_key_accepts_an_instance() -> None:
    """CACHE may hold a ready AttributeCache, which the adapter does not close."""
    given = make_test_cache(service_name="billing_api")
    with override_settings(RBAC_ABAC_CACHE={"CACHE": given}):
        assert get_cache() is given
    reset()

    assert not _closed(given)
    given.close()


made: list[AttributeCache] = []


def make_cache() -> AttributeCache:
    """A CACHE factory for the test below."""
    cache = make_test_cache(service_name="factory_api")
    made.append(cache)
    return cache


def test_cache_key_accepts_a_factory_path() -> None:
    """CACHE may name a factory; it is called once and its cache closed on change."""
    made.clear()
    path = "tests.contrib.django.test_conf.make_cache"
    with override_settings(RBAC_ABAC_CACHE={"CACHE": path}):
        first = get_cache()
        second = get_cache()

    assert first is second is made[0]
    assert len(made) == 1
    assert _closed(first)


def test_cache_key_of_the_wrong_type_is_refused() -> None:
    """A CACHE that is neither a cache, a path nor a factory is an error."""
    with (
        override_settings(RBAC_ABAC_CACHE={"CACHE": 42}),
        pytest.raises(ConfigurationError, match="CACHE"),
    ):
        get_cache()


def test_default_user_id_is_the_authenticated_pk() -> None:
    """The default resolver returns request.user.pk for authenticated users only."""
    anonymous = SimpleNamespace(user=SimpleNamespace(is_authenticated=False, pk=None))
    numeric = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=7))
    key = uuid.uuid4()
    uuid_user = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=key))

    assert conf.default_user_id(anonymous) is None
    assert conf.default_user_id(SimpleNamespace()) is None
    assert conf.default_user_id(numeric) == 7
    assert conf.default_user_id(uuid_user) == str(key)


def test_resolver_that_cannot_be_imported_is_named() -> None:
    """A bad USER_ID_RESOLVER path raises ConfigurationError naming the key."""
    options = {"USER_ID_RESOLVER": "tests.contrib.django.nowhere.resolver"}
    with (
        override_settings(RBAC_ABAC_CACHE=options),
        pytest.raises(ConfigurationError, match="USER_ID_RESOLVER"),
    ):
        conf.user_id_resolver()


def test_resolver_may_be_a_callable() -> None:
    """USER_ID_RESOLVER may also hold the function itself."""

    def resolver(request: Any) -> str:
        return "1"

    with override_settings(RBAC_ABAC_CACHE={"USER_ID_RESOLVER": resolver}):
        assert conf.user_id_resolver() is resolver


def test_allowed_services_are_checked() -> None:
    """ALLOWED_SERVICES must be a list of well-formed service names."""
    with override_settings(RBAC_ABAC_CACHE={"ALLOWED_SERVICES": ["a", "b-c"]}):
        assert conf.allowed_services() == ("a", "b-c")

    for bad in ("billing_api", ["bad name"]):
        with (
            override_settings(RBAC_ABAC_CACHE={"ALLOWED_SERVICES": bad}),
            pytest.raises(ConfigurationError, match="ALLOWED_SERVICES"),
        ):
            conf.allowed_services()


def test_refresh_rate_reads_only_what_is_given() -> None:
    """Rate-limit keys are parsed when present and left to defaults otherwise."""
    with override_settings(RBAC_ABAC_CACHE={}):
        assert conf.refresh_rate() == {}
    with override_settings(
        RBAC_ABAC_CACHE={"REFRESH_RATE_LIMIT": "3", "REFRESH_RATE_WINDOW": 30}
    ):
        assert conf.refresh_rate() == {"rate_limit": 3, "rate_window": 30.0}


def test_refresh_handler_follows_the_settings() -> None:
    """The refresh handler is reused, and rebuilt when the settings change."""
    set_cache(make_test_cache(service_name="billing_api", fetcher=StaticFetcher()))
    handler = conf.get_refresh_handler()

    assert conf.get_refresh_handler() is handler
    with override_settings(RBAC_ABAC_CACHE={"REFRESH_TOKENS": "new"}):
        assert conf.get_refresh_handler() is not handler
    get_cache().close()


@responses.activate
def test_cache_built_from_settings_serves_a_guarded_view(
    on_redis: dict[str, Any], client: Client
) -> None:
    """From settings alone: the identity provider fills a miss, Redis keeps it."""
    responses.get(
        "https://idp.example/api/users/1/attributes/",
        json={
            "user_id": 1,
            "service_name": "billing_api",
            "roles": [],
            "permissions": ["invoices.read"],
            "attributes": {},
        },
    )
    options = {**on_redis, "IDENTITY_PROVIDER_URL": "https://idp.example"}

    with override_settings(RBAC_ABAC_CACHE=options):
        first = client.get("/invoices/", headers={"X-User-Id": "1"})
        second = client.get("/invoices/", headers={"X-User-Id": "1"})
        stats = get_cache().stats()

    assert (first.status_code, second.status_code) == (200, 200)
    assert len(responses.calls) == 1
    assert "service_name=billing_api" in str(responses.calls[0].request.url)
    assert stats["hits_redis"] == 1
