"""CircuitBreaker: closed, open for a cooldown, one trial, closed again."""

from __future__ import annotations

import pytest

from rbac_abac_cache.breaker import CircuitBreaker
from rbac_abac_cache.exceptions import IdentityProviderUnavailableError


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fail(breaker: CircuitBreaker, times: int) -> None:
    """Record ``times`` failed calls."""
    for _ in range(times):
        trial = breaker.enter()
        breaker.exit(is_trial=trial, succeeded=False)


def test_opens_after_threshold_failures_in_a_row() -> None:
    """Below the threshold calls go through; at it they are refused."""
    breaker = CircuitBreaker(3, cooldown=5.0, clock=Clock())

    fail(breaker, 2)
    assert breaker.enter() is False
    breaker.exit(is_trial=False, succeeded=False)

    with pytest.raises(IdentityProviderUnavailableError, match="3 calls in a row"):
        breaker.enter()


def test_a_success_resets_the_count() -> None:
    """Failures must be consecutive to open the breaker."""
    breaker = CircuitBreaker(2, cooldown=5.0, clock=Clock())

    fail(breaker, 1)
    breaker.exit(is_trial=breaker.enter(), succeeded=True)
    fail(breaker, 1)

    assert breaker.enter() is False


def test_one_trial_after_the_cooldown_closes_it_on_success() -> None:
    """After the cooldown exactly one trial goes through; success closes."""
    clock = Clock()
    breaker = CircuitBreaker(1, cooldown=5.0, clock=clock)
    fail(breaker, 1)

    clock.now += 5.0
    assert breaker.enter() is True
    with pytest.raises(IdentityProviderUnavailableError):
        breaker.enter()
    breaker.exit(is_trial=True, succeeded=True)

    assert breaker.enter() is False


def test_a_failed_trial_opens_it_for_another_cooldown() -> None:
    """A trial that fails refuses calls for a full cooldown again."""
    clock = Clock()
    breaker = CircuitBreaker(1, cooldown=5.0, clock=clock)
    fail(breaker, 1)
    clock.now += 5.0

    breaker.exit(is_trial=breaker.enter(), succeeded=False)
    clock.now += 4.9

    with pytest.raises(IdentityProviderUnavailableError):
        breaker.enter()


def test_no_threshold_never_opens() -> None:
    """threshold=None turns the breaker off."""
    breaker = CircuitBreaker(None, cooldown=5.0, clock=Clock())

    fail(breaker, 100)

    assert breaker.enter() is False
