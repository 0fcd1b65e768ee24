"""Validation of user ids and service names, and the Redis keys built from them.

Every key for one (service, user) pair shares a Redis Cluster hash tag, so the
entry, its lock, its generation counter and its rate-limit bucket live in one
slot and can change together atomically. The user id is percent-encoded
before it enters a key: the encoding is injective and leaves no ``:``, ``{``,
``}``, ``*`` or whitespace, so no two pairs share a key and no id can reach
another key family.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import quote

from .exceptions import ConfigurationError, InvalidUserIdError

__all__ = [
    "MAX_USER_ID_LENGTH",
    "KeySpace",
    "check_key_prefix",
    "check_service_name",
    "normalize_user_id",
]

MAX_USER_ID_LENGTH = 256
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_KEY_PREFIX = re.compile(r"[A-Za-z0-9_.\-:]{1,64}")


def normalize_user_id(user_id: object) -> str:
    """Return ``user_id`` as the string used everywhere else.

    Args:
        user_id: A ``str`` or an ``int`` (not a ``bool``).

    Raises:
        InvalidUserIdError: The id is of another type, empty, longer than 256
            characters, or contains control characters or lone surrogates.
    """
    if type(user_id) is int:
        user_id = _int_to_str(user_id)
    elif not isinstance(user_id, str):
        raise InvalidUserIdError(
            f"user_id must be a str or int, not {type(user_id).__name__}"
        )

    if not user_id:
        raise InvalidUserIdError("user_id must not be empty")

    if len(user_id) > MAX_USER_ID_LENGTH:
        raise InvalidUserIdError(
            f"user_id is {len(user_id)} characters long; "
            f"at most {MAX_USER_ID_LENGTH} are allowed"
        )

    if _CONTROL_CHARACTERS.search(user_id):
        raise InvalidUserIdError("user_id must not contain control characters")

    if not user_id.isascii():
        try:
            user_id.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidUserIdError(
                "user_id must be valid Unicode text (it has a lone surrogate)"
            ) from None

    return str(user_id)


def _int_to_str(user_id: int) -> str:
    try:
        return str(user_id)
    except ValueError as exc:  # Beyond Python's digit limit for int-to-str.
        raise InvalidUserIdError("user_id is too long") from exc


def check_service_name(service_name: object, *, setting: str = "service_name") -> str:
    """Return ``service_name`` if it is well formed.

    A service name is 1 to 128 ASCII letters, digits, ``_``, ``.`` or ``-``,
    starting with a letter or digit.

    Raises:
        ConfigurationError: Naming ``setting`` when the name is malformed.
    """
    if not isinstance(service_name, str) or not _SERVICE_NAME.fullmatch(service_name):
        raise ConfigurationError(
            f"{setting} must be 1-128 characters of letters, digits, '_', '.' "
            f"or '-', starting with a letter or digit; got {service_name!r}"
        )
    return service_name


def check_key_prefix(prefix: object, *, setting: str = "key_prefix") -> str:
    """Return ``prefix`` if it can start a key without breaking hash tags."""
    if not isinstance(prefix, str) or not _KEY_PREFIX.fullmatch(prefix):
        raise ConfigurationError(
            f"{setting} must be 1-64 characters of letters, digits, '_', '.', "
            f"'-' or ':'; got {prefix!r}"
        )
    return prefix


@lru_cache(maxsize=65536)
def _escape(user_id: str) -> str:
    return quote(user_id, safe="")


class KeySpace:
    """Builds every Redis key and channel name for one service.

    Args:
        prefix: The first part of every key (``key_prefix``).
        service_name: The service whose entries these keys hold.
    """

    __slots__ = ("channel", "prefix", "service_name")

    def __init__(self, prefix: str, service_name: str) -> None:
        self.prefix = check_key_prefix(prefix)
        self.service_name = check_service_name(service_name)
        self.channel = f"{self.prefix}:invalidations"

    def _tag(self, user_id: str) -> str:
        return f"{self.prefix}:{{{self.service_name}:{_escape(user_id)}}}"

    def entry(self, user_id: str) -> str:
        """The key of the user's cached entry."""
        return self._tag(user_id) + ":attrs"

    def entry_pattern(self) -> str:
        """A ``SCAN MATCH`` pattern for every entry of this service.

        Prefixes and service names hold no glob characters, and user ids are
        percent-encoded, so the pattern matches entries and nothing else.
        """
        return f"{self.prefix}:{{{self.service_name}:*}}:attrs"

    def lock(self, user_id: str) -> str:
        """The key of the short lock held while one process fetches the user."""
        return self._tag(user_id) + ":lock"

    def generation(self, user_id: str) -> str:
        """The key of the counter that refresh and invalidate bump."""
        return self._tag(user_id) + ":gen"

    def rate_limit(self, user_id: str) -> str:
        """The key of the user's refresh-endpoint rate-limit bucket."""
        return self._tag(user_id) + ":ratelimit"
