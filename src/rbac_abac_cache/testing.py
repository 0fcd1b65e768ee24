"""Helpers for your own tests: a static fetcher and an in-memory cache.

A service tests its views without Redis or an identity provider::

    from rbac_abac_cache.testing import grant, make_test_cache

    cache = make_test_cache(service_name="billing_api")
    grant(cache, 42, permissions=["invoices.read"], attributes={"dept": "sales"})
    assert cache.get(42).has_permission("invoices.read")

This module imports no web framework. fakeredis is imported only by
:func:`make_test_cache`, and comes with the ``testing`` extra.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .attributes import UserAttributes
from .cache import AttributeCache
from .config import load_settings
from .exceptions import FetchError
from .fetchers import Fetcher
from .keys import normalize_user_id
from .stats import EventHook

__all__ = ["StaticFetcher", "grant", "make_test_cache", "revoke"]

logger = logging.getLogger(__name__)

UserData = UserAttributes | Mapping[str, Any]
"""A user given to :class:`StaticFetcher`: attributes, or wire-format fields."""

Users = Mapping[Any, UserData] | Iterable[UserAttributes]
"""Users keyed by id (``str`` or ``int``), or attributes keyed by their own id."""


class StaticFetcher:
    """A fetcher that serves a fixed set of users and records every call.

    Each user is served for whichever service the cache asks about, with
    ``fetched_at`` set to the time of the call, as a real identity provider
    would. A user given as :class:`UserAttributes` contributes its roles,
    permissions and attributes; one given as a dict uses the wire format's
    ``roles``, ``permissions`` and ``attributes`` keys (``user_id`` and
    ``service_name`` may be left out).

    Args:
        users: Users keyed by id (``str`` or ``int``), or an iterable of
            :class:`UserAttributes` keyed by their own ``user_id``.
        error: When set, every call raises it, as a failing identity
            provider would; see :meth:`fail`.

    Attributes:
        calls: Every ``(user_id, service_name)`` asked for, in order.

    Raises:
        InvalidAttributesError: A user's data is malformed; the message
            names the field.
    """

    def __init__(
        self,
        users: Users | None = None,
        *,
        error: Exception | None = None,
    ) -> None:
        self._users: dict[str, UserAttributes] = {}
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []
        self.error = error

        if isinstance(users, Mapping):
            for user_id, data in users.items():
                self.add(data, user_id=user_id)
        else:
            for data in users or ():
                self.add(data)

    def __call__(self, user_id: str, service_name: str) -> UserAttributes | None:
        """Return the user's attributes for ``service_name``, or ``None``.

        Raises:
            FetchError: The fetcher was told to fail.
        """
        with self._lock:
            self.calls.append((user_id, service_name))
            error = self.error
            known = self._users.get(user_id)

        if error is not None:
            raise error
        if known is None:
            return None
        return UserAttributes(
            known.user_id,
            service_name,
            known.roles,
            known.permissions,
            known.attributes,
            fetched_at=time.time(),
        )

    def __repr__(self) -> str:
        return f"<StaticFetcher users={len(self._users)} calls={len(self.calls)}>"

    def add(self, data: UserData, *, user_id: str | int | None = None) -> None:
        """Serve ``data`` for a user from now on, replacing what was there.

        Args:
            data: :class:`UserAttributes` or a wire-format dict.
            user_id: The user; defaults to the id inside ``data``.

        Raises:
            InvalidAttributesError: ``data`` is malformed, or names no user.
        """
        attributes = _to_attributes(data, user_id)
        with self._lock:
            self._users[attributes.user_id] = attributes

    def remove(self, user_id: str | int) -> None:
        """Stop serving the user, so the identity provider no longer knows them."""
        with self._lock:
            self._users.pop(normalize_user_id(user_id), None)

    def fail(self, error: Exception | None = None) -> None:
        """Make every call raise ``error`` (default: a :class:`FetchError`)."""
        self.error = error or FetchError("StaticFetcher was told to fail")

    def recover(self) -> None:
        """Undo :meth:`fail`: serve users again."""
        self.error = None

    def count(self, user_id: str | int | None = None) -> int:
        """How many calls were made, for one user or for all of them."""
        if user_id is None:
            return len(self.calls)
        wanted = normalize_user_id(user_id)
        return sum(1 for uid, _ in self.calls if uid == wanted)


def _to_attributes(data: UserData, user_id: str | int | None) -> UserAttributes:
    if isinstance(data, UserAttributes):
        if user_id is None:
            return data
        return UserAttributes(
            user_id, data.service_name, data.roles, data.permissions, data.attributes
        )

    # The service name is replaced on every call, so any valid one will do.
    fields = {"service_name": "static", **dict(data)}
    if user_id is not None:
        fields["user_id"] = user_id
    fields.setdefault("roles", [])
    fields.setdefault("permissions", [])
    fields.setdefault("attributes", {})
    return UserAttributes.from_dict(fields)


def make_test_cache(
    users: Users | None = None,
    *,
    service_name: str = "test_service",
    fetcher: Fetcher | None = None,
    auto_refresh: bool = True,
    on_event: EventHook | None = None,
    **settings: Any,
) -> AttributeCache:
    """Return a cache on a private in-memory Redis, for tests.

    The environment is not read, so a developer's ``RBAC_ABAC_*`` variables
    cannot change what a test sees. The cache's fetcher, reachable as
    ``cache.fetcher``, is a :class:`StaticFetcher` serving ``users`` unless
    ``fetcher`` is given.

    Args:
        users: Passed to :class:`StaticFetcher`.
        service_name: The cache's service.
        fetcher: Another fetcher to use instead.
        auto_refresh: Whether misses are filled from the fetcher.
        on_event: Passed to :class:`AttributeCache`.
        **settings: Any setting of
            :class:`~rbac_abac_cache.config.CacheSettings` (``ttl``,
            ``local_ttl``, ...).

    Raises:
        ImportError: fakeredis is not installed.
        ConfigurationError: A setting is malformed; the message names it.
    """
    try:
        import fakeredis
    except ImportError as exc:
        raise ImportError(
            "make_test_cache needs fakeredis: pip install rbac-abac-cache[testing]"
        ) from exc

    cache_settings, connection = load_settings(
        {"service_name": service_name, **settings}, []
    )
    return AttributeCache.from_settings(
        cache_settings,
        connection,
        redis=fakeredis.FakeRedis(),
        fetcher=fetcher if fetcher is not None else StaticFetcher(users),
        auto_refresh=auto_refresh,
        on_event=on_event,
    )


def grant(
    cache: AttributeCache,
    user_id: str | int,
    *,
    roles: Iterable[str] = (),
    permissions: Iterable[str] = (),
    attributes: Mapping[str, Any] | None = None,
) -> UserAttributes:
    """Give a user exactly these roles, permissions and attributes in ``cache``.

    The entry is stored with :meth:`AttributeCache.set`, so every instance
    sees it at once. When the cache's fetcher is a :class:`StaticFetcher`
    it learns the user too, so a later refresh or expiry keeps the grant.

    Returns:
        The attributes stored.
    """
    granted = UserAttributes(
        user_id, cache.service_name, roles, permissions, attributes
    )
    fetcher = cache.fetcher
    if isinstance(fetcher, StaticFetcher):
        fetcher.add(granted)

    cache.set(granted)
    logger.debug("granted test attributes to user %r", granted.user_id)
    return granted


def revoke(cache: AttributeCache, user_id: str | int) -> None:
    """Make the user unknown: forgotten by a :class:`StaticFetcher` and the cache."""
    fetcher = cache.fetcher
    if isinstance(fetcher, StaticFetcher):
        fetcher.remove(user_id)
    cache.invalidate(user_id)
