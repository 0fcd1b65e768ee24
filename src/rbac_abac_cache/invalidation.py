"""Cross-instance invalidation of the in-process tier over Redis pub/sub.

Every instance of the cache listens on one channel per key prefix. When any
of them refreshes, invalidates or sets a user's entry it publishes the
(service, user) pair and every listener evicts that user from its local
tier. Instances in the same process are told at once, without waiting for
the round trip through Redis.

A listener whose subscription is not confirmed cannot know what it missed,
so the local tier may store new entries only while it is confirmed; after
it resubscribes, the whole local tier is cleared. The listener thread starts
on first use and again in a child process after ``fork()``.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

import orjson
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from .local import LocalTier
from .store import RedisClient

__all__ = ["InvalidationBus"]

logger = logging.getLogger(__name__)

_RECONNECT_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0)
# Failures that end one subscription but not the listener: redis-py's errors,
# a cluster client's, and the TypeError redis-py raises when the client is
# closed while the listener is reading.
_LISTENER_ERRORS = (RedisError, RedisClusterException, OSError, ValueError, TypeError)
_live_buses: weakref.WeakSet[InvalidationBus] = weakref.WeakSet()


def encode_message(service_name: str, user_id: str) -> bytes:
    """Return the message that announces a change to one user's entry."""
    return orjson.dumps([service_name, user_id])


class InvalidationBus:
    """Listens for invalidations and applies them to registered local tiers.

    Args:
        client: The Redis client to subscribe with.
        channel: The channel every instance with this key prefix shares.
    """

    def __init__(self, client: RedisClient, channel: str) -> None:
        self.client = client
        self.channel = channel
        self._tiers: dict[str, LocalTier] = {}
        self._lock = threading.Lock()
        self._confirmed = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._sequence = 0
        _live_buses.add(self)

    @property
    def confirmed(self) -> bool:
        """Whether the subscription is live, so local entries can be trusted."""
        return self._confirmed.is_set() and self._pid == os.getpid()

    @property
    def sequence(self) -> int:
        """A number that changes whenever entries may have been invalidated.

        A reader notes it before reading Redis and stores into the local tier
        only if it has not changed, so an eviction that raced with the read
        cannot be undone by it.
        """
        return self._sequence

    def register(self, service_name: str, tier: LocalTier) -> None:
        """Apply invalidations for ``service_name`` to ``tier``."""
        with self._lock:
            self._tiers[service_name] = tier

    def ensure_listening(self) -> None:
        """Start the listener thread if it is not running in this process."""
        if self._thread is not None and self._pid == os.getpid():
            return

        if self._pid != os.getpid():
            self._after_fork()

        with self._lock:
            if self._thread is None and not self._stopping.is_set():
                self._thread = threading.Thread(
                    target=self._listen,
                    name="rbac-abac-cache-invalidations",
                    daemon=True,
                )
                self._thread.start()

    @property
    def listening(self) -> bool:
        """Whether the listener thread was started in this process."""
        return self._thread is not None and self._pid == os.getpid()

    def wait_confirmed(self, timeout: float) -> bool:
        """Start listening and wait up to ``timeout`` seconds for confirmation."""
        self.ensure_listening()
        return self._confirmed.wait(timeout)

    def deliver(self, service_name: str, user_id: str) -> None:
        """Evict one user from this process's tiers for ``service_name``."""
        self._sequence += 1
        tier = self._tiers.get(service_name)
        if tier is not None:
            tier.evict(user_id)

    def close(self) -> None:
        """Stop listening; the thread ends within about a second."""
        self._stopping.set()
        self._confirmed.clear()
        _live_buses.discard(self)

    def _after_fork(self) -> None:
        # The parent's thread does not exist here, and entries inherited from
        # the parent may already have been invalidated.
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._thread = None
        self._confirmed.clear()
        self._sequence += 1
        for tier in self._tiers.values():
            tier.reset_after_fork()

    def _clear_all(self) -> None:
        self._sequence += 1
        for tier in list(self._tiers.values()):
            tier.clear()

    def _listen(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self._listen_once(failures)
                failures = 0
            except _LISTENER_ERRORS as exc:
                self._confirmed.clear()
                self._sequence += 1
                if self._stopping.is_set():
                    return
                if failures == 0:
                    logger.warning(
                        "invalidation subscription lost (%s); local tier paused",
                        type(exc).__name__,
                    )
                delay = _RECONNECT_DELAYS[min(failures, len(_RECONNECT_DELAYS) - 1)]
                failures += 1
                self._stopping.wait(delay)

    def _listen_once(self, attempt: int) -> None:
        pubsub = self._pubsub(attempt)
        try:
            pubsub.subscribe(self.channel)
            while not self._stopping.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message is not None:
                    self._handle(message)
        finally:
            self._confirmed.clear()
            pubsub.close()

    def _pubsub(self, attempt: int) -> Any:
        if isinstance(self.client, RedisCluster):
            # Any node relays every message; after a failure try the next
            # one rather than wait for the channel's own node to return.
            nodes = self.client.get_nodes()  # type: ignore[no-untyped-call]
            return self.client.pubsub(node=nodes[attempt % len(nodes)])  # type: ignore[no-untyped-call]
        return self.client.pubsub()  # type: ignore[no-untyped-call]

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            # Whatever was published while we were not listening is lost, so
            # nothing held locally can be trusted any more.
            self._clear_all()
            self._confirmed.set()
            logger.debug("subscribed to %s; local tier cleared", self.channel)
            return

        if kind != "message":
            return

        try:
            service_name, user_id = orjson.loads(message["data"])
        except (orjson.JSONDecodeError, TypeError, ValueError):
            logger.warning("ignored a malformed invalidation message")
            return

        if isinstance(service_name, str) and isinstance(user_id, str):
            self.deliver(service_name, user_id)


def deliver_in_process(channel: str, service_name: str, user_id: str) -> None:
    """Evict a user from every bus on ``channel`` in this process, at once."""
    for bus in list(_live_buses):
        if bus.channel == channel:
            bus.deliver(service_name, user_id)


def _reset_after_fork() -> None:
    for bus in list(_live_buses):
        bus._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
