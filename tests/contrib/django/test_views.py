"""Tests of RefreshUserCacheView, the refresh endpoint."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client, RequestFactory, override_settings

from rbac_abac_cache import AttributeCache
from rbac_abac_cache.contrib.django.views import RefreshUserCacheView

from ...conftest import CountingFetcher
from . import settings as test_settings

URL = "/api/refresh-user-cache/"
TOKEN = "test-refresh-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _post(client: Client, body: object, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        URL,
        data=json.dumps(body),
        content_type="application/json",
        headers=AUTH if headers is None else headers,
    )


def test_valid_request_refreshes_the_user(
    client: Client, cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """A POST with a valid token fetches the user again and stores the result."""
    cache.get("1")
    fetcher.users["1"]["roles"] = ["auditor"]

    response = _post(client, {"user_id": 1, "service_name": "billing_api"})

    assert response.status_code == 200
    assert response.json()["status"] == "refreshed"
    assert fetcher.count("1") == 2
    refreshed = cache.get("1")
    assert refreshed is not None
    assert refreshed.roles == frozenset({"auditor"})


def test_response_never_contains_attributes(
    client: Client, cache: AttributeCache
) -> None:
    """The answer confirms the refresh without revealing what the user may do."""
    response = _post(client, {"user_id": 1, "service_name": "billing_api"})

    assert "admin" not in response.content.decode()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
)
def test_missing_or_invalid_token_gets_401(
    client: Client,
    cache: AttributeCache,
    fetcher: CountingFetcher,
    headers: dict[str, str],
) -> None:
    """Without the right bearer token nothing is refreshed."""
    response = _post(client, {"user_id": 1, "service_name": "billing_api"}, headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert fetcher.count() == 0


def test_other_methods_get_405_with_allow(
    client: Client, cache: AttributeCache
) -> None:
    """Only POST is served; the answer says so in Allow."""
    response = client.get(URL, headers=AUTH)

    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_oversized_body_gets_413(
    client: Client, cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """A body over 4 KiB is refused."""
    body = {"user_id": 1, "service_name": "billing_api", "pad": "x" * 5000}

    response = _post(client, body)

    assert response.status_code == 413
    assert fetcher.count() == 0


def test_body_is_read_only_up_to_the_limit(cache: AttributeCache) -> None:
    """The view reads 4 KiB + 1 bytes of a huge body and leaves the rest unread."""
    size = 1_000_000
    request = RequestFactory().post(
        URL, data=b"x" * size, content_type="application/json", headers=AUTH
    )

    response = RefreshUserCacheView.as_view()(request)

    assert response.status_code == 413
    assert len(request.read()) == size - 4097


def test_unknown_user_gets_404(client: Client, cache: AttributeCache) -> None:
    """A user the identity provider does not know is reported as 404."""
    response = _post(client, {"user_id": "nobody", "service_name": "billing_api"})

    assert response.status_code == 404


def test_malformed_body_gets_400_naming_the_field(
    client: Client, cache: AttributeCache
) -> None:
    """A body without user_id is refused with the field named."""
    response = _post(client, {"service_name": "billing_api"})

    assert response.status_code == 400
    assert "user_id" in response.json()["detail"]


def test_view_is_exempt_from_csrf(cache: AttributeCache) -> None:
    """Callers authenticate with a token, so no CSRF token is demanded."""
    client = Client(enforce_csrf_checks=True)

    response = _post(client, {"user_id": 1, "service_name": "billing_api"})

    assert response.status_code == 200


def test_services_outside_allowed_services_get_403(
    client: Client, cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """ALLOWED_SERVICES limits which services may be refreshed."""
    options = {**test_settings.RBAC_ABAC_CACHE, "ALLOWED_SERVICES": ["billing_api"]}
    with override_settings(RBAC_ABAC_CACHE=options):
        refused = _post(client, {"user_id": 1, "service_name": "inventory_api"})
        allowed = _post(client, {"user_id": 1, "service_name": "billing_api"})

    assert refused.status_code == 403
    assert allowed.status_code == 200
    assert fetcher.calls == [("1", "billing_api")]


def test_tokens_fall_back_to_the_environment(
    client: Client, cache: AttributeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without REFRESH_TOKENS the tokens come from RBAC_ABAC_REFRESH_TOKEN."""
    monkeypatch.setenv("RBAC_ABAC_REFRESH_TOKEN", "old-token,new-token")
    options = {
        key: value
        for key, value in test_settings.RBAC_ABAC_CACHE.items()
        if key != "REFRESH_TOKENS"
    }
    with override_settings(RBAC_ABAC_CACHE=options):
        response = _post(
            client,
            {"user_id": 1, "service_name": "billing_api"},
            {"Authorization": "Bearer new-token"},
        )

    assert response.status_code == 200


def test_no_token_configured_refuses_everything(
    client: Client, cache: AttributeCache
) -> None:
    """With no token anywhere the endpoint answers 401 to every request."""
    options = {**test_settings.RBAC_ABAC_CACHE, "REFRESH_TOKENS": []}
    with override_settings(RBAC_ABAC_CACHE=options):
        response = _post(client, {"user_id": 1, "service_name": "billing_api"})

    assert response.status_code == 401


def test_rate_limit_settings_are_applied(client: Client, cache: AttributeCache) -> None:
    """REFRESH_RATE_LIMIT bounds refreshes per user; over it the answer is 429."""
    options = {**test_settings.RBAC_ABAC_CACHE, "REFRESH_RATE_LIMIT": 1}
    with override_settings(RBAC_ABAC_CACHE=options):
        first = _post(client, {"user_id": 1, "service_name": "billing_api"})
        second = _post(client, {"user_id": 1, "service_name": "billing_api"})

    assert first.status_code == 200
    assert second.status_code == 429
    assert int(second["Retry-After"]) >= 1
