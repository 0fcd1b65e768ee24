"""Authorise requests from users' roles, permissions and attributes.

The attributes are owned by an identity provider, cached in Redis (and
optionally in process memory) and refreshed from the provider: see
:class:`AttributeCache`.

The core of this package imports no web framework. Django and Flask support
live in ``rbac_abac_cache.contrib.django`` and ``rbac_abac_cache.contrib.flask``
and import their framework only there.
"""

from __future__ import annotations

from .attributes import UserAttributes
from .cache import AttributeCache
from .compat import (
    get_user_attributes,
    refresh_user_attributes_from_identity_provider,
    set_default_cache,
)
from .config import CacheSettings, ConnectionSettings
from .exceptions import (
    AttributeCacheError,
    AttributesUnavailableError,
    ConfigurationError,
    FetchError,
    IdentityProviderUnavailableError,
    InvalidAttributesError,
    InvalidUserIdError,
    RedisUnavailableError,
)
from .fetchers import Fetcher
from .identity_provider import HttpIdentityProvider
from .refresh import RefreshHandler, RefreshResponse

__all__ = [
    "AttributeCache",
    "AttributeCacheError",
    "AttributesUnavailableError",
    "CacheSettings",
    "ConfigurationError",
    "ConnectionSettings",
    "FetchError",
    "Fetcher",
    "HttpIdentityProvider",
    "IdentityProviderUnavailableError",
    "InvalidAttributesError",
    "InvalidUserIdError",
    "RedisUnavailableError",
    "RefreshHandler",
    "RefreshResponse",
    "UserAttributes",
    "get_user_attributes",
    "refresh_user_attributes_from_identity_provider",
    "set_default_cache",
]

__version__ = "0.1.0"
