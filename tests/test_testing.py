"""Tests for :mod:`rbac_abac_cache.testing`."""

from __future__ import annotations

import sys
import time

import pytest

from rbac_abac_cache import (
    AttributeCache,
    AttributesUnavailableError,
    ConfigurationError,
    FetchError,
    InvalidAttributesError,
    UserAttributes,
)
from rbac_abac_cache.testing import StaticFetcher, grant, make_test_cache, revoke

SERVICE = "billing_api"


def finance_reader(user_id: str = "1") -> UserAttributes:
    """Return a finance user who may read invoices."""
    return UserAttributes(
        user_id,
        SERVICE,
        roles=["viewer"],
        permissions=["invoices.read"],
        attributes={"department": "finance"},
    )


# StaticFetcher


def test_static_fetcher_serves_users_given_as_attributes() -> None:
    """A user given as UserAttributes is served with its grants."""
    fetcher = StaticFetcher([finance_reader("7")])

    served = fetcher("7", SERVICE)

    assert served is not None
    assert served.permissions == frozenset({"invoices.read"})
    assert served.attributes["department"] == "finance"


def test_static_fetcher_serves_users_given_as_wire_dicts() -> None:
    """A wire dict may leave out user_id, service_name and empty fields."""
    fetcher = StaticFetcher({42: {"roles": ["admin"]}, "bob": {"permissions": ["*"]}})

    admin = fetcher("42", SERVICE)
    bob = fetcher("bob", SERVICE)

    assert admin is not None
    assert admin.user_id == "42"
    assert admin.roles == frozenset({"admin"})
    assert dict(admin.attributes) == {}
    assert bob is not None
    assert bob.has_permission("anything.at.all")


def test_static_fetcher_returns_none_for_unknown_users() -> None:
    """A user it was not given is unknown to the identity provider."""
    assert StaticFetcher({"1": {}})("2", SERVICE) is None


def test_static_fetcher_answers_for_the_service_asked_about() -> None:
    """The answer carries the requested service, whatever the given data said."""
    fetcher = StaticFetcher([finance_reader()])

    served = fetcher("1", "inventory_api")

    assert served is not None
    assert served.service_name == "inventory_api"


def test_static_fetcher_stamps_a_fresh_fetched_at_on_each_call() -> None:
    """Each answer is dated at the call, as a real identity provider's would be."""
    fetcher = StaticFetcher([finance_reader()])

    before = time.time()
    first = fetcher("1", SERVICE)
    second = fetcher("1", SERVICE)

    assert first is not None
    assert second is not None
    assert before <= first.fetched_at <= second.fetched_at <= time.time()


def test_static_fetcher_records_every_call() -> None:
    """calls lists each (user_id, service_name) in order; count filters by user."""
    fetcher = StaticFetcher({"1": {}})

    fetcher("1", SERVICE)
    fetcher("2", SERVICE)
    fetcher("1", "inventory_api")

    assert fetcher.calls == [("1", SERVICE), ("2", SERVICE), ("1", "inventory_api")]
    assert fetcher.count() == 3
    assert fetcher.count(1) == 2


def test_static_fetcher_fails_when_told_and_recovers() -> None:
    """fail() makes calls raise FetchError (still recorded); recover() undoes it."""
    fetcher = StaticFetcher({"1": {}})

    fetcher.fail()
    with pytest.raises(FetchError):
        fetcher("1", SERVICE)
    fetcher.recover()

    assert fetcher("1", SERVICE) is not None
    assert fetcher.count() == 2


def test_static_fetcher_raises_the_error_it_is_given() -> None:
    """A custom error given to the constructor or fail() is raised as is."""
    error = FetchError("identity provider is down")
    fetcher = StaticFetcher(error=error)

    with pytest.raises(FetchError) as caught:
        fetcher("1", SERVICE)

    assert caught.value is error


def test_static_fetcher_add_and_remove_change_who_is_known() -> None:
    """add() replaces a user's data, remove() makes them unknown."""
    fetcher = StaticFetcher({"1": {"roles": ["viewer"]}})

    fetcher.add({"roles": ["admin"]}, user_id=1)
    promoted = fetcher("1", SERVICE)
    fetcher.remove("1")

    assert promoted is not None
    assert promoted.roles == frozenset({"admin"})
    assert fetcher("1", SERVICE) is None


def test_static_fetcher_rejects_malformed_users_naming_the_field() -> None:
    """Malformed data fails when given, not later inside the cache."""
    with pytest.raises(InvalidAttributesError, match="roles"):
        StaticFetcher({"1": {"roles": "admin"}})


def test_static_fetcher_rejects_a_dict_without_a_user() -> None:
    """A wire dict in an iterable must name its user."""
    with pytest.raises(InvalidAttributesError, match="user_id"):
        StaticFetcher().add({"roles": []})


