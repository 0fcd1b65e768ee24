"""The in-process tier: a small, thread-safe LRU of recent entries with a TTL.

A hit here costs a dictionary lookup and a clock read, so a service that
checks the same user many times a second does not pay a Redis round trip
each time. Entries are evicted by the invalidation listener when another
instance announces a change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from time import monotonic

from .attributes import UserAttributes

__all__ = ["LocalTier"]


class LocalTier:
    """Maps user ids to attributes for at most ``ttl`` seconds each.

    Args:
        ttl: Longest time, in seconds, an entry is served.
        maxsize: Most entries held; the least recently used go first.
    """

    __slots__ = ("_data", "_lock", "maxsize", "ttl")

    def __init__(self, ttl: float, maxsize: int) -> None:
        self.ttl = ttl
        self.maxsize = maxsize
        self._data: OrderedDict[str, tuple[float, UserAttributes]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, user_id: str) -> UserAttributes | None:
        """Return the user's attributes if held and not expired."""
        item = self._data.get(user_id)
        if item is None:
            return None

        if item[0] > monotonic():
            # The lookup is deliberately lock-free; a concurrent eviction of
            # this key only means the LRU order is not updated this once.
            try:  # noqa: SIM105 - contextlib.suppress costs more than the lookup
                self._data.move_to_end(user_id)
            except KeyError:
                pass
            return item[1]

        with self._lock:
            if self._data.get(user_id) is item:
                del self._data[user_id]
        return None

    def put(self, user_id: str, value: UserAttributes, lifetime: float) -> None:
        """Hold ``value`` for ``lifetime`` seconds, capped at the tier's TTL."""
        expires = monotonic() + min(lifetime, self.ttl)
        with self._lock:
            self._data[user_id] = (expires, value)
            self._data.move_to_end(user_id)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def evict(self, user_id: str) -> None:
        """Forget the user."""
        with self._lock:
            self._data.pop(user_id, None)

    def reset_after_fork(self) -> None:
        """Start afresh in a forked child, whose copy of the lock may be held."""
        self._lock = threading.Lock()
        self._data = OrderedDict()

    def clear(self) -> None:
        """Forget every user."""
        with self._lock:
            self._data.clear()
