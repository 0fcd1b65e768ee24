"""Tests for :mod:`rbac_abac_cache.contrib.flask.decorators`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, g
from flask.testing import FlaskClient
from flask.views import MethodView

from rbac_abac_cache import AttributeCache
from rbac_abac_cache.contrib.flask import (
    RBACABAC,
    require,
    require_attributes,
    require_permission,
)
from rbac_abac_cache.policy import has_role
from rbac_abac_cache.testing import StaticFetcher

from .conftest import Identity, InvoiceStore


def assert_error(response: Any, status: int, error: str) -> None:
    """The response is the JSON error body with this status."""
    assert response.status_code == status
    assert response.is_json
    assert response.json["error"] == error
    assert set(response.json) == {"error", "detail"}


# 200, 401, 403 and 503


def test_a_permitted_user_gets_the_view(
    client: FlaskClient, identity: Identity
) -> None:
    """A user holding the permission is served, and the view sees g.rbac."""
    identity.user_id = 1

    response = client.get("/invoices/")

    assert response.status_code == 200
    assert response.json == {"user_id": "1"}


def test_wildcard_permissions_are_honoured(
    client: FlaskClient, identity: Identity
) -> None:
    """A granted invoices.* covers invoices.read."""
    identity.user_id = 2

    assert client.get("/invoices/").status_code == 200


def test_no_user_gets_401_and_no_lookup(
    client: FlaskClient, identity: Identity, users: StaticFetcher
) -> None:
    """A request without a user is 401 before any fetch."""
    response = client.get("/invoices/")

    assert_error(response, 401, "unauthorized")
    assert users.count() == 0


@pytest.mark.parametrize(
    "user_id", ["", "x" * 257, "a\x00b", True, 1.5, object(), ["1"]]
)
def test_an_invalid_user_id_from_the_loader_is_401_not_500(
    client: FlaskClient, identity: Identity, users: StaticFetcher, user_id: Any
) -> None:
    """An id the cache cannot use counts as no user, never as a server error."""
    identity.user_id = user_id

    response = client.get("/invoices/")

    assert_error(response, 401, "unauthorized")
    assert users.count() == 0


def test_a_user_lacking_the_permission_gets_403(
    client: FlaskClient, identity: Identity
) -> None:
    """A known user without the permission is 403."""
    identity.user_id = 3

    assert_error(client.get("/invoices/"), 403, "forbidden")


def test_a_user_unknown_to_the_identity_provider_gets_403(
    client: FlaskClient, identity: Identity
) -> None:
    """A user the identity provider does not know is 403, said so in the detail."""
    identity.user_id = 404

    response = client.get("/invoices/")

    assert_error(response, 403, "forbidden")
    assert "identity provider" in response.json["detail"]


def test_unavailable_attributes_get_503_with_retry_after(
    client: FlaskClient, identity: Identity, users: StaticFetcher
) -> None:
    """The fetcher fails and nothing is cached: 503 with Retry-After, no grant."""
    identity.user_id = 1
    users.fail()

    response = client.get("/invoices/")

    assert_error(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) >= 1


def test_a_cached_user_is_served_while_the_identity_provider_is_down(
    client: FlaskClient, identity: Identity, users: StaticFetcher
) -> None:
    """A fresh entry in Redis answers without the identity provider."""
    identity.user_id = 1
    client.get("/invoices/")
    users.fail()

    assert client.get("/invoices/").status_code == 200
    assert users.count() == 1


def test_refusal_bodies_never_carry_the_users_attributes(
    client: FlaskClient, identity: Identity
) -> None:
    """A 403 does not echo roles, permissions or attribute values."""
    identity.user_id = 1

    response = client.get("/admin/")

    assert response.status_code == 403
    text = response.get_data(as_text=True)
    assert "finance" not in text
    assert "viewer" not in text
    assert "invoices.read" not in text


# Roles and attributes


@pytest.mark.parametrize(("user_id", "status"), [(1, 403), (2, 200), (3, 403)])
def test_require_role_accepts_any_of_the_roles(
    client: FlaskClient, identity: Identity, user_id: int, status: int
) -> None:
    """require_role("admin", "owner") admits an admin and nobody else here."""
    identity.user_id = user_id

    assert client.get("/admin/").status_code == status


@pytest.mark.parametrize(("user_id", "status"), [(1, 200), (2, 403), (3, 403)])
def test_require_attributes_compares_attribute_values(
    client: FlaskClient, identity: Identity, user_id: int, status: int
) -> None:
    """require_attributes(department="finance") admits the finance user only."""
    identity.user_id = user_id

    assert client.get("/finance/").status_code == status


def test_require_attributes_matches_inside_list_values(
    make_app: Callable[..., Flask], identity: Identity
) -> None:
    """A list-valued attribute matches when it contains the expected value."""
    app = make_app()

    @app.get("/us/")
    @require_attributes(region="us")
    def us() -> str:
        return "ok"

    identity.user_id = 1

    assert app.test_client().get("/us/").status_code == 200


def test_require_permission_needs_every_permission(
    make_app: Callable[..., Flask], identity: Identity
) -> None:
    """require_permission with two permissions refuses a user holding one."""
    app = make_app()

    @app.get("/both/")
    @require_permission("invoices.read", "invoices.write")
    def both() -> str:
        return "ok"

    client = app.test_client()
    identity.user_id = 1
    refused = client.get("/both/").status_code
    identity.user_id = 2
    allowed = client.get("/both/").status_code

    assert (refused, allowed) == (403, 200)


# Policy rules with a resource


@pytest.mark.parametrize(
    ("user_id", "invoice_id", "status"),
    [(1, 1, 200), (1, 2, 403), (2, 2, 200), (2, 1, 403), (3, 1, 403)],
)
def test_a_policy_compares_the_user_with_the_resource(
    client: FlaskClient,
    identity: Identity,
    user_id: int,
    invoice_id: int,
    status: int,
) -> None:
    """Permission and same department as the invoice are both required."""
    identity.user_id = user_id

    response = client.get(f"/invoices/{invoice_id}")

    assert response.status_code == status
    if status == 200:
        assert response.json["id"] == invoice_id


def test_the_resource_loader_gets_the_view_arguments_and_may_abort(
    client: FlaskClient, identity: Identity, invoices: InvoiceStore
) -> None:
    """A missing invoice is the loader's 404, not a denial."""
    identity.user_id = 1

    response = client.get("/invoices/99")

    assert response.status_code == 404
    assert invoices.loads == 1


