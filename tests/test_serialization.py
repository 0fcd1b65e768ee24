"""Tests for :mod:`rbac_abac_cache.serialization`."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

from rbac_abac_cache.attributes import UserAttributes
from rbac_abac_cache.keys import KeySpace
from rbac_abac_cache.serialization import (
    FORMAT_VERSION,
    CorruptEntryError,
    Entry,
    EntryCodec,
)

SERVICE = "billing_api"
KEYS = KeySpace("rbac_abac", SERVICE)
KEY = KEYS.entry("42")
FETCHED_AT = 1_700_000_000.5
_DROP = object()


def codec(
    signing_key: str | bytes | None = None, max_bytes: int = 1 << 20
) -> EntryCodec:
    """Return a codec for the test service."""
    return EntryCodec(SERVICE, max_bytes=max_bytes, signing_key=signing_key)


def user(user_id: str = "42", service_name: str = SERVICE) -> UserAttributes:
    """Return typical attributes for one user."""
    return UserAttributes(
        user_id,
        service_name,
        roles=["admin", "viewer"],
        permissions=["invoices.*"],
        attributes={"department": "finance", "regions": ["eu", "us"], "level": 3},
        fetched_at=FETCHED_AT,
    )


def envelope(**fields: Any) -> bytes:
    """Return an unsigned envelope for user 42, with ``fields`` replaced."""
    data: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "user_id": "42",
        "service_name": SERVICE,
        "fetched_at": FETCHED_AT,
        "roles": ["admin"],
        "permissions": ["invoices.read"],
        "attributes": {"department": "finance"},
    }
    data.update(fields)
    return json.dumps({k: v for k, v in data.items() if v is not _DROP}).encode()


class _Tripwire:
    """Unpickling this calls :func:`_trip`, which records that it happened."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_trip, ())


_TRIPPED: list[bool] = []


def _trip() -> dict[str, Any]:
    _TRIPPED.append(True)
    return {"v": FORMAT_VERSION, "user_id": "42", "service_name": SERVICE}


@pytest.fixture
def tripwire() -> Iterator[list[bool]]:
    """The list that records unpickling of a :class:`_Tripwire`; starts empty."""
    _TRIPPED.clear()
    yield _TRIPPED
    _TRIPPED.clear()


# Round trips.


def test_positive_entry_round_trips() -> None:
    """A user's attributes decode to an equal value and their fetched_at."""
    entries = codec()
    raw = entries.encode(KEY, Entry(user(), FETCHED_AT))

    decoded = entries.decode(KEY, raw, "42")

    assert decoded.attributes == user()
    assert decoded.fetched_at == FETCHED_AT


def test_decoded_attributes_are_read_only() -> None:
    """Decoded attributes are frozen just like constructed ones."""
    entries = codec()
    decoded = entries.decode(KEY, entries.encode(KEY, Entry(user(), FETCHED_AT)), "42")

    assert decoded.attributes is not None
    assert decoded.attributes.attributes["regions"] == ("eu", "us")
    with pytest.raises(TypeError):
        decoded.attributes.attributes["department"] = "sales"  # type: ignore[index]


def test_unknown_entry_round_trips() -> None:
    """An unknown-user marker decodes to an entry without attributes."""
    entries = codec()
    raw = entries.encode_unknown(KEY, "42", FETCHED_AT)

    decoded = entries.decode(KEY, raw, "42")

    assert decoded.attributes is None
    assert decoded.fetched_at == FETCHED_AT


def test_entry_is_plain_versioned_json() -> None:
    """An unsigned entry is a JSON object with the format version."""
    raw = codec().encode(KEY, Entry(user(), FETCHED_AT))

    data = json.loads(raw)

    assert data["v"] == FORMAT_VERSION
    assert data["user_id"] == "42"
    assert data["roles"] == ["admin", "viewer"]


def test_decode_accepts_str() -> None:
    """A value returned as str (decode_responses=True) decodes too."""
    entries = codec()
    raw = entries.encode(KEY, Entry(user(), FETCHED_AT)).decode()

    assert entries.decode(KEY, raw, "42").attributes == user()


def test_encode_refuses_an_entry_without_attributes() -> None:
    """Unknown users go through encode_unknown, never a bare encode."""
    with pytest.raises(ValueError, match="encode_unknown"):
        codec().encode(KEY, Entry(None, FETCHED_AT))


# Corrupt entries.


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x80\x04\x95garbage",
        b"{}",
        b"null",
        b"[]",
        b'"a string"',
        b"42",
        b"{not json",
        b"NaN",
    ],
)
def test_non_entries_are_corrupt(raw: bytes) -> None:
    """Empty, non-JSON, null, arrays, scalars and ``{}`` are CorruptEntryError."""
    with pytest.raises(CorruptEntryError):
        codec().decode(KEY, raw, "42")


