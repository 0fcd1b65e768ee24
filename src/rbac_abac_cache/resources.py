"""What a cache and its sibling caches for other services share.

:meth:`AttributeCache.for_service` gives each service its own keys and
counters, but one Redis client (and so one connection pool), one fetcher,
one invalidation listener per channel and one pool of background-refresh
threads, all created here and closed together.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from .config import CacheSettings
from .fetchers import Fetcher
from .invalidation import InvalidationBus
from .store import RedisClient, RedisStore

__all__ = ["SharedResources"]


class Closeable(Protocol):
    """Something holding connections of its own."""

    def close(self) -> None:
        """Release the connections."""


class ClosableFetcher(Fetcher, Closeable, Protocol):
    """A fetcher with connections of its own, such as HttpIdentityProvider."""


_MAX_PENDING_REFRESHES = 1000


class SharedResources:
    """Redis client, store, fetcher, listeners and refresh threads of a cache family.

    Args:
        client: The Redis client.
        owns_client: Whether :meth:`close` closes the client (it was built
            from a URL by the library).
        fetcher: Fills misses; ``None`` means they cannot be filled.
        settings: The first cache's settings (retry interval, worker count).
    """

    def __init__(
        self,
        client: RedisClient,
        owns_client: bool,
        fetcher: Fetcher | None,
        settings: CacheSettings,
    ) -> None:
        self.client = client
        self.owns_client = owns_client
        self.fetcher = fetcher
        self._owned_fetcher: Closeable | None = None
        self.store = RedisStore(client, settings.redis_retry_interval)
        self.refresh_workers = settings.refresh_workers
        self.closed = False
        self._buses: dict[str, InvalidationBus] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._executor_pid = 0
        self._pending: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def own_fetcher(self, fetcher: ClosableFetcher) -> None:
        """Use ``fetcher``, built by the library, and close it in :meth:`close`."""
        self.fetcher = fetcher
        self._owned_fetcher = fetcher

    def bus(self, channel: str) -> InvalidationBus:
        """Return the one invalidation listener for ``channel``."""
        with self._lock:
            bus = self._buses.get(channel)
            if bus is None:
                bus = self._buses[channel] = InvalidationBus(self.client, channel)
            return bus

    def submit(self, key: tuple[str, str], task: Callable[[], object]) -> bool:
        """Run ``task`` on the refresh threads unless ``key`` is already queued.

        Returns:
            Whether the task was queued; at most 1000 wait at a time.
        """
        with self._lock:
            if self.closed or key in self._pending:
                return False
            if len(self._pending) >= _MAX_PENDING_REFRESHES:
                return False

            executor = self._executor_for_this_process()
            self._pending.add(key)

        def run() -> None:
            try:
                task()
            finally:
                with self._lock:
                    self._pending.discard(key)

        executor.submit(run)
        return True

    def _executor_for_this_process(self) -> ThreadPoolExecutor:
        if self._executor is None or self._executor_pid != os.getpid():
            # A pool inherited through fork() has no threads in the child.
            self._executor = ThreadPoolExecutor(
                max_workers=self.refresh_workers,
                thread_name_prefix="rbac-abac-cache-refresh",
            )
            self._executor_pid = os.getpid()
            self._pending.clear()
        return self._executor

    def close(self) -> None:
        """Stop the listeners and refresh threads; close the client if owned."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            executor, self._executor = self._executor, None
            buses = list(self._buses.values())

        for bus in buses:
            bus.close()
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if self.owns_client:
            self.client.close()
        if self._owned_fetcher is not None:
            self._owned_fetcher.close()