# make_test_cache


def test_make_test_cache_fills_misses_from_a_static_fetcher() -> None:
    """The cache serves users from its StaticFetcher and caches them."""
    cache = make_test_cache({"1": {"permissions": ["invoices.read"]}})

    first = cache.get(1)
    second = cache.get(1)

    assert isinstance(cache.fetcher, StaticFetcher)
    assert first is not None
    assert first.service_name == "test_service"
    assert second == first
    assert cache.fetcher.count() == 1


def test_make_test_cache_gives_each_cache_its_own_redis() -> None:
    """Two test caches never see each other's entries."""
    one = make_test_cache(service_name=SERVICE)
    other = make_test_cache(service_name=SERVICE)

    grant(one, 1, roles=["admin"])

    assert one.get(1) is not None
    assert other.get(1) is None


def test_make_test_cache_takes_settings_and_a_fetcher() -> None:
    """Settings and a replacement fetcher are passed through."""
    fetcher = StaticFetcher({"1": {}})

    cache = make_test_cache(
        service_name=SERVICE, fetcher=fetcher, ttl=60, local_ttl=0, auto_refresh=False
    )

    assert cache.fetcher is fetcher
    assert cache.settings.ttl == 60
    assert cache.get(1) is None
    assert fetcher.count() == 0


def test_make_test_cache_ignores_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A developer's RBAC_ABAC_* variables do not change what a test sees."""
    monkeypatch.setenv("RBAC_ABAC_CACHE_TTL", "abc")
    monkeypatch.setenv("RBAC_ABAC_CACHE_LOCAL_TTL", "30")

    cache = make_test_cache()

    assert cache.settings.ttl == 86400
    assert cache.settings.local_ttl == 0


def test_make_test_cache_rejects_a_malformed_setting_naming_it() -> None:
    """A bad setting raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match="ttl"):
        make_test_cache(ttl=-5)


def test_make_test_cache_names_the_extra_when_fakeredis_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without fakeredis the ImportError says which extra to install."""
    monkeypatch.setitem(sys.modules, "fakeredis", None)

    with pytest.raises(ImportError, match=r"rbac-abac-cache\[testing\]"):
        make_test_cache()


def test_unavailable_attributes_surface_when_the_fetcher_fails() -> None:
    """A failing StaticFetcher with nothing cached gives AttributesUnavailableError."""
    cache = make_test_cache({"1": {}})
    assert isinstance(cache.fetcher, StaticFetcher)
    cache.fetcher.fail()

    with pytest.raises(AttributesUnavailableError):
        cache.get(1)


# grant and revoke


def test_grant_stores_exactly_the_given_attributes() -> None:
    """grant() stores the user for the cache's service without a fetch."""
    cache = make_test_cache(service_name=SERVICE)

    granted = grant(
        cache,
        42,
        roles=["viewer"],
        permissions=["invoices.read"],
        attributes={"department": "sales"},
    )
    served = cache.get(42)

    assert served == granted
    assert served is not None
    assert served.service_name == SERVICE
    assert served.attributes["department"] == "sales"
    assert isinstance(cache.fetcher, StaticFetcher)
    assert cache.fetcher.count() == 0


def test_grant_survives_a_refresh_through_a_static_fetcher() -> None:
    """The StaticFetcher learns the grant, so refresh() keeps it."""
    cache = make_test_cache(service_name=SERVICE)
    grant(cache, 42, permissions=["invoices.write"])

    refreshed = cache.refresh(42)

    assert refreshed is not None
    assert refreshed.has_permission("invoices.write")


def test_grant_works_on_any_cache() -> None:
    """With another fetcher, grant() only sets the cache entry."""
    calls: list[str] = []

    def fetcher(user_id: str, service_name: str) -> None:
        calls.append(user_id)

    cache = make_test_cache(service_name=SERVICE, fetcher=fetcher)
    grant(cache, "alice", roles=["admin"])

    served = cache.get("alice")
    assert served is not None
    assert served.has_role("admin")
    assert calls == []


def test_revoke_makes_the_user_unknown() -> None:
    """After revoke() the cache refetches and the fetcher no longer knows them."""
    cache = make_test_cache(service_name=SERVICE)
    grant(cache, 42, roles=["admin"])

    revoke(cache, 42)

    assert cache.get(42) is None


def test_cache_set_is_the_documented_alternative_to_grant() -> None:
    """cache.set(UserAttributes(...)) works on a test cache too."""
    cache: AttributeCache = make_test_cache(service_name=SERVICE)

    cache.set(finance_reader("9"))

    served = cache.get(9)
    assert served is not None
    assert served.has_permission("invoices.read")
