"""System checks: misconfiguration reported by ``manage.py check``, not at request time.

The ids are stable, so they can be silenced with ``SILENCED_SYSTEM_CHECKS``:

========================  ===================================================
``rbac_abac_cache.E001``  ``SERVICE_NAME`` is given nowhere.
``rbac_abac_cache.E002``  A cache setting is malformed, or the settings
                          cannot work together (the message names it).
``rbac_abac_cache.E003``  ``RBAC_ABAC_CACHE`` is not a dict.
``rbac_abac_cache.E004``  ``USER_ID_RESOLVER`` cannot be imported or called.
``rbac_abac_cache.E005``  ``ALLOWED_SERVICES`` or ``REFRESH_RATE_*`` is
                          malformed.
``rbac_abac_cache.E006``  ``CACHE`` is not an ``AttributeCache``, its path or
                          a factory's path.
``rbac_abac_cache.E007``  The middleware comes before
                          ``AuthenticationMiddleware``.
``rbac_abac_cache.W001``  The middleware is not installed.
``rbac_abac_cache.W002``  The refresh URL is routed but no token is set.
``rbac_abac_cache.W003``  No ``IDENTITY_PROVIDER_URL``: misses cannot be
                          filled.
``rbac_abac_cache.W004``  ``RBAC_ABAC_CACHE`` has a key this library does
                          not know.
``rbac_abac_cache.W005``  No ``AuthenticationMiddleware`` while the default
                          user id resolver reads ``request.user``.
========================  ===================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.urls import URLResolver, get_resolver
from django.utils.module_loading import import_string

from ...cache import AttributeCache
from ...config import SETTINGS
from ...exceptions import ConfigurationError
from . import conf
from .middleware import AttributeCacheMiddleware
from .views import RefreshUserCacheView

__all__ = ["check_middleware", "check_refresh_url", "check_settings"]

MIDDLEWARE_PATH = "rbac_abac_cache.contrib.django.middleware.AttributeCacheMiddleware"
AUTH_MIDDLEWARE_PATH = "django.contrib.auth.middleware.AuthenticationMiddleware"

_DOCS = "see docs/django.md"


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Check ``RBAC_ABAC_CACHE``, the top-level settings and the environment."""
    try:
        options = conf.options()
    except ConfigurationError as exc:
        return [
            Error(
                str(exc),
                hint='Set RBAC_ABAC_CACHE = {"SERVICE_NAME": "...", ...}.',
                id="rbac_abac_cache.E003",
            )
        ]

    malformed = _malformed_values()
    messages = _unknown_keys(options) + malformed + _adapter_options()
    if options.get("CACHE") is None and conf.injected_cache() is None:
        messages += _cache_settings(ready=not malformed)
    return messages


def _unknown_keys(options: Mapping[str, Any]) -> list[CheckMessage]:
    unknown = sorted(str(key) for key in options if key not in conf.KNOWN_KEYS)
    if not unknown:
        return []
    return [
        Warning(
            f"RBAC_ABAC_CACHE has unknown key(s): {', '.join(unknown)}",
            hint=f"Known keys: {', '.join(sorted(conf.KNOWN_KEYS))}.",
            id="rbac_abac_cache.W004",
        )
    ]


def _malformed_values() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for setting in SETTINGS:
        try:
            conf.read(setting.attr)
        except ConfigurationError as exc:
            messages.append(
                Error(
                    str(exc),
                    hint=f"Fix the value named above; {_DOCS}.",
                    id="rbac_abac_cache.E002",
                )
            )
    return messages


def _adapter_options() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    try:
        conf.user_id_resolver()
    except ConfigurationError as exc:
        messages.append(
            Error(
                str(exc),
                hint="Give the dotted path of a function f(request) -> user id "
                "or None.",
                id="rbac_abac_cache.E004",
            )
        )

    try:
        conf.allowed_services()
        conf.refresh_rate()
    except ConfigurationError as exc:
        messages.append(Error(str(exc), hint=f"{_DOCS}.", id="rbac_abac_cache.E005"))

    messages += _cache_option(conf.options().get("CACHE"))
    return messages


def _cache_option(option: Any) -> list[CheckMessage]:
    if option is None or isinstance(option, AttributeCache):
        return []

    try:
        found = (
            conf.import_option(option, "CACHE") if isinstance(option, str) else option
        )
    except ConfigurationError as exc:
        problem = str(exc)
    else:
        if isinstance(found, AttributeCache) or callable(found):
            return []
        problem = f"RBAC_ABAC_CACHE['CACHE'] is a {type(found).__name__}"

    return [
        Error(
            problem,
            hint="Give an AttributeCache, its dotted path, or the dotted path of "
            "a function that returns one.",
            id="rbac_abac_cache.E006",
        )
    ]


