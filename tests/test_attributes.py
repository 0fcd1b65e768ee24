"""Tests for :mod:`rbac_abac_cache.attributes`."""

from __future__ import annotations

import json
import math
import pickle
import re
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rbac_abac_cache.attributes import UserAttributes, freeze_json, thaw_json
from rbac_abac_cache.exceptions import AttributeCacheError, InvalidAttributesError

SERVICE = "billing_api"


def wire(**fields: Any) -> dict[str, Any]:
    """Return a valid wire-format dict, with ``fields`` replacing defaults."""
    data: dict[str, Any] = {
        "user_id": "42",
        "service_name": SERVICE,
        "roles": ["admin", "viewer"],
        "permissions": ["invoices.read"],
        "attributes": {"department": "finance", "regions": ["eu", "us"]},
        "fetched_at": 1_700_000_000.0,
    }
    data.update(fields)
    return data


def granted(*permissions: str) -> UserAttributes:
    """Return attributes granting exactly ``permissions``."""
    return UserAttributes("42", SERVICE, permissions=permissions)


def nested(levels: int) -> dict[str, Any]:
    """Return an attributes object made of ``levels`` nested objects."""
    value: Any = "leaf"
    for _ in range(levels):
        value = {"a": value}
    return value  # type: ignore[no-any-return]


# Immutability.


def test_setting_a_field_raises() -> None:
    """Assigning to any field of an instance raises AttributeError."""
    user = UserAttributes.from_dict(wire())

    with pytest.raises(AttributeError, match="immutable"):
        user.roles = frozenset({"root"})


def test_setting_a_new_attribute_raises() -> None:
    """An instance cannot grow new attributes."""
    user = UserAttributes.from_dict(wire())

    with pytest.raises(AttributeError):
        user.is_superuser = True


def test_deleting_a_field_raises() -> None:
    """Deleting a field of an instance raises AttributeError."""
    user = UserAttributes.from_dict(wire())

    with pytest.raises(AttributeError, match="immutable"):
        del user.permissions


def test_attributes_mapping_is_read_only() -> None:
    """The attributes mapping rejects item assignment and deletion."""
    user = UserAttributes.from_dict(wire())

    with pytest.raises(TypeError):
        user.attributes["department"] = "sales"  # type: ignore[index]
    with pytest.raises(TypeError):
        del user.attributes["department"]  # type: ignore[attr-defined]


def test_nested_objects_are_read_only_and_lists_become_tuples() -> None:
    """Nested objects are read-only mappings and arrays become tuples."""
    user = UserAttributes("42", SERVICE, attributes={"address": {"tags": ["a", ["b"]]}})
    address = user.attributes["address"]

    assert address["tags"] == ("a", ("b",))
    with pytest.raises(TypeError):
        address["city"] = "Oslo"


def test_attributes_are_copied_not_shared_with_the_caller() -> None:
    """Mutating the dict passed in does not change the instance."""
    source: dict[str, Any] = {"department": "finance", "regions": ["eu"]}
    user = UserAttributes("42", SERVICE, attributes=source)

    source["department"] = "sales"
    source["regions"].append("us")

    assert user.attributes["department"] == "finance"
    assert user.attributes["regions"] == ("eu",)


def test_roles_and_permissions_are_frozensets() -> None:
    """Roles and permissions are stored as frozensets."""
    user = UserAttributes.from_dict(wire())

    assert user.roles == frozenset({"admin", "viewer"})
    assert isinstance(user.permissions, frozenset)


def test_equal_instances_hash_alike() -> None:
    """Immutable values can key dicts and sets; equal ones collapse."""
    first = UserAttributes.from_dict({**wire(), "fetched_at": 5.0})
    second = UserAttributes.from_dict({**wire(), "fetched_at": 5.0})

    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second}) == 1


# Normalisation.


