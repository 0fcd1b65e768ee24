"""What the extension keeps per app, and the lazy lookup behind ``g.rbac``.

Each app the extension is initialised on gets an :class:`AppState` in
``app.extensions["rbac_abac_cache"]``: its settings, read once from
``app.config`` with the environment as fallback, and a cache that is built
on first use, so that creating the app opens no connection. The current
user's attributes are looked up at most once per request, on first use,
and kept in the request's WSGI environ.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from flask import Flask, Request, current_app, has_request_context, request
from flask.ctx import _AppCtxGlobals

from ...attributes import UserAttributes
from ...cache import AttributeCache
from ...config import (
    CacheSettings,
    ConnectionSettings,
    Setting,
    Source,
    boolean,
    environ_source,
    load_settings,
    mapping_source,
    tokens,
)
from ...exceptions import AttributesUnavailableError, InvalidUserIdError
from ...keys import check_service_name, normalize_user_id
from ...refresh import RefreshHandler

if TYPE_CHECKING:
    from .extension import RBACABAC

__all__ = [
    "DEFAULT_REFRESH_RULE",
    "EXTENSION_KEY",
    "AppState",
    "Lookup",
    "UserIdLoader",
    "current_lookup",
    "get_state",
    "install_globals",
]

logger = logging.getLogger(__name__)

EXTENSION_KEY = "rbac_abac_cache"
DEFAULT_REFRESH_RULE = "/api/refresh-user-cache/"

UserIdLoader = Callable[[], str | int | None]
"""Returns the current request's user id, or ``None`` when there is no user."""

_LOOKUP_KEY = "rbac_abac_cache.lookup"
_CONFIG_LABEL = "app.config."


class Lookup(NamedTuple):
    """The outcome of looking up the current user, once per request.

    ``user_id`` is ``None`` when there is no (valid) user; ``attributes`` is
    ``None`` also when the identity provider does not know the user; and
    ``error`` is set when no trustworthy attributes could be had.
    """

    user_id: str | None
    attributes: UserAttributes | None
    error: AttributesUnavailableError | None


_ANONYMOUS = Lookup(None, None, None)


class AppState:
    """The extension's settings and lazily built cache for one Flask app.

    Args:
        owner: The extension, which holds the user id loader.
        settings: The settings a cache is built from, unless ``cache`` is given.
        connection: Redis, identity provider and refresh-token settings.
        cache: A ready cache to use instead of building one.
        refresh_rule: URL rule of the refresh route, or ``None`` for none.
        allowed_services: Services the refresh route may refresh; ``None``
            for any.
    """

    def __init__(
        self,
        owner: RBACABAC,
        settings: CacheSettings,
        connection: ConnectionSettings,
        *,
        cache: AttributeCache | None = None,
        refresh_rule: str | None = None,
        allowed_services: tuple[str, ...] | None = None,
    ) -> None:
        self.owner = owner
        self.settings = settings
        self.connection = connection
        self.refresh_rule = refresh_rule
        self.allowed_services = allowed_services
        self._cache = cache
        self._handler: RefreshHandler | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls,
        owner: RBACABAC,
        config: Mapping[str, Any],
        *,
        cache: AttributeCache | None = None,
    ) -> AppState:
        """Read every setting from ``config``, then from the environment.

        Raises:
            ConfigurationError: A value is malformed, naming its key.
        """
        sources = [mapping_source(config, _CONFIG_LABEL), environ_source()]
        overrides = {} if cache is None else {"service_name": cache.service_name}
        settings, connection = load_settings(overrides, sources)
        return cls(
            owner,
            settings,
            connection,
            cache=cache,
            refresh_rule=_read(_REFRESH_ENDPOINT, sources),
            allowed_services=_read(_ALLOWED_SERVICES, sources),
        )

    @property
    def cache(self) -> AttributeCache:
        """The app's cache, built on first use."""
        cache = self._cache
        if cache is not None:
            return cache

        with self._lock:
            if self._cache is None:
                self._cache = self._build_cache()
            return self._cache

    def _build_cache(self) -> AttributeCache:
        settings = self.settings
        if self.connection.identity_provider_url is None:
            logger.warning(
                "IDENTITY_PROVIDER_URL is not set, so cache misses of service "
                "%r cannot be filled",
                settings.service_name,
            )
        logger.debug(
            "building the attribute cache of service %r", settings.service_name
        )
        return AttributeCache.from_settings(settings, self.connection)

    def refresh_handler(self) -> RefreshHandler:
        """The handler behind the refresh route, built on first use."""
        handler = self._handler
        if handler is not None:
            return handler

        cache = self.cache
        with self._lock:
            if self._handler is None:
                self._handler = RefreshHandler(
                    cache,
                    tokens=self.connection.refresh_tokens,
                    allowed_services=self.allowed_services,
                )
            return self._handler

    def lookup(self) -> Lookup:
        """Look the current user up: loader, then cache. Not memoised."""
        raw = self.owner.load_user_id()
        if raw is None:
            return _ANONYMOUS

        try:
            user_id = normalize_user_id(raw)
        except InvalidUserIdError as exc:
            logger.warning("the user id loader returned an invalid id: %s", exc)
            return _ANONYMOUS

        try:
            attributes = self.cache.get(user_id)
        except AttributesUnavailableError as exc:
            return Lookup(user_id, None, exc)
        return Lookup(user_id, attributes, None)