def _cache_settings(*, ready: bool) -> list[CheckMessage]:
    """Check what building the cache needs; ``ready`` when each value parsed."""
    messages: list[CheckMessage] = []
    if not _is_given("service_name"):
        messages.append(
            Error(
                "RBAC_ABAC_CACHE['SERVICE_NAME'] is not set",
                hint='Add "SERVICE_NAME": "your_service" to RBAC_ABAC_CACHE, or '
                "set RBAC_ABAC_SERVICE_NAME.",
                id="rbac_abac_cache.E001",
            )
        )
    elif ready:
        try:
            conf.load()
        except ConfigurationError as exc:
            messages.append(
                Error(str(exc), hint=f"{_DOCS}.", id="rbac_abac_cache.E002")
            )

    if not _is_given("identity_provider_url"):
        messages.append(
            Warning(
                "no identity provider is configured, so users not already "
                "cached cannot be looked up (their requests get 503)",
                hint="Set IDENTITY_PROVIDER_URL, or RBAC_ABAC_CACHE["
                "'IDENTITY_PROVIDER_URL'], or give a CACHE with a fetcher.",
                id="rbac_abac_cache.W003",
            )
        )
    return messages


def _is_given(attr: str) -> bool:
    """Whether a setting has a non-empty value, well formed or not."""
    setting = next(item for item in SETTINGS if item.attr == attr)
    for source in conf.sources():
        found = source(setting)
        if found is not None:
            value = found[1]
            return value is not None and not (
                isinstance(value, str) and not value.strip()
            )
    return False


def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Check that the middleware is installed after authentication."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or ())
    ours = _position(middleware, MIDDLEWARE_PATH, AttributeCacheMiddleware)
    auth = _position(middleware, AUTH_MIDDLEWARE_PATH, None)
    messages: list[CheckMessage] = []

    if ours is None:
        messages.append(
            Warning(
                "AttributeCacheMiddleware is not in MIDDLEWARE, so request.rbac "
                "is not set (the decorators still work)",
                hint=f"Add {MIDDLEWARE_PATH!r} after AuthenticationMiddleware.",
                id="rbac_abac_cache.W001",
            )
        )
    elif auth is not None and ours < auth:
        messages.append(
            Error(
                "AttributeCacheMiddleware comes before AuthenticationMiddleware, "
                "so the user may not be known when request.rbac is read",
                hint="Move it after "
                "'django.contrib.auth.middleware.AuthenticationMiddleware'.",
                id="rbac_abac_cache.E007",
            )
        )

    if auth is None and _uses_default_resolver():
        messages.append(
            Warning(
                "AuthenticationMiddleware is not in MIDDLEWARE and no "
                "USER_ID_RESOLVER is set, so no request has a user (all get 401)",
                hint=f"Add {AUTH_MIDDLEWARE_PATH!r}, or set "
                "RBAC_ABAC_CACHE['USER_ID_RESOLVER'].",
                id="rbac_abac_cache.W005",
            )
        )
    return messages


def _position(entries: list[Any], path: str, cls: type | None) -> int | None:
    for index, entry in enumerate(entries):
        if entry == path:
            return index

    if cls is None:
        return None
    for index, entry in enumerate(entries):
        if _is_subclass(entry, cls):
            return index
    return None


def _is_subclass(entry: Any, cls: type) -> bool:
    try:
        found = import_string(entry) if isinstance(entry, str) else entry
    except ImportError:
        return False
    return isinstance(found, type) and issubclass(found, cls)


def _uses_default_resolver() -> bool:
    try:
        return conf.options().get("USER_ID_RESOLVER") is None
    except ConfigurationError:
        return True


def check_refresh_url(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when the refresh endpoint is routed but would refuse every request."""
    if not _refresh_view_routed():
        return []

    try:
        tokens = conf.read("refresh_tokens")
    except ConfigurationError:
        return []  # Reported by check_settings as E002.

    if tokens:
        return []
    return [
        Warning(
            "the refresh endpoint is routed but no token is configured, so it "
            "refuses every request",
            hint="Set RBAC_ABAC_CACHE['REFRESH_TOKENS'] or RBAC_ABAC_REFRESH_TOKEN.",
            id="rbac_abac_cache.W002",
        )
    ]


def _refresh_view_routed() -> bool:
    try:
        patterns = get_resolver().url_patterns
    except Exception:  # Django's own URL checks report a broken URLconf.
        return False
    return _routes_refresh_view(patterns)


def _routes_refresh_view(patterns: Iterable[Any]) -> bool:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if _routes_refresh_view(pattern.url_patterns):
                return True
            continue

        view_class = getattr(pattern.callback, "view_class", None)
        if isinstance(view_class, type) and issubclass(
            view_class, RefreshUserCacheView
        ):
            return True
    return False