def test_int_user_id_is_normalised_to_str() -> None:
    """An int user id becomes its decimal string."""
    assert UserAttributes(123, SERVICE).user_id == "123"
    assert UserAttributes.from_dict(wire(user_id=123)).user_id == "123"


def test_fetched_at_defaults_to_now() -> None:
    """Without fetched_at the instance is stamped with the current time."""
    data = wire()
    del data["fetched_at"]

    user = UserAttributes.from_dict(data)

    assert user.fetched_at == pytest.approx(time.time(), abs=5)


def test_int_fetched_at_becomes_float() -> None:
    """An integral fetched_at is stored as a float."""
    user = UserAttributes.from_dict(wire(fetched_at=1_700_000_000))

    assert isinstance(user.fetched_at, float)


# Permission checks.


@pytest.mark.parametrize(
    ("grant", "asked"),
    [
        ("invoices.read", "invoices.read"),
        ("invoices.*", "invoices.read"),
        ("invoices.*", "invoices.lines.edit"),
        ("a.b.*", "a.b.c"),
        ("a.b.*", "a.b.c.d"),
        ("a.*", "a.b.c"),
        ("*", "anything.at.all"),
        ("*", "plain"),
    ],
)
def test_permission_is_granted_exactly_or_by_wildcard(grant: str, asked: str) -> None:
    """An exact grant, a covering ``prefix.*`` or ``*`` grants the permission."""
    assert granted(grant).has_permission(asked)


@pytest.mark.parametrize(
    ("grant", "asked"),
    [
        ("invoices.*", "invoices"),
        ("invoices.*", "invoicesX.read"),
        ("invoices.*", "invoice.read"),
        ("invoices.read", "invoices.write"),
        ("invoices.read", "invoices"),
        ("a.b.*", "a.c"),
        ("a.b.*", "a.b"),
        ("invoices.read", "invoices.*"),
        ("invoices.read", "*"),
    ],
)
def test_permission_is_not_granted_beyond_the_wildcard(grant: str, asked: str) -> None:
    """A ``prefix.*`` grant covers neither ``prefix`` itself nor look-alikes."""
    assert not granted(grant).has_permission(asked)


def test_no_permissions_grant_nothing() -> None:
    """A user without permissions is granted nothing."""
    assert not granted().has_permission("invoices.read")


def test_has_all_permissions_requires_every_one() -> None:
    """has_all_permissions holds only when each permission is granted."""
    user = granted("invoices.*", "reports.read")

    assert user.has_all_permissions("invoices.read", "reports.read")
    assert not user.has_all_permissions("invoices.read", "reports.write")
    assert user.has_all_permissions()


def test_has_any_permission_requires_one() -> None:
    """has_any_permission holds when at least one permission is granted."""
    user = granted("invoices.read")

    assert user.has_any_permission("reports.read", "invoices.read")
    assert not user.has_any_permission("reports.read")


def test_has_role_is_exact() -> None:
    """has_role matches role names exactly."""
    user = UserAttributes("42", SERVICE, roles=["admin"])

    assert user.has_role("admin")
    assert not user.has_role("Admin")
    assert not user.has_role("adm")


def test_has_any_role_requires_one_of_them() -> None:
    """has_any_role holds when at least one of the roles is held."""
    user = UserAttributes("42", SERVICE, roles=["viewer"])

    assert user.has_any_role("admin", "viewer")
    assert not user.has_any_role("admin", "editor")
    assert not user.has_any_role()


def test_has_all_roles_requires_every_one() -> None:
    """has_all_roles holds only when every role is held."""
    user = UserAttributes("42", SERVICE, roles=["viewer", "editor"])

    assert user.has_all_roles("viewer", "editor")
    assert not user.has_all_roles("viewer", "admin")


# Wire format.


def test_to_dict_from_dict_round_trip() -> None:
    """from_dict(to_dict()) rebuilds an equal instance."""
    user = UserAttributes.from_dict(wire())

    assert UserAttributes.from_dict(user.to_dict()) == user