def get_state(app: Flask | None = None) -> AppState:
    """Return the extension's state of ``app`` (default: the current app).

    Raises:
        RuntimeError: The extension was not initialised on the app.
    """
    target = app if app is not None else _current_app()
    state: AppState | None = target.extensions.get(EXTENSION_KEY)
    if state is None:
        raise RuntimeError(
            "rbac_abac_cache is not set up on this app: "
            "call RBACABAC(app) or rbac.init_app(app) first"
        )
    return state


def current_lookup() -> Lookup:
    """Return the current request's lookup, made on the first call only."""
    environ = _current_request().environ
    found: Lookup | None = environ.get(_LOOKUP_KEY)
    if found is None:
        found = environ[_LOOKUP_KEY] = get_state().lookup()
    return found


# Reading an attribute through one of Flask's context proxies costs about a
# microsecond; unwrapping the proxy first costs a tenth of that, and these
# run on every guarded request.


def _current_app() -> Flask:
    return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]


def _current_request() -> Request:
    return request._get_current_object()  # type: ignore[attr-defined,no-any-return]


class _RBACGlobals(_AppCtxGlobals):
    """Flask's ``g`` with a computed, read-only ``rbac`` attribute."""

    @property
    def rbac(self) -> UserAttributes | None:
        """The current user's attributes, looked up on first access.

        ``None`` outside a request, when there is no user and when the
        identity provider does not know the user.

        Raises:
            AttributesUnavailableError: No trustworthy attributes can be
                had; the extension answers it with 503.
        """
        if not has_request_context():
            return None

        found = current_lookup()
        if found.error is not None:
            raise found.error
        return found.attributes

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "rbac":
            raise AttributeError(
                "g.rbac is looked up by RBACABAC from the user id loader; "
                "it cannot be assigned"
            )
        super().__setattr__(name, value)

    def get(self, name: str, default: Any | None = None) -> Any:
        """Like :meth:`dict.get`; ``get("rbac")`` looks the user up too."""
        if name == "rbac":
            return self.rbac
        return super().get(name, default)

    def __contains__(self, item: str) -> bool:
        return item == "rbac" or super().__contains__(item)


def install_globals(app: Flask) -> None:
    """Give ``app``'s ``g`` the ``rbac`` attribute, keeping its own globals class.

    Only the class of ``g`` is extended, so a globals class the app set
    before this call keeps working; one set afterwards replaces ``g.rbac``.
    """
    base = app.app_ctx_globals_class
    if issubclass(base, _RBACGlobals):
        return
    if base is _AppCtxGlobals:
        app.app_ctx_globals_class = _RBACGlobals
        return
    app.app_ctx_globals_class = cast(
        "type[_AppCtxGlobals]",
        type(f"RBAC{base.__name__}", (_RBACGlobals, base), {}),
    )


def _refresh_rule(value: Any, name: str) -> str | None:
    if isinstance(value, str) and value.strip().startswith("/"):
        return value.strip()
    return DEFAULT_REFRESH_RULE if boolean(value, name) else None


def _service_names(value: Any, name: str) -> tuple[str, ...]:
    services = tokens(value, name)
    for service in services:
        check_service_name(service, setting=name)
    return services


# The route's own settings, read like the cache's but only by this adapter.
_REFRESH_ENDPOINT = Setting(
    "refresh_endpoint", _refresh_rule, env="RBAC_ABAC_REFRESH_ENDPOINT"
)
_ALLOWED_SERVICES = Setting(
    "allowed_services", _service_names, env="RBAC_ABAC_REFRESH_ALLOWED_SERVICES"
)


def _read(setting: Setting, sources: Sequence[Source]) -> Any:
    """The setting's parsed value from the first source that has it, or ``None``."""
    for source in sources:
        found = source(setting)
        if found is not None:
            name, raw = found
            return setting.parse(raw, name)
    return None
