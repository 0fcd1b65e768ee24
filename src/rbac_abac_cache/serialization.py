"""The versioned JSON envelope that stores one user's entry in Redis.

An entry is plain JSON, readable with ``redis-cli``::

    {"v": 1, "user_id": "42", "service_name": "billing_api",
     "fetched_at": 1764777600.0, "roles": [...], "permissions": [...],
     "attributes": {...}}

An unknown user is remembered as ``{"v": 1, ..., "unknown": true}``. With a
signing key the envelope is wrapped as ``{"sig": "<hex>", "entry": {...}}``,
where the HMAC-SHA256 covers the Redis key and the exact bytes of the inner
entry, so an entry copied under another key fails verification too.

Nothing here ever unpickles or evaluates data: a value that is not exactly
such an envelope for the expected user is rejected with
:class:`CorruptEntryError`, which the cache treats as a miss.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from contextlib import suppress
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson

from .attributes import UserAttributes

__all__ = ["FORMAT_VERSION", "CorruptEntryError", "Entry", "EntryCodec"]

FORMAT_VERSION = 1

_SIG_HEAD = b'{"sig":"'
_SIG_MIDDLE = b'","entry":'
_SIG_LENGTH = 64
_BODY_START = len(_SIG_HEAD) + _SIG_LENGTH + len(_SIG_MIDDLE)
_MAX_DEPTH = 32
# Decoded entries remembered per codec, to skip decoding unchanged bytes.
_RECENT_ENTRIES = 2048


class CorruptEntryError(Exception):
    """A stored value is not a valid entry for the expected user.

    Internal: the cache turns it into a miss and never lets it escape.
    """


@dataclass(frozen=True, slots=True)
class Entry:
    """What Redis holds for one user: attributes, or the fact they are unknown."""

    attributes: UserAttributes | None
    fetched_at: float


class EntryCodec:
    """Encodes and decodes entries for one service.

    Args:
        service_name: Entries for other services are rejected.
        max_bytes: Values longer than this are rejected unread.
        signing_key: When set, entries are signed and unsigned ones rejected.
    """

    __slots__ = ("_key", "_recent", "max_bytes", "service_name")

    def __init__(
        self, service_name: str, *, max_bytes: int, signing_key: str | bytes | None
    ) -> None:
        self.service_name = service_name
        self.max_bytes = max_bytes
        if isinstance(signing_key, str):
            signing_key = signing_key.encode()
        self._key = signing_key
        self._recent: dict[str, tuple[bytes, Entry]] = {}

    def encode(self, redis_key: str, entry: Entry) -> bytes:
        """Return the bytes to store under ``redis_key``."""
        body = orjson.dumps(self._envelope(entry))
        if self._key is None:
            return body
        return _SIG_HEAD + self._sign(redis_key, body) + _SIG_MIDDLE + body + b"}"

    def decode(self, redis_key: str, raw: bytes | str, user_id: str) -> Entry:
        """Return the entry stored in ``raw``.

        Raises:
            CorruptEntryError: ``raw`` is oversized, not JSON, of another
                version, for another user or service, malformed, or (with a
                signing key) unsigned or wrongly signed.
        """
        if isinstance(raw, str):
            raw = raw.encode()

        # The decoded entry depends only on the key and the bytes, and it is
        # immutable, so the same bytes read again need not be decoded again.
        recent = self._recent.get(redis_key)
        if recent is not None and recent[0] == raw:
            return recent[1]

        entry = self._decode(redis_key, raw, user_id)
        self._remember(redis_key, raw, entry)
        return entry

    def _decode(self, redis_key: str, raw: bytes, user_id: str) -> Entry:
        if len(raw) > self.max_bytes:
            raise CorruptEntryError(f"entry is {len(raw)} bytes, over {self.max_bytes}")

        body = raw if self._key is None else self._verify(redis_key, raw)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise CorruptEntryError("entry is not JSON") from exc

        return self._entry(data, user_id)

    def _remember(self, redis_key: str, raw: bytes, entry: Entry) -> None:
        recent = self._recent
        if len(recent) >= _RECENT_ENTRIES:
            # Oldest first: dicts keep insertion order. Another thread may be
            # changing the dict too; then this one leaves the trimming to it.
            with suppress(KeyError, RuntimeError, StopIteration):
                del recent[next(iter(recent))]
        recent[redis_key] = (raw, entry)

    def _envelope(self, entry: Entry) -> dict[str, Any]:
        attributes = entry.attributes
        if attributes is None:
            raise ValueError("unknown-user entries are encoded with encode_unknown")
        envelope = attributes.to_dict()
        envelope["v"] = FORMAT_VERSION
        return envelope

    def encode_unknown(self, redis_key: str, user_id: str, fetched_at: float) -> bytes:
        """Return the bytes that remember ``user_id`` as unknown to the IdP."""
        body = orjson.dumps(
            {
                "v": FORMAT_VERSION,
                "user_id": user_id,
                "service_name": self.service_name,
                "fetched_at": fetched_at,
                "unknown": True,
            }
        )
        if self._key is None:
            return body
        return _SIG_HEAD + self._sign(redis_key, body) + _SIG_MIDDLE + body + b"}"

    def _sign(self, redis_key: str, body: bytes) -> bytes:
        assert self._key is not None
        mac = hmac.new(self._key, redis_key.encode() + b"\n" + body, hashlib.sha256)
        return mac.hexdigest().encode()

    def _verify(self, redis_key: str, raw: bytes) -> bytes:
        if not (
            raw.startswith(_SIG_HEAD)
            and raw[_BODY_START - len(_SIG_MIDDLE) : _BODY_START] == _SIG_MIDDLE
            and raw.endswith(b"}")
        ):
            raise CorruptEntryError("entry is not signed")

        signature = raw[len(_SIG_HEAD) : len(_SIG_HEAD) + _SIG_LENGTH]
        body = raw[_BODY_START:-1]
        if not hmac.compare_digest(signature, self._sign(redis_key, body)):
            raise CorruptEntryError("entry signature does not match")
        return body

    def _entry(self, data: Any, user_id: str) -> Entry:
        if type(data) is not dict:
            raise CorruptEntryError("entry is not a JSON object")

        version = data.get("v")
        if type(version) is not int or version != FORMAT_VERSION:
            raise CorruptEntryError(f"entry has format version {version!r}")

        if data.get("user_id") != user_id:
            raise CorruptEntryError("entry belongs to another user")

        if data.get("service_name") != self.service_name:
            raise CorruptEntryError("entry belongs to another service")

        fetched_at: Any = data.get("fetched_at")
        if (
            type(fetched_at) not in (int, float)
            or not math.isfinite(fetched_at)
            or fetched_at < 0
        ):
            raise CorruptEntryError("entry has no valid fetched_at")

        if data.get("unknown") is True:
            return Entry(None, float(fetched_at))

        roles = _strings(data.get("roles"), "roles")
        permissions = _strings(data.get("permissions"), "permissions")
        attributes = data.get("attributes")
        if type(attributes) is not dict:
            raise CorruptEntryError("entry attributes are not an object")

        value = UserAttributes._trusted(
            user_id,
            self.service_name,
            roles,
            permissions,
            _freeze(attributes),
            float(fetched_at),
        )
        return Entry(value, value.fetched_at)


def _strings(value: Any, name: str) -> frozenset[str]:
    if type(value) is not list:
        raise CorruptEntryError(f"entry {name} are not a list")

    for item in value:
        if type(item) is not str or not item:
            raise CorruptEntryError(f"entry {name} are not all non-empty strings")
    return frozenset(value)


def _freeze(value: Any, depth: int = 0) -> Any:
    """Make decoded JSON read-only; it is already known to be valid JSON."""
    kind = type(value)
    if kind is not dict and kind is not list:
        return value

    if depth >= _MAX_DEPTH:
        raise CorruptEntryError(f"entry attributes nest deeper than {_MAX_DEPTH}")
    if kind is dict:
        return MappingProxyType(
            {key: _freeze(item, depth + 1) for key, item in value.items()}
        )
    return tuple(_freeze(item, depth + 1) for item in value)
