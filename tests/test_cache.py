"""AttributeCache: reads, fills, changes and bad input, on fake and real Redis."""

from __future__ import annotations

import pickle
import threading
import time
from typing import Any

import orjson
import pytest

from rbac_abac_cache import (
    AttributeCache,
    AttributesUnavailableError,
    ConfigurationError,
    FetchError,
    InvalidAttributesError,
    InvalidUserIdError,
    UserAttributes,
)

from .conftest import CountingFetcher


def test_miss_fetches_stores_and_returns(
    make_cache: Any, fetcher: CountingFetcher
) -> None:
    """A miss asks the fetcher once; the next read is a hit."""
    cache = make_cache()

    first = cache.get("1")
    second = cache.get("1")

    assert first is not None
    assert first.has_permission("invoices.read")
    assert second == first
    assert fetcher.count("1") == 1
    assert cache.stats()["hits_redis"] == 1
    assert cache.stats()["fetches"] == 1


def test_int_and_str_ids_share_one_entry(
    make_cache: Any, fetcher: CountingFetcher
) -> None:
    """``1`` and ``"1"`` are the same user."""
    cache = make_cache()

    assert cache.get(1) == cache.get("1")
    assert fetcher.count() == 1
    assert cache.key_for(1) == cache.key_for("1")


def test_auto_refresh_off_returns_none_on_miss(
    make_cache: Any, fetcher: CountingFetcher
) -> None:
    """With auto_refresh off a miss is None and reaches no fetcher."""
    cache = make_cache(auto_refresh=False)

    assert cache.get("1") is None
    assert cache.get("1", auto_refresh=True) is not None
    assert cache.get("1") is not None
    assert fetcher.count() == 1


def test_unknown_user_is_remembered(make_cache: Any, fetcher: CountingFetcher) -> None:
    """An unknown user is cached as unknown; refresh bypasses that memory."""
    cache = make_cache()

    assert cache.get("ghost") is None
    assert cache.get("ghost") is None
    assert fetcher.count("ghost") == 1

    fetcher.users["ghost"] = {"roles": ["new"]}
    assert cache.refresh("ghost") is not None
    assert cache.get("ghost").has_role("new")
    assert fetcher.count("ghost") == 2


def test_negative_ttl_zero_does_not_remember(
    make_cache: Any, fetcher: CountingFetcher
) -> None:
    """negative_ttl=0 asks the fetcher about unknown users every time."""
    cache = make_cache(negative_ttl=0)

    cache.get("ghost")
    cache.get("ghost")

    assert fetcher.count("ghost") == 2


@pytest.mark.parametrize(
    "bad_id",
    [
        "",
        None,
        "x" * 257,
        "a\nb",
        "a\x00b",
        "tab\there",
        1.5,
        b"1",
        ["1"],
        True,
        {"id": 1},
    ],
)
def test_bad_ids_are_rejected_before_any_fetch(
    make_cache: Any, fetcher: CountingFetcher, bad_id: Any
) -> None:
    """Malformed ids raise InvalidUserIdError (a ValueError) and fetch nothing."""
    cache = make_cache()

    for call in (cache.get, cache.refresh, cache.invalidate, cache.key_for):
        with pytest.raises(InvalidUserIdError):
            call(bad_id)
    with pytest.raises(ValueError, match="user_id"):
        cache.get_many(["1", bad_id])

    assert fetcher.calls == []


def test_unusual_ids_work_and_never_collide(make_cache: Any, any_redis: Any) -> None:
    """Ids with separators, wildcards, braces, spaces or non-ASCII get own keys."""
    ids = [
        "a:b",
        "a",
        "b",
        "*",
        "{x}",
        "}:lock",
        "%3A",
        ":",
        "with space",
        "Zoë",
        "用户",
        "1",
    ]
    fetcher = CountingFetcher({uid: {"roles": [f"role-{uid}"]} for uid in ids})
    cache = make_cache(fetcher=fetcher)

    for uid in ids:
        assert cache.get(uid).has_role(f"role-{uid}")

    assert len({cache.key_for(uid) for uid in ids}) == len(ids)
    for uid in ids:
        assert cache.get(uid).has_role(f"role-{uid}")
    assert fetcher.count() == len(ids)


