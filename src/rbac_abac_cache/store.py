"""Every Redis command the cache sends, and what happens when Redis fails.

The store translates redis-py's errors at this boundary: connection errors
and timeouts mark Redis down for ``retry_interval`` seconds and raise
:class:`StoreUnavailableError`, so that the cache stops waiting on a dead server;
other Redis errors on a read (a key of the wrong type, say) read as a miss.
Writes that must happen together run as Lua scripts on keys that share one
hash tag, so they are atomic on a single server and in a cluster alike.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
from collections.abc import Sequence
from time import monotonic
from typing import Any, Union

import redis
from redis.cluster import RedisCluster
from redis.exceptions import (
    ClusterError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["RedisClient", "RedisStore", "StoreUnavailableError"]

logger = logging.getLogger(__name__)

RedisClient = Union["redis.Redis", "RedisCluster"]

# Errors that say the server cannot be reached, as opposed to a bad command.
# A cluster reports a down cluster or an unserved slot with errors of its own
# (ClusterDownError is also a ResponseError, so it must be matched first).
_OUTAGE_ERRORS = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterError,
    RedisClusterException,
    OSError,
)

# Store an entry only if the user's generation is still the one read before
# the fetch: a refresh or invalidation that happened meanwhile wins.
_WRITE_IF_GENERATION = """
local current = redis.call('GET', KEYS[2]) or '0'
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

# Start a new generation, so that fetches already in flight cannot write.
_BUMP_GENERATION = """
local generation = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
if ARGV[2] == 'delete' then redis.call('DEL', KEYS[1]) end
if ARGV[2] == 'set' then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) end
return generation
"""

_DELETE_IF_GENERATION = """
local current = redis.call('GET', KEYS[2]) or '0'
if current ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""

# A fixed-window counter: the first hit in a window starts its expiry. A hit
# over the limit is refused without being counted, so refusals change nothing.
_TAKE_FROM_WINDOW = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
if count >= tonumber(ARGV[2]) and ttl > 0 then return {0, ttl} end
count = redis.call('INCR', KEYS[1])
ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {1, ttl}
"""

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class StoreUnavailableError(Exception):
    """Redis cannot be reached, or was marked down moments ago. Internal.

    ``skipped`` tells the second case: no command was sent.
    """

    def __init__(self, message: str, *, skipped: bool = False) -> None:
        super().__init__(message)
        self.skipped = skipped


class _Health:
    """Remembers that Redis failed, so requests skip it for a short while.

    When the interval is over, the first request to ask becomes the probe:
    the others keep skipping Redis until the probe succeeds.
    """

    def __init__(self, retry_interval: float) -> None:
        self.retry_interval = retry_interval
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._last_warning = 0.0

    def usable(self) -> bool:
        if not self._down_until:
            return True

        with self._lock:
            now = monotonic()
            if now < self._down_until:
                return False
            self._down_until = now + self.retry_interval
            return True

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            now = monotonic()
            self._down_until = now + self.retry_interval
            warn = now - self._last_warning >= 10.0
            if warn:
                self._last_warning = now

        if warn:
            logger.warning(
                "Redis is unreachable (%s); serving without it for %.1fs at a time",
                type(exc).__name__,
                self.retry_interval,
            )

    def succeeded(self) -> None:
        if self._down_until:
            with self._lock:
                recovered = self._down_until != 0.0
                self._down_until = 0.0
            if recovered:
                logger.warning("Redis is reachable again")

    @property
    def down(self) -> bool:
        return monotonic() < self._down_until