def test_the_resource_is_not_loaded_for_a_refused_user(
    client: FlaskClient, identity: Identity, invoices: InvoiceStore
) -> None:
    """Anonymous and unknown users are refused before the resource is loaded."""
    anonymous = client.get("/invoices/1").status_code
    identity.user_id = 404
    unknown = client.get("/invoices/1").status_code

    assert (anonymous, unknown) == (401, 403)
    assert invoices.loads == 0


def test_a_rule_without_a_resource_gets_none(
    make_app: Callable[..., Flask], identity: Identity
) -> None:
    """require(rule) calls the rule with resource None."""
    seen: list[Any] = []
    app = make_app()

    @app.get("/rule/")
    @require(has_role("viewer") & has_role("viewer"))
    def rule() -> str:
        seen.append(g.rbac.user_id)
        return "ok"

    identity.user_id = 1

    assert app.test_client().get("/rule/").status_code == 200
    assert seen == ["1"]


# Where the decorators may be used


def test_module_level_decorators_work_before_the_app_exists(
    cache: AttributeCache, identity: Identity
) -> None:
    """Decorators applied at import time find the app's extension per request."""

    @require_permission("invoices.read")
    def view() -> str:
        return "ok"

    app = Flask("late_app")
    app.add_url_rule("/view/", view_func=view)
    RBACABAC(app, cache=cache).user_id_loader(identity.load)
    identity.user_id = 1

    assert app.test_client().get("/view/").status_code == 200


def test_a_decorator_on_an_app_without_the_extension_fails_loudly() -> None:
    """Forgetting RBACABAC(app) is a RuntimeError naming the fix, never a grant."""
    app = Flask("no_extension")
    app.config["TESTING"] = True

    @app.get("/view/")
    @require_permission("invoices.read")
    def view() -> str:
        return "ok"

    with pytest.raises(RuntimeError, match="RBACABAC"):
        app.test_client().get("/view/")


def test_class_based_views_take_the_decorators(
    make_app: Callable[..., Flask], identity: Identity
) -> None:
    """MethodView.decorators guards every method of the view."""

    class Invoices(MethodView):
        decorators = [require_permission("invoices.read")]

        def get(self) -> str:
            return "list"

        def post(self) -> str:
            return "created"

    app = make_app()
    app.add_url_rule("/cbv/", view_func=Invoices.as_view("cbv"))
    client = app.test_client()

    assert client.get("/cbv/").status_code == 401
    identity.user_id = 1
    assert client.post("/cbv/").status_code == 200


def test_async_views_are_guarded_too(
    make_app: Callable[..., Flask], identity: Identity
) -> None:
    """An async view runs through Flask's ensure_sync after the check."""
    pytest.importorskip("asgiref")
    app = make_app()

    @app.get("/async/")
    @require_permission("invoices.read")
    async def view() -> str:
        return "async ok"

    client = app.test_client()
    identity.user_id = 3
    refused = client.get("/async/").status_code
    identity.user_id = 1
    response = client.get("/async/")

    assert refused == 403
    assert response.get_data(as_text=True) == "async ok"


def test_the_apps_own_error_handler_can_restyle_refusals(
    make_app: Callable[..., Flask], identity: Identity
) -> None:
    """Refusals are HTTP exceptions, so errorhandler(403) sees them."""
    app = make_app()

    @app.errorhandler(403)
    def forbidden(error: Exception) -> tuple[str, int]:
        return "custom refusal", 403

    identity.user_id = 3
    response = app.test_client().get("/invoices/")

    assert response.status_code == 403
    assert response.get_data(as_text=True) == "custom refusal"


def test_decorated_views_keep_their_name(app: Flask) -> None:
    """functools.wraps keeps endpoint names and docstrings intact."""
    assert "invoice_list" in app.view_functions
    assert app.view_functions["invoice_list"].__name__ == "invoice_list"
