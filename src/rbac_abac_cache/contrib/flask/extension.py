"""The Flask extension: configuration, ``g.rbac`` and the refresh route."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask

from ...cache import AttributeCache
from ...exceptions import AttributesUnavailableError
from ...policy import Rule
from . import decorators
from .responses import unavailable_response
from .state import EXTENSION_KEY, AppState, UserIdLoader, get_state, install_globals
from .views import REFRESH_ENDPOINT, REFRESH_METHODS, refresh_user_cache

__all__ = ["RBACABAC"]

logger = logging.getLogger(__name__)

L = TypeVar("L", bound=UserIdLoader)
F = TypeVar("F", bound=Callable[..., Any])


class RBACABAC:
    """Authorises a Flask app's requests from its users' cached attributes.

    ``RBACABAC(app)``, or ``RBACABAC()`` then :meth:`init_app` in an app
    factory. Settings are read from ``app.config`` under the environment
    variables' names, each falling back to the environment itself:

    - ``RBAC_ABAC_SERVICE_NAME`` (required unless ``cache`` is given),
      ``RBAC_ABAC_REDIS_URL``, ``IDENTITY_PROVIDER_URL``,
      ``RBAC_ABAC_IDP_TOKEN``, ``RBAC_ABAC_CACHE_TTL`` and every other
      ``RBAC_ABAC_CACHE_<KNOB>`` of
      :class:`~rbac_abac_cache.config.CacheSettings`;
    - ``RBAC_ABAC_REFRESH_ENDPOINT``: true registers
      ``POST /api/refresh-user-cache/``; a string starting with ``/`` is
      used as the URL rule instead. Default: no route;
    - ``RBAC_ABAC_REFRESH_TOKENS`` (or ``RBAC_ABAC_REFRESH_TOKEN``): the
      tokens the route accepts, comma-separated or a list;
    - ``RBAC_ABAC_REFRESH_ALLOWED_SERVICES``: the services the route may
      refresh, comma-separated or a list. Default: any.

    The cache is built on first use, so initialising the extension opens no
    connection. Closing it at shutdown is the app's business:
    ``rbac.get_cache(app).close()``.

    Args:
        app: The app to initialise now, if any.
        cache: A ready cache to use instead of one built from the settings;
            it is shared by every app initialised with this extension.

    Raises:
        ConfigurationError: A setting is malformed or missing; the message
            names the key.
    """

    def __init__(
        self, app: Flask | None = None, *, cache: AttributeCache | None = None
    ) -> None:
        self._cache = cache
        self._user_id_loader: UserIdLoader | None = None
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return f"<RBACABAC cache={self._cache!r}>"

    def init_app(self, app: Flask) -> None:
        """Read ``app``'s settings, add ``g.rbac`` and, if asked, the refresh route.

        Raises:
            ConfigurationError: A setting is malformed or missing; the
                message names the key.
            RuntimeError: The extension is already set up on ``app``.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("rbac_abac_cache is already set up on this app")

        state = AppState.from_config(self, app.config, cache=self._cache)
        app.extensions[EXTENSION_KEY] = state
        install_globals(app)

        # An app's own handler, registered earlier, is left in place.
        if AttributesUnavailableError not in app.error_handler_spec[None][None]:
            app.register_error_handler(AttributesUnavailableError, unavailable_response)

        if state.refresh_rule is not None:
            app.add_url_rule(
                state.refresh_rule,
                endpoint=REFRESH_ENDPOINT,
                view_func=refresh_user_cache,
                methods=REFRESH_METHODS,
                provide_automatic_options=False,
            )
            logger.debug("refresh route registered at %s", state.refresh_rule)

    def user_id_loader(self, loader: L) -> L:
        """Register ``loader() -> user id or None``, which names the request's user.

        It is called at most once per request, the first time the user's
        attributes are needed. ``None``, or an id that is not a valid user
        id, means there is no user.
        """
        self._user_id_loader = loader
        return loader

    def load_user_id(self) -> str | int | None:
        """Return what the registered loader says about the current request.

        Raises:
            RuntimeError: No loader is registered.
        """
        if self._user_id_loader is None:
            raise RuntimeError(
                "RBACABAC has no user id loader: decorate a function with "
                "@rbac.user_id_loader"
            )
        return self._user_id_loader()

    def get_cache(self, app: Flask | None = None) -> AttributeCache:
        """Return the cache of ``app`` (default: the current app), building it.

        Raises:
            RuntimeError: The extension is not set up on the app.
        """
        return get_state(app).cache

    def require(
        self, rule: Rule, *, resource: Callable[..., Any] | None = None
    ) -> Callable[[F], F]:
        """Allow the view only if ``rule(user, resource)`` holds.

        See :func:`rbac_abac_cache.contrib.flask.require`.
        """
        return decorators.require(rule, resource=resource)

    def require_permission(self, *permissions: str) -> Callable[[F], F]:
        """Allow the view only to a user granted every one of ``permissions``."""
        return decorators.require_permission(*permissions)

    def require_role(self, *roles: str) -> Callable[[F], F]:
        """Allow the view only to a user with at least one of ``roles``."""
        return decorators.require_role(*roles)

    def require_attributes(self, **expected: Any) -> Callable[[F], F]:
        """Allow the view only to a user whose attributes equal ``expected``."""
        return decorators.require_attributes(**expected)
