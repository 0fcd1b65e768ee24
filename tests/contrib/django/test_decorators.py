"""Tests of the function-view decorators: every answer they give."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpResponse
from django.test import Client, override_settings

from rbac_abac_cache import AttributeCache, FetchError
from rbac_abac_cache.contrib.django.decorators import (
    require_attributes,
    require_permission,
    require_role,
    require_rule,
)

from ...conftest import CountingFetcher
from . import settings as test_settings
from . import views


def test_user_with_the_permission_gets_200(
    client: Client, cache: AttributeCache
) -> None:
    """A user granted the permission (through a wildcard) is let through."""
    response = client.get("/invoices/", headers={"X-User-Id": "1"})

    assert response.status_code == 200
    assert response.content == b"invoices"


def test_no_user_gets_401(
    client: Client, cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """A request without a user gets 401 with a JSON body, and nothing is fetched."""
    response = client.get("/invoices/")

    assert response.status_code == 401
    assert response.json() == {
        "error": "unauthorized",
        "detail": "authentication is required",
    }
    assert fetcher.count() == 0


def test_user_lacking_a_permission_gets_403(
    client: Client, cache: AttributeCache
) -> None:
    """require_permission needs every permission; lacking one is 403 naming them."""
    response = client.get("/invoices/write/", headers={"X-User-Id": "2"})

    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "forbidden"
    assert "invoices.write" in body["detail"]


def test_user_unknown_to_the_identity_provider_gets_403(
    client: Client, cache: AttributeCache
) -> None:
    """A user the identity provider does not know is forbidden, not anonymous."""
    response = client.get("/invoices/", headers={"X-User-Id": "nobody"})

    assert response.status_code == 403
    assert "does not know" in response.json()["detail"]


def test_unavailable_attributes_get_503_with_retry_after(
    client: Client, cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """When nothing trustworthy can be served the answer is 503 with Retry-After."""
    fetcher.error = FetchError("identity provider down")

    response = client.get("/invoices/", headers={"X-User-Id": "1"})

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json()["error"] == "unavailable"


def test_invalid_user_id_gets_401_not_500(
    client: Client, cache: AttributeCache
) -> None:
    """An id the cache rejects is treated as no user."""
    response = client.get("/invoices/", headers={"X-User-Id": "x" * 300})

    assert response.status_code == 401


@pytest.mark.parametrize(("user", "status"), [("1", 200), ("2", 403)])
def test_require_role_needs_any_of_the_roles(
    client: Client, cache: AttributeCache, user: str, status: int
) -> None:
    """require_role lets through a user with at least one of the roles."""
    response = client.get("/audit/", headers={"X-User-Id": user})

    assert response.status_code == status


@pytest.mark.parametrize(("user", "status"), [("1", 200), ("2", 403)])
def test_require_attributes_needs_the_values(
    client: Client, cache: AttributeCache, user: str, status: int
) -> None:
    """require_attributes compares the user's attribute values."""
    response = client.get("/finance/", headers={"X-User-Id": user})

    assert response.status_code == status


@pytest.mark.parametrize(
    ("user", "invoice", "status"),
    [("1", "1", 200), ("1", "2", 403), ("2", "2", 200), ("1", "9", 404)],
)
def test_require_rule_checks_the_loaded_resource(
    client: Client, cache: AttributeCache, user: str, invoice: str, status: int
) -> None:
    """require_rule loads the resource from the view's arguments and checks it."""
    response = client.get(f"/invoices/{invoice}/", headers={"X-User-Id": user})

    assert response.status_code == status


def test_resource_is_not_loaded_for_anonymous_requests(
    client: Client, cache: AttributeCache
) -> None:
    """The resource loader runs only once the user is known."""
    views.loaded.clear()

    response = client.get("/invoices/1/")

    assert response.status_code == 401
    assert views.loaded == []


def test_async_views_are_guarded(client: Client, cache: AttributeCache) -> None:
    """An async view is guarded the same way, its lookup run off the event loop."""
    allowed = client.get("/async/invoices/", headers={"X-User-Id": "2"})
    refused = client.get("/async/invoices/")

    assert allowed.content == b"async 2"
    assert refused.status_code == 401


def test_decorators_work_without_the_middleware(
    client: Client, cache: AttributeCache
) -> None:
    """The decorators find the user themselves when request.rbac is not set."""
    middleware = [
        entry for entry in test_settings.MIDDLEWARE if "AttributeCache" not in entry
    ]
    with override_settings(MIDDLEWARE=middleware):
        allowed = client.get("/invoices/", headers={"X-User-Id": "1"})
        refused = client.get("/invoices/write/", headers={"X-User-Id": "2"})

    assert allowed.status_code == 200
    assert refused.status_code == 403


def test_decorator_used_without_parentheses_is_refused() -> None:
    """@require_permission without arguments fails at import, not per request."""

    def view(request: Any) -> HttpResponse:
        return HttpResponse()

    with pytest.raises(TypeError, match="parentheses"):
        require_permission(view)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: require_permission(),
        lambda: require_role(""),
        lambda: require_attributes(),
        lambda: require_rule("not a rule"),  # type: ignore[arg-type]
    ],
)
def test_malformed_requirements_are_refused(make: Any) -> None:
    """Empty or malformed requirements raise TypeError when decorating."""
    with pytest.raises(TypeError):
        make()


def test_decorated_view_keeps_its_name() -> None:
    """The guard wraps the view with functools.wraps."""
    assert views.invoices.__name__ == "invoices"