class RedisStore:
    """Reads and writes entries, generations and locks on one Redis client.

    Args:
        client: A ``redis.Redis`` or ``redis.cluster.RedisCluster``.
        retry_interval: Seconds Redis is skipped after it failed.
    """

    def __init__(self, client: RedisClient, retry_interval: float) -> None:
        self.client = client
        self.health = _Health(retry_interval)
        self.is_cluster = isinstance(client, RedisCluster)
        # Only a plain client gets the lean path: subclasses (fakeredis,
        # instrumented clients) may rely on the generic command path.
        self._get: Any = client.get
        if type(client) is redis.Redis:
            self._get = _LeanGet(client).get
        self._write_if_generation = _Script(client, _WRITE_IF_GENERATION)
        self._bump_generation = _Script(client, _BUMP_GENERATION)
        self._delete_if_generation = _Script(client, _DELETE_IF_GENERATION)
        self._release_lock = _Script(client, _RELEASE_LOCK)
        self._take_from_window = _Script(client, _TAKE_FROM_WINDOW)

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.health.usable():
            raise StoreUnavailableError("Redis was marked down", skipped=True)

        try:
            result = function(*args, **kwargs)
        except _OUTAGE_ERRORS as exc:
            self.health.failed(exc)
            raise StoreUnavailableError(str(exc)) from exc

        self.health.succeeded()
        return result

    def get(self, key: str) -> bytes | None:
        """Return the value at ``key``; a value of the wrong type reads as junk."""
        try:
            return self._call(self._get, key)  # type: ignore[no-any-return]
        except ResponseError:
            return b"<not a string>"

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Return the values at ``keys`` in one round trip (per node in a cluster)."""
        if self.is_cluster:
            cluster: RedisCluster = self.client  # type: ignore[assignment]
            return self._call(cluster.mget_nonatomic, keys)  # type: ignore[no-any-return]

        try:
            return self._call(self.client.mget, keys)  # type: ignore[no-any-return]
        except ResponseError:
            return [self.get(key) for key in keys]

    def lock_and_read(
        self,
        lock_key: str,
        token: str,
        ttl_ms: int,
        entry_key: str,
        generation_key: str,
    ) -> tuple[bool, bytes | None, str]:
        """Try to take the fetch lock and read the entry and generation, in one trip."""

        def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(lock_key, token, nx=True, px=ttl_ms)
            pipe.get(entry_key)
            pipe.get(generation_key)
            return _raise_outage(pipe.execute(raise_on_error=False))

        acquired, raw, generation = self._call(run)
        _raise_if_error(acquired, generation)
        if isinstance(raw, Exception):
            raw = b"<not a string>"
        return acquired is True, raw, _generation(generation)

    def poll(self, entry_key: str, lock_key: str) -> tuple[bytes | None, bool]:
        """Return the entry and whether the lock is still held, in one trip."""

        def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.get(entry_key)
            pipe.exists(lock_key)
            return _raise_outage(pipe.execute(raise_on_error=False))

        raw, locked = self._call(run)
        _raise_if_error(locked)
        if isinstance(raw, Exception):
            raw = b"<not a string>"
        return raw, bool(locked)

    def generation(self, generation_key: str) -> str:
        """Return the user's current generation ("0" when there is none)."""
        try:
            return _generation(self._call(self.client.get, generation_key))
        except ResponseError:
            return "junk"

    def unlock(self, lock_key: str, token: str) -> None:
        """Release the fetch lock if this token still holds it."""
        try:
            self._call(self._release_lock, keys=[lock_key], args=[token])
        except (StoreUnavailableError, RedisError):
            logger.debug("could not release %s; it expires by itself", lock_key)

    def write_if_generation(
        self,
        entry_key: str,
        generation_key: str,
        generation: str,
        value: bytes,
        ttl_ms: int,
    ) -> bool:
        """Store ``value`` unless the generation moved on; return whether stored."""
        stored = self._call(
            self._write_if_generation,
            keys=[entry_key, generation_key],
            args=[generation, value, ttl_ms],
        )
        return bool(stored)

    def bump_generation(
        self,
        entry_key: str,
        generation_key: str,
        generation_ttl_ms: int,
        *,
        action: str = "keep",
        value: bytes = b"",
        ttl_ms: int = 0,
    ) -> str:
        """Start a new generation; ``action`` may also delete or set the entry."""
        generation = self._call(
            self._bump_generation,
            keys=[entry_key, generation_key],
            args=[generation_ttl_ms, action, value, ttl_ms],
        )
        return str(generation)

    def delete_if_generation(
        self, entry_key: str, generation_key: str, generation: str
    ) -> None:
        """Delete the entry unless the generation moved on."""
        self._call(
            self._delete_if_generation,
            keys=[entry_key, generation_key],
            args=[generation],
        )

    def take_from_window(
        self, key: str, limit: int, window_ms: int
    ) -> tuple[bool, int]:
        """Count one hit in the window at ``key`` unless ``limit`` is reached.

        Returns:
            Whether the hit was allowed, and the milliseconds left in the window.
        """
        allowed, remaining = self._call(
            self._take_from_window, keys=[key], args=[window_ms, limit]
        )
        return bool(allowed), int(remaining)

    def publish(self, channel: str, message: bytes) -> None:
        """Publish ``message`` on ``channel``.

        A cluster relays a message published on any node to every node, so
        with one node down the message goes through another.
        """
        if self.is_cluster:
            self._call(self._publish_on_any_node, channel, message)
        else:
            self._call(self.client.publish, channel, message)

    def _publish_on_any_node(self, channel: str, message: bytes) -> Any:
        cluster: RedisCluster = self.client  # type: ignore[assignment]
        nodes = cluster.get_primaries()  # type: ignore[no-untyped-call]
        random.shuffle(nodes)
        for node in nodes[:-1]:
            try:
                return cluster.publish(channel, message, target_nodes=node)
            except _OUTAGE_ERRORS:
                continue
        return cluster.publish(channel, message, target_nodes=nodes[-1])


