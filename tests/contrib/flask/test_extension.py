"""Tests for :mod:`rbac_abac_cache.contrib.flask.extension`: setup and settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask, g

from rbac_abac_cache import (
    AttributeCache,
    AttributesUnavailableError,
    ConfigurationError,
    HttpIdentityProvider,
)
from rbac_abac_cache.contrib.flask import EXTENSION_KEY, RBACABAC
from rbac_abac_cache.testing import StaticFetcher, grant

from ...redis_server import RedisServer, free_port
from .conftest import SERVICE, Identity


@pytest.fixture
def built() -> Iterator[list[tuple[RBACABAC, Flask]]]:
    """Extensions whose caches were built from config, closed after the test."""
    made: list[tuple[RBACABAC, Flask]] = []
    yield made
    for rbac, app in made:
        rbac.get_cache(app).close()


@pytest.fixture
def configure(
    built: list[tuple[RBACABAC, Flask]],
) -> Callable[..., tuple[RBACABAC, Flask]]:
    """Build an app and an extension from config only."""

    def make(**config: Any) -> tuple[RBACABAC, Flask]:
        app = Flask("configured")
        app.config.update(config)
        rbac = RBACABAC(app)
        built.append((rbac, app))
        return rbac, app

    return make


def connected_clients(client: redis.Redis) -> int:
    """How many clients the server has right now."""
    return int(client.info("clients")["connected_clients"])


# Setting up


def test_init_app_supports_the_app_factory_pattern(
    cache: AttributeCache, identity: Identity
) -> None:
    """RBACABAC() then init_app(app) works, and one extension serves two apps."""
    rbac = RBACABAC(cache=cache)
    rbac.user_id_loader(identity.load)
    first, second = Flask("first"), Flask("second")

    rbac.init_app(first)
    rbac.init_app(second)

    assert rbac.get_cache(first) is cache
    assert rbac.get_cache(second) is cache
    assert first.extensions[EXTENSION_KEY] is not second.extensions[EXTENSION_KEY]


def test_init_app_twice_on_one_app_is_refused(cache: AttributeCache) -> None:
    """Setting the extension up twice on one app is a RuntimeError."""
    app = Flask("twice")
    RBACABAC(app, cache=cache)

    with pytest.raises(RuntimeError, match="already"):
        RBACABAC(app, cache=cache)


def test_get_cache_defaults_to_the_current_app(
    app: Flask, cache: AttributeCache
) -> None:
    """Inside an app context get_cache() needs no argument."""
    rbac = app.extensions[EXTENSION_KEY].owner

    with app.app_context():
        assert rbac.get_cache() is cache


def test_user_id_loader_returns_the_function(cache: AttributeCache) -> None:
    """The registering decorator leaves the function usable."""
    rbac = RBACABAC(cache=cache)

    @rbac.user_id_loader
    def load() -> str:
        return "7"

    assert load() == "7"


def test_an_apps_own_unavailable_handler_is_kept(
    cache: AttributeCache, identity: Identity, users: StaticFetcher
) -> None:
    """A handler for AttributesUnavailableError registered first is not replaced."""
    app = Flask("own_handler")

    @app.errorhandler(AttributesUnavailableError)
    def unavailable(error: AttributesUnavailableError) -> tuple[str, int]:
        return "our own page", 503

    rbac = RBACABAC(app, cache=cache)
    rbac.user_id_loader(identity.load)

    @app.get("/")
    def view() -> str:
        return str(g.rbac)

    identity.user_id = 1
    users.fail()

    assert app.test_client().get("/").get_data(as_text=True) == "our own page"


# Settings from app.config and the environment


def test_settings_come_from_app_config(
    configure: Callable[..., tuple[RBACABAC, Flask]], redis_server: RedisServer
) -> None:
    """Service name, Redis URL, TTL and knobs are read under their env names."""
    rbac, app = configure(
        RBAC_ABAC_SERVICE_NAME=SERVICE,
        RBAC_ABAC_REDIS_URL=redis_server.url,
        RBAC_ABAC_CACHE_TTL=600,
        RBAC_ABAC_CACHE_LOCAL_TTL="5",
        RBAC_ABAC_CACHE_NEGATIVE_TTL=0,
        IDENTITY_PROVIDER_URL="https://idp.example.test",
    )

    cache = rbac.get_cache(app)

    assert cache.service_name == SERVICE
    assert cache.settings.ttl == 600
    assert cache.settings.local_ttl == 5
    assert cache.settings.negative_ttl == 0
    assert isinstance(cache.fetcher, HttpIdentityProvider)


def test_settings_fall_back_to_the_environment(
    configure: Callable[..., tuple[RBACABAC, Flask]],
    redis_server: RedisServer,
    real_redis: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With an empty config the environment variables are used."""
    monkeypatch.setenv("RBAC_ABAC_SERVICE_NAME", "env_service")
    monkeypatch.setenv("RBAC_ABAC_REDIS_URL", redis_server.url)
    monkeypatch.setenv("RBAC_ABAC_CACHE_TTL", "120")
    rbac, app = configure()

    cache = rbac.get_cache(app)
    grant(cache, 1)

    assert cache.service_name == "env_service"
    assert cache.settings.ttl == 120
    assert real_redis.exists(cache.key_for(1))


