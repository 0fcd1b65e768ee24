"""Counters of what the cache did, and the hook that reports each event."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

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
    "invalidations",
    "background_refreshes",
    "lock_waits",
)

EventHook = Callable[[str, Mapping[str, Any]], None]


class Stats:
    """Thread-safe counters, one per name in :data:`EVENTS`.

    Args:
        hook: Called as ``hook(event, details)`` for every event, for
            metrics. Its exceptions are logged and otherwise ignored.
    """

    def __init__(self, hook: EventHook | None = None) -> None:
        self._counts = dict.fromkeys(EVENTS, 0)
        self._lock = threading.Lock()
        self._hook = hook

    def count(self, event: str, **details: Any) -> None:
        """Add one to ``event`` and report it to the hook."""
        with self._lock:
            self._counts[event] += 1

        if self._hook is not None:
            try:
                self._hook(event, MappingProxyType(details))
            except Exception:
                logger.exception("event hook failed for %s", event)

    def snapshot(self) -> Mapping[str, int]:
        """Return a read-only copy of the counters."""
        with self._lock:
            return MappingProxyType(dict(self._counts))
