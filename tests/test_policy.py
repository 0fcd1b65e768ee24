"""Tests for :mod:`rbac_abac_cache.policy`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from rbac_abac_cache.attributes import UserAttributes
from rbac_abac_cache.policy import (
    Rule,
    attribute_equals,
    has_all_permissions,
    has_any_role,
    has_permission,
    has_role,
    requirement,
    same_attribute,
)

SERVICE = "billing_api"

ALLOW = Rule(lambda user, resource: True, "allow")
DENY = Rule(lambda user, resource: False, "deny")


@dataclass
class Invoice:
    """A resource given as an object rather than a mapping."""

    department: str | None
    region: str = "eu"


def member(**attributes: Any) -> UserAttributes:
    """Return a finance viewer who may read invoices, with ``attributes``."""
    return UserAttributes(
        "42",
        SERVICE,
        roles=["viewer"],
        permissions=["invoices.read", "reports.*"],
        attributes=attributes or {"department": "finance"},
    )


# Role and permission rules.


def test_has_permission_rule_honours_wildcards() -> None:
    """has_permission holds for exact and wildcard grants, ignoring resources."""
    user = member()

    assert has_permission("invoices.read")(user)
    assert has_permission("reports.monthly.view")(user, {"any": "thing"})
    assert not has_permission("invoices.write")(user)


def test_has_all_permissions_rule_requires_every_one() -> None:
    """has_all_permissions holds only when each permission is granted."""
    user = member()

    assert has_all_permissions("invoices.read", "reports.view")(user)
    assert not has_all_permissions("invoices.read", "invoices.write")(user)


def test_has_role_rule() -> None:
    """has_role holds exactly for the roles the user has."""
    assert has_role("viewer")(member())
    assert not has_role("admin")(member())


def test_has_any_role_rule() -> None:
    """has_any_role holds when one of the roles is held."""
    assert has_any_role("admin", "viewer")(member())
    assert not has_any_role("admin", "editor")(member())


# attribute_equals.


def test_attribute_equals_matches_a_scalar() -> None:
    """A scalar attribute matches an equal expected value only."""
    user = member(department="finance", level=3)

    assert attribute_equals(department="finance")(user)
    assert attribute_equals(level=3)(user)
    assert not attribute_equals(department="sales")(user)


def test_attribute_equals_requires_every_named_attribute() -> None:
    """All keyword expectations must hold."""
    user = member(department="finance", region="eu")

    assert attribute_equals(department="finance", region="eu")(user)
    assert not attribute_equals(department="finance", region="us")(user)


def test_attribute_equals_list_attribute_contains_value() -> None:
    """A list attribute matches when it contains the expected value."""
    user = member(regions=["eu", "us"])

    assert attribute_equals(regions="eu")(user)
    assert attribute_equals(regions="us")(user)
    assert not attribute_equals(regions="apac")(user)


def test_attribute_equals_list_expected_matches_whole_list() -> None:
    """An expected list matches an equal list attribute, not one element."""
    user = member(regions=["eu", "us"])

    assert attribute_equals(regions=["eu", "us"])(user)
    assert not attribute_equals(regions=["eu"])(user)


def test_attribute_equals_missing_attribute_denies() -> None:
    """An attribute the user lacks never matches, not even an expected None."""
    user = member(department="finance")

    assert not attribute_equals(region="eu")(user)
    assert not attribute_equals(region=None)(user)


def test_attribute_equals_does_not_match_across_types() -> None:
    """The string "3" does not match the number 3."""
    assert not attribute_equals(level="3")(member(level=3))


def test_attribute_equals_matches_nested_objects() -> None:
    """An expected object with a list inside matches an equal attribute."""
    user = member(address={"tags": ["hq"]})

    assert attribute_equals(address={"tags": ["hq"]})(user)


# same_attribute.


def test_same_attribute_with_mapping_resource() -> None:
    """The user's attribute is compared with the mapping's value."""
    user = member(department="finance")

    assert same_attribute("department")(user, {"department": "finance"})
    assert not same_attribute("department")(user, {"department": "sales"})


def test_same_attribute_with_object_resource() -> None:
    """The user's attribute is compared with the object's attribute."""
    user = member(department="finance")

    assert same_attribute("department")(user, Invoice("finance"))
    assert not same_attribute("department")(user, Invoice("sales"))


def test_same_attribute_with_another_resource_field() -> None:
    """resource_field names the resource's side when it differs."""
    user = member(home_region="eu")

    assert same_attribute("home_region", "region")(user, Invoice("x", region="eu"))
    assert not same_attribute("home_region", "region")(user, {"region": "us"})