JUNK = {
    "random bytes": bytes(range(256)) * 3,
    "pickle": pickle.dumps({"user_id": "1", "roles": ["admin"]}),
    "empty object": b"{}",
    "null": b"null",
    "list": b"[]",
    "truncated": b'{"v": 1, "user_id": "1", "serv',
    "wrong version": orjson.dumps(
        {
            "v": 99,
            "user_id": "1",
            "service_name": "billing_api",
            "fetched_at": time.time(),
            "roles": ["admin"],
            "permissions": ["*"],
            "attributes": {},
        }
    ),
    "2 MiB blob": b"{" + b" " * (2 << 20) + b"}",
    "roles not a list": orjson.dumps(
        {
            "v": 1,
            "user_id": "1",
            "service_name": "billing_api",
            "fetched_at": time.time(),
            "roles": "admin",
            "permissions": [],
            "attributes": {},
        }
    ),
}


@pytest.mark.parametrize("junk", list(JUNK), ids=list(JUNK))
def test_junk_in_redis_is_refetched_and_overwritten(
    make_cache: Any, any_redis: Any, fetcher: CountingFetcher, junk: str
) -> None:
    """Whatever sits under the key, the user gets correct attributes; key mended."""
    cache = make_cache()
    any_redis.set(cache.key_for("1"), JUNK[junk])

    value = cache.get("1")

    assert value is not None
    assert value.roles == {"admin"}
    assert fetcher.count("1") == 1
    assert cache.stats()["corrupt_entries"] == 1
    assert orjson.loads(any_redis.get(cache.key_for("1")))["user_id"] == "1"


def test_another_users_entry_is_not_served(
    make_cache: Any, any_redis: Any, fetcher: CountingFetcher
) -> None:
    """An entry copied from user 1 to user 2's key is refetched, not served."""
    cache = make_cache()
    cache.get("1")
    any_redis.set(cache.key_for("2"), any_redis.get(cache.key_for("1")))

    value = cache.get("2")

    assert value.roles == {"viewer"}
    assert fetcher.count("2") == 1


def test_another_services_entry_is_not_served(
    make_cache: Any, any_redis: Any, fetcher: CountingFetcher
) -> None:
    """An entry of another service copied under this service's key is a miss."""
    billing = make_cache()
    inventory = billing.for_service("inventory_api")
    inventory.get("1")
    any_redis.set(billing.key_for("1"), any_redis.get(inventory.key_for("1")))

    assert billing.get("1").service_name == "billing_api"
    assert billing.stats()["corrupt_entries"] == 1


def test_key_of_wrong_type_is_overwritten(make_cache: Any, any_redis: Any) -> None:
    """A hash stored under the entry key reads as junk and is replaced."""
    cache = make_cache()
    any_redis.hset(cache.key_for("1"), "roles", "admin")

    assert cache.get("1").roles == {"admin"}
    assert any_redis.type(cache.key_for("1")) == b"string"


def test_signed_entries_reject_unsigned_ones(
    any_redis: Any, fetcher: CountingFetcher
) -> None:
    """With signing_key, an entry written without the key is a miss."""
    plain = AttributeCache(any_redis, fetcher, service_name="billing_api")
    signed = AttributeCache(
        any_redis, fetcher, service_name="billing_api", signing_key="k1"
    )

    plain.get("1")
    assert signed.get("1") is not None
    assert fetcher.count("1") == 2
    assert signed.stats()["corrupt_entries"] == 1

    assert signed.get("1") is not None
    assert fetcher.count("1") == 2


def test_tampered_signed_entry_is_a_miss(
    any_redis: Any, fetcher: CountingFetcher
) -> None:
    """Changing a signed entry's roles in Redis invalidates it."""
    cache = AttributeCache(
        any_redis, fetcher, service_name="billing_api", signing_key="k1"
    )
    cache.get("2")
    key = cache.key_for("2")
    any_redis.set(key, any_redis.get(key).replace(b'"viewer"', b'"admin"'))

    assert cache.get("2").roles == {"viewer"}
    assert fetcher.count("2") == 2


