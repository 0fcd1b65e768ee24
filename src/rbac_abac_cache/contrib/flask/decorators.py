"""View decorators that guard Flask views with the user's attributes.

Each decorator finds the extension of the app serving the request, so it
can be used at module level before the app exists::

    from rbac_abac_cache.contrib.flask import require_permission

    @bp.get("/invoices/")
    @require_permission("invoices.read")
    def invoices(): ...

Refusals are raised as werkzeug HTTP exceptions carrying a JSON body
``{"error": ..., "detail": ...}``, so an app's own ``errorhandler(403)``
can still restyle them:

- no user, or an invalid id from the loader: 401;
- a user the identity provider does not know: 403;
- a user lacking what the view requires: 403;
- no trustworthy attributes to be had: 503, with ``Retry-After``.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import current_app
from werkzeug.exceptions import (
    Forbidden,
    HTTPException,
    ServiceUnavailable,
    Unauthorized,
)

from ...attributes import UserAttributes
from ...exceptions import AttributesUnavailableError
from ...policy import Rule, requirement
from .responses import error_response, unavailable_response
from .state import current_lookup

__all__ = [
    "require",
    "require_attributes",
    "require_permission",
    "require_role",
]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

_EXCEPTIONS: dict[int, type[HTTPException]] = {
    401: Unauthorized,
    403: Forbidden,
    503: ServiceUnavailable,
}


def require(
    rule: Rule, *, resource: Callable[..., Any] | None = None
) -> Callable[[F], F]:
    """Allow the view only to a known user for whom ``rule`` holds.

    Args:
        rule: A rule from :mod:`rbac_abac_cache.policy`, called as
            ``rule(user, resource)``.
        resource: Loads what the user wants to act on, called with the
            view's keyword arguments (``invoice_id=...``) once the user is
            known. It may ``abort(404)`` itself; ``None`` reaches the rule,
            which then denies anything that compares with the resource.
    """

    def decorate(view: F) -> F:
        # Decided once here rather than by Flask's ensure_sync() per request.
        is_async = inspect.iscoroutinefunction(view)

        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            user = _authorised_user()
            target = None if resource is None else resource(**kwargs)
            if not rule(user, target):
                logger.debug("user %r lacks %s", user.user_id, rule.description)
                raise _refusal(403, "forbidden", "the user may not do this")

            if is_async:
                return current_app.ensure_sync(view)(*args, **kwargs)
            return view(*args, **kwargs)

        return cast(F, guarded)

    return decorate


def require_permission(*permissions: str) -> Callable[[F], F]:
    """Allow the view only to a user granted every one of ``permissions``."""
    return require(requirement(permissions=permissions))


def require_role(*roles: str) -> Callable[[F], F]:
    """Allow the view only to a user with at least one of ``roles``."""
    return require(requirement(roles=roles))


def require_attributes(**expected: Any) -> Callable[[F], F]:
    """Allow the view only to a user whose attributes equal ``expected``.

    A list-valued attribute matches when it contains the expected value.
    """
    return require(requirement(attributes=expected))


def _authorised_user() -> UserAttributes:
    """Return the current user's attributes, or raise the refusal to send.

    Raises:
        HTTPException: 401 without a user, 403 for a user the identity
            provider does not know, 503 when attributes are unavailable.
    """
    found = current_lookup()
    if found.user_id is None:
        raise _refusal(401, "unauthorized", "authentication is required")

    if found.error is not None:
        raise _unavailable(found.error)

    if found.attributes is None:
        raise _refusal(
            403, "forbidden", "the identity provider does not know this user"
        )
    return found.attributes


def _unavailable(error: AttributesUnavailableError) -> HTTPException:
    return ServiceUnavailable(
        "the user's attributes are unavailable", response=unavailable_response(error)
    )


def _refusal(status: int, error: str, detail: str) -> HTTPException:
    exception = _EXCEPTIONS[status]
    return exception(detail, response=error_response(status, error, detail))