class _Script:
    """A Lua script run with EVALSHA, loaded by EVAL on the node that lacks it.

    redis-py's own script objects load a missing script on every primary of
    a cluster, which fails while any of them is down; this touches only the
    node that owns the keys.
    """

    def __init__(self, client: RedisClient, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def __call__(self, keys: list[str], args: list[Any]) -> Any:
        try:
            return self.client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return self.client.eval(self.source, len(keys), *keys, *args)


# GET commands kept packed for the lean path, per client.
_PACKED_COMMANDS = 4096


class _LeanGet:
    """GET on a few connections held back from the pool, for cache hits.

    A hit is one small command, and redis-py's generic path (retry wrapper,
    command lookup, response callbacks, and the pool's lock and readiness
    poll on every checkout) costs about a third of its time. This keeps
    redis-py's connections, so TLS, authentication and the parser are the
    client's own, and retries once on a fresh connection as the client's
    retry would. When every held connection is busy it borrows from the pool.
    """

    def __init__(self, client: redis.Redis, most: int = 4) -> None:
        self._pool = client.connection_pool
        self._idle: list[Any] = []
        self._most = most
        self._taken = 0
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._packed: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        if self._pid != os.getpid():
            self._forget_after_fork()

        try:
            connection = self._idle.pop()
        except IndexError:
            connection = self._take()

        if connection is None:
            return self._borrowed_get(key)

        try:
            return _get_once_retrying(connection, key, self._pack(connection, key))
        finally:
            self._idle.append(connection)

    def _pack(self, connection: Any, key: str) -> Any:
        # Packing costs more than the rest of the client side of a hit, and
        # hot users are read again and again; every held connection shares
        # the pool's encoder, so the bytes are the same on each of them.
        packed = self._packed.get(key)
        if packed is None:
            if len(self._packed) >= _PACKED_COMMANDS:
                self._packed.clear()
            packed = self._packed[key] = connection.pack_command("GET", key)
        return packed

    def _take(self) -> Any:
        with self._lock:
            if self._taken >= self._most:
                return None
            self._taken += 1
        return self._pool.get_connection()

    def _borrowed_get(self, key: str) -> Any:
        connection: Any = self._pool.get_connection()
        try:
            return _get_once_retrying(
                connection, key, connection.pack_command("GET", key)
            )
        finally:
            self._pool.release(connection)

    def _forget_after_fork(self) -> None:
        # The parent's sockets must not be shared; the pool makes new ones.
        self._pid = os.getpid()
        self._idle = []
        self._taken = 0
        self._lock = threading.Lock()


def _get_once_retrying(connection: Any, key: str, packed: Any) -> Any:
    """Send GET, retrying once on a reconnected socket after an outage error.

    On any failure but an error reply the connection is disconnected, since
    a reply may still be in flight; it reconnects when next used.
    """
    try:
        try:
            connection.send_packed_command(packed, check_health=False)
            return connection.read_response()
        except _OUTAGE_ERRORS:
            connection.disconnect()
            # connect() rather than the implicit connect of send_command: a
            # Sentinel-managed connection asks the sentinels for the master
            # only there, so this is how a held connection follows a failover.
            connection.connect()
            connection.send_command("GET", key)
            return connection.read_response()
    except ResponseError:
        raise
    except BaseException:
        connection.disconnect()
        raise


def _raise_outage(results: list[Any]) -> list[Any]:
    """Raise an outage that a cluster pipeline returned in place of a result."""
    for result in results:
        if isinstance(result, _OUTAGE_ERRORS):
            raise result
    return results


def _raise_if_error(*results: Any) -> None:
    """Raise an error reply (a refused command, say) found among ``results``.

    Only the entry's own value may be junk and still read as a miss.
    """
    for result in results:
        if isinstance(result, Exception):
            raise result


def _generation(value: Any) -> str:
    if value is None:
        return "0"
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value)
