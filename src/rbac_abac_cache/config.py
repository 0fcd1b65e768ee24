"""Settings: one frozen value object per concern, read from every source alike.

Every setting is defined once, in :data:`SETTINGS`, with its type, default,
environment variable and Django key. :func:`load_settings` reads them from
keyword arguments, a framework's configuration and the environment, in that
order of precedence, and both framework adapters use it. A malformed value
raises :class:`ConfigurationError` naming the variable or key it came from;
nothing falls back to a default silently.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .exceptions import ConfigurationError
from .keys import check_key_prefix, check_service_name

__all__ = [
    "SETTINGS",
    "CacheSettings",
    "ConnectionSettings",
    "Setting",
    "Source",
    "django_source",
    "environ_source",
    "load_settings",
    "mapping_source",
]

DEFAULT_REDIS_URL = "redis://localhost:6379/0"


@dataclass(frozen=True)
class CacheSettings:
    """How an :class:`~rbac_abac_cache.AttributeCache` behaves.

    Each field is documented once here; the environment variable is
    ``RBAC_ABAC_CACHE_<FIELD>`` (``RBAC_ABAC_SERVICE_NAME`` for
    ``service_name``) and the Django key is the field name upper-cased.

    Attributes:
        service_name: The service whose attributes are cached. Required.
        ttl: Seconds an entry is served without asking the identity
            provider. Default 86400 (24 h).
        refresh_after: Seconds after which a read still serves the entry but
            refreshes it in the background; ``None`` or 0 turns this off.
            Must be less than ``ttl``. Default ``None``.
        stale_grace: Seconds past ``ttl`` during which the old entry is
            served if the identity provider fails. Default 3600.
        negative_ttl: Seconds an unknown user is remembered, so that a flood
            of bogus ids does not reach the identity provider; 0 turns it
            off. Default 60.
        local_ttl: Seconds an entry is kept in this process's memory; 0
            turns the in-process tier off. Default 0.
        local_maxsize: Most entries the in-process tier holds (LRU).
            Default 10000.
        key_prefix: First part of every Redis key and channel. Default
            ``"rbac_abac"``.
        ttl_jitter: Fraction by which a Redis key's lifetime is shortened at
            random, so keys written together do not expire together.
            Between 0 and 0.5. Default 0.1.
        lock_ttl: Seconds the cross-process fetch lock lives if its holder
            dies. Default 10.
        lock_wait: Seconds a process waits for another's fetch before it
            fetches itself. Default 3.
        redis_retry_interval: Seconds Redis is left alone after it failed,
            before one request tries it again. Default 1.
        refresh_workers: Threads that run background refreshes. Default 2.
        max_entry_bytes: Largest entry read from Redis; larger ones are
            treated as corrupt. Default 1048576.
        signing_key: When set, entries carry an HMAC-SHA256 made with it and
            entries without a valid one are ignored. Default ``None``.
    """

    service_name: str
    ttl: float = 86400.0
    refresh_after: float | None = None
    stale_grace: float = 3600.0
    negative_ttl: float = 60.0
    local_ttl: float = 0.0
    local_maxsize: int = 10_000
    key_prefix: str = "rbac_abac"
    ttl_jitter: float = 0.1
    lock_ttl: float = 10.0
    lock_wait: float = 3.0
    redis_retry_interval: float = 1.0
    refresh_workers: int = 2
    max_entry_bytes: int = 1 << 20
    signing_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for item in fields(self):
            setting = _SETTINGS_BY_ATTR[item.name]
            value = getattr(self, item.name)
            object.__setattr__(self, item.name, setting.parse(value, item.name))

        if self.refresh_after == 0:
            object.__setattr__(self, "refresh_after", None)

        if self.refresh_after is not None and self.refresh_after >= self.ttl:
            raise ConfigurationError(
                f"refresh_after ({self.refresh_after:g}) must be less than "
                f"ttl ({self.ttl:g}), or the background refresh would never run"
            )


@dataclass(frozen=True)
class ConnectionSettings:
    """Where the cache's Redis and identity provider are.

    Attributes:
        redis_url: ``RBAC_ABAC_REDIS_URL``, else ``REDIS_URL``, else
            ``redis://localhost:6379/0``. ``rediss://`` for TLS.
        redis_cluster: ``RBAC_ABAC_REDIS_CLUSTER``: treat ``redis_url`` as a
            node of a Redis Cluster. Default false.
        redis_timeout: ``RBAC_ABAC_CACHE_REDIS_TIMEOUT``: socket connect and
            read timeout, in seconds, of clients built from a URL. Default 0.5.
        identity_provider_url: ``IDENTITY_PROVIDER_URL``: base URL of the
            identity provider. Default ``None`` (misses cannot be filled).
        idp_token: ``RBAC_ABAC_IDP_TOKEN``: bearer token sent to the
            identity provider. Default ``None``.
        idp_timeout: ``RBAC_ABAC_IDP_TIMEOUT``: connect and read timeout of
            each request to the identity provider, in seconds. Default
            ``None``: 2 s to connect, 5 s to read.
        idp_retries: ``RBAC_ABAC_IDP_RETRIES``: retries of a failed request
            to the identity provider. Default ``None``: 3.
        refresh_tokens: ``RBAC_ABAC_REFRESH_TOKEN``: comma-separated tokens
            the refresh endpoint accepts (several, for rotation). Default none,
            which makes the endpoint refuse every request.
    """

    redis_url: str = DEFAULT_REDIS_URL
    redis_cluster: bool = False
    redis_timeout: float = 0.5
    identity_provider_url: str | None = None
    idp_token: str | None = field(default=None, repr=False)
    idp_timeout: float | None = None
    idp_retries: int | None = None
    refresh_tokens: tuple[str, ...] = field(default=(), repr=False)


# Parsers take a value from any source (a string from the environment, or a
# typed value from code or a framework's settings) and the name it came by.


def _number(value: Any, name: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigurationError(f"{name}={value!r} is not a number") from None

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number, not {type(value).__name__}")

    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ConfigurationError(f"{name}={value!r} must be finite")
    return number


def seconds(
    minimum: float = 0.0, *, exclusive: bool = False
) -> Callable[[Any, str], float]:
    """Parser for a duration in seconds of at least (or above) ``minimum``."""

    def parse(value: Any, name: str) -> float:
        number = _number(value, name)
        if number < minimum or (exclusive and number == minimum):
            bound = "greater than" if exclusive else "at least"
            raise ConfigurationError(f"{name}={value!r} must be {bound} {minimum:g}")
        return number

    return parse


def optional_seconds(value: Any, name: str) -> float | None:
    """Parser for a positive duration, or ``None``/empty/``"off"`` for none."""
    if value is None or (
        isinstance(value, str) and value.strip().lower() in ("", "none", "off")
    ):
        return None
    return seconds(0.0)(value, name)


def fraction(value: Any, name: str) -> float:
    """Parser for a fraction between 0 and 0.5."""
    number = _number(value, name)
    if not 0.0 <= number <= 0.5:
        raise ConfigurationError(f"{name}={value!r} must be between 0 and 0.5")
    return number


def integer(minimum: int) -> Callable[[Any, str], int]:
    """Parser for an integer of at least ``minimum``."""

    def parse(value: Any, name: str) -> int:
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ConfigurationError(
                    f"{name}={value!r} is not an integer"
                ) from None

        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigurationError(
                f"{name} must be an integer, not {type(value).__name__}"
            )

        if value < minimum:
            raise ConfigurationError(f"{name}={value!r} must be at least {minimum}")
        return value

    return parse


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def boolean(value: Any, name: str) -> bool:
    """Parser for a flag: a bool, or one of 1/0, true/false, yes/no, on/off."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE:
        return True
    if isinstance(value, str) and value.strip().lower() in _FALSE:
        return False
    raise ConfigurationError(f"{name}={value!r} is not a flag; use true or false")


