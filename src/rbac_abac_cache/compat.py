"""The two functions of the original services, over a process-wide cache.

Services that called ``get_user_attributes`` and
``refresh_user_attributes_from_identity_provider`` from their old module can
switch by changing the import. The cache behind them is built from the
environment on first use (see :meth:`AttributeCache.from_env`).
"""

from __future__ import annotations

import threading

from .attributes import UserAttributes
from .cache import AttributeCache

__all__ = [
    "get_user_attributes",
    "refresh_user_attributes_from_identity_provider",
    "set_default_cache",
]

_lock = threading.Lock()
_root: AttributeCache | None = None
_root_built_here = False
_by_service: dict[str, AttributeCache] = {}


def set_default_cache(cache: AttributeCache | None) -> None:
    """Use ``cache`` (and its siblings) behind the functions; ``None`` resets.

    The previous default cache is closed if it was built from the environment.
    """
    global _root, _root_built_here
    with _lock:
        previous, _root = _root, cache
        close_previous = _root_built_here and previous is not cache
        _root_built_here = False
        _by_service.clear()
        if cache is not None:
            _by_service[cache.service_name] = cache

    if previous is not None and close_previous:
        previous.close()


def _cache_for(service_name: str) -> AttributeCache:
    global _root, _root_built_here
    with _lock:
        cache = _by_service.get(service_name)
        if cache is not None:
            return cache

        if _root is None:
            _root = cache = AttributeCache.from_env(service_name=service_name)
            _root_built_here = True
        else:
            cache = _root.for_service(service_name)
        _by_service[service_name] = cache
        return cache


def get_user_attributes(
    user_id: str | int, service_name: str, auto_refresh: bool = True
) -> UserAttributes | None:
    """Return the user's attributes; see :meth:`AttributeCache.get`."""
    return _cache_for(service_name).get(user_id, auto_refresh=auto_refresh)


def refresh_user_attributes_from_identity_provider(
    user_id: str | int, service_name: str
) -> UserAttributes | None:
    """Fetch the user now, everywhere; see :meth:`AttributeCache.refresh`."""
    return _cache_for(service_name).refresh(user_id)