def test_to_dict_returns_plain_sorted_json() -> None:
    """to_dict returns plain dicts and sorted lists that json can dump."""
    data = UserAttributes.from_dict(wire(roles=["viewer", "admin"])).to_dict()

    assert data["roles"] == ["admin", "viewer"]
    assert data["attributes"] == {"department": "finance", "regions": ["eu", "us"]}
    assert type(data["attributes"]) is dict
    assert json.loads(json.dumps(data)) == data


def test_from_dict_ignores_unknown_keys() -> None:
    """Fields the library does not read are ignored, not rejected."""
    user = UserAttributes.from_dict(wire(email="someone@example.com"))

    assert user.user_id == "42"


def test_equality_compares_every_field() -> None:
    """Instances differing in any field are unequal."""
    user = UserAttributes.from_dict(wire())

    assert user == UserAttributes.from_dict(wire())
    assert user != UserAttributes.from_dict(wire(roles=["admin"]))
    assert user != UserAttributes.from_dict(wire(fetched_at=1.0))
    assert user != UserAttributes.from_dict(wire(attributes={}))
    assert user != "not attributes"


@pytest.mark.parametrize(
    "field", ["user_id", "service_name", "roles", "permissions", "attributes"]
)
def test_from_dict_missing_field_is_named(field: str) -> None:
    """A missing required field raises InvalidAttributesError naming it."""
    data = wire()
    del data[field]

    with pytest.raises(InvalidAttributesError, match=field):
        UserAttributes.from_dict(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("roles", "admin"),
        ("roles", None),
        ("roles", {"admin": True}),
        ("roles", [1]),
        ("roles", [""]),
        ("roles", ["admin", None]),
        ("permissions", ["invoices.read", 3]),
        ("permissions", "invoices.read"),
        ("permissions", [True]),
        ("attributes", ["department", "finance"]),
        ("attributes", "finance"),
        ("attributes", {1: "finance"}),
        ("attributes", {"score": math.nan}),
        ("attributes", {"score": math.inf}),
        ("attributes", {"blob": b"bytes"}),
        ("attributes", {"tags": {"a", "b"}}),
        ("attributes", {"nested": {"deep": [{"x": object()}]}}),
        ("attributes", {"big": 2**64}),
        ("attributes", {"small": -(2**63) - 1}),
        ("attributes", nested(33)),
        ("user_id", True),
        ("user_id", False),
        ("user_id", 4.2),
        ("user_id", None),
        ("user_id", ""),
        ("user_id", "a\x00b"),
        ("user_id", "a\nb"),
        ("user_id", "x" * 257),
        ("user_id", ["42"]),
        ("service_name", ""),
        ("service_name", "billing api"),
        ("service_name", "billing:api"),
        ("service_name", "_billing"),
        ("service_name", "{billing}"),
        ("service_name", 7),
        ("service_name", None),
        ("fetched_at", -1.0),
        ("fetched_at", math.nan),
        ("fetched_at", math.inf),
        ("fetched_at", "1700000000"),
        ("fetched_at", True),
    ],
)
def test_from_dict_wrong_type_is_named(field: str, value: Any) -> None:
    """A malformed field raises InvalidAttributesError naming that field."""
    with pytest.raises(InvalidAttributesError, match=field):
        UserAttributes.from_dict(wire(**{field: value}))


@pytest.mark.parametrize(
    ("field", "value"),
    [("roles", [["admin"]]), ("permissions", [{"invoices": "read"}])],
)
def test_from_dict_unhashable_list_items_are_named(field: str, value: Any) -> None:
    """Lists or objects inside roles/permissions raise InvalidAttributesError."""
    with pytest.raises(InvalidAttributesError, match=field):
        UserAttributes.from_dict(wire(**{field: value}))


def test_from_dict_null_attributes_is_rejected() -> None:
    """``"attributes": null`` is not a JSON object and is rejected by name."""
    with pytest.raises(InvalidAttributesError, match="attributes"):
        UserAttributes.from_dict(wire(attributes=None))