def test_get_many_reads_once_and_fills_misses(
    make_cache: Any, any_redis: Any, fetcher: CountingFetcher
) -> None:
    """get_many serves cached users, fills misses and leaves unknown users out."""
    cache = make_cache()
    cache.get("1")

    found = cache.get_many(["1", 2, "ghost", "alice", "2"])

    assert set(found) == {"1", "2", "alice"}
    assert found["2"].roles == {"viewer"}
    assert fetcher.count("1") == 1
    assert fetcher.count("2") == 1
    assert cache.get_many([]) == {}


def test_get_many_leaves_out_unavailable_users(
    make_cache: Any, fetcher: CountingFetcher
) -> None:
    """Users whose attributes cannot be had are left out, not granted."""
    cache = make_cache()
    cache.get("1")
    fetcher.error = FetchError("down")

    assert set(cache.get_many(["1", "2", "alice"])) == {"1"}


def test_get_many_uses_one_round_trip(
    real_redis: Any, fetcher: CountingFetcher
) -> None:
    """All cached entries come back from a single MGET."""
    cache = AttributeCache(real_redis, fetcher, service_name="billing_api")
    ids = [str(n) for n in range(50)]
    fetcher.users.update({uid: {"roles": ["r"]} for uid in ids})
    cache.get_many(ids)
    before = real_redis.info("commandstats")

    found = cache.get_many(ids)

    after = real_redis.info("commandstats")
    assert len(found) == 50
    assert after["cmdstat_mget"]["calls"] - before["cmdstat_mget"]["calls"] == 1
    assert after.get("cmdstat_get", {}).get("calls", 0) == before.get(
        "cmdstat_get", {}
    ).get("calls", 0)


def test_get_many_with_auto_refresh_off_only_reads(
    make_cache: Any, fetcher: CountingFetcher
) -> None:
    """With auto_refresh off get_many returns cached users and fetches nothing."""
    cache = make_cache()
    cache.get("1")

    assert set(cache.get_many(["1", "2"], auto_refresh=False)) == {"1"}
    assert fetcher.count() == 1


def test_refresh_applies_a_role_change(
    make_cache: Any, fetcher: CountingFetcher
) -> None:
    """refresh() fetches now and later reads see the new roles."""
    cache = make_cache()
    assert cache.get("2").has_role("viewer")
    fetcher.users["2"]["roles"] = ["editor"]

    assert cache.refresh("2").roles == {"editor"}
    assert cache.get("2").roles == {"editor"}
    assert fetcher.count("2") == 2


def test_failed_refresh_leaves_nothing_stale(
    make_cache: Any, any_redis: Any, fetcher: CountingFetcher
) -> None:
    """If refresh() cannot fetch, the old entry is deleted rather than served."""
    cache = make_cache()
    cache.get("1")
    fetcher.error = FetchError("down")

    with pytest.raises(FetchError):
        cache.refresh("1")

    assert any_redis.get(cache.key_for("1")) is None
    with pytest.raises(AttributesUnavailableError):
        cache.get("1")


def test_invalidate_forgets_the_entry(
    make_cache: Any, any_redis: Any, fetcher: CountingFetcher
) -> None:
    """invalidate() deletes the entry; the next read fetches."""
    cache = make_cache()
    cache.get("1")

    cache.invalidate("1")

    assert any_redis.get(cache.key_for("1")) is None
    cache.get("1")
    assert fetcher.count("1") == 2


def test_set_stores_given_attributes(make_cache: Any, fetcher: CountingFetcher) -> None:
    """set() makes the given attributes the entry, without a fetch."""
    cache = make_cache()

    cache.set(UserAttributes("9", "billing_api", roles=["auditor"]))

    assert cache.get("9").roles == {"auditor"}
    assert fetcher.calls == []


def test_set_refuses_other_services_and_other_types(make_cache: Any) -> None:
    """set() names what was wrong with its argument."""
    cache = make_cache()

    with pytest.raises(InvalidAttributesError, match="service_name"):
        cache.set(UserAttributes("9", "inventory_api"))
    with pytest.raises(InvalidAttributesError, match="UserAttributes"):
        cache.set({"user_id": "9"})  # type: ignore[arg-type]


