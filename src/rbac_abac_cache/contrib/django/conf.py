"""The ``RBAC_ABAC_CACHE`` setting, and the cache and refresh handler built from it.

Settings are read when they are used, never at import, so
``override_settings`` takes effect at once: the cache is built on first use
and rebuilt, the old one closed, whenever ``RBAC_ABAC_CACHE``,
``RBAC_ABAC_CACHE_TTL`` or ``IDENTITY_PROVIDER_URL`` changes.

``RBAC_ABAC_CACHE`` is a dict. Its cache keys are the names of
:class:`~rbac_abac_cache.config.CacheSettings` and
:class:`~rbac_abac_cache.config.ConnectionSettings` upper-cased, documented
there once: ``SERVICE_NAME`` (required), ``REDIS_URL``, ``REDIS_CLUSTER``,
``IDENTITY_PROVIDER_URL``, ``IDP_TOKEN``, ``TTL``, ``REFRESH_TOKENS`` and the
tuning knobs (``LOCAL_TTL``, ``STALE_GRACE``, ``REFRESH_AFTER``, ...). A key
left out falls back to the top-level settings ``RBAC_ABAC_CACHE_TTL`` and
``IDENTITY_PROVIDER_URL``, then to the environment variable.

The keys only this adapter reads:

``USER_ID_RESOLVER``
    Dotted path to (or a callable) ``f(request) -> user id or None``.
    Default: :func:`default_user_id`, the ``pk`` of an authenticated
    ``request.user``.
``ALLOWED_SERVICES``
    List of service names the refresh endpoint may refresh. Default: any
    well-formed name.
``REFRESH_RATE_LIMIT``, ``REFRESH_RATE_WINDOW``
    Refreshes allowed per user and service per window of seconds, across
    processes. Default 5 per 60 s.
``CACHE``
    A ready :class:`~rbac_abac_cache.AttributeCache`, or the dotted path to
    one or to a function returning one (called once). Use it for a custom
    fetcher, and in tests. The other cache keys are then not read.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from ...cache import AttributeCache
from ...config import (
    SETTINGS,
    CacheSettings,
    ConnectionSettings,
    Setting,
    Source,
    django_source,
    environ_source,
    integer,
    load_settings,
    seconds,
)
from ...exceptions import ConfigurationError
from ...keys import check_service_name
from ...refresh import RefreshHandler

__all__ = [
    "ADAPTER_KEYS",
    "KNOWN_KEYS",
    "SETTING_NAME",
    "TOP_LEVEL_SETTINGS",
    "allowed_services",
    "default_user_id",
    "get_cache",
    "get_refresh_handler",
    "import_option",
    "injected_cache",
    "load",
    "options",
    "read",
    "refresh_rate",
    "reset",
    "resolve_user_id",
    "set_cache",
    "sources",
    "user_id_resolver",
]

logger = logging.getLogger(__name__)

SETTING_NAME = "RBAC_ABAC_CACHE"

#: Top-level Django settings honoured for a cache setting, by attribute name.
TOP_LEVEL_SETTINGS = {
    "ttl": "RBAC_ABAC_CACHE_TTL",
    "identity_provider_url": "IDENTITY_PROVIDER_URL",
}

ADAPTER_KEYS = frozenset(
    {
        "USER_ID_RESOLVER",
        "ALLOWED_SERVICES",
        "REFRESH_RATE_LIMIT",
        "REFRESH_RATE_WINDOW",
        "CACHE",
    }
)
KNOWN_KEYS = frozenset(setting.django_key for setting in SETTINGS) | ADAPTER_KEYS

_SETTINGS_BY_ATTR = {setting.attr: setting for setting in SETTINGS}

UserIdResolver = Callable[[Any], object]


# Reading settings


def options() -> Mapping[str, Any]:
    """Return the ``RBAC_ABAC_CACHE`` dict as it is now (empty when unset).

    Raises:
        ConfigurationError: The setting is not a dict.
    """
    value = getattr(settings, SETTING_NAME, None)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{SETTING_NAME} must be a dict, not {type(value).__name__}"
        )
    return value


def sources() -> list[Source]:
    """The places a cache setting is looked up, in order of precedence."""
    return [django_source(options(), SETTING_NAME), _top_level, environ_source()]


def _top_level(setting: Setting) -> tuple[str, Any] | None:
    name = TOP_LEVEL_SETTINGS.get(setting.attr)
    if name is None:
        return None

    value = getattr(settings, name, None)
    if value is None:
        return None
    return name, value


def load() -> tuple[CacheSettings, ConnectionSettings]:
    """Build the cache's settings from Django's settings and the environment.

    Raises:
        ConfigurationError: A value is malformed (the message names where it
            came from) or ``SERVICE_NAME`` is given nowhere.
    """
    return load_settings({}, sources())


def read(attr: str) -> Any:
    """Return one parsed setting by attribute name, or ``None`` if not given.

    Raises:
        ConfigurationError: The value is malformed.
    """
    setting = _SETTINGS_BY_ATTR[attr]
    for source in sources():
        found = source(setting)
        if found is not None:
            name, raw = found
            return setting.parse(raw, name)
    return None


def default_user_id(request: Any) -> str | int | None:
    """The ``pk`` of ``request.user`` when authenticated, else ``None``.

    A primary key that is neither ``int`` nor ``str`` (a UUID, say) is turned
    into its string form.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None

    pk = user.pk
    if pk is None or isinstance(pk, (int, str)):
        return pk
    return str(pk)


