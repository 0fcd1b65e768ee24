"""Tests of the Django REST framework permission classes."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from rbac_abac_cache import AttributeCache, FetchError
from rbac_abac_cache.contrib.django.permissions import (
    AttributesUnavailable,
    HasAttributes,
    HasPermission,
    HasRBACPermission,
    HasRole,
    HasRule,
)

from ...conftest import CountingFetcher
from . import settings as test_settings


def test_user_meeting_the_views_requirements_gets_200(
    client: Client, cache: AttributeCache
) -> None:
    """HasRBACPermission reads required_permissions from the view."""
    response = client.get("/drf/invoices/", headers={"X-User-Id": "2"})

    assert response.status_code == 200
    assert response.json() == {"user": "2"}


def test_no_user_gets_401_when_authentication_challenges(
    client: Client, cache: AttributeCache
) -> None:
    """Without a user DRF answers 401 when its authenticator sends a challenge."""
    response = client.get("/drf/invoices/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "X-User-Id"


def test_no_user_gets_403_when_authentication_does_not_challenge(
    client: Client, cache: AttributeCache
) -> None:
    """Without a challenge DRF answers 403 to anonymous users."""
    response = client.get("/drf/silent/invoices/")

    assert response.status_code == 403


def test_user_lacking_the_permission_gets_403_saying_why(
    client: Client, cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """A refusal's detail names what is required."""
    fetcher.users["3"] = {"roles": ["guest"]}

    response = client.get("/drf/invoices/", headers={"X-User-Id": "3"})

    assert response.status_code == 403
    assert "invoices.read" in response.json()["detail"]


def test_unknown_user_gets_403(client: Client, cache: AttributeCache) -> None:
    """A user the identity provider does not know is forbidden."""
    response = client.get("/drf/invoices/", headers={"X-User-Id": "nobody"})

    assert response.status_code == 403
    assert "does not know" in response.json()["detail"]


def test_unavailable_attributes_get_503_with_retry_after(
    client: Client, cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """AttributesUnavailableError becomes DRF's 503 with Retry-After."""
    fetcher.error = FetchError("down")

    response = client.get("/drf/invoices/", headers={"X-User-Id": "1"})

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json()["detail"].startswith("the user's permissions")


@pytest.mark.parametrize(("user", "status"), [("1", 200), ("2", 403)])
def test_factories_compose_with_operators(
    client: Client, cache: AttributeCache, user: str, status: int
) -> None:
    """HasPermission(...) | HasRole(...) grants users meeting either."""
    response = client.get("/drf/write-or-admin/", headers={"X-User-Id": user})

    assert response.status_code == status


@pytest.mark.parametrize(("invoice", "status"), [("1", 200), ("2", 403)])
def test_object_rule_is_checked_against_the_object(
    client: Client, cache: AttributeCache, invoice: str, status: int
) -> None:
    """HasRule checks its rule in has_object_permission."""
    response = client.get(f"/drf/invoices/{invoice}/", headers={"X-User-Id": "1"})

    assert response.status_code == status


def test_instances_answer_each_request_with_a_copy() -> None:
    """An instance in permission_classes gives DRF a copy, so refusals don't leak."""
    permission = HasPermission("invoices.read")

    first, second = permission(), permission()

    assert first is not permission
    assert first is not second
    assert first.permissions == ("invoices.read",)


def test_rule_combines_own_and_view_requirements() -> None:
    """The view's required_* add to the permission's own requirements."""

    class View:
        required_permissions = ("a.read",)
        required_roles = ("admin",)

    rule = HasAttributes(region="eu").rule_for(View())

    assert "a.read" in rule.description
    assert "admin" in rule.description
    assert "region='eu'" in rule.description


@pytest.mark.parametrize(
    "make",
    [
        lambda: HasPermission(),
        lambda: HasRole(""),
        lambda: HasAttributes(),
        lambda: HasRule("not a rule"),  # type: ignore[arg-type]
    ],
)
def test_malformed_requirements_are_refused(make: object) -> None:
    """Empty or malformed requirements raise TypeError."""
    with pytest.raises(TypeError):
        make()  # type: ignore[operator]


def test_unavailable_rounds_retry_after_up() -> None:
    """Retry-After is a whole number of seconds, at least 1."""
    assert AttributesUnavailable(0.2).wait == 1
    assert AttributesUnavailable(2.5).wait == 3
    assert AttributesUnavailable().status_code == 503


def test_repr_names_the_requirement() -> None:
    """repr shows what the permission demands."""
    assert "invoices.read" in repr(HasPermission("invoices.read"))
    assert "a known user" in repr(HasRBACPermission())


def test_user_authenticated_by_drf_alone_is_seen(
    client: Client, cache: AttributeCache
) -> None:
    """The user DRF authenticates is the one checked, with no login middleware."""
    middleware = [entry for entry in test_settings.MIDDLEWARE if "auth" not in entry]
    with override_settings(MIDDLEWARE=middleware):
        response = client.get("/drf/invoices/", headers={"X-User-Id": "2"})

    assert response.status_code == 200
