"""Tests of RBACRequiredMixin on class-based views."""

from __future__ import annotations

import pytest
from django.test import Client

from rbac_abac_cache import AttributeCache, FetchError
from rbac_abac_cache.contrib.django.mixins import RBACRequiredMixin

from ...conftest import CountingFetcher


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"X-User-Id": "2"}, 200), ({}, 401), ({"X-User-Id": "nobody"}, 403)],
)
def test_permissions_are_required(
    client: Client, cache: AttributeCache, headers: dict[str, str], status: int
) -> None:
    """rbac_permissions guards the view like require_permission."""
    response = client.get("/cbv/invoices/", headers=headers)

    assert response.status_code == status


@pytest.mark.parametrize(("user", "status"), [("1", 200), ("2", 403)])
def test_roles_and_attributes_are_all_required(
    client: Client, cache: AttributeCache, user: str, status: int
) -> None:
    """rbac_roles and rbac_attributes must both hold."""
    response = client.get("/cbv/finance-admin/", headers={"X-User-Id": user})

    assert response.status_code == status
    if status == 403:
        assert "admin" in response.json()["detail"]


def test_unavailable_attributes_get_503(
    client: Client, cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """A class-based view answers 503 with Retry-After when attributes are down."""
    fetcher.error = FetchError("down")

    response = client.get("/cbv/invoices/", headers={"X-User-Id": "1"})

    assert response.status_code == 503
    assert response["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("user", "invoice", "status"), [("1", "1", 200), ("1", "2", 403), ("1", "9", 404)]
)
def test_rule_is_checked_against_the_resource(
    client: Client, cache: AttributeCache, user: str, invoice: str, status: int
) -> None:
    """rbac_rule is checked against get_rbac_resource(), which sees self.kwargs."""
    response = client.get(f"/cbv/invoices/{invoice}/", headers={"X-User-Id": user})

    assert response.status_code == status


@pytest.mark.parametrize(("headers", "status"), [({"X-User-Id": "1"}, 200), ({}, 401)])
def test_async_views_are_guarded(
    client: Client, cache: AttributeCache, headers: dict[str, str], status: int
) -> None:
    """An async class-based view is guarded the same way."""
    response = client.get("/cbv/async/invoices/", headers=headers)

    assert response.status_code == status


def test_rule_without_requirements_demands_a_known_user() -> None:
    """A view declaring nothing still requires a user the identity provider knows."""
    assert RBACRequiredMixin().get_rbac_rule().description == "a known user"
