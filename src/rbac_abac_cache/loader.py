"""Filling a miss: one fetch across processes, stored unless it is outdated.

The first process to miss takes a short Redis lock (``SET NX PX`` with a
random token) and fetches; the others poll for its result and fetch
themselves only if it does not come within ``lock_wait``. Every write is
checked against the user's generation, which ``refresh()`` and
``invalidate()`` bump, so a fetch that began before them can never store
its older answer over theirs.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from time import monotonic

from redis.exceptions import RedisError

from .config import CacheSettings
from .exceptions import FetchError
from .fetchers import Fetcher, call_fetcher
from .keys import KeySpace
from .serialization import CorruptEntryError, Entry, EntryCodec
from .stats import Stats
from .store import RedisStore, StoreUnavailableError

__all__ = ["Loader"]

logger = logging.getLogger(__name__)

_REDIS_FAILURES = (StoreUnavailableError, RedisError)
_FIRST_POLL = 0.002
_LONGEST_POLL = 0.01


class Loader:
    """Reads, fetches and writes the entries of one service.

    Args:
        settings: The cache's settings.
        keys: The service's key space.
        store: Redis access shared with sibling caches.
        codec: The service's entry codec.
        fetcher: Fills misses; ``None`` means they cannot be filled.
        stats: Where events are counted and degraded operation reported.
    """

    def __init__(
        self,
        settings: CacheSettings,
        keys: KeySpace,
        store: RedisStore,
        codec: EntryCodec,
        fetcher: Fetcher | None,
        stats: Stats,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.store = store
        self.codec = codec
        self.fetcher = fetcher
        self.stats = stats
        self._ttl = settings.ttl
        self._negative_ttl = settings.negative_ttl

    def decode(
        self, uid: str, key: str, raw: bytes | None, *, report: bool = True
    ) -> Entry | None:
        """Decode an entry; a corrupt one is a miss, reported unless already seen."""
        if raw is None:
            return None

        try:
            return self.codec.decode(key, raw, uid)
        except CorruptEntryError as exc:
            if report:
                self.stats.count("corrupt_entries", user_id=uid)
                self.stats.warn("ignored a corrupt entry for user %r: %s", uid, exc)
            return None

    def is_fresh(self, entry: Entry, now: float) -> bool:
        """Whether ``entry`` may be served without asking the fetcher."""
        age = now - entry.fetched_at
        if entry.attributes is None:
            return age < self._negative_ttl
        return age < self._ttl

    def fill(self, uid: str) -> Entry:
        """Fetch the user once across processes, store and return the entry.

        Raises:
            FetchError: The fetch failed (Redis failures only skip storing).
        """
        entry_key = self.keys.entry(uid)
        lock_key = self.keys.lock(uid)
        token = uuid.uuid4().hex

        generation: str | None
        try:
            acquired, raw, generation = self._lock_and_read(uid, lock_key, token)
        except _REDIS_FAILURES as exc:
            self.stats.redis_failed(exc)
            return self.fetch(uid)

        current = self.decode(uid, entry_key, raw, report=False)
        if current is not None and self.is_fresh(current, time.time()):
            if acquired:
                self.store.unlock(lock_key, token)
            return current

        if not acquired:
            waited = self._wait_for_other_process(uid, entry_key, lock_key)
            if waited is not None:
                return waited
            generation = self._current_generation(uid)

        try:
            entry = self.fetch(uid)
            if generation is not None:
                self.write(uid, entry, generation)
        finally:
            if acquired:
                self.store.unlock(lock_key, token)
        return entry

    def refresh_quietly(self, uid: str, older_than: float) -> bool:
        """Refresh an entry older than ``older_than`` seconds, in the background.

        Gives up at once if another process holds the lock or the entry was
        refreshed meanwhile, and never raises.

        Returns:
            Whether a new entry was fetched and offered to Redis.
        """
        entry_key = self.keys.entry(uid)
        lock_key = self.keys.lock(uid)
        token = uuid.uuid4().hex
        try:
            acquired, raw, generation = self._lock_and_read(uid, lock_key, token)
        except _REDIS_FAILURES:
            return False

        if not acquired:
            return False
        try:
            current = self.decode(uid, entry_key, raw, report=False)
            if current is not None and time.time() - current.fetched_at < older_than:
                return False
            self.write(uid, self.fetch(uid), generation)
            return True
        except FetchError:
            logger.debug("background refresh of user %r failed", uid)
            return False
        finally:
            self.store.unlock(lock_key, token)

    def fetch(self, uid: str) -> Entry:
        """Ask the fetcher for the user, counting the call and its outcome.

        Raises:
            FetchError: There is no fetcher, or it failed.
        """
        if self.fetcher is None:
            raise FetchError("no fetcher is configured, so misses cannot be filled")

        self.stats.count("fetches", user_id=uid)
        started = monotonic()
        try:
            value = call_fetcher(self.fetcher, uid, self.settings.service_name)
        except FetchError as exc:
            self.stats.count("fetch_errors", user_id=uid, error=type(exc).__name__)
            logger.debug("fetch of user %r failed: %s", uid, exc)
            raise

        logger.debug("fetched user %r in %.1f ms", uid, (monotonic() - started) * 1000)
        if value is None:
            self.stats.count("unknown_users", user_id=uid)
            return Entry(None, time.time())
        return Entry(value, min(value.fetched_at, time.time()))

    def write(self, uid: str, entry: Entry, generation: str) -> None:
        """Store ``entry`` unless the generation moved on since ``generation``."""
        if entry.attributes is None and self._negative_ttl <= 0:
            return

        entry_key = self.keys.entry(uid)
        try:
            stored = self.store.write_if_generation(
                entry_key,
                self.keys.generation(uid),
                generation,
                self.encode(entry_key, uid, entry),
                self.lifetime_ms(entry),
            )
        except _REDIS_FAILURES as exc:
            self.stats.redis_failed(exc)
            return

        if not stored:
            logger.debug("did not store user %r: changed during the fetch", uid)

    def encode(self, key: str, uid: str, entry: Entry) -> bytes:
        """Return the bytes that store ``entry`` under ``key``."""
        if entry.attributes is None:
            return self.codec.encode_unknown(key, uid, entry.fetched_at)
        return self.codec.encode(key, entry)

    def lifetime_ms(self, entry: Entry) -> int:
        """How long Redis keeps ``entry``, shortened at random by ``ttl_jitter``."""
        if entry.attributes is None:
            lifetime = self._negative_ttl
        else:
            lifetime = self._ttl + self.settings.stale_grace
        jitter = 1.0 - self.settings.ttl_jitter * random.random()  # noqa: S311
        return max(1, ms(lifetime * jitter))

    def _lock_and_read(
        self, uid: str, lock_key: str, token: str
    ) -> tuple[bool, bytes | None, str]:
        return self.store.lock_and_read(
            lock_key,
            token,
            ms(self.settings.lock_ttl),
            self.keys.entry(uid),
            self.keys.generation(uid),
        )

    def _wait_for_other_process(
        self, uid: str, entry_key: str, lock_key: str
    ) -> Entry | None:
        """Wait, briefly, for the lock holder's result; ``None`` if it never comes."""
        self.stats.count("lock_waits", user_id=uid)
        deadline = monotonic() + self.settings.lock_wait
        delay = _FIRST_POLL

        while True:
            remaining = deadline - monotonic()
            if remaining <= 0:
                logger.debug("gave up waiting for another fetch of user %r", uid)
                return None
            time.sleep(min(delay, remaining))
            delay = min(delay * 1.5, _LONGEST_POLL)

            try:
                raw, locked = self.store.poll(entry_key, lock_key)
            except _REDIS_FAILURES as exc:
                self.stats.redis_failed(exc)
                return None

            entry = self.decode(uid, entry_key, raw, report=False)
            if entry is not None and self.is_fresh(entry, time.time()):
                return entry
            if not locked:
                return None

    def _current_generation(self, uid: str) -> str | None:
        try:
            return self.store.generation(self.keys.generation(uid))
        except _REDIS_FAILURES as exc:
            self.stats.redis_failed(exc)
            return None


def ms(seconds: float) -> int:
    """Whole milliseconds, at least one, as Redis's ``PX`` arguments want."""
    return max(1, int(seconds * 1000))
