"""Tests for :mod:`rbac_abac_cache.contrib.flask.state`: ``g.rbac`` and settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask, g
from flask.ctx import _AppCtxGlobals
from flask.testing import FlaskClient

from rbac_abac_cache import AttributeCache
from rbac_abac_cache.contrib.flask import RBACABAC, require_permission
from rbac_abac_cache.contrib.flask.state import get_state, install_globals
from rbac_abac_cache.testing import StaticFetcher

from .conftest import Identity


def commands(client: redis.Redis) -> dict[str, int]:
    """How often the server ran each command, leaving out INFO itself."""
    stats = client.info("commandstats")
    return {
        name: value["calls"] for name, value in stats.items() if name != "cmdstat_info"
    }


# Laziness


def test_a_view_that_never_reads_g_rbac_costs_no_lookup(
    client: FlaskClient,
    identity: Identity,
    users: StaticFetcher,
    real_redis: redis.Redis,
) -> None:
    """No loader call, no fetch and no Redis command for an unguarded view."""
    identity.user_id = 1
    before = commands(real_redis)

    response = client.get("/plain/")

    assert response.status_code == 200
    assert identity.loads == 0
    assert users.count() == 0
    assert commands(real_redis) == before


def test_the_user_is_looked_up_once_per_request(
    make_app: Callable[..., Flask], identity: Identity, users: StaticFetcher
) -> None:
    """The decorator and repeated g.rbac reads share one lookup."""
    app = make_app()

    @app.get("/twice/")
    @require_permission("invoices.read")
    def twice() -> dict[str, Any]:
        return {"same": g.rbac is g.rbac}

    identity.user_id = 1
    response = app.test_client().get("/twice/")

    assert response.json == {"same": True}
    assert identity.loads == 1
    assert users.count() == 1


def test_a_cached_user_costs_one_redis_read(
    client: FlaskClient, identity: Identity, real_redis: redis.Redis
) -> None:
    """Once cached, a guarded request is a single GET."""
    identity.user_id = 1
    client.get("/invoices/")
    before = commands(real_redis)

    assert client.get("/invoices/").status_code == 200

    after = commands(real_redis)
    changed = {name: after[name] - before.get(name, 0) for name in after}
    assert {name: n for name, n in changed.items() if n} == {"cmdstat_get": 1}


def test_each_request_looks_its_user_up_afresh(app: Flask, identity: Identity) -> None:
    """Requests inside one outer app context never share a lookup."""
    client = app.test_client()
    with app.app_context():
        identity.user_id = 1
        first = client.get("/whoami/").json
        identity.user_id = 2
        second = client.get("/whoami/").json

    assert (first, second) == ({"user_id": "1"}, {"user_id": "2"})


# What g.rbac is


def test_g_rbac_is_the_users_attributes(
    client: FlaskClient, identity: Identity
) -> None:
    """For a known user g.rbac is their UserAttributes."""
    identity.user_id = 2

    assert client.get("/whoami/").json == {"user_id": "2"}


@pytest.mark.parametrize("user_id", [None, "", 404])
def test_g_rbac_is_none_without_a_known_user(
    client: FlaskClient, identity: Identity, user_id: Any
) -> None:
    """No user, an invalid id or an unknown user: g.rbac is None."""
    identity.user_id = user_id

    response = client.get("/whoami/")

    assert response.status_code == 200
    assert response.json == {"user_id": None}


def test_g_rbac_is_none_outside_a_request(app: Flask, identity: Identity) -> None:
    """In an app context without a request nobody is looked up."""
    identity.user_id = 1

    with app.app_context():
        assert g.rbac is None

    assert identity.loads == 0


def test_reading_unavailable_g_rbac_in_a_view_gets_503(
    client: FlaskClient, identity: Identity, users: StaticFetcher
) -> None:
    """The extension answers AttributesUnavailableError with 503 and Retry-After."""
    identity.user_id = 1
    users.fail()

    response = client.get("/whoami/")

    assert response.status_code == 503
    assert response.json["error"] == "unavailable"
    assert int(response.headers["Retry-After"]) >= 1


def test_g_rbac_cannot_be_assigned(app: Flask) -> None:
    """Assigning g.rbac is an error; other names on g work as usual."""
    with app.test_request_context("/"):
        g.other = 1
        with pytest.raises(AttributeError, match=r"g\.rbac"):
            g.rbac = None
        assert g.other == 1


def test_g_get_and_in_see_rbac(app: Flask, identity: Identity) -> None:
    """g.get("rbac") looks the user up, and "rbac" in g holds."""
    identity.user_id = 1

    with app.test_request_context("/"):
        assert "rbac" in g
        assert g.get("rbac").user_id == "1"
        assert g.get("missing", "default") == "default"


def test_an_apps_own_globals_class_keeps_working(
    cache: AttributeCache, identity: Identity
) -> None:
    """A custom app_ctx_globals_class set earlier keeps its behaviour."""

    class Globals(_AppCtxGlobals):
        def greeting(self) -> str:
            return "hello"

    app = Flask("custom_globals")
    app.app_ctx_globals_class = Globals
    RBACABAC(app, cache=cache).user_id_loader(identity.load)
    identity.user_id = 1

    with app.test_request_context("/"):
        assert g.greeting() == "hello"
        assert g.rbac.user_id == "1"


def test_installing_the_globals_twice_changes_nothing(app: Flask) -> None:
    """install_globals is idempotent."""
    installed = app.app_ctx_globals_class

    install_globals(app)

    assert app.app_ctx_globals_class is installed


# The user id loader


def test_without_a_loader_the_first_lookup_fails_loudly(
    cache: AttributeCache,
) -> None:
    """Forgetting @rbac.user_id_loader is a RuntimeError naming it."""
    app = Flask("no_loader")
    RBACABAC(app, cache=cache)

    with (
        app.test_request_context("/"),
        pytest.raises(RuntimeError, match="user_id_loader"),
    ):
        _ = g.rbac


def test_an_invalid_user_id_is_logged_without_failing(
    client: FlaskClient, identity: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    """An invalid id is a warning and an anonymous request."""
    identity.user_id = "x" * 300

    with caplog.at_level(logging.WARNING):
        response = client.get("/whoami/")

    assert response.json == {"user_id": None}
    assert "invalid id" in caplog.text


def test_get_state_names_the_fix_on_an_app_without_the_extension() -> None:
    """get_state on a bare app is a RuntimeError naming RBACABAC."""
    with pytest.raises(RuntimeError, match="RBACABAC"):
        get_state(Flask("bare"))