def test_app_config_wins_over_the_environment(
    configure: Callable[..., tuple[RBACABAC, Flask]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A key in app.config beats the same environment variable."""
    monkeypatch.setenv("RBAC_ABAC_SERVICE_NAME", "env_service")
    monkeypatch.setenv("RBAC_ABAC_CACHE_TTL", "120")

    rbac, app = configure(RBAC_ABAC_SERVICE_NAME=SERVICE)

    assert rbac.get_cache(app).service_name == SERVICE
    assert rbac.get_cache(app).settings.ttl == 120


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("RBAC_ABAC_CACHE_TTL", "abc"),
        ("RBAC_ABAC_CACHE_TTL", -5),
        ("RBAC_ABAC_CACHE_LOCAL_TTL", "soon"),
        ("RBAC_ABAC_SERVICE_NAME", "not a name"),
        ("RBAC_ABAC_REDIS_URL", "localhost"),
        ("RBAC_ABAC_REFRESH_TOKENS", 42),
        ("RBAC_ABAC_REFRESH_ENDPOINT", "maybe"),
        ("RBAC_ABAC_REFRESH_ENDPOINT", 42),
        ("RBAC_ABAC_REFRESH_ALLOWED_SERVICES", "billing api"),
    ],
)
def test_malformed_config_is_refused_naming_the_key(key: str, value: Any) -> None:
    """init_app raises ConfigurationError naming the config key at fault."""
    app = Flask("malformed")
    app.config.update(RBAC_ABAC_SERVICE_NAME=SERVICE)
    app.config[key] = value

    with pytest.raises(ConfigurationError, match=f"app.config.{key}"):
        RBACABAC(app)


def test_a_malformed_environment_variable_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad fallback from the environment names the variable."""
    monkeypatch.setenv("RBAC_ABAC_CACHE_STALE_GRACE", "-1")
    app = Flask("malformed_env")
    app.config["RBAC_ABAC_SERVICE_NAME"] = SERVICE

    with pytest.raises(ConfigurationError, match="RBAC_ABAC_CACHE_STALE_GRACE"):
        RBACABAC(app)


def test_a_missing_service_name_is_refused() -> None:
    """Without cache= the service name is required."""
    with pytest.raises(ConfigurationError, match="RBAC_ABAC_SERVICE_NAME"):
        RBACABAC(Flask("nameless"))


def test_a_given_cache_needs_no_service_name(cache: AttributeCache) -> None:
    """cache= supplies the service; config still configures the refresh route."""
    app = Flask("given_cache")
    app.config["RBAC_ABAC_REFRESH_ENDPOINT"] = True

    RBACABAC(app, cache=cache)

    assert "/api/refresh-user-cache/" in [
        rule.rule for rule in app.url_map.iter_rules()
    ]


# The cache is built lazily


def test_init_app_opens_no_connection(
    configure: Callable[..., tuple[RBACABAC, Flask]],
    redis_server: RedisServer,
    real_redis: redis.Redis,
    identity: Identity,
) -> None:
    """Setting up and serving an unguarded view never connects to Redis."""
    clients = connected_clients(real_redis)
    rbac, app = configure(
        RBAC_ABAC_SERVICE_NAME=SERVICE, RBAC_ABAC_REDIS_URL=redis_server.url
    )
    rbac.user_id_loader(identity.load)

    @app.get("/")
    def plain() -> str:
        return "ok"

    identity.user_id = 1
    assert app.test_client().get("/").status_code == 200

    assert connected_clients(real_redis) == clients


def test_a_dead_redis_does_not_stop_the_app_starting(
    configure: Callable[..., tuple[RBACABAC, Flask]],
) -> None:
    """init_app succeeds, and unguarded views work, when the Redis is down."""
    _, app = configure(
        RBAC_ABAC_SERVICE_NAME=SERVICE,
        RBAC_ABAC_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
    )

    @app.get("/")
    def plain() -> str:
        return "ok"

    assert app.test_client().get("/").status_code == 200


def test_the_cache_is_built_once_and_reused(
    configure: Callable[..., tuple[RBACABAC, Flask]], redis_server: RedisServer
) -> None:
    """Every call to get_cache returns the same instance."""
    rbac, app = configure(
        RBAC_ABAC_SERVICE_NAME=SERVICE, RBAC_ABAC_REDIS_URL=redis_server.url
    )

    assert rbac.get_cache(app) is rbac.get_cache(app)


def test_a_config_built_cache_serves_guarded_views_from_real_redis(
    configure: Callable[..., tuple[RBACABAC, Flask]],
    redis_server: RedisServer,
    real_redis: redis.Redis,
    identity: Identity,
) -> None:
    """End to end from config: the user's entry lands in the configured Redis."""
    rbac, app = configure(
        RBAC_ABAC_SERVICE_NAME=SERVICE, RBAC_ABAC_REDIS_URL=redis_server.url
    )
    rbac.user_id_loader(identity.load)

    @app.get("/")
    @rbac.require_role("admin")
    def admin() -> str:
        return "ok"

    grant(rbac.get_cache(app), 5, roles=["admin"])
    identity.user_id = 5

    assert app.test_client().get("/").status_code == 200
    assert real_redis.exists(rbac.get_cache(app).key_for(5))


def test_the_repr_names_no_secret(cache: AttributeCache) -> None:
    """repr() of the extension is short and shows no token."""
    assert "RBACABAC" in repr(RBACABAC(cache=cache))