def user_id_resolver() -> UserIdResolver:
    """Return the function that finds a request's user id.

    Raises:
        ConfigurationError: ``USER_ID_RESOLVER`` cannot be imported or is
            not callable.
    """
    value = options().get("USER_ID_RESOLVER")
    if value is None:
        return default_user_id

    resolver = (
        import_option(value, "USER_ID_RESOLVER") if isinstance(value, str) else value
    )
    if not callable(resolver):
        raise ConfigurationError(
            f"{SETTING_NAME}['USER_ID_RESOLVER'] must be a function or its "
            f"dotted path, not {type(resolver).__name__}"
        )
    return resolver  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=64)
def import_option(path: str, key: str) -> Any:
    """Import the object a dotted-path option names.

    Cached, because the resolver is looked up on every request; a failed
    import raises and so is not cached.

    Raises:
        ConfigurationError: The path cannot be imported; ``key`` is named.
    """
    try:
        return import_string(path)
    except ImportError as exc:
        raise ConfigurationError(
            f"{SETTING_NAME}[{key!r}]={path!r} cannot be imported: {exc}"
        ) from exc


def allowed_services() -> tuple[str, ...] | None:
    """Return the services the refresh endpoint may refresh; ``None`` for any.

    Raises:
        ConfigurationError: ``ALLOWED_SERVICES`` is not a list of names.
    """
    value = options().get("ALLOWED_SERVICES")
    if value is None:
        return None

    key = f"{SETTING_NAME}['ALLOWED_SERVICES']"
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigurationError(f"{key} must be a list of service names")
    return tuple(check_service_name(name, setting=key) for name in value)


def refresh_rate() -> dict[str, Any]:
    """Return the refresh endpoint's rate-limit arguments that are configured.

    Raises:
        ConfigurationError: A value is malformed.
    """
    given = options()
    rate: dict[str, Any] = {}
    if given.get("REFRESH_RATE_LIMIT") is not None:
        rate["rate_limit"] = integer(1)(
            given["REFRESH_RATE_LIMIT"], f"{SETTING_NAME}['REFRESH_RATE_LIMIT']"
        )
    if given.get("REFRESH_RATE_WINDOW") is not None:
        rate["rate_window"] = seconds(0.0, exclusive=True)(
            given["REFRESH_RATE_WINDOW"], f"{SETTING_NAME}['REFRESH_RATE_WINDOW']"
        )
    return rate