def test_expired_entry_is_refreshed_on_read(
    make_cache: Any, fetcher: CountingFetcher
) -> None:
    """Past ttl, a read fetches again and the user keeps access."""
    cache = make_cache(ttl=0.2)
    cache.get("1")
    time.sleep(0.25)

    assert cache.get("1").has_role("admin")
    assert fetcher.count("1") == 2


def test_stale_entry_served_within_grace_when_fetch_fails(
    make_cache: Any, fetcher: CountingFetcher
) -> None:
    """Past ttl but within stale_grace, a failing fetcher gets the old entry served."""
    cache = make_cache(ttl=0.2, stale_grace=30)
    cache.get("1")
    time.sleep(0.25)
    fetcher.error = FetchError("identity provider is down")

    assert cache.get("1").has_role("admin")
    assert cache.stats()["stale_served"] == 1


def test_past_grace_is_unavailable_never_empty(
    make_cache: Any, fetcher: CountingFetcher
) -> None:
    """Past ttl + stale_grace a failing fetcher gives AttributesUnavailableError."""
    cache = make_cache(ttl=0.1, stale_grace=0.1)
    cache.get("1")
    time.sleep(0.25)
    fetcher.error = FetchError("down")

    with pytest.raises(AttributesUnavailableError) as info:
        cache.get("1")
    assert info.value.retry_after > 0


def test_cold_miss_with_failing_fetcher_is_unavailable(
    make_cache: Any, fetcher: CountingFetcher
) -> None:
    """Nothing cached and the fetcher failing: unavailable, not an empty grant."""
    cache = make_cache()
    fetcher.error = RuntimeError("boom")

    with pytest.raises(AttributesUnavailableError):
        cache.get("1")
    assert cache.stats()["fetch_errors"] == 1


def test_no_fetcher_means_misses_are_unavailable(any_redis: Any) -> None:
    """A cache without a fetcher serves what Redis has and nothing else."""
    cache = AttributeCache(any_redis, None, service_name="billing_api")

    with pytest.raises(AttributesUnavailableError):
        cache.get("1")
    cache.set(UserAttributes("1", "billing_api", roles=["admin"]))
    assert cache.get("1").roles == {"admin"}


def test_fetcher_answer_for_another_user_is_rejected(make_cache: Any) -> None:
    """A fetcher that answers about someone else is a failed fetch."""
    cache = make_cache(
        fetcher=lambda uid, svc: {
            "user_id": "other",
            "service_name": svc,
            "roles": [],
            "permissions": [],
            "attributes": {},
        }
    )

    with pytest.raises(AttributesUnavailableError):
        cache.get("1")


def test_redis_ttl_covers_grace_with_downward_jitter(
    make_cache: Any, any_redis: Any
) -> None:
    """The key lives ttl + stale_grace, shortened by at most ttl_jitter."""
    cache = make_cache(ttl=100, stale_grace=50, ttl_jitter=0.1)

    lifetimes = []
    for uid in ("1", "2", "alice"):
        cache.get(uid)
        lifetimes.append(any_redis.pttl(cache.key_for(uid)))

    assert all(135_000 - 1000 <= ms <= 150_000 for ms in lifetimes)


def test_refresh_after_refreshes_in_the_background(
    make_cache: Any, fetcher: CountingFetcher
) -> None:
    """Past refresh_after a read is served at once and a refresh runs behind it."""
    cache = make_cache(ttl=60, refresh_after=0.1)
    cache.get("1")
    time.sleep(0.15)
    fetcher.users["1"]["roles"] = ["changed"]
    fetcher.delay = 0.2

    started = time.monotonic()
    assert cache.get("1").roles == {"admin"}
    assert time.monotonic() - started < 0.15

    deadline = time.monotonic() + 5
    while cache.get("1").roles != {"changed"} and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cache.get("1").roles == {"changed"}
    assert cache.stats()["background_refreshes"] >= 1


def test_slow_fetch_never_overwrites_a_newer_refresh(
    make_cache: Any, any_redis: Any
) -> None:
    """A fetch that began before refresh() cannot store its older answer."""
    release = threading.Event()
    answers = iter(["old", "new"])

    def fetcher(uid: str, svc: str) -> dict[str, Any]:
        role = next(answers)
        if role == "old":
            release.wait(5)
        return {
            "user_id": uid,
            "service_name": svc,
            "roles": [role],
            "permissions": [],
            "attributes": {},
        }

    cache = make_cache(fetcher=fetcher)
    reader = threading.Thread(target=cache.get, args=("1",))
    reader.start()
    time.sleep(0.1)

    assert cache.refresh("1").roles == {"new"}
    release.set()
    reader.join(5)

    assert cache.get("1").roles == {"new"}