def text(value: Any, name: str) -> str:
    """Parser for a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string")
    return value.strip()


def optional_text(value: Any, name: str) -> str | None:
    """Parser for a string that may be absent or empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return text(value, name)


def url(value: Any, name: str) -> str:
    """Parser for an http(s) or redis URL."""
    result = text(value, name)
    if "://" not in result:
        raise ConfigurationError(f"{name}={result!r} is not a URL")
    return result


def optional_url(value: Any, name: str) -> str | None:
    """Parser for a URL that may be absent or empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return url(value, name)


def tokens(value: Any, name: str) -> tuple[str, ...]:
    """Parser for secrets given as a comma-separated string or a list."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, Iterable):
        raise ConfigurationError(f"{name} must be a comma-separated string or a list")

    result = []
    for item in value:
        if not isinstance(item, str):
            raise ConfigurationError(f"{name} must contain only strings")
        if item.strip():
            result.append(item.strip())
    return tuple(result)


def _service_name(value: Any, name: str) -> str:
    return check_service_name(value, setting=name)


def _key_prefix(value: Any, name: str) -> str:
    return check_key_prefix(value, setting=name)


@dataclass(frozen=True)
class Setting:
    """One setting: where it is read from and how its value is checked."""

    attr: str
    parse: Callable[[Any, str], Any]
    env: str = ""
    django_key: str = ""
    fallback_envs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.env:
            object.__setattr__(self, "env", f"RBAC_ABAC_CACHE_{self.attr.upper()}")
        if not self.django_key:
            object.__setattr__(self, "django_key", self.attr.upper())