def test_from_dict_accepts_nesting_up_to_32_levels() -> None:
    """Attributes nested 32 objects deep (the mapping itself included) pass."""
    user = UserAttributes.from_dict(wire(attributes=nested(32)))

    assert "a" in user.attributes


def test_from_dict_rejects_a_non_mapping() -> None:
    """Data that is not a mapping raises InvalidAttributesError."""
    with pytest.raises(InvalidAttributesError, match="JSON object"):
        UserAttributes.from_dict(["42", SERVICE])  # type: ignore[arg-type]


def test_from_dict_requires_lists_not_tuples_for_roles() -> None:
    """Roles given as a tuple are not the JSON wire format and are refused."""
    with pytest.raises(InvalidAttributesError, match="roles"):
        UserAttributes.from_dict(wire(roles=("admin",)))


def test_constructor_rejects_roles_given_as_a_string() -> None:
    """A bare string is not taken as a collection of one-letter roles."""
    with pytest.raises(InvalidAttributesError, match="roles"):
        UserAttributes("42", SERVICE, roles="admin")


def test_invalid_attributes_error_is_value_error_and_library_error() -> None:
    """InvalidAttributesError is both a ValueError and an AttributeCacheError."""
    with pytest.raises(InvalidAttributesError) as caught:
        UserAttributes.from_dict(wire(roles="admin"))

    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, AttributeCacheError)


# Representation and pickling.


def test_repr_hides_attribute_values() -> None:
    """repr shows attribute names but never their (personal) values."""
    user = UserAttributes.from_dict(
        wire(attributes={"email": "jane@example.com", "salary": 123456})
    )

    text = repr(user)

    assert "jane@example.com" not in text
    assert "123456" not in text
    assert "email" in text
    assert "42" in text


def test_pickle_round_trips() -> None:
    """A pickled instance unpickles to an equal, still immutable instance."""
    user = UserAttributes.from_dict(wire())

    clone = pickle.loads(pickle.dumps(user))

    assert clone == user
    with pytest.raises(TypeError):
        clone.attributes["department"] = "sales"


# freeze_json / thaw_json.


def test_freeze_json_names_the_path_of_the_bad_part() -> None:
    """freeze_json's error names the path to the non-JSON value."""
    with pytest.raises(InvalidAttributesError, match=r"attributes\.a\[1\]"):
        freeze_json({"a": [1, {2}]}, "attributes")


def test_thaw_json_returns_mutable_plain_values() -> None:
    """thaw_json turns read-only mappings and tuples into dicts and lists."""
    thawed = thaw_json(freeze_json({"a": [1, {"b": (2,)}]}))

    assert thawed == {"a": [1, {"b": [2]}]}
    assert type(thawed["a"][1]) is dict


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=16,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_any_json_attributes_round_trip(attributes: dict[str, Any]) -> None:
    """Any JSON-compatible attributes survive to_dict/from_dict and JSON text."""
    user = UserAttributes("42", SERVICE, attributes=attributes, fetched_at=1.0)

    data = user.to_dict()
    through_json = UserAttributes.from_dict(json.loads(json.dumps(data)))

    assert data["attributes"] == attributes
    assert UserAttributes.from_dict(data) == user
    assert through_json == user


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"roles": ["admin\ud800"]}, "roles"),
        ({"permissions": ["\udfff"]}, "permissions"),
        ({"attributes": {"team": "a\ud800"}}, "attributes.team"),
        ({"attributes": {"k\ud800": 1}}, "attributes"),
    ],
)
def test_strings_json_cannot_carry_are_refused(
    fields: dict[str, Any], named: str
) -> None:
    """Lone surrogates cannot be stored as JSON, so they are refused up front."""
    with pytest.raises(InvalidAttributesError, match=re.escape(named)):
        UserAttributes("1", "billing_api", **fields)