def test_random_bytes_are_corrupt() -> None:
    """Random bytes are never taken for an entry."""
    entries = codec()

    for _ in range(50):
        with pytest.raises(CorruptEntryError):
            entries.decode(KEY, os.urandom(64), "42")


def test_truncated_entry_is_corrupt() -> None:
    """Every strict prefix of a valid entry is rejected."""
    entries = codec()
    raw = entries.encode(KEY, Entry(user(), FETCHED_AT))

    for end in range(len(raw)):
        with pytest.raises(CorruptEntryError):
            entries.decode(KEY, raw[:end], "42")


@pytest.mark.parametrize("signing_key", [None, "k3y"])
def test_pickle_is_rejected_and_never_loaded(
    tripwire: list[bool], signing_key: str | None
) -> None:
    """A pickle is corrupt, and unpickling it (a visible side effect) never runs."""
    assert pickle.loads(pickle.dumps(_Tripwire())) is not None
    assert tripwire == [True]
    tripwire.clear()

    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        raw = pickle.dumps(_Tripwire(), protocol=protocol)
        with pytest.raises(CorruptEntryError):
            codec(signing_key).decode(KEY, raw, "42")

    assert tripwire == []


def test_pickled_dict_is_rejected() -> None:
    """A pickled dict holding a plausible entry is still not an entry."""
    raw = pickle.dumps(json.loads(envelope()))

    with pytest.raises(CorruptEntryError):
        codec().decode(KEY, raw, "42")


@pytest.mark.parametrize("version", [None, 0, 2, "1", 1.5, _DROP])
def test_wrong_format_version_is_corrupt(version: Any) -> None:
    """Only the current format version is read."""
    with pytest.raises(CorruptEntryError, match="version"):
        codec().decode(KEY, envelope(v=version), "42")


def test_boolean_format_version_is_corrupt() -> None:
    """``"v": true`` is not format version 1."""
    with pytest.raises(CorruptEntryError, match="version"):
        codec().decode(KEY, envelope(v=True), "42")


def test_another_users_entry_is_corrupt() -> None:
    """An entry for user 43 is not accepted as user 42's."""
    entries = codec()
    raw = entries.encode(KEYS.entry("43"), Entry(user("43"), FETCHED_AT))

    with pytest.raises(CorruptEntryError, match="another user"):
        entries.decode(KEY, raw, "42")


def test_int_user_id_in_entry_is_corrupt() -> None:
    """The stored user_id must be the normalised string, not a number."""
    with pytest.raises(CorruptEntryError, match="another user"):
        codec().decode(KEY, envelope(user_id=42), "42")


def test_another_services_entry_is_corrupt() -> None:
    """An entry written for another service is not accepted."""
    other = EntryCodec("inventory_api", max_bytes=1 << 20, signing_key=None)
    raw = other.encode(KEY, Entry(user(service_name="inventory_api"), FETCHED_AT))

    with pytest.raises(CorruptEntryError, match="another service"):
        codec().decode(KEY, raw, "42")


def test_oversize_entry_is_corrupt() -> None:
    """An entry over max_bytes is rejected before it is parsed."""
    entries = codec(max_bytes=100)
    raw = codec().encode(KEY, Entry(user(), FETCHED_AT))
    assert len(raw) > 100

    with pytest.raises(CorruptEntryError, match="bytes"):
        entries.decode(KEY, raw, "42")


def test_entry_at_max_bytes_is_accepted() -> None:
    """An entry exactly max_bytes long is read."""
    raw = codec().encode(KEY, Entry(user(), FETCHED_AT))

    assert codec(max_bytes=len(raw)).decode(KEY, raw, "42").attributes == user()


@pytest.mark.parametrize(
    "fields",
    [
        {"roles": "admin"},
        {"roles": None},
        {"roles": [1]},
        {"roles": [""]},
        {"roles": [["admin"]]},
        {"roles": _DROP},
        {"permissions": {"invoices.read": True}},
        {"permissions": ["invoices.read", None]},
        {"permissions": _DROP},
        {"attributes": ["department", "finance"]},
        {"attributes": "finance"},
        {"attributes": None},
        {"attributes": _DROP},
        {"fetched_at": "1700000000"},
        {"fetched_at": None},
        {"fetched_at": True},
        {"fetched_at": _DROP},
        {"user_id": None},
        {"service_name": None},
    ],
)
def test_wrong_field_types_are_corrupt(fields: dict[str, Any]) -> None:
    """Wrongly typed or missing roles, permissions, attributes or fetched_at."""
    with pytest.raises(CorruptEntryError):
        codec().decode(KEY, envelope(**fields), "42")


