"""A circuit breaker: a failing dependency costs a fast refusal, not a timeout.

:class:`~rbac_abac_cache.HttpIdentityProvider` keeps one, so that while the
identity provider is down each call fails at once instead of waiting for its
retries and timeouts, and one trial call finds out when it is back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .exceptions import IdentityProviderUnavailableError

__all__ = ["CircuitBreaker"]

logger = logging.getLogger(__name__)


class CircuitBreaker:
    """Refuses calls for a while after too many consecutive failed ones.

    Closed: calls go through and failures are counted. Open: calls are
    refused until ``cooldown`` has passed. Half-open: one trial call goes
    through while others are still refused; its success closes the breaker
    and its failure opens it again.
    """

    def __init__(
        self, threshold: int | None, cooldown: float, clock: Callable[[], float]
    ) -> None:
        self._threshold = threshold
        self._cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    def enter(self) -> bool:
        """Let a call through, saying whether it is the half-open trial.

        Raises:
            IdentityProviderUnavailableError: The breaker is open.
        """
        with self._lock:
            if self._opened_at is None:
                return False

            waited = self._clock() - self._opened_at
            if waited < self._cooldown or self._trial_running:
                remaining = max(self._cooldown - waited, 0.0)
                logger.debug("identity provider circuit open; call refused")
                raise IdentityProviderUnavailableError(
                    f"identity provider failed {self._failures} calls in a row; "
                    f"calls are refused for {remaining:.1f} s more"
                )

            self._trial_running = True
            return True

    def exit(self, *, is_trial: bool, succeeded: bool | None) -> None:
        """Record how a call ended; ``succeeded=None`` records nothing."""
        with self._lock:
            if is_trial:
                self._trial_running = False

            if succeeded is None:
                return

            if succeeded:
                if self._opened_at is not None:
                    logger.debug("identity provider answered again; circuit closed")
                self._failures = 0
                self._opened_at = None
                return

            self._failures += 1
            if is_trial or self._should_open():
                self._open()

    def _should_open(self) -> bool:
        return (
            self._opened_at is None
            and self._threshold is not None
            and self._failures >= self._threshold
        )

    def _open(self) -> None:
        # Logged once per opening, which is at most once per cooldown.
        self._opened_at = self._clock()
        logger.warning(
            "identity provider failed %d calls in a row; refusing calls for %.1f s",
            self._failures,
            self._cooldown,
        )
