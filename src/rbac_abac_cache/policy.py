"""Composable authorisation rules over a user's attributes and a resource.

A rule is called as ``rule(user, resource)`` and answers ``True`` only when
it can prove the user may act; missing data is a denial, never a grant.
Rules combine with ``&``, ``|`` and ``~``::

    can_read_invoice = has_permission("invoices.read") & same_attribute("department")
    can_read_invoice(user, invoice)   # invoice.department == user's department

Both framework adapters build their decorators from these rules, and
:func:`requirement` turns the decorators' arguments into one rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .attributes import UserAttributes, thaw_json

__all__ = [
    "Rule",
    "attribute_equals",
    "has_all_permissions",
    "has_any_role",
    "has_permission",
    "has_role",
    "requirement",
    "same_attribute",
]

_MISSING = object()


class Rule:
    """A named predicate ``(user, resource) -> bool`` that composes.

    Args:
        check: The predicate; ``resource`` is ``None`` when there is none.
        description: What the rule demands, for error messages and logs.
    """

    __slots__ = ("_check", "description")

    def __init__(
        self, check: Callable[[UserAttributes, Any], bool], description: str
    ) -> None:
        self._check = check
        self.description = description

    def __call__(self, user: UserAttributes, resource: Any = None) -> bool:
        return bool(self._check(user, resource))

    def __and__(self, other: Rule) -> Rule:
        return Rule(
            lambda user, resource: self(user, resource) and other(user, resource),
            f"({self.description} and {other.description})",
        )

    def __or__(self, other: Rule) -> Rule:
        return Rule(
            lambda user, resource: self(user, resource) or other(user, resource),
            f"({self.description} or {other.description})",
        )

    def __invert__(self) -> Rule:
        return Rule(
            lambda user, resource: not self(user, resource),
            f"not {self.description}",
        )

    def __repr__(self) -> str:
        return f"<Rule {self.description}>"


def has_permission(permission: str) -> Rule:
    """The user is granted ``permission`` (wildcards count)."""
    return Rule(
        lambda user, _: user.has_permission(permission),
        f"permission {permission!r}",
    )


def has_all_permissions(*permissions: str) -> Rule:
    """The user is granted every one of ``permissions``."""
    return Rule(
        lambda user, _: user.has_all_permissions(*permissions),
        f"permissions {', '.join(map(repr, permissions))}",
    )


def has_role(role: str) -> Rule:
    """The user has ``role``."""
    return Rule(lambda user, _: user.has_role(role), f"role {role!r}")


def has_any_role(*roles: str) -> Rule:
    """The user has at least one of ``roles``."""
    return Rule(
        lambda user, _: user.has_any_role(*roles),
        f"any role of {', '.join(map(repr, roles))}",
    )


def attribute_equals(**expected: Any) -> Rule:
    """Each named user attribute exists and equals the given value.

    A list or tuple value in the user's attributes matches when it contains
    the expected value, so ``attribute_equals(region="eu")`` holds for a
    user whose ``region`` is ``["eu", "us"]``.
    """

    def check(user: UserAttributes, _: Any) -> bool:
        return all(
            _matches(user.attributes.get(name, _MISSING), value)
            for name, value in expected.items()
        )

    described = ", ".join(f"{name}={value!r}" for name, value in expected.items())
    return Rule(check, f"attributes {described}")


def same_attribute(name: str, resource_field: str | None = None) -> Rule:
    """The user's attribute ``name`` equals the resource's ``resource_field``.

    The resource may be a mapping or an object; ``resource_field`` defaults
    to ``name``. A missing value on either side denies.
    """
    field = resource_field or name

    def check(user: UserAttributes, resource: Any) -> bool:
        mine = user.attributes.get(name, _MISSING)
        theirs = _resource_value(resource, field)
        if mine is _MISSING or theirs is _MISSING or mine is None:
            return False
        return bool(thaw_json(mine) == theirs)

    return Rule(check, f"attribute {name!r} equal to the resource's {field!r}")


def requirement(
    permissions: tuple[str, ...] = (),
    roles: tuple[str, ...] = (),
    attributes: Mapping[str, Any] | None = None,
) -> Rule:
    """One rule for the decorators: all ``permissions``, any of ``roles``, and
    every expected attribute. An empty requirement only demands a known user.
    """
    rules = []
    if permissions:
        rules.append(has_all_permissions(*permissions))
    if roles:
        rules.append(has_any_role(*roles))
    if attributes:
        rules.append(attribute_equals(**attributes))
    if not rules:
        return Rule(lambda user, _: True, "a known user")

    rule = rules[0]
    for other in rules[1:]:
        rule = rule & other
    return rule


def _matches(actual: Any, expected: Any) -> bool:
    if actual is _MISSING:
        return False
    if isinstance(actual, tuple) and not isinstance(expected, (list, tuple)):
        return expected in actual
    if isinstance(expected, tuple):
        expected = list(expected)
    return bool(thaw_json(actual) == thaw_json(expected))


def _resource_value(resource: Any, field: str) -> Any:
    if resource is None:
        return _MISSING
    if isinstance(resource, Mapping):
        return resource.get(field, _MISSING)
    return getattr(resource, field, _MISSING)
