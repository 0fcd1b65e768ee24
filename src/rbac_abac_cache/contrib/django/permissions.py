"""Django REST framework permission classes over the user's attributes.

Requirements come from the view or from the permission itself::

    class InvoiceList(APIView):
        permission_classes = [HasRBACPermission]
        required_permissions = ("invoices.read",)

    class InvoiceAdmin(APIView):
        permission_classes = [HasPermission("invoices.write") | HasRole("admin")]

Answers follow DRF: no user is refused as DRF refuses the unauthenticated
(401 when the view's first authenticator sends a challenge, else 403), a
user who is unknown or lacks what is required gets 403 with a ``detail``
saying why, and attributes that cannot be had raise
:class:`AttributesUnavailable`, a 503 with ``Retry-After``.

This is the only module of the library that imports Django REST framework.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

try:
    from rest_framework.exceptions import APIException
    from rest_framework.permissions import BasePermission, OperationHolderMixin
except ImportError as exc:
    raise ImportError(
        "rbac_abac_cache.contrib.django.permissions needs Django REST framework: "
        "pip install djangorestframework"
    ) from exc

from typing_extensions import Self

from ...attributes import UserAttributes
from ...exceptions import AttributesUnavailableError
from ...policy import Rule, requirement
from .middleware import lookup

__all__ = [
    "AttributesUnavailable",
    "HasAttributes",
    "HasPermission",
    "HasRBACPermission",
    "HasRole",
    "HasRule",
]

logger = logging.getLogger(__name__)

_UNKNOWN_USER = "the identity provider does not know this user"


class AttributesUnavailable(APIException):  # type: ignore[misc]
    """503: the user's attributes cannot be had right now; sent with ``Retry-After``."""

    status_code = 503
    default_detail = (
        "the user's permissions cannot be checked right now; try again shortly"
    )
    default_code = "unavailable"

    def __init__(self, retry_after: float = 1.0) -> None:
        super().__init__()
        # DRF's exception handler sends ``wait`` as the Retry-After header.
        self.wait = max(1, math.ceil(retry_after))


class HasRBACPermission(OperationHolderMixin, BasePermission):  # type: ignore[misc]
    """Grants users who meet the view's requirements and this permission's own.

    The view may declare ``required_permissions`` (all needed),
    ``required_roles`` (any one needed) and ``required_attributes`` (a dict
    of expected values). Used as a class, the view's requirements are all
    there is; an instance adds its own and can be combined with ``&``, ``|``
    and ``~`` like any DRF permission.

    Args:
        permissions: Permissions the user must all have.
        roles: Roles of which the user must have at least one.
        attributes: Attribute values the user must hold.
        object_rule: A :class:`~rbac_abac_cache.policy.Rule` checked against
            the object in ``has_object_permission`` (DRF calls it from
            ``get_object()``).
    """

    message = "you lack the permissions this requires"

    def __init__(
        self,
        *,
        permissions: tuple[str, ...] = (),
        roles: tuple[str, ...] = (),
        attributes: dict[str, Any] | None = None,
        object_rule: Rule | None = None,
    ) -> None:
        self.permissions = tuple(permissions)
        self.roles = tuple(roles)
        self.attributes = dict(attributes or {})
        self.object_rule = object_rule

    def __call__(self) -> Self:
        # DRF instantiates each entry of permission_classes per request; an
        # instance given there answers with a copy, so the message it sets
        # on refusal belongs to one request only.
        return copy.copy(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} requires {self.rule_for(None).description}>"

    def rule_for(self, view: Any) -> Rule:
        """Return the rule a request to ``view`` must meet."""
        permissions = self.permissions + tuple(
            getattr(view, "required_permissions", ())
        )
        roles = self.roles + tuple(getattr(view, "required_roles", ()))
        attributes = {**getattr(view, "required_attributes", {}), **self.attributes}

        return requirement(permissions, roles, attributes)

    def has_permission(self, request: Any, view: Any) -> bool:
        """Grant a known user who meets :meth:`rule_for`.

        Raises:
            AttributesUnavailable: The attributes cannot be had right now.
        """
        user_id, attributes = _lookup(request)
        if user_id is None:
            return False
        if attributes is None:
            self.message = _UNKNOWN_USER
            return False

        rule = self.rule_for(view)
        if not rule(attributes):
            logger.debug("denied user %r: requires %s", user_id, rule.description)
            self.message = f"this requires {rule.description}"
            return False
        return True

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        """Grant when there is no ``object_rule`` or the user meets it for ``obj``.

        Raises:
            AttributesUnavailable: The attributes cannot be had right now.
        """
        if self.object_rule is None:
            return True

        attributes = _attributes(request)
        if attributes is None:
            self.message = _UNKNOWN_USER
            return False
        if not self.object_rule(attributes, obj):
            self.message = f"this requires {self.object_rule.description}"
            return False
        return True


class HasPermission(HasRBACPermission):
    """Grants users who have every one of ``permissions``, for ``permission_classes``.

    Example: ``permission_classes = [HasPermission("invoices.read")]``.
    """

    def __init__(self, *permissions: str) -> None:
        _check_names(permissions, "HasPermission")
        super().__init__(permissions=permissions)


class HasRole(HasRBACPermission):
    """Grants users who have at least one of ``roles``, for ``permission_classes``."""

    def __init__(self, *roles: str) -> None:
        _check_names(roles, "HasRole")
        super().__init__(roles=roles)


class HasAttributes(HasRBACPermission):
    """Grants users whose attributes hold every expected value."""

    def __init__(self, **expected: Any) -> None:
        if not expected:
            raise TypeError("HasAttributes needs at least one name=value")
        super().__init__(attributes=expected)


class HasRule(HasRBACPermission):
    """Grants known users, and checks ``rule`` against each object retrieved.

    Example: ``HasRule(same_attribute("department"))`` lets a user see only
    the objects of their own department.
    """

    def __init__(self, rule: Rule) -> None:
        if not isinstance(rule, Rule):
            raise TypeError(f"HasRule takes a policy Rule, not {type(rule).__name__}")
        super().__init__(object_rule=rule)


def _lookup(request: Any) -> tuple[str | None, UserAttributes | None]:
    try:
        return lookup(request)
    except AttributesUnavailableError as exc:
        raise AttributesUnavailable(exc.retry_after) from exc


def _attributes(request: Any) -> UserAttributes | None:
    return _lookup(request)[1]


def _check_names(names: tuple[str, ...], name: str) -> None:
    if not names:
        raise TypeError(f"{name} needs at least one name")
    for item in names:
        if not isinstance(item, str) or not item:
            raise TypeError(f"{name} takes non-empty strings, not {item!r}")
