"""Decorators that guard function views with the user's roles, permissions and
attributes.

Every guard answers the same way, with a JSON body ``{"error": ...,
"detail": ...}``:

- no user (or an invalid id from the resolver): 401 ``unauthorized``;
- a user the identity provider does not know: 403 ``forbidden``;
- a user who lacks what the view requires: 403 ``forbidden``;
- attributes that cannot be had right now: 503 ``unavailable`` with
  ``Retry-After``.

They work with or without :class:`~.middleware.AttributeCacheMiddleware`,
and on sync and async views.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.http import HttpResponse

from ...attributes import UserAttributes
from ...exceptions import AttributesUnavailableError
from ...policy import Rule, attribute_equals, has_all_permissions, has_any_role
from .middleware import error_response, lookup, unavailable_response

__all__ = [
    "authorize",
    "require_attributes",
    "require_permission",
    "require_role",
    "require_rule",
]

logger = logging.getLogger(__name__)

View = TypeVar("View", bound=Callable[..., Any])
RuleLike = Rule | Callable[[UserAttributes, Any], bool]


def authorize(
    request: Any, rule: RuleLike, load_resource: Callable[[], Any] | None = None
) -> HttpResponse | None:
    """Check ``rule`` for the request's user; return the refusal, or ``None``.

    Args:
        request: The request being served.
        rule: Called as ``rule(attributes, resource)``; see
            :mod:`rbac_abac_cache.policy`.
        load_resource: Returns the resource the rule is checked against. It
            is called only once the user is known, so an anonymous request
            never loads it.

    Returns:
        ``None`` when the user may go on, else the 401, 403 or 503 answer.
    """
    try:
        user_id, attributes = lookup(request)
    except AttributesUnavailableError as exc:
        return unavailable_response(exc)

    if user_id is None:
        return error_response(401, "unauthorized", "authentication is required")

    if attributes is None:
        logger.debug("denied user %r: unknown to the identity provider", user_id)
        return error_response(
            403, "forbidden", "the identity provider does not know this user"
        )

    resource = load_resource() if load_resource is not None else None
    if not rule(attributes, resource):
        description = _describe(rule)
        logger.debug("denied user %r: requires %s", user_id, description)
        return error_response(403, "forbidden", f"this requires {description}")
    return None


def require_rule(
    rule: RuleLike, resource: Callable[..., Any] | None = None
) -> Callable[[View], View]:
    """Guard a view with a policy rule, optionally against a resource.

    Args:
        rule: A :class:`~rbac_abac_cache.policy.Rule`, or any
            ``f(attributes, resource) -> bool``.
        resource: Called with the view's arguments, ``(request, *args,
            **kwargs)``, to load what the rule is checked against (say, the
            invoice named in the URL). It may raise ``Http404``.

    Example::

        @require_rule(same_attribute("department"), resource=load_invoice)
        def invoice(request, pk): ...
    """
    if not callable(rule):
        raise TypeError(f"rule must be callable, not {type(rule).__name__}")

    def decorate(view: View) -> View:
        if iscoroutinefunction(view):
            return _guard_async(view, rule, resource)
        return _guard(view, rule, resource)

    return decorate


def _guard(view: View, rule: RuleLike, resource: Callable[..., Any] | None) -> View:
    @functools.wraps(view)
    def guarded(request: Any, *args: Any, **kwargs: Any) -> Any:
        refusal = authorize(request, rule, _loader(resource, request, args, kwargs))
        if refusal is not None:
            return refusal
        return view(request, *args, **kwargs)

    return guarded  # type: ignore[return-value]


def _guard_async(
    view: View, rule: RuleLike, resource: Callable[..., Any] | None
) -> View:
    # The lookup may wait on Redis or the identity provider, so it runs in a
    # thread rather than blocking the event loop.
    @functools.wraps(view)
    async def guarded(request: Any, *args: Any, **kwargs: Any) -> Any:
        loader = _loader(resource, request, args, kwargs)
        refusal = await sync_to_async(authorize)(request, rule, loader)
        if refusal is not None:
            return refusal
        return await view(request, *args, **kwargs)

    return guarded  # type: ignore[return-value]


def _loader(
    resource: Callable[..., Any] | None,
    request: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Callable[[], Any] | None:
    if resource is None:
        return None
    return functools.partial(resource, request, *args, **kwargs)


def require_permission(*permissions: str) -> Callable[[View], View]:
    """Let through users granted every one of ``permissions`` (wildcards count).

    Example::

        @require_permission("invoices.read")
        def invoices(request): ...
    """
    _check_names(permissions, "require_permission")
    return require_rule(has_all_permissions(*permissions))


def require_role(*roles: str) -> Callable[[View], View]:
    """Let through users who have at least one of ``roles``."""
    _check_names(roles, "require_role")
    return require_rule(has_any_role(*roles))


def require_attributes(**expected: Any) -> Callable[[View], View]:
    """Let through users whose attributes hold every expected value.

    A list attribute matches when it contains the value, as in
    :func:`rbac_abac_cache.policy.attribute_equals`.
    """
    if not expected:
        raise TypeError("require_attributes needs at least one name=value")
    return require_rule(attribute_equals(**expected))


def _check_names(names: tuple[str, ...], decorator: str) -> None:
    """Refuse at import time what would otherwise fail on every request."""
    if not names:
        raise TypeError(f"{decorator} needs at least one name")

    for name in names:
        if callable(name):
            raise TypeError(
                f"{decorator} takes names: use @{decorator}('name'), with parentheses"
            )
        if not isinstance(name, str) or not name:
            raise TypeError(f"{decorator} takes non-empty strings, not {name!r}")


def _describe(rule: RuleLike) -> str:
    description = getattr(rule, "description", None)
    if isinstance(description, str):
        return description
    return str(getattr(rule, "__name__", "a rule"))