def test_unknown_marker_must_be_true() -> None:
    """Only ``"unknown": true`` marks an unknown user; other values do not."""
    decoded = codec().decode(KEY, envelope(unknown=1), "42")

    assert decoded.attributes is not None


@pytest.mark.parametrize(
    "fields",
    [
        {"fetched_at": -1.0},
        {"attributes": {"a": json.loads('{"b":' * 40 + "1" + "}" * 40)}},
    ],
)
def test_entries_that_from_dict_would_reject_are_corrupt(
    fields: dict[str, Any],
) -> None:
    """What UserAttributes refuses to hold is not accepted from Redis either."""
    with pytest.raises(CorruptEntryError):
        codec().decode(KEY, envelope(**fields), "42")


# Signing.


def test_signed_entry_round_trips() -> None:
    """With a signing key, an entry decodes under the key it was written for."""
    entries = codec("k3y")
    raw = entries.encode(KEY, Entry(user(), FETCHED_AT))

    assert raw.startswith(b'{"sig":"')
    assert entries.decode(KEY, raw, "42").attributes == user()


def test_signed_entry_is_still_json() -> None:
    """A signed entry is a JSON object wrapping the plain envelope."""
    raw = codec("k3y").encode(KEY, Entry(user(), FETCHED_AT))

    data = json.loads(raw)

    assert set(data) == {"sig", "entry"}
    assert data["entry"]["user_id"] == "42"


def test_signed_unknown_entry_round_trips() -> None:
    """Unknown-user markers are signed and verified too."""
    entries = codec(b"k3y")
    raw = entries.encode_unknown(KEY, "42", FETCHED_AT)

    assert entries.decode(KEY, raw, "42").attributes is None


def test_unsigned_entry_is_rejected_when_a_key_is_set() -> None:
    """With a signing key, an entry without a signature is a miss."""
    raw = codec().encode(KEY, Entry(user(), FETCHED_AT))

    with pytest.raises(CorruptEntryError, match="not signed"):
        codec("k3y").decode(KEY, raw, "42")


def test_unsigned_unknown_marker_is_rejected_when_a_key_is_set() -> None:
    """A forged 'unknown user' marker cannot lock a user out of a signed cache."""
    raw = codec().encode_unknown(KEY, "42", FETCHED_AT)

    with pytest.raises(CorruptEntryError):
        codec("k3y").decode(KEY, raw, "42")


def test_tampered_body_is_rejected() -> None:
    """Changing the signed body (granting a role) breaks the signature."""
    raw = codec("k3y").encode(KEY, Entry(user(), FETCHED_AT))
    tampered = raw.replace(b'"viewer"', b'"root__"')
    assert tampered != raw

    with pytest.raises(CorruptEntryError, match="signature"):
        codec("k3y").decode(KEY, tampered, "42")


def test_every_flipped_byte_is_rejected() -> None:
    """No single-byte change to a signed entry passes verification."""
    entries = codec("k3y")
    raw = entries.encode(KEY, Entry(user(), FETCHED_AT))

    for index in range(0, len(raw), 7):
        flipped = raw[:index] + bytes([raw[index] ^ 0x01]) + raw[index + 1 :]
        with pytest.raises(CorruptEntryError):
            entries.decode(KEY, flipped, "42")


def test_entry_signed_for_another_key_is_rejected() -> None:
    """A signed entry copied under another Redis key fails verification."""
    entries = codec("k3y")
    raw = entries.encode(KEYS.entry("42"), Entry(user(), FETCHED_AT))

    with pytest.raises(CorruptEntryError, match="signature"):
        entries.decode(KeySpace("other", SERVICE).entry("42"), raw, "42")


def test_wrong_signing_key_is_rejected() -> None:
    """An entry signed with another signing key is a miss."""
    raw = codec("key-one").encode(KEY, Entry(user(), FETCHED_AT))

    with pytest.raises(CorruptEntryError, match="signature"):
        codec("key-two").decode(KEY, raw, "42")


def test_str_and_bytes_signing_keys_agree() -> None:
    """A signing key given as str signs like its UTF-8 bytes."""
    raw = codec("k3y").encode(KEY, Entry(user(), FETCHED_AT))

    assert codec(b"k3y").decode(KEY, raw, "42").attributes == user()


def test_signed_entry_is_rejected_without_a_key() -> None:
    """A codec without a key does not read the signed wrapper as an entry."""
    raw = codec("k3y").encode(KEY, Entry(user(), FETCHED_AT))

    with pytest.raises(CorruptEntryError):
        codec().decode(KEY, raw, "42")
