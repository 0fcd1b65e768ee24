"""Counters of what the cache did, and the hook that reports each event."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from time import monotonic
from types import MappingProxyType
from typing import Any

from redis.exceptions import RedisError

__all__ = ["EVENTS", "EventHook", "Stats"]

logger = logging.getLogger(__name__)

#: Every event name, each also a counter in :meth:`AttributeCache.stats`.
EVENTS = (
    "hits_local",
    "hits_redis",
    "negative_hits",
    "misses",
    "fetches",
    "fetch_errors",
    "unknown_users",
    "stale_served",
    "unavailable",
    "corrupt_entries",
    "redis_errors",
    "redis_skipped",
    "invalidations",
    "background_refreshes",
    "lock_waits",
)

EventHook = Callable[[str, Mapping[str, Any]], None]

_WARNING_INTERVAL = 10.0


class Stats:
    """Counters, one per name in :data:`EVENTS`.

    The two hit counters are plain attributes that the cache increments
    inline, because a local-tier hit is cheaper than taking a lock; under
    the GIL such an increment is not interrupted in practice, but the hit
    counts are best-effort. Every other counter is updated under a lock.

    Args:
        hook: Called as ``hook(event, details)`` for every event, for
            metrics. Its exceptions are logged and otherwise ignored.
    """

    __slots__ = (
        "_counts",
        "_last_warning",
        "_lock",
        "hits_local",
        "hits_redis",
        "hook",
    )

    def __init__(self, hook: EventHook | None = None) -> None:
        self._counts = dict.fromkeys(EVENTS, 0)
        self._lock = threading.Lock()
        self._last_warning = -_WARNING_INTERVAL
        self.hook = hook
        self.hits_local = 0
        self.hits_redis = 0

    def count(self, event: str, **details: Any) -> None:
        """Add one to ``event`` and report it to the hook."""
        if event == "hits_local":
            self.hits_local += 1
        elif event == "hits_redis":
            self.hits_redis += 1
        else:
            with self._lock:
                self._counts[event] += 1

        if self.hook is not None:
            self.report(event, details)

    def report(self, event: str, details: Mapping[str, Any]) -> None:
        """Call the hook for ``event``, never letting it break the caller."""
        if self.hook is None:
            return
        try:
            self.hook(event, MappingProxyType(dict(details)))
        except Exception:
            logger.exception("event hook failed for %s", event)

    def warn(self, message: str, *args: Any, log: logging.Logger = logger) -> None:
        """Log a warning at most every few seconds, so an outage cannot flood logs.

        Warnings inside the interval are logged at DEBUG instead.
        """
        now = monotonic()
        if now - self._last_warning >= _WARNING_INTERVAL:
            self._last_warning = now
            log.warning(message, *args)
        else:
            log.debug(message, *args)

    def redis_failed(self, exc: BaseException) -> None:
        """Count a Redis failure; warn about errors other than outages.

        Outages are reported once by the store when it marks Redis down, and
        a command not even sent because Redis is marked down counts as
        ``redis_skipped`` rather than as an error.
        """
        if getattr(exc, "skipped", False):
            self.count("redis_skipped")
            return
        self.count("redis_errors", error=type(exc).__name__)
        if isinstance(exc, RedisError):
            self.warn("Redis command failed: %s", type(exc).__name__)

    def snapshot(self) -> Mapping[str, int]:
        """Return a read-only copy of the counters."""
        with self._lock:
            counts = dict(self._counts)
        counts["hits_local"] = self.hits_local
        counts["hits_redis"] = self.hits_redis
        return MappingProxyType(counts)
