"""Loader: the fetch lock, waiting for another process, generation-checked writes."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from rbac_abac_cache import UserAttributes
from rbac_abac_cache.config import CacheSettings
from rbac_abac_cache.keys import KeySpace
from rbac_abac_cache.loader import Loader
from rbac_abac_cache.serialization import Entry, EntryCodec
from rbac_abac_cache.stats import Stats
from rbac_abac_cache.store import RedisStore

from .conftest import CountingFetcher


def make_loader(client: Any, fetcher: Any, **settings: Any) -> Loader:
    """A loader for billing_api on ``client``."""
    cache_settings = CacheSettings(service_name="billing_api", **settings)
    keys = KeySpace(cache_settings.key_prefix, cache_settings.service_name)
    codec = EntryCodec("billing_api", max_bytes=1 << 20, signing_key=None)
    store = RedisStore(client, retry_interval=1.0)
    return Loader(cache_settings, keys, store, codec, fetcher, Stats())


def test_fill_fetches_stores_and_releases_the_lock(
    any_redis: Any, fetcher: CountingFetcher
) -> None:
    """One fill fetches once, stores the entry and leaves no lock behind."""
    loader = make_loader(any_redis, fetcher)

    entry = loader.fill("1")

    assert entry.attributes is not None
    assert entry.attributes.roles == {"admin"}
    assert any_redis.get(loader.keys.entry("1")) is not None
    assert any_redis.get(loader.keys.lock("1")) is None
    assert fetcher.count() == 1


def test_waiter_takes_the_lock_holders_result(
    any_redis: Any, fetcher: CountingFetcher
) -> None:
    """While another process holds the lock, fill waits for its entry."""
    holder = make_loader(any_redis, fetcher)
    waiter = make_loader(any_redis, CountingFetcher())
    any_redis.set(holder.keys.lock("1"), "someone-else", px=5000)

    def other_process_finishes() -> None:
        time.sleep(0.1)
        holder.write("1", holder.fetch("1"), "0")
        any_redis.delete(holder.keys.lock("1"))

    thread = threading.Thread(target=other_process_finishes)
    thread.start()
    entry = waiter.fill("1")
    thread.join(5)

    assert entry.attributes is not None
    assert entry.attributes.roles == {"admin"}
    assert waiter.fetcher.count() == 0  # type: ignore[union-attr]
    assert waiter.stats.snapshot()["lock_waits"] == 1


def test_waiter_fetches_itself_after_lock_wait(
    any_redis: Any, fetcher: CountingFetcher
) -> None:
    """A lock holder that never answers delays a waiter by lock_wait at most."""
    loader = make_loader(any_redis, fetcher, lock_wait=0.2)
    any_redis.set(loader.keys.lock("1"), "dead-holder", px=10_000)

    began = time.monotonic()
    entry = loader.fill("1")

    assert entry.attributes is not None
    assert 0.2 <= time.monotonic() - began < 1.0
    assert fetcher.count() == 1


def test_write_is_refused_once_the_generation_moved(
    any_redis: Any, fetcher: CountingFetcher
) -> None:
    """An answer fetched under an old generation is not stored."""
    loader = make_loader(any_redis, fetcher)
    any_redis.set(loader.keys.generation("1"), "7")

    loader.write("1", loader.fetch("1"), "6")
    assert any_redis.get(loader.keys.entry("1")) is None

    loader.write("1", loader.fetch("1"), "7")
    assert any_redis.get(loader.keys.entry("1")) is not None


def test_unknown_users_are_kept_for_negative_ttl(
    any_redis: Any, fetcher: CountingFetcher
) -> None:
    """A negative entry's Redis lifetime is negative_ttl, shortened by jitter."""
    loader = make_loader(any_redis, fetcher, negative_ttl=30, ttl_jitter=0.1)

    entry = loader.fill("ghost")

    assert entry.attributes is None
    assert 27_000 - 50 <= any_redis.pttl(loader.keys.entry("ghost")) <= 30_000


@pytest.mark.parametrize("jitter", [0.0, 0.5])
def test_lifetime_spans_ttl_and_grace_minus_jitter(
    fake_redis: Any, jitter: float
) -> None:
    """Positive entries live ttl + stale_grace, shortened by at most ttl_jitter."""
    loader = make_loader(fake_redis, None, ttl=100, stale_grace=100, ttl_jitter=jitter)
    entry = Entry(UserAttributes("1", "billing_api"), time.time())

    lifetimes = [loader.lifetime_ms(entry) for _ in range(200)]

    assert min(lifetimes) >= 200_000 * (1 - jitter) - 1
    assert max(lifetimes) <= 200_000


def test_background_refresh_skips_a_locked_or_recent_entry(
    any_redis: Any, fetcher: CountingFetcher
) -> None:
    """refresh_quietly does nothing while locked or when the entry is new."""
    loader = make_loader(any_redis, fetcher)
    loader.fill("1")

    assert loader.refresh_quietly("1", older_than=60) is False
    any_redis.set(loader.keys.lock("1"), "someone-else", px=5000)
    assert loader.refresh_quietly("1", older_than=0) is False
    any_redis.delete(loader.keys.lock("1"))
    assert loader.refresh_quietly("1", older_than=0) is True
    assert fetcher.count() == 2