@pytest.mark.parametrize(
    ("attributes", "resource"),
    [
        ({"department": "finance"}, None),
        ({"department": "finance"}, {}),
        ({"department": "finance"}, {"owner": "finance"}),
        ({"department": "finance"}, object()),
        ({"region": "eu"}, {"department": "finance"}),
        ({"department": None}, {"department": None}),
        ({"department": None}, Invoice(None)),
    ],
)
def test_same_attribute_missing_values_deny(
    attributes: dict[str, Any], resource: Any
) -> None:
    """A missing or null value on either side denies."""
    assert not same_attribute("department")(member(**attributes), resource)


def test_same_attribute_matches_equal_lists() -> None:
    """A list attribute equals the same list on the resource."""
    user = member(regions=["eu", "us"])

    assert same_attribute("regions")(user, {"regions": ["eu", "us"]})


# Composition.


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [(ALLOW, ALLOW, True), (ALLOW, DENY, False), (DENY, ALLOW, False)],
)
def test_and_requires_both(left: Rule, right: Rule, expected: bool) -> None:
    """``a & b`` holds only when both hold."""
    assert (left & right)(member()) is expected


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [(DENY, DENY, False), (ALLOW, DENY, True), (DENY, ALLOW, True)],
)
def test_or_requires_either(left: Rule, right: Rule, expected: bool) -> None:
    """``a | b`` holds when either holds."""
    assert (left | right)(member()) is expected


def test_invert_negates() -> None:
    """``~a`` holds exactly when ``a`` does not."""
    assert (~DENY)(member()) is True
    assert (~ALLOW)(member()) is False


def test_composed_rules_pass_the_resource_through() -> None:
    """Combined rules see the same resource as their parts."""
    rule = has_permission("invoices.read") & same_attribute("department")
    user = member(department="finance")

    assert rule(user, Invoice("finance"))
    assert not rule(user, Invoice("sales"))
    assert not rule(user)


def test_and_short_circuits() -> None:
    """The right side of ``&`` is not evaluated once the left denies."""
    calls: list[str] = []

    def record(user: UserAttributes, resource: Any) -> bool:
        calls.append("called")
        return True

    spy = Rule(record, "spy")

    (DENY & spy)(member())

    assert calls == []


def test_rule_results_are_booleans() -> None:
    """A truthy predicate result is reported as True."""

    def truthy(user: UserAttributes, resource: Any) -> Any:
        return "yes"

    rule = Rule(truthy, "truthy")

    assert rule(member()) is True


def test_descriptions_compose_readably() -> None:
    """Composed rules describe what they demand, for logs and errors."""
    rule = has_role("admin") | ~has_permission("invoices.read")

    assert rule.description == "(role 'admin' or not permission 'invoices.read')"
    assert repr(rule) == f"<Rule {rule.description}>"


# requirement.


def test_empty_requirement_accepts_any_known_user() -> None:
    """With nothing demanded, any user with attributes passes."""
    nobody = UserAttributes("7", SERVICE)

    assert requirement()(nobody)
    assert requirement().description == "a known user"


def test_requirement_needs_all_permissions() -> None:
    """Permissions in a requirement must all be granted."""
    user = member()

    assert requirement(permissions=("invoices.read", "reports.view"))(user)
    assert not requirement(permissions=("invoices.read", "invoices.write"))(user)


def test_requirement_needs_any_role() -> None:
    """Roles in a requirement are alternatives."""
    user = member()

    assert requirement(roles=("admin", "viewer"))(user)
    assert not requirement(roles=("admin",))(user)


def test_requirement_needs_every_attribute() -> None:
    """Expected attributes in a requirement must all match."""
    user = member(department="finance", region="eu")

    assert requirement(attributes={"department": "finance", "region": "eu"})(user)
    assert not requirement(attributes={"department": "sales"})(user)


def test_requirement_combines_all_demands() -> None:
    """Permissions, roles and attributes must all be satisfied together."""
    user = member(department="finance")
    rule = requirement(
        permissions=("invoices.read",),
        roles=("viewer",),
        attributes={"department": "finance"},
    )

    assert rule(user)
    assert not rule(member(department="sales"))