# The cache and the refresh handler


class _State:
    """The process-wide cache and handler, and who owns the cache."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.given: AttributeCache | None = None
        self.current: AttributeCache | None = None
        self.owned = False
        self.handler: RefreshHandler | None = None
        self.handler_cache: AttributeCache | None = None
        self.resolver: UserIdResolver | None = None


_state = _State()


def resolve_user_id(request: Any) -> object:
    """Return what the configured resolver says about ``request``'s user.

    The resolver is looked up once, and again after a settings change.

    Raises:
        ConfigurationError: ``USER_ID_RESOLVER`` is unusable.
    """
    resolver = _state.resolver
    if resolver is None:
        resolver = _state.resolver = user_id_resolver()
    return resolver(request)


def get_cache() -> AttributeCache:
    """Return the cache the adapter uses, building it on first use.

    A cache passed to :func:`set_cache` comes first, then the ``CACHE`` key,
    then one built from the settings.

    Raises:
        ConfigurationError: The settings are malformed or incomplete.
    """
    cache = _state.given if _state.given is not None else _state.current
    if cache is not None:
        return cache

    with _state.lock:
        if _state.current is None:
            _state.current, _state.owned = _build()
        return _state.current


def _build() -> tuple[AttributeCache, bool]:
    """Return a cache and whether it was built here (and so is ours to close)."""
    option = options().get("CACHE")
    if option is None:
        cache_settings, connection = load()
        cache = AttributeCache.from_settings(cache_settings, connection)
        logger.debug("built the cache of service %r", cache.service_name)
        return cache, True

    found = import_option(option, "CACHE") if isinstance(option, str) else option
    if isinstance(found, AttributeCache):
        return found, False

    made = found() if callable(found) else None
    if not isinstance(made, AttributeCache):
        raise ConfigurationError(
            f"{SETTING_NAME}['CACHE'] must be an AttributeCache, its dotted path, "
            "or the dotted path of a function returning one"
        )
    return made, True


def set_cache(cache: AttributeCache | None) -> None:
    """Make the adapter use ``cache`` instead of one built from the settings.

    Meant for tests and for applications that build their cache in code.
    The caller keeps ownership: the adapter never closes ``cache``. ``None``
    goes back to the settings.
    """
    reset()
    with _state.lock:
        _state.given = cache


def injected_cache() -> AttributeCache | None:
    """Return the cache given to :func:`set_cache`, if any."""
    return _state.given


def reset() -> None:
    """Forget the cache built from the settings (closing it), handler and resolver.

    The next use builds them again from the settings as they are then. It
    runs by itself when a setting changes; call it after changing the
    environment.
    """
    with _state.lock:
        cache, owned = _state.current, _state.owned
        _state.current, _state.owned = None, False
        _state.handler = _state.handler_cache = None
        _state.resolver = None

    if cache is not None and owned:
        cache.close()


def get_refresh_handler() -> RefreshHandler:
    """Return the refresh endpoint's handler over :func:`get_cache`.

    Raises:
        ConfigurationError: The settings are malformed or incomplete.
    """
    cache = get_cache()
    handler = _state.handler
    if handler is not None and _state.handler_cache is cache:
        return handler

    handler = RefreshHandler(
        cache,
        tokens=read("refresh_tokens") or (),
        allowed_services=allowed_services(),
        **refresh_rate(),
    )
    with _state.lock:
        _state.handler, _state.handler_cache = handler, cache
    return handler


def _on_setting_changed(sender: object, setting: str, **kwargs: Any) -> None:
    if setting.startswith(SETTING_NAME) or setting in TOP_LEVEL_SETTINGS.values():
        reset()


setting_changed.connect(
    _on_setting_changed, dispatch_uid="rbac_abac_cache.contrib.django.conf"
)
