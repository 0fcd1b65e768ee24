"""The immutable value that describes what one user may do in one service."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from typing_extensions import Self

from .exceptions import AttributeCacheError, InvalidAttributesError
from .keys import check_service_name, normalize_user_id

__all__ = ["UserAttributes", "freeze_json", "thaw_json"]

_MAX_DEPTH = 32
_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1
_EMPTY: Mapping[str, Any] = MappingProxyType({})


class UserAttributes:
    """A user's roles, permissions and attributes for one service.

    Instances are immutable and safe to share between threads. Permissions
    may be granted with a wildcard: ``"invoices.*"`` covers
    ``"invoices.read"`` and ``"invoices.lines.edit"``, and ``"*"`` covers
    every permission.

    Args:
        user_id: The user's id, normalised to ``str``.
        service_name: The service these attributes apply to.
        roles: Role names.
        permissions: Permission names, possibly with wildcards.
        attributes: JSON-compatible attributes (department, region, ...),
            deep-copied into a read-only mapping.
        fetched_at: When the identity provider produced them, in epoch
            seconds; defaults to now.

    Raises:
        InvalidAttributesError: A field has the wrong type; the message
            names it.
    """

    __slots__ = (
        "attributes",
        "fetched_at",
        "permissions",
        "roles",
        "service_name",
        "user_id",
    )

    user_id: str
    service_name: str
    roles: frozenset[str]
    permissions: frozenset[str]
    attributes: Mapping[str, Any]
    fetched_at: float

    def __init__(
        self,
        user_id: str | int,
        service_name: str,
        roles: Iterable[str] = (),
        permissions: Iterable[str] = (),
        attributes: Mapping[str, Any] | None = None,
        fetched_at: float | None = None,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "user_id", _field(normalize_user_id, user_id, "user_id"))
        setattr_(
            self,
            "service_name",
            _field(check_service_name, service_name, "service_name"),
        )
        setattr_(self, "roles", _strings(roles, "roles"))
        setattr_(self, "permissions", _strings(permissions, "permissions"))
        setattr_(self, "attributes", _attributes(attributes))
        setattr_(self, "fetched_at", _timestamp(fetched_at))

    @classmethod
    def _trusted(
        cls,
        user_id: str,
        service_name: str,
        roles: frozenset[str],
        permissions: frozenset[str],
        attributes: Mapping[str, Any],
        fetched_at: float,
    ) -> Self:
        """Build an instance from fields the caller has already validated."""
        self = object.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(self, "user_id", user_id)
        setattr_(self, "service_name", service_name)
        setattr_(self, "roles", roles)
        setattr_(self, "permissions", permissions)
        setattr_(self, "attributes", attributes)
        setattr_(self, "fetched_at", fetched_at)
        return self

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"UserAttributes is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"UserAttributes is immutable; cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UserAttributes):
            return NotImplemented
        return (
            self.user_id == other.user_id
            and self.service_name == other.service_name
            and self.roles == other.roles
            and self.permissions == other.permissions
            and thaw_json(self.attributes) == thaw_json(other.attributes)
            and self.fetched_at == other.fetched_at
        )

    def __hash__(self) -> int:
        # Equal values have equal hashes; the attributes are left out because
        # nested mappings cannot be hashed, which only makes collisions likelier.
        return hash(
            (
                self.user_id,
                self.service_name,
                self.roles,
                self.permissions,
                self.fetched_at,
            )
        )

    def __repr__(self) -> str:
        # Attribute values can be personal data, so only their names are shown.
        return (
            f"UserAttributes(user_id={self.user_id!r}, "
            f"service_name={self.service_name!r}, roles={sorted(self.roles)!r}, "
            f"permissions={sorted(self.permissions)!r}, "
            f"attributes=<{', '.join(sorted(self.attributes))}>, "
            f"fetched_at={self.fetched_at!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.to_dict(),))

    def has_role(self, role: str) -> bool:
        """Whether the user has ``role``."""
        return role in self.roles

    def has_any_role(self, *roles: str) -> bool:
        """Whether the user has at least one of ``roles``."""
        return not self.roles.isdisjoint(roles)

    def has_all_roles(self, *roles: str) -> bool:
        """Whether the user has every one of ``roles``."""
        return self.roles.issuperset(roles)

    def has_permission(self, permission: str) -> bool:
        """Whether ``permission`` is granted, exactly or through a wildcard.

        ``"a.b.c"`` is covered by ``"a.b.c"``, ``"a.b.*"``, ``"a.*"`` and ``"*"``.
        """
        granted = self.permissions
        if permission in granted or "*" in granted:
            return True

        end = permission.rfind(".")
        while end > 0:
            if permission[:end] + ".*" in granted:
                return True
            end = permission.rfind(".", 0, end)
        return False

    def has_all_permissions(self, *permissions: str) -> bool:
        """Whether every one of ``permissions`` is granted."""
        return all(self.has_permission(p) for p in permissions)

    def has_any_permission(self, *permissions: str) -> bool:
        """Whether at least one of ``permissions`` is granted."""
        return any(self.has_permission(p) for p in permissions)

    def to_dict(self) -> dict[str, Any]:
        """Return the wire-format dict (plain lists and dicts, sorted lists)."""
        return {
            "user_id": self.user_id,
            "service_name": self.service_name,
            "roles": sorted(self.roles),
            "permissions": sorted(self.permissions),
            "attributes": thaw_json(self.attributes),
            "fetched_at": self.fetched_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build an instance from the wire format, validating every field.

        ``user_id`` may be a JSON number or string. ``fetched_at`` is
        optional and defaults to now; unknown keys are ignored so that an
        identity provider may send more than this library reads.

        Raises:
            InvalidAttributesError: ``data`` is not a mapping, or a field is
                missing or has the wrong type; the message names the field.
        """
        if not isinstance(data, Mapping):
            raise InvalidAttributesError(
                f"attributes data must be a JSON object, not {type(data).__name__}"
            )

        for name in ("user_id", "service_name", "roles", "permissions", "attributes"):
            if name not in data:
                raise InvalidAttributesError(f"{name}: field is missing")

        if not isinstance(data["attributes"], Mapping):
            raise InvalidAttributesError(
                "attributes: must be a JSON object, "
                f"not {type(data['attributes']).__name__}"
            )

        return cls(
            user_id=data["user_id"],
            service_name=data["service_name"],
            roles=_list_field(data["roles"], "roles"),
            permissions=_list_field(data["permissions"], "permissions"),
            attributes=data["attributes"],
            fetched_at=data.get("fetched_at"),
        )


