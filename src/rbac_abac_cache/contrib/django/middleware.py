"""``request.rbac``: the user's attributes, looked up on first use.

:class:`AttributeCacheMiddleware` sets ``request.rbac`` to a lazy object, so
a view that never reads it costs no lookup at all. :func:`lookup` is what
the middleware, the decorators, the mixins and the DRF permissions share: it
resolves the user id, reads the cache and remembers the answer on the
request, so a request is looked up at most once however many of them ask.
"""

from __future__ import annotations

import functools
import logging
import math
from time import monotonic
from typing import Any, NamedTuple

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import JsonResponse
from django.utils.functional import SimpleLazyObject

from ...attributes import UserAttributes
from ...exceptions import AttributesUnavailableError, InvalidUserIdError
from ...keys import normalize_user_id
from .conf import get_cache, resolve_user_id

__all__ = [
    "AttributeCacheMiddleware",
    "Lookup",
    "aget_attributes",
    "error_response",
    "get_attributes",
    "lookup",
    "unavailable_response",
]

logger = logging.getLogger(__name__)

_MEMO = "_rbac_abac_cache_lookup"
_WARNING_INTERVAL = 10.0
_last_warning = 0.0


class Lookup(NamedTuple):
    """Who made a request and what they may do.

    ``user_id`` is ``None`` when there is no user; ``attributes`` is
    ``None`` then, and also when the identity provider does not know the
    user.
    """

    user_id: str | None
    attributes: UserAttributes | None


def lookup(request: Any) -> Lookup:
    """Return the request's user and attributes, looked up once per request.

    Args:
        request: A Django ``HttpRequest`` or a DRF ``Request``.

    Raises:
        AttributesUnavailableError: Nothing trustworthy can be served; the
            failure is not remembered, so a later call tries again.
    """
    # DRF wraps Django's request and copies its authenticated user onto it,
    # so the answer is kept on the Django request that both of them see. The
    # instance dicts are read directly because this runs on every guarded
    # request, and a missing attribute is slow to look up.
    base = request.__dict__.get("_request", request)
    found: Lookup | None = base.__dict__.get(_MEMO)
    if found is None:
        found = base.__dict__[_MEMO] = _look_up(base)
    return found


def _look_up(request: Any) -> Lookup:
    user_id = _user_id(request)
    if user_id is None:
        return Lookup(None, None)
    return Lookup(user_id, get_cache().get(user_id))


def _user_id(request: Any) -> str | None:
    raw = resolve_user_id(request)
    if raw is None:
        return None

    try:
        return normalize_user_id(raw)
    except InvalidUserIdError as exc:
        _warn_invalid_id(exc)
        return None


def _warn_invalid_id(exc: InvalidUserIdError) -> None:
    # A broken resolver fails on every request, so say it at most every few
    # seconds; the id itself is not logged.
    global _last_warning
    now = monotonic()
    level = logging.DEBUG
    if now - _last_warning >= _WARNING_INTERVAL:
        _last_warning = now
        level = logging.WARNING
    logger.log(
        level, "the user id resolver returned an invalid id, so no user: %s", exc
    )


def get_attributes(request: Any) -> UserAttributes | None:
    """Return the request user's attributes, or ``None`` if there are none.

    ``None`` means no user, or a user the identity provider does not know.
    Unlike ``request.rbac`` this returns a plain value, so ``is None``
    works, and it needs no middleware.

    Raises:
        AttributesUnavailableError: Nothing trustworthy can be served.
    """
    return lookup(request).attributes


async def aget_attributes(request: Any) -> UserAttributes | None:
    """:func:`get_attributes` for async views: the lookup runs in a thread."""
    return await sync_to_async(get_attributes)(request)


def error_response(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> JsonResponse:
    """The adapter's JSON error answer: ``{"error": ..., "detail": ...}``."""
    return JsonResponse(
        {"error": error, "detail": detail}, status=status, headers=headers
    )


def unavailable_response(exc: AttributesUnavailableError) -> JsonResponse:
    """503 with ``Retry-After``, for attributes that cannot be had right now."""
    retry_after = max(1, math.ceil(exc.retry_after))
    return error_response(
        503,
        "unavailable",
        "the user's permissions cannot be checked right now; try again shortly",
        {"Retry-After": str(retry_after)},
    )


class AttributeCacheMiddleware:
    """Sets ``request.rbac`` lazily and answers 503 when it is unavailable.

    ``request.rbac`` is the user's :class:`UserAttributes`, or an object
    that is false when there is none (no user, or one the identity provider
    does not know); it is looked up on first use. Test it with
    ``if request.rbac:``, not ``is None``, or call :func:`get_attributes`.
    Reading it when the attributes cannot be had raises
    :class:`AttributesUnavailableError`, which this middleware turns into a
    503 with ``Retry-After``.

    Place it after ``AuthenticationMiddleware``. It serves sync and async
    stacks; in an async view read the attributes with
    ``await aget_attributes(request)``, because the first read does blocking
    I/O.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._is_async:
            return self.__acall__(request)

        request.rbac = SimpleLazyObject(functools.partial(get_attributes, request))
        return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        """Serve an async middleware stack the same way as a sync one."""
        request.rbac = SimpleLazyObject(functools.partial(get_attributes, request))
        return await self.get_response(request)

    def process_exception(self, request: Any, exception: Exception) -> Any:
        """Answer 503 for :class:`AttributesUnavailableError` raised by a view."""
        if isinstance(exception, AttributesUnavailableError):
            logger.debug("attributes unavailable for %s", request.path)
            return unavailable_response(exception)
        return None
