"""The exceptions this library raises.

Every error is an :class:`AttributeCacheError`, so one ``except`` clause can
catch them all. Errors about bad input are also :class:`ValueError`::

    AttributeCacheError
    ├── ConfigurationError (also ValueError)
    ├── InvalidUserIdError (also ValueError)
    ├── InvalidAttributesError (also ValueError)
    ├── FetchError
    │   └── IdentityProviderUnavailableError
    ├── AttributesUnavailableError
    └── RedisUnavailableError

Errors raised by redis-py, requests and tenacity are translated where they
enter the library and chained with ``raise ... from``; they never reach a
caller of the public API directly.
"""

from __future__ import annotations

__all__ = [
    "AttributeCacheError",
    "AttributesUnavailableError",
    "ConfigurationError",
    "FetchError",
    "IdentityProviderUnavailableError",
    "InvalidAttributesError",
    "InvalidUserIdError",
    "RedisUnavailableError",
]


class AttributeCacheError(Exception):
    """Base class of every error raised by rbac-abac-cache."""


class ConfigurationError(AttributeCacheError, ValueError):
    """A setting has a value that cannot work; the message names the setting."""


class InvalidUserIdError(AttributeCacheError, ValueError):
    """A user id is not a non-empty string or integer of at most 256 characters."""


class InvalidAttributesError(AttributeCacheError, ValueError):
    """Attribute data is malformed; the message names the offending field."""


class FetchError(AttributeCacheError):
    """The identity provider could not produce a user's attributes."""


class IdentityProviderUnavailableError(FetchError):
    """The identity provider is failing, so calls to it are refused for a while."""


class AttributesUnavailableError(AttributeCacheError):
    """No trustworthy attributes can be served for this user right now.

    Callers must deny the request (adapters answer 503 with ``Retry-After``):
    the library never substitutes an empty or default grant.
    """

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RedisUnavailableError(AttributeCacheError):
    """Redis could not record a change (refresh, invalidate, set).

    Reads never raise it: they are served without Redis. A change that could
    not be written may not have reached other instances, so it is reported.
    """