def _rebuild(data: dict[str, Any]) -> UserAttributes:
    return UserAttributes.from_dict(data)


def _field(check: Any, value: object, name: str) -> Any:
    try:
        return check(value)
    except AttributeCacheError as exc:
        raise InvalidAttributesError(f"{name}: {exc}") from exc


def _list_field(value: object, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidAttributesError(
            f"{name}: must be a list, not {type(value).__name__}"
        )
    return value


def _strings(values: Iterable[str], name: str) -> frozenset[str]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidAttributesError(
            f"{name}: must be a collection of strings, not {type(values).__name__}"
        )

    values = list(values)
    for value in values:
        if not isinstance(value, str) or not value:
            raise InvalidAttributesError(
                f"{name}: every entry must be a non-empty string"
            )
        _check_text(value, name)
    return frozenset(values)


def _valid_text(value: str) -> bool:
    try:
        _check_text(value, "")
    except InvalidAttributesError:
        return False
    return True


def _check_text(value: str, path: str) -> str:
    """Refuse strings that JSON cannot carry (lone surrogates)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidAttributesError(
                f"{path}: strings must be valid Unicode text"
            ) from None
    return value


def _timestamp(value: object) -> float:
    if value is None:
        return time.time()

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidAttributesError(
            f"fetched_at: must be a number of epoch seconds, not {type(value).__name__}"
        )

    if not math.isfinite(value) or value < 0:
        raise InvalidAttributesError(
            "fetched_at: must be a finite, non-negative number"
        )
    return float(value)


def _attributes(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if value is None:
        return _EMPTY

    if not isinstance(value, Mapping):
        raise InvalidAttributesError(
            f"attributes: must be a JSON object, not {type(value).__name__}"
        )
    return freeze_json(value, "attributes")  # type: ignore[no-any-return]


def freeze_json(value: Any, path: str = "value", depth: int = 0) -> Any:
    """Return a read-only deep copy of a JSON value, checking every part of it.

    Objects become read-only mappings and arrays become tuples.

    Raises:
        InvalidAttributesError: Naming the path of a part that is not JSON
            (a set, bytes, NaN, a non-string key, ...) or nests too deep.
    """
    if value is None or isinstance(value, bool):
        return value

    if isinstance(value, str):
        return _check_text(value, path)

    if isinstance(value, int):
        if not _MIN_INT <= value <= _MAX_INT:
            raise InvalidAttributesError(f"{path}: integer outside the 64-bit range")
        return value

    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidAttributesError(f"{path}: must be a finite number")
        return value

    if depth >= _MAX_DEPTH:
        raise InvalidAttributesError(f"{path}: nested deeper than {_MAX_DEPTH} levels")

    if isinstance(value, Mapping):
        frozen = {}
        for key, item in value.items():
            if not isinstance(key, str) or not _valid_text(key):
                raise InvalidAttributesError(
                    f"{path}: keys must be valid strings, got {key!r}"
                )
            frozen[key] = freeze_json(item, f"{path}.{key}", depth + 1)
        return MappingProxyType(frozen)

    if isinstance(value, (list, tuple)):
        return tuple(
            freeze_json(item, f"{path}[{index}]", depth + 1)
            for index, item in enumerate(value)
        )

    raise InvalidAttributesError(f"{path}: {type(value).__name__} is not a JSON value")


def thaw_json(value: Any) -> Any:
    """Return a plain, mutable copy (dicts and lists) of a frozen JSON value."""
    if isinstance(value, Mapping):
        return {key: thaw_json(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw_json(item) for item in value]
    return value
