"""Tests of request.rbac, the shared lookup and the middleware's 503."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory, override_settings

from rbac_abac_cache import AttributeCache, AttributesUnavailableError, FetchError
from rbac_abac_cache.contrib.django.middleware import (
    AttributeCacheMiddleware,
    get_attributes,
    lookup,
)

from ...conftest import CountingFetcher
from .auth import HeaderUser


def _reads(cache: AttributeCache) -> int:
    stats = cache.stats()
    return stats["hits_local"] + stats["hits_redis"] + stats["misses"]


def test_view_that_never_reads_rbac_costs_no_lookup(
    client: Client, cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """A view that does not read request.rbac causes no Redis read and no fetch."""
    response = client.get("/plain/", headers={"X-User-Id": "1"})

    assert response.status_code == 200
    assert fetcher.count() == 0
    assert _reads(cache) == 0


def test_rbac_is_the_users_attributes(client: Client, cache: AttributeCache) -> None:
    """request.rbac holds the authenticated user's attributes."""
    response = client.get("/whoami/", headers={"X-User-Id": "1"})

    assert response.json() == {"roles": ["admin"]}


def test_rbac_is_false_without_a_user(
    client: Client, cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """Without a user request.rbac is false and nothing is fetched."""
    response = client.get("/whoami/")

    assert response.json() == {"roles": None}
    assert fetcher.count() == 0


def test_rbac_is_false_for_a_user_unknown_to_the_identity_provider(
    client: Client, cache: AttributeCache
) -> None:
    """A user the identity provider does not know has no attributes."""
    response = client.get("/whoami/", headers={"X-User-Id": "nobody"})

    assert response.json() == {"roles": None}


def test_rbac_is_looked_up_once_per_request(
    client: Client, cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """Reading request.rbac twice reads the cache once."""
    client.get("/whoami-twice/", headers={"X-User-Id": "1"})

    assert fetcher.count() == 1
    assert _reads(cache) == 1


def test_unavailable_attributes_read_by_a_view_answer_503(
    client: Client, cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """The middleware turns AttributesUnavailableError from a view into 503."""
    fetcher.error = FetchError("identity provider down")

    response = client.get("/whoami/", headers={"X-User-Id": "1"})

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json()["error"] == "unavailable"


def test_invalid_user_id_from_the_resolver_means_no_user(
    client: Client, cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """An id the cache rejects (too long) is treated as no user, not an error."""
    response = client.get("/whoami/", headers={"X-User-Id": "x" * 300})

    assert response.status_code == 200
    assert response.json() == {"roles": None}
    assert fetcher.count() == 0


def test_get_attributes_works_without_the_middleware(cache: AttributeCache) -> None:
    """get_attributes returns a plain value that can be compared with None."""
    request = RequestFactory().get("/")
    request.user = HeaderUser("2")

    attributes = get_attributes(request)

    assert attributes is not None
    assert attributes.roles == frozenset({"viewer"})


def test_failed_lookup_is_not_remembered(
    cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """After an unavailable lookup, the next read on the request tries again."""
    request = RequestFactory().get("/")
    request.user = HeaderUser("1")
    fetcher.error = FetchError("down")
    with pytest.raises(AttributesUnavailableError):
        lookup(request)

    fetcher.error = None

    assert lookup(request).user_id == "1"


def test_custom_resolver_is_used(cache: AttributeCache) -> None:
    """USER_ID_RESOLVER names the function that finds the user id."""
    request = RequestFactory().get("/", headers={"X-Acting-As": "2"})
    resolver = "tests.contrib.django.test_middleware.acting_as"

    with override_settings(
        RBAC_ABAC_CACHE={"SERVICE_NAME": "billing_api", "USER_ID_RESOLVER": resolver}
    ):
        found = lookup(request)

    assert found.user_id == "2"


def acting_as(request: Any) -> str | None:
    """A resolver that reads a header, for the test above."""
    value: str | None = request.headers.get("X-Acting-As")
    return value


def test_async_middleware_sets_rbac_lazily(
    cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """In an async stack the middleware sets request.rbac without a lookup."""

    async def get_response(request: Any) -> HttpResponse:
        return HttpResponse("ok")

    middleware = AttributeCacheMiddleware(get_response)
    request = RequestFactory().get("/")
    request.user = HeaderUser("1")

    response = asyncio.run(middleware(request))

    assert response.status_code == 200
    assert fetcher.count() == 0
    assert request.rbac.has_role("admin")