def test_for_service_shares_pools_and_separates_keys(
    make_cache: Any, fetcher: CountingFetcher
) -> None:
    """A sibling uses the same Redis client and fetcher but its own keys."""
    billing = make_cache()
    inventory = billing.for_service("inventory_api")

    assert inventory.redis is billing.redis
    assert inventory.get("1").service_name == "inventory_api"
    assert billing.get("1").service_name == "billing_api"
    assert inventory.key_for("1") != billing.key_for("1")
    assert fetcher.calls == [("1", "inventory_api"), ("1", "billing_api")]


def test_for_service_rejects_bad_names(make_cache: Any) -> None:
    """A malformed service name is a configuration error naming the setting."""
    with pytest.raises(ConfigurationError, match="service_name"):
        make_cache().for_service("bad name{}")


def test_settings_that_cannot_work_are_rejected(any_redis: Any) -> None:
    """refresh_after >= ttl and negative values are refused, naming the setting."""
    with pytest.raises(ConfigurationError, match="refresh_after"):
        AttributeCache(any_redis, None, service_name="s", ttl=60, refresh_after=60)
    with pytest.raises(ConfigurationError, match="stale_grace"):
        AttributeCache(any_redis, None, service_name="s", stale_grace=-1)
    with pytest.raises(ConfigurationError, match="ttl"):
        AttributeCache(any_redis, None, service_name="s", ttl=0)
    with pytest.raises(TypeError, match="nonsense"):
        AttributeCache(any_redis, None, service_name="s", nonsense=1)  # type: ignore[call-arg]


