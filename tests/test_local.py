"""Tests for :mod:`rbac_abac_cache.local`."""

from __future__ import annotations

import threading

import pytest

from rbac_abac_cache import local
from rbac_abac_cache.attributes import UserAttributes
from rbac_abac_cache.local import LocalTier


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Replace the local tier's clock with one the test moves by hand."""
    fake = Clock()
    monkeypatch.setattr(local, "monotonic", fake)
    return fake


def user(user_id: str) -> UserAttributes:
    """Return attributes for ``user_id``."""
    return UserAttributes(user_id, "billing_api", roles=["viewer"])


def test_get_returns_what_was_put() -> None:
    """A stored entry is served back as the same object."""
    tier = LocalTier(ttl=60, maxsize=10)
    value = user("42")

    tier.put("42", value, 60)

    assert tier.get("42") is value
    assert tier.get("43") is None


def test_entry_expires_after_ttl(clock: Clock) -> None:
    """An entry is served until the tier's TTL elapses, then forgotten."""
    tier = LocalTier(ttl=5, maxsize=10)
    tier.put("42", user("42"), 60)

    clock.now += 4.9
    assert tier.get("42") is not None

    clock.now += 0.2
    assert tier.get("42") is None
    assert len(tier) == 0


def test_shorter_lifetime_wins_over_ttl(clock: Clock) -> None:
    """An entry whose Redis lifetime is shorter than the TTL expires first."""
    tier = LocalTier(ttl=60, maxsize=10)
    tier.put("42", user("42"), 2)

    clock.now += 2.5

    assert tier.get("42") is None


def test_non_positive_lifetime_is_never_served(clock: Clock) -> None:
    """An entry already past its lifetime is not served even once."""
    tier = LocalTier(ttl=60, maxsize=10)

    tier.put("42", user("42"), 0)

    assert tier.get("42") is None


def test_put_again_replaces_and_renews(clock: Clock) -> None:
    """Putting a user again replaces the value and restarts its lifetime."""
    tier = LocalTier(ttl=5, maxsize=10)
    tier.put("42", user("42"), 5)
    clock.now += 4
    newer = user("42")

    tier.put("42", newer, 5)
    clock.now += 4

    assert tier.get("42") is newer
    assert len(tier) == 1


def test_least_recently_used_is_evicted_at_maxsize() -> None:
    """Past maxsize, the least recently used entry goes first."""
    tier = LocalTier(ttl=60, maxsize=2)
    tier.put("a", user("a"), 60)
    tier.put("b", user("b"), 60)

    tier.put("c", user("c"), 60)

    assert len(tier) == 2
    assert tier.get("a") is None
    assert tier.get("b") is not None
    assert tier.get("c") is not None


def test_reading_an_entry_protects_it_from_eviction() -> None:
    """A get makes an entry most recently used."""
    tier = LocalTier(ttl=60, maxsize=2)
    tier.put("a", user("a"), 60)
    tier.put("b", user("b"), 60)

    tier.get("a")
    tier.put("c", user("c"), 60)

    assert tier.get("a") is not None
    assert tier.get("b") is None


def test_evict_forgets_one_user() -> None:
    """evict removes one user and leaves the others; unknown ids are fine."""
    tier = LocalTier(ttl=60, maxsize=10)
    tier.put("a", user("a"), 60)
    tier.put("b", user("b"), 60)

    tier.evict("a")
    tier.evict("never-stored")

    assert tier.get("a") is None
    assert tier.get("b") is not None


def test_clear_forgets_everyone() -> None:
    """clear empties the tier."""
    tier = LocalTier(ttl=60, maxsize=10)
    for user_id in ("a", "b", "c"):
        tier.put(user_id, user(user_id), 60)

    tier.clear()

    assert len(tier) == 0
    assert tier.get("a") is None


def test_reset_after_fork_starts_empty() -> None:
    """After a fork the child's tier holds nothing and works."""
    tier = LocalTier(ttl=60, maxsize=10)
    tier.put("a", user("a"), 60)

    tier.reset_after_fork()
    tier.put("b", user("b"), 60)

    assert tier.get("a") is None
    assert tier.get("b") is not None


def test_concurrent_use_is_safe() -> None:
    """Threads putting, reading, evicting and clearing at once never fail."""
    tier = LocalTier(ttl=60, maxsize=50)
    values = {str(n): user(str(n)) for n in range(200)}
    errors: list[BaseException] = []
    start = threading.Barrier(8, timeout=5)

    def work(seed: int) -> None:
        try:
            start.wait()
            for step in range(3000):
                user_id = str((seed * 31 + step) % 200)
                tier.put(user_id, values[user_id], 60)
                found = tier.get(str((step * 7) % 200))
                assert found is None or found is values[found.user_id]
                if step % 13 == 0:
                    tier.evict(user_id)
                if step % 997 == 0:
                    tier.clear()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(tier) <= 50