SETTINGS: tuple[Setting, ...] = (
    Setting("service_name", _service_name, env="RBAC_ABAC_SERVICE_NAME"),
    Setting("ttl", seconds(0.0, exclusive=True)),
    Setting("refresh_after", optional_seconds),
    Setting("stale_grace", seconds()),
    Setting("negative_ttl", seconds()),
    Setting("local_ttl", seconds()),
    Setting("local_maxsize", integer(1)),
    Setting("key_prefix", _key_prefix),
    Setting("ttl_jitter", fraction),
    Setting("lock_ttl", seconds(0.0, exclusive=True)),
    Setting("lock_wait", seconds()),
    Setting("redis_retry_interval", seconds()),
    Setting("refresh_workers", integer(1)),
    Setting("max_entry_bytes", integer(1024)),
    Setting("signing_key", optional_text),
    Setting("redis_url", url, env="RBAC_ABAC_REDIS_URL", fallback_envs=("REDIS_URL",)),
    Setting("redis_cluster", boolean, env="RBAC_ABAC_REDIS_CLUSTER"),
    Setting("redis_timeout", seconds(0.0, exclusive=True)),
    Setting("identity_provider_url", optional_url, env="IDENTITY_PROVIDER_URL"),
    Setting("idp_token", optional_text, env="RBAC_ABAC_IDP_TOKEN"),
    Setting("idp_timeout", seconds(0.0, exclusive=True), env="RBAC_ABAC_IDP_TIMEOUT"),
    Setting("idp_retries", integer(0), env="RBAC_ABAC_IDP_RETRIES"),
    Setting(
        "refresh_tokens",
        tokens,
        env="RBAC_ABAC_REFRESH_TOKEN",
        fallback_envs=("RBAC_ABAC_REFRESH_TOKENS",),
    ),
)
_SETTINGS_BY_ATTR = {setting.attr: setting for setting in SETTINGS}
_CACHE_FIELDS = frozenset(item.name for item in fields(CacheSettings))
_CONNECTION_FIELDS = frozenset(item.name for item in fields(ConnectionSettings))


# A source answers "is this setting given here, and by what name?".
Source = Callable[[Setting], "tuple[str, Any] | None"]


def environ_source(environ: Mapping[str, str] | None = None) -> Source:
    """Settings from environment variables (``RBAC_ABAC_CACHE_TTL``, ...)."""
    env = os.environ if environ is None else environ

    def lookup(setting: Setting) -> tuple[str, Any] | None:
        for name in (setting.env, *setting.fallback_envs):
            if name in env:
                return name, env[name]
        return None

    return lookup


def mapping_source(config: Mapping[str, Any], label: str = "") -> Source:
    """Settings from a mapping keyed by environment-variable names (Flask)."""

    def lookup(setting: Setting) -> tuple[str, Any] | None:
        for name in (setting.env, *setting.fallback_envs):
            if name in config and config[name] is not None:
                return f"{label}{name}", config[name]
        return None

    return lookup


def django_source(config: Mapping[str, Any], label: str = "RBAC_ABAC_CACHE") -> Source:
    """Settings from a dict keyed by upper-cased setting names (Django)."""

    def lookup(setting: Setting) -> tuple[str, Any] | None:
        if setting.django_key in config:
            return f"{label}[{setting.django_key!r}]", config[setting.django_key]
        return None

    return lookup


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    sources: Iterable[Source] = (),
) -> tuple[CacheSettings, ConnectionSettings]:
    """Build both settings objects from keyword overrides, then ``sources``.

    Args:
        overrides: Values given in code, by attribute name; ``None`` values
            count as not given.
        sources: Looked up in order after ``overrides``; pass
            ``environ_source()`` last to fall back to the environment.

    Raises:
        ConfigurationError: An unknown override, a malformed value (naming
            where it came from) or a combination that cannot work.
        ConfigurationError: ``service_name`` was given nowhere.
    """
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(_SETTINGS_BY_ATTR)
    if unknown:
        raise ConfigurationError(f"unknown setting(s): {', '.join(sorted(unknown))}")

    sources = tuple(sources)
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if overrides.get(setting.attr) is not None:
            values[setting.attr] = setting.parse(overrides[setting.attr], setting.attr)
            continue

        for source in sources:
            found = source(setting)
            if found is not None:
                name, raw = found
                values[setting.attr] = setting.parse(raw, name)
                break

    if "service_name" not in values:
        raise ConfigurationError(
            "service_name is required: pass service_name=... "
            "or set RBAC_ABAC_SERVICE_NAME"
        )

    cache = CacheSettings(**{k: v for k, v in values.items() if k in _CACHE_FIELDS})
    connection = ConnectionSettings(
        **{k: v for k, v in values.items() if k in _CONNECTION_FIELDS}
    )
    return cache, connection