def test_ttl_comes_from_the_environment(
    any_redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ttl=None reads RBAC_ABAC_CACHE_TTL; a malformed value names the variable."""
    monkeypatch.setenv("RBAC_ABAC_CACHE_TTL", "120")
    assert AttributeCache(any_redis, None, service_name="s").settings.ttl == 120

    for bad in ("abc", "-5"):
        monkeypatch.setenv("RBAC_ABAC_CACHE_TTL", bad)
        with pytest.raises(ConfigurationError, match="RBAC_ABAC_CACHE_TTL"):
            AttributeCache(any_redis, None, service_name="s")


def test_from_env_builds_a_working_cache(
    redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """from_env reads the service, Redis URL and knobs from the environment."""
    monkeypatch.setenv("RBAC_ABAC_SERVICE_NAME", "billing_api")
    monkeypatch.setenv("RBAC_ABAC_REDIS_URL", redis_server.url)
    monkeypatch.setenv("RBAC_ABAC_CACHE_NEGATIVE_TTL", "5")
    fetcher = CountingFetcher({"1": {"roles": ["admin"]}})

    with AttributeCache.from_env(fetcher=fetcher) as cache:
        assert cache.settings.negative_ttl == 5
        assert cache.get("1").has_role("admin")


def test_stats_count_events_and_hook_sees_them(
    any_redis: Any, fetcher: CountingFetcher
) -> None:
    """Counters move with events, and the hook receives each one."""
    events: list[str] = []
    cache = AttributeCache(
        any_redis,
        fetcher,
        service_name="billing_api",
        on_event=lambda name, _: events.append(name),
    )

    cache.get("1")
    cache.get("1")
    cache.get("ghost")
    cache.invalidate("1")

    stats = cache.stats()
    assert stats["misses"] == 2
    assert stats["fetches"] == 2
    assert stats["hits_redis"] == 1
    assert stats["unknown_users"] == 1
    assert stats["invalidations"] == 1
    assert events.count("fetches") == 2


def test_a_failing_event_hook_never_breaks_reads(
    any_redis: Any, fetcher: CountingFetcher
) -> None:
    """Exceptions from the hook are logged, not raised."""

    def hook(name: str, details: Any) -> None:
        raise RuntimeError("metrics backend down")

    cache = AttributeCache(
        any_redis, fetcher, service_name="billing_api", on_event=hook
    )

    assert cache.get("1") is not None


def test_context_manager_closes_a_client_it_built(
    redis_server: Any, fetcher: CountingFetcher
) -> None:
    """A cache built from a URL owns and closes its client."""
    with AttributeCache(redis_server.url, fetcher, service_name="billing_api") as cache:
        assert cache.get("1") is not None
    assert repr(cache).startswith("<AttributeCache")


def test_a_provider_built_from_settings_is_closed_with_the_cache(
    redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """from_env builds an HttpIdentityProvider from the environment and owns it."""
    monkeypatch.setenv("RBAC_ABAC_REDIS_URL", redis_server.url)
    monkeypatch.setenv("IDENTITY_PROVIDER_URL", "http://127.0.0.1:9")
    closed: list[bool] = []

    with AttributeCache.from_env(service_name="billing_api") as cache:
        provider = cache.fetcher
        assert type(provider).__name__ == "HttpIdentityProvider"
        monkeypatch.setattr(provider, "close", lambda: closed.append(True))

    assert closed == [True]


def test_local_tier_holds_the_very_first_read(
    real_redis: Any, fetcher: CountingFetcher
) -> None:
    """With local_ttl, the first read already lands in process memory."""
    cache = AttributeCache(real_redis, fetcher, service_name="billing_api", local_ttl=5)

    cache.get("1")
    real_redis.delete(cache.key_for("1"))

    assert cache.get("1").has_role("admin")
    assert cache.stats()["hits_local"] == 1
    assert fetcher.count("1") == 1
    cache.close()


def test_local_tier_is_evicted_by_a_sibling_instance_at_once(
    real_redis: Any, fetcher: CountingFetcher
) -> None:
    """A refresh by another instance in this process is seen on the next read."""
    reader = AttributeCache(
        real_redis, fetcher, service_name="billing_api", local_ttl=30
    )
    writer = AttributeCache(real_redis, fetcher, service_name="billing_api")
    assert reader.get("2").roles == {"viewer"}
    assert reader.get("2").roles == {"viewer"}
    assert reader.stats()["hits_local"] == 1

    fetcher.users["2"]["roles"] = ["editor"]
    writer.refresh("2")

    assert reader.get("2").roles == {"editor"}
    reader.close()
    writer.close()


def test_a_full_redis_refusing_writes_still_answers_at_once(
    real_redis: Any, fetcher: CountingFetcher
) -> None:
    """Redis out of memory refuses the fetch lock: no lock wait, correct answers."""
    cache = AttributeCache(real_redis, fetcher, service_name="billing_api", lock_wait=3)
    real_redis.config_set("maxmemory-policy", "noeviction")
    real_redis.config_set("maxmemory", 1)
    try:
        began = time.monotonic()
        value = cache.get("1")
        elapsed = time.monotonic() - began
    finally:
        real_redis.config_set("maxmemory", 0)
        cache.close()

    assert value is not None
    assert value.has_role("admin")
    assert elapsed < 1.0
    stats = cache.stats()
    assert stats["lock_waits"] == 0
    assert stats["redis_errors"] >= 1


def test_a_fetcher_answer_json_cannot_store_is_a_failed_fetch(make_cache: Any) -> None:
    """Attributes with a lone surrogate never reach Redis; the read is refused."""
    cache = make_cache(
        fetcher=lambda uid, svc: {
            "user_id": uid,
            "service_name": svc,
            "roles": ["admin\ud800"],
            "permissions": [],
            "attributes": {},
        }
    )

    with pytest.raises(AttributesUnavailableError):
        cache.get("1")


def test_a_generation_key_of_the_wrong_type_does_not_stall_reads(
    make_cache: Any, any_redis: Any, fetcher: CountingFetcher
) -> None:
    """A generation key Redis cannot read as a string costs no lock wait."""
    cache = make_cache(lock_wait=3)
    generation_key = cache.key_for("1").replace(":attrs", ":gen")
    any_redis.hset(generation_key, "junk", "1")

    began = time.monotonic()
    value = cache.get("1")

    assert value is not None
    assert value.has_role("admin")
    assert time.monotonic() - began < 1.0
    assert cache.stats()["lock_waits"] == 0
