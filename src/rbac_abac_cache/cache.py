"""The attribute cache: Redis in front of the identity provider.

A read goes through up to three tiers: the in-process tier (when
``local_ttl > 0``), Redis, and the fetcher. Entries are judged by the age
recorded in them (``fetched_at``), not by Redis TTLs, which only bound how
long a stale entry is kept for emergencies. See ``docs/freshness.md`` for
the rules and what users see during outages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from redis.exceptions import RedisError
from typing_extensions import Self

from .attributes import UserAttributes
from .config import CacheSettings, ConnectionSettings, environ_source, load_settings
from .connection import connect, fail_fast
from .exceptions import (
    AttributesUnavailableError,
    FetchError,
    InvalidAttributesError,
    RedisUnavailableError,
)
from .fetchers import Fetcher
from .invalidation import InvalidationBus, deliver_in_process, encode_message
from .keys import KeySpace, normalize_user_id
from .loader import Loader, ms
from .local import LocalTier
from .resources import SharedResources
from .serialization import Entry, EntryCodec
from .singleflight import SingleFlight
from .stats import EventHook, Stats
from .store import RedisClient, StoreUnavailableError

__all__ = ["AttributeCache"]

logger = logging.getLogger(__name__)

_MAX_BATCH_FETCHERS = 8
# Longest wait for the invalidation subscription on the local tier's first use.
_FIRST_SUBSCRIBE_WAIT = 0.25
# Integer ids below this size are looked up in the local tier before checks.
_INT_KEYS = 10**18


class AttributeCache:
    """Users' attributes for one service, cached in Redis and refreshed from a fetcher.

    Args:
        redis: A ``redis.Redis`` or ``redis.cluster.RedisCluster`` client, or
            a URL from which a client with short timeouts is built. A plain
            ``redis.Redis`` lends its connection settings to a pool of the
            cache's own that fails fast (see :func:`connection.fail_fast`).
        fetcher: Called as ``fetcher(user_id, service_name)`` to fill misses;
            ``None`` means misses cannot be filled.
        service_name: The service whose attributes this cache holds.
        ttl: Seconds an entry is served without asking the fetcher.
            ``None`` reads ``RBAC_ABAC_CACHE_TTL``, else 86400.
        auto_refresh: Whether :meth:`get` fills a miss from the fetcher.
        refresh_after, stale_grace, negative_ttl, local_ttl, local_maxsize,
        key_prefix, ttl_jitter, lock_ttl, lock_wait, redis_retry_interval,
        refresh_workers, max_entry_bytes, signing_key: The tuning settings,
            documented once in :class:`~rbac_abac_cache.config.CacheSettings`.
            Each one left as ``None`` is read from its environment variable
            (``RBAC_ABAC_CACHE_<NAME>``), else takes its default.
        on_event: Called as ``on_event(name, details)`` for every counted
            event (see :meth:`stats`), for metrics.

    Raises:
        ConfigurationError: A setting is malformed or cannot work; the
            message names it.
    """

    def __init__(
        self,
        redis: RedisClient | str,
        fetcher: Fetcher | None,
        service_name: str,
        ttl: float | None = None,
        auto_refresh: bool = True,
        *,
        refresh_after: float | None = None,
        stale_grace: float | None = None,
        negative_ttl: float | None = None,
        local_ttl: float | None = None,
        local_maxsize: int | None = None,
        key_prefix: str | None = None,
        ttl_jitter: float | None = None,
        lock_ttl: float | None = None,
        lock_wait: float | None = None,
        redis_retry_interval: float | None = None,
        refresh_workers: int | None = None,
        max_entry_bytes: int | None = None,
        signing_key: str | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        overrides = {
            "service_name": service_name,
            "ttl": ttl,
            "refresh_after": refresh_after,
            "stale_grace": stale_grace,
            "negative_ttl": negative_ttl,
            "local_ttl": local_ttl,
            "local_maxsize": local_maxsize,
            "key_prefix": key_prefix,
            "ttl_jitter": ttl_jitter,
            "lock_ttl": lock_ttl,
            "lock_wait": lock_wait,
            "redis_retry_interval": redis_retry_interval,
            "refresh_workers": refresh_workers,
            "max_entry_bytes": max_entry_bytes,
            "signing_key": signing_key,
        }
        settings, connection = load_settings(overrides, [environ_source()])
        client, owns_client = _client(redis, connection)
        shared = SharedResources(client, owns_client, fetcher, settings)
        self._setup(settings, shared, auto_refresh, on_event)

    @classmethod
    def from_env(
        cls,
        *,
        redis: RedisClient | str | None = None,
        fetcher: Fetcher | None = None,
        auto_refresh: bool = True,
        on_event: EventHook | None = None,
        **overrides: Any,
    ) -> Self:
        """Build a cache from environment variables, with keyword overrides.

        Reads ``RBAC_ABAC_SERVICE_NAME``, ``RBAC_ABAC_REDIS_URL`` (else
        ``REDIS_URL``), ``IDENTITY_PROVIDER_URL``, ``RBAC_ABAC_IDP_TOKEN`` and
        every ``RBAC_ABAC_CACHE_<SETTING>``. Without ``fetcher``, an
        :class:`~rbac_abac_cache.HttpIdentityProvider` for
        ``IDENTITY_PROVIDER_URL`` is used when that is set.

        Raises:
            ConfigurationError: A variable is malformed; the message names it.
        """
        settings, connection = load_settings(overrides, [environ_source()])
        return cls.from_settings(
            settings,
            connection,
            redis=redis,
            fetcher=fetcher,
            auto_refresh=auto_refresh,
            on_event=on_event,
        )

    @classmethod
    def from_settings(
        cls,
        settings: CacheSettings,
        connection: ConnectionSettings | None = None,
        *,
        redis: RedisClient | str | None = None,
        fetcher: Fetcher | None = None,
        auto_refresh: bool = True,
        on_event: EventHook | None = None,
    ) -> Self:
        """Build a cache from settings objects, as the framework adapters do."""
        connection = connection or ConnectionSettings()
        client, owns_client = _client(redis or connection.redis_url, connection)
        shared = SharedResources(client, owns_client, fetcher, settings)
        if fetcher is None and connection.identity_provider_url:
            from .identity_provider import HttpIdentityProvider

            shared.own_fetcher(HttpIdentityProvider.from_settings(connection))

        self = object.__new__(cls)
        self._setup(settings, shared, auto_refresh, on_event)
        return self

    def _setup(
        self,
        settings: CacheSettings,
        shared: SharedResources,
        auto_refresh: bool,
        on_event: EventHook | None,
    ) -> None:
        self.settings = settings
        self.service_name = settings.service_name
        self.auto_refresh = auto_refresh
        self._shared = shared
        self._store = shared.store
        self._keys = KeySpace(settings.key_prefix, settings.service_name)
        self._stats = Stats(on_event)
        self._on_event = on_event
        codec = EntryCodec(
            settings.service_name,
            max_bytes=settings.max_entry_bytes,
            signing_key=settings.signing_key,
        )
        self._loader = Loader(
            settings, self._keys, shared.store, codec, shared.fetcher, self._stats
        )
        self._flight: SingleFlight[Entry] = SingleFlight()
        self._ttl = settings.ttl
        self._refresh_after = settings.refresh_after

        self._local: LocalTier | None = None
        self._bus: InvalidationBus | None = None
        if settings.local_ttl > 0:
            self._local = LocalTier(settings.local_ttl, settings.local_maxsize)
            self._bus = shared.bus(self._keys.channel)
            self._bus.register(settings.service_name, self._local)

    def __repr__(self) -> str:
        return f"<AttributeCache service_name={self.service_name!r} ttl={self._ttl:g}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def fetcher(self) -> Fetcher | None:
        """The fetcher that fills misses, shared with sibling caches."""
        return self._shared.fetcher

    @property
    def redis(self) -> RedisClient:
        """The Redis client, shared with sibling caches."""
        return self._shared.client

    def for_service(self, service_name: str) -> AttributeCache:
        """Return a cache for another service sharing this one's pools and fetcher.

        Closing any of the siblings closes the shared Redis client and
        threads; close the one you built, once, at shutdown.
        """
        settings = replace(self.settings, service_name=service_name)
        sibling = object.__new__(type(self))
        sibling._setup(settings, self._shared, self.auto_refresh, self._on_event)
        return sibling

    def key_for(self, user_id: str | int) -> str:
        """Return the Redis key that holds the user's entry."""
        return self._keys.entry(normalize_user_id(user_id))

    def stats(self) -> Mapping[str, int]:
        """Return the counters of this instance (see ``stats.EVENTS``)."""
        return self._stats.snapshot()

    def close(self) -> None:
        """Stop background threads and close the Redis client if it was built here."""
        self._shared.close()

    # Reading

    def get(
        self, user_id: str | int, *, auto_refresh: bool | None = None
    ) -> UserAttributes | None:
        """Return the user's attributes, filling a miss from the fetcher.

        Args:
            user_id: The user, as ``str`` or ``int``.
            auto_refresh: Overrides the cache's ``auto_refresh`` for this call.

        Returns:
            The attributes, or ``None`` when the identity provider does not
            know the user, or on a miss with ``auto_refresh`` off.

        Raises:
            InvalidUserIdError: ``user_id`` is malformed; no fetch is made.
            AttributesUnavailableError: Nothing trustworthy can be served.
                Redis errors are never raised.
        """
        local = self._local
        if local is not None:
            # Only valid ids are ever stored, so a hit needs no validation.
            if type(user_id) is str:
                value = local.get(user_id)
            elif type(user_id) is int and -_INT_KEYS < user_id < _INT_KEYS:
                value = local.get(str(user_id))
            else:
                value = None
            if value is not None:
                self._count_local_hit(value)
                return value

        uid = normalize_user_id(user_id)
        auto = self.auto_refresh if auto_refresh is None else auto_refresh
        return self._get(uid, auto)

    def _count_local_hit(self, value: UserAttributes) -> None:
        stats = self._stats
        stats.hits_local += 1
        if stats.hook is not None:
            stats.report("hits_local", {"user_id": value.user_id})

    def _get(self, uid: str, auto_refresh: bool) -> UserAttributes | None:
        sequence = self._local_sequence()
        entry = self._read(uid)
        now = time.time()

        if entry is not None and self._loader.is_fresh(entry, now):
            return self._serve(uid, entry, sequence, now)

        self._stats.count("misses", user_id=uid)
        logger.debug("miss for user %r: %s", uid, "expired" if entry else "absent")
        if not auto_refresh:
            return None
        return self._load(uid, entry, sequence)

    def get_many(
        self, user_ids: Iterable[str | int], *, auto_refresh: bool | None = None
    ) -> dict[str, UserAttributes]:
        """Return the attributes of every found user, keyed by normalised id.

        Cached entries are read in one round trip; misses are filled as in
        :meth:`get`, a few at a time. Users who are unknown, or whose
        attributes cannot be had, are left out.

        Raises:
            InvalidUserIdError: One of the ids is malformed; nothing is read.
        """
        ids = list(dict.fromkeys(normalize_user_id(user_id) for user_id in user_ids))
        auto = self.auto_refresh if auto_refresh is None else auto_refresh
        found: dict[str, UserAttributes] = {}

        remaining = self._take_local(ids, found)
        if not remaining:
            return found

        sequence = self._local_sequence()
        misses = self._read_many(remaining, found, sequence)
        if misses and auto:
            self._load_many(misses, found, sequence)
        return found

    def _take_local(
        self, ids: list[str], found: dict[str, UserAttributes]
    ) -> list[str]:
        if self._local is None:
            return ids

        remaining = []
        for uid in ids:
            value = self._local.get(uid)
            if value is None:
                remaining.append(uid)
            else:
                self._count_local_hit(value)
                found[uid] = value
        return remaining

    def _read_many(
        self, ids: list[str], found: dict[str, UserAttributes], sequence: int
    ) -> list[tuple[str, Entry | None]]:
        keys = [self._keys.entry(uid) for uid in ids]
        try:
            raws = self._store.get_many(keys)
        except (StoreUnavailableError, RedisError) as exc:
            self._stats.redis_failed(exc)
            raws = [None] * len(ids)

        misses: list[tuple[str, Entry | None]] = []
        now = time.time()
        for uid, key, raw in zip(ids, keys, raws, strict=True):
            entry = self._loader.decode(uid, key, raw)
            if entry is None or not self._loader.is_fresh(entry, now):
                self._stats.count("misses", user_id=uid)
                misses.append((uid, entry))
                continue

            value = self._serve(uid, entry, sequence, now)
            if value is not None:
                found[uid] = value
        return misses

    def _load_many(
        self,
        misses: list[tuple[str, Entry | None]],
        found: dict[str, UserAttributes],
        sequence: int,
    ) -> None:
        def load(uid: str, stale: Entry | None) -> None:
            try:
                value = self._load(uid, stale, sequence)
            except AttributesUnavailableError:
                logger.debug("left user %r out of get_many: unavailable", uid)
                return
            if value is not None:
                found[uid] = value

        if len(misses) == 1:
            load(*misses[0])
            return

        with ThreadPoolExecutor(
            max_workers=min(_MAX_BATCH_FETCHERS, len(misses)),
            thread_name_prefix="rbac-abac-cache-batch",
        ) as pool:
            for future in [pool.submit(load, uid, stale) for uid, stale in misses]:
                future.result()

    def _serve(
        self, uid: str, entry: Entry, sequence: int, now: float
    ) -> UserAttributes | None:
        value = entry.attributes
        if value is None:
            self._stats.count("negative_hits", user_id=uid)
            return None

        stats = self._stats
        stats.hits_redis += 1
        if stats.hook is not None:
            stats.report("hits_redis", {"user_id": uid})
        logger.debug("Redis hit for user %r", uid)
        refresh_after = self._refresh_after
        if refresh_after is not None and now - entry.fetched_at >= refresh_after:
            self._refresh_in_background(uid)
        self._remember(uid, entry, sequence, now)
        return value

    def _read(self, uid: str) -> Entry | None:
        key = self._keys.entry(uid)
        try:
            raw = self._store.get(key)
        except StoreUnavailableError as exc:
            self._stats.redis_failed(exc)
            return None
        return self._loader.decode(uid, key, raw)

    # Filling misses

    def _load(
        self, uid: str, stale: Entry | None, sequence: int
    ) -> UserAttributes | None:
        try:
            entry = self._flight.do(uid, lambda: self._loader.fill(uid))
        except FetchError as exc:
            return self._serve_stale(uid, stale, exc)

        if entry.attributes is not None:
            self._remember(uid, entry, sequence, time.time())
        return entry.attributes

    def _serve_stale(
        self, uid: str, stale: Entry | None, error: FetchError
    ) -> UserAttributes:
        now = time.time()
        grace_end = self._ttl + self.settings.stale_grace
        if (
            stale is not None
            and stale.attributes is not None
            and now - stale.fetched_at < grace_end
        ):
            self._stats.count("stale_served", user_id=uid)
            self._stats.warn(
                "serving stale attributes of user %r (%.0fs old): %s",
                uid,
                now - stale.fetched_at,
                error,
                log=logger,
            )
            return stale.attributes

        self._stats.count("unavailable", user_id=uid)
        raise AttributesUnavailableError(
            f"attributes of user {uid!r} are unavailable: {error}",
            retry_after=max(1.0, self.settings.redis_retry_interval),
        ) from error

    def _refresh_in_background(self, uid: str) -> None:
        older_than = self._refresh_after or self._ttl

        def refresh() -> None:
            if self._loader.refresh_quietly(uid, older_than):
                self._announce(uid)

        if self._shared.submit((self.service_name, uid), refresh):
            self._stats.count("background_refreshes", user_id=uid)

    # The in-process tier

    def _local_sequence(self) -> int:
        bus = self._bus
        if bus is None:
            return 0

        if not bus.listening:
            # First use in this process: subscribe before reading Redis, so
            # that this very read may already be kept locally.
            bus.wait_confirmed(_FIRST_SUBSCRIBE_WAIT)
        return bus.sequence

    def _remember(self, uid: str, entry: Entry, sequence: int, now: float) -> None:
        local, bus = self._local, self._bus
        if local is None or bus is None or entry.attributes is None:
            return

        bus.ensure_listening()
        if not bus.confirmed or bus.sequence != sequence:
            return

        remaining = entry.fetched_at + self._ttl - now
        if remaining > 0:
            local.put(uid, entry.attributes, remaining)

    # Changes

    def refresh(self, user_id: str | int) -> UserAttributes | None:
        """Fetch the user now, store the result and tell every instance.

        The cached entry is distrusted from this moment: fetches that
        started earlier cannot overwrite the result, and if this fetch fails
        the old entry is deleted rather than served as stale.

        Returns:
            The fresh attributes, or ``None`` if the identity provider does
            not know the user.

        Raises:
            InvalidUserIdError: ``user_id`` is malformed.
            FetchError: The fetcher failed.
            RedisUnavailableError: The result could not be stored in Redis.
        """
        uid = normalize_user_id(user_id)
        entry_key = self._keys.entry(uid)
        generation_key = self._keys.generation(uid)

        generation = self._change(
            lambda: self._store.bump_generation(
                entry_key, generation_key, self._generation_ttl_ms()
            )
        )
        self._evict_in_process(uid)

        try:
            entry = self._loader.fetch(uid)
        except FetchError:
            if generation is not None:
                self._change(
                    lambda: self._store.delete_if_generation(
                        entry_key, generation_key, generation
                    )
                )
            self._announce(uid)
            raise

        if generation is not None:
            self._loader.write(uid, entry, generation)
        self._announce(uid)
        if generation is None:
            raise RedisUnavailableError(
                f"refreshed user {uid!r} but could not store the result in Redis"
            )
        return entry.attributes

    def invalidate(self, user_id: str | int) -> None:
        """Delete the user's entry everywhere; the next read fetches it again.

        Raises:
            InvalidUserIdError: ``user_id`` is malformed.
            RedisUnavailableError: Redis could not be reached, so other
                instances may still hold the entry.
        """
        uid = normalize_user_id(user_id)
        done = self._change(
            lambda: self._store.bump_generation(
                self._keys.entry(uid),
                self._keys.generation(uid),
                self._generation_ttl_ms(),
                action="delete",
            )
        )
        self._evict_in_process(uid)
        self._announce(uid)
        if done is None:
            raise RedisUnavailableError(f"could not invalidate user {uid!r} in Redis")

    def set(self, attributes: UserAttributes) -> None:
        """Store ``attributes`` as the user's current entry and tell every instance.

        Raises:
            InvalidAttributesError: ``attributes`` is not a
                :class:`UserAttributes` of this cache's service.
            RedisUnavailableError: Redis could not be reached.
        """
        if not isinstance(attributes, UserAttributes):
            raise InvalidAttributesError(
                f"set() takes UserAttributes, not {type(attributes).__name__}"
            )
        if attributes.service_name != self.service_name:
            raise InvalidAttributesError(
                f"service_name: {attributes.service_name!r} is not this cache's "
                f"service {self.service_name!r}"
            )

        uid = attributes.user_id
        entry = Entry(attributes, attributes.fetched_at)
        entry_key = self._keys.entry(uid)
        done = self._change(
            lambda: self._store.bump_generation(
                entry_key,
                self._keys.generation(uid),
                self._generation_ttl_ms(),
                action="set",
                value=self._loader.encode(entry_key, uid, entry),
                ttl_ms=self._loader.lifetime_ms(entry),
            )
        )
        self._evict_in_process(uid)
        self._announce(uid)
        if done is None:
            raise RedisUnavailableError(f"could not store user {uid!r} in Redis")

    def _take_refresh_quota(self, user_id: str, limit: int, window: float) -> float:
        """Count a refresh request; return 0, or seconds to wait when over ``limit``.

        The count lives in Redis, so the limit holds across processes.

        Raises:
            RedisUnavailableError: Redis could not count the request.
        """
        key = self._keys.rate_limit(user_id)
        try:
            allowed, remaining_ms = self._store.take_from_window(key, limit, ms(window))
        except (StoreUnavailableError, RedisError) as exc:
            self._stats.redis_failed(exc)
            raise RedisUnavailableError(
                "could not check the refresh rate limit"
            ) from exc

        if allowed:
            return 0.0
        return max(remaining_ms, 1) / 1000

    def _change(self, operation: Any) -> Any:
        """Run a Redis write; ``None`` when Redis could not take it."""
        try:
            result = operation()
        except (StoreUnavailableError, RedisError) as exc:
            self._stats.redis_failed(exc)
            return None
        return "done" if result is None else result

    def _evict_in_process(self, uid: str) -> None:
        if self._local is not None:
            self._local.evict(uid)
        deliver_in_process(self._keys.channel, self.service_name, uid)

    def _announce(self, uid: str) -> None:
        self._stats.count("invalidations", user_id=uid)
        self._evict_in_process(uid)
        try:
            self._store.publish(
                self._keys.channel, encode_message(self.service_name, uid)
            )
        except (StoreUnavailableError, RedisError) as exc:
            self._stats.redis_failed(exc)

    def _generation_ttl_ms(self) -> int:
        # A generation must outlive every entry and fetch it could race with.
        settings = self.settings
        return ms(settings.ttl + settings.stale_grace + settings.lock_ttl + 60)


def _client(
    redis: RedisClient | str, connection: ConnectionSettings
) -> tuple[RedisClient, bool]:
    if isinstance(redis, str):
        return connect(
            redis, cluster=connection.redis_cluster, timeout=connection.redis_timeout
        ), True
    return fail_fast(redis, connection.redis_timeout)
