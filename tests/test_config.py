"""Tests for :mod:`rbac_abac_cache.config`."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest

from rbac_abac_cache import AttributeCache
from rbac_abac_cache.config import (
    DEFAULT_REDIS_URL,
    SETTINGS,
    CacheSettings,
    ConnectionSettings,
    django_source,
    environ_source,
    load_settings,
    mapping_source,
)
from rbac_abac_cache.exceptions import AttributeCacheError, ConfigurationError

SERVICE = {"RBAC_ABAC_SERVICE_NAME": "billing_api"}


def from_env(**variables: str) -> tuple[CacheSettings, ConnectionSettings]:
    """Load settings from an explicit environment (service name included)."""
    return load_settings(sources=[environ_source({**SERVICE, **variables})])


# Defaults.


def test_cache_settings_defaults() -> None:
    """Only service_name is required; every knob has its documented default."""
    settings = CacheSettings(service_name="billing_api")

    assert settings.ttl == 86400
    assert settings.refresh_after is None
    assert settings.stale_grace == 3600
    assert settings.negative_ttl == 60
    assert settings.local_ttl == 0
    assert settings.local_maxsize == 10_000
    assert settings.key_prefix == "rbac_abac"
    assert settings.ttl_jitter == 0.1
    assert settings.lock_ttl == 10
    assert settings.lock_wait == 3
    assert settings.redis_retry_interval == 1
    assert settings.refresh_workers == 2
    assert settings.max_entry_bytes == 1 << 20
    assert settings.signing_key is None


def test_connection_settings_defaults() -> None:
    """Without configuration Redis is local and no identity provider is set."""
    _, connection = from_env()

    assert connection.redis_url == DEFAULT_REDIS_URL == "redis://localhost:6379/0"
    assert connection.redis_cluster is False
    assert connection.redis_timeout == 0.5
    assert connection.identity_provider_url is None
    assert connection.idp_token is None
    assert connection.refresh_tokens == ()


def test_settings_are_frozen() -> None:
    """Settings objects cannot be changed after they are built."""
    settings = CacheSettings(service_name="billing_api")

    with pytest.raises(AttributeError):
        settings.ttl = 1  # type: ignore[misc]


def test_service_name_is_required() -> None:
    """Without a service name anywhere, loading fails and says how to give it."""
    with pytest.raises(ConfigurationError, match="RBAC_ABAC_SERVICE_NAME"):
        load_settings(sources=[environ_source({})])


def test_every_knob_has_its_environment_variable() -> None:
    """Each cache knob is read from ``RBAC_ABAC_CACHE_<KNOB>``."""
    names = {setting.attr: setting.env for setting in SETTINGS}

    assert names["ttl"] == "RBAC_ABAC_CACHE_TTL"
    assert names["local_ttl"] == "RBAC_ABAC_CACHE_LOCAL_TTL"
    assert names["stale_grace"] == "RBAC_ABAC_CACHE_STALE_GRACE"
    assert names["service_name"] == "RBAC_ABAC_SERVICE_NAME"
    assert names["identity_provider_url"] == "IDENTITY_PROVIDER_URL"
    assert names["idp_token"] == "RBAC_ABAC_IDP_TOKEN"


# Environment.


def test_environment_ttl_and_refresh_after_are_parsed() -> None:
    """RBAC_ABAC_CACHE_TTL and RBAC_ABAC_CACHE_REFRESH_AFTER become seconds."""
    settings, _ = from_env(
        RBAC_ABAC_CACHE_TTL="3600", RBAC_ABAC_CACHE_REFRESH_AFTER="300"
    )

    assert settings.ttl == 3600.0
    assert settings.refresh_after == 300.0
    assert settings.service_name == "billing_api"


@pytest.mark.parametrize(
    ("variable", "raw", "attr", "expected"),
    [
        ("RBAC_ABAC_CACHE_STALE_GRACE", "120", "stale_grace", 120.0),
        ("RBAC_ABAC_CACHE_STALE_GRACE", "0", "stale_grace", 0.0),
        ("RBAC_ABAC_CACHE_NEGATIVE_TTL", "5.5", "negative_ttl", 5.5),
        ("RBAC_ABAC_CACHE_LOCAL_TTL", " 2 ", "local_ttl", 2.0),
        ("RBAC_ABAC_CACHE_LOCAL_MAXSIZE", "500", "local_maxsize", 500),
        ("RBAC_ABAC_CACHE_KEY_PREFIX", "app:rbac", "key_prefix", "app:rbac"),
        ("RBAC_ABAC_CACHE_TTL_JITTER", "0.25", "ttl_jitter", 0.25),
        ("RBAC_ABAC_CACHE_LOCK_TTL", "4", "lock_ttl", 4.0),
        ("RBAC_ABAC_CACHE_LOCK_WAIT", "1.5", "lock_wait", 1.5),
        ("RBAC_ABAC_CACHE_REDIS_RETRY_INTERVAL", "2", "redis_retry_interval", 2.0),
        ("RBAC_ABAC_CACHE_REFRESH_WORKERS", "4", "refresh_workers", 4),
        ("RBAC_ABAC_CACHE_MAX_ENTRY_BYTES", "4096", "max_entry_bytes", 4096),
        ("RBAC_ABAC_CACHE_SIGNING_KEY", "k3y", "signing_key", "k3y"),
        ("RBAC_ABAC_CACHE_REFRESH_AFTER", "off", "refresh_after", None),
        ("RBAC_ABAC_CACHE_REFRESH_AFTER", "0", "refresh_after", None),
    ],
)
def test_environment_knobs_are_parsed(
    variable: str, raw: str, attr: str, expected: Any
) -> None:
    """Each RBAC_ABAC_CACHE_<KNOB> variable is parsed to its typed value."""
    settings, _ = from_env(**{variable: raw})

    assert getattr(settings, attr) == expected


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("RBAC_ABAC_CACHE_TTL", "abc"),
        ("RBAC_ABAC_CACHE_TTL", "-5"),
        ("RBAC_ABAC_CACHE_TTL", "0"),
        ("RBAC_ABAC_CACHE_TTL", "nan"),
        ("RBAC_ABAC_CACHE_TTL", "inf"),
        ("RBAC_ABAC_CACHE_TTL", "-inf"),
        ("RBAC_ABAC_CACHE_TTL", ""),
        ("RBAC_ABAC_CACHE_TTL", "1e400"),
        ("RBAC_ABAC_CACHE_TTL", "24h"),
        ("RBAC_ABAC_CACHE_REFRESH_AFTER", "-1"),
        ("RBAC_ABAC_CACHE_REFRESH_AFTER", "soon"),
        ("RBAC_ABAC_CACHE_STALE_GRACE", "-1"),
        ("RBAC_ABAC_CACHE_LOCAL_MAXSIZE", "1.5"),
        ("RBAC_ABAC_CACHE_LOCAL_MAXSIZE", "0"),
        ("RBAC_ABAC_CACHE_LOCAL_TTL", "-0.5"),
        ("RBAC_ABAC_CACHE_TTL_JITTER", "0.9"),
        ("RBAC_ABAC_CACHE_KEY_PREFIX", "has space"),
        ("RBAC_ABAC_CACHE_LOCK_TTL", "0"),
        ("RBAC_ABAC_CACHE_REFRESH_WORKERS", "two"),
        ("RBAC_ABAC_CACHE_MAX_ENTRY_BYTES", "10"),
        ("RBAC_ABAC_CACHE_REDIS_TIMEOUT", "0"),
        ("RBAC_ABAC_REDIS_CLUSTER", "maybe"),
        ("RBAC_ABAC_REDIS_URL", "localhost:6379"),
        ("RBAC_ABAC_SERVICE_NAME", "billing api"),
        ("IDENTITY_PROVIDER_URL", "idp.internal"),
    ],
)
def test_malformed_environment_value_names_the_variable(
    variable: str, raw: str
) -> None:
    """A malformed variable raises ConfigurationError naming it; no fallback."""
    with pytest.raises(ConfigurationError, match=variable):
        from_env(**{variable: raw})


def test_configuration_error_is_value_error_and_library_error() -> None:
    """ConfigurationError is both a ValueError and an AttributeCacheError."""
    with pytest.raises(ConfigurationError) as caught:
        from_env(RBAC_ABAC_CACHE_TTL="abc")

    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, AttributeCacheError)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("Yes", True), ("on", True), ("0", False)],
)
def test_redis_cluster_flag_is_parsed(raw: str, expected: bool) -> None:
    """RBAC_ABAC_REDIS_CLUSTER accepts 1/0, true/false, yes/no, on/off."""
    _, connection = from_env(RBAC_ABAC_REDIS_CLUSTER=raw)

    assert connection.redis_cluster is expected


def test_redis_url_falls_back_to_redis_url_variable() -> None:
    """Without RBAC_ABAC_REDIS_URL, REDIS_URL is used."""
    _, connection = from_env(REDIS_URL="redis://cache:6379/2")

    assert connection.redis_url == "redis://cache:6379/2"


def test_rbac_abac_redis_url_takes_precedence_over_redis_url() -> None:
    """RBAC_ABAC_REDIS_URL wins over REDIS_URL when both are set."""
    _, connection = from_env(
        REDIS_URL="redis://other:6379/0", RBAC_ABAC_REDIS_URL="redis://ours:6379/1"
    )

    assert connection.redis_url == "redis://ours:6379/1"


def test_refresh_tokens_are_comma_separated() -> None:
    """RBAC_ABAC_REFRESH_TOKEN holds several tokens for rotation; blanks drop."""
    _, connection = from_env(RBAC_ABAC_REFRESH_TOKEN="old-token, new-token,,")

    assert connection.refresh_tokens == ("old-token", "new-token")


def test_identity_provider_settings_are_read() -> None:
    """IDENTITY_PROVIDER_URL and RBAC_ABAC_IDP_TOKEN are read from the environment."""
    _, connection = from_env(
        IDENTITY_PROVIDER_URL="https://idp.internal", RBAC_ABAC_IDP_TOKEN="bearer"
    )

    assert connection.identity_provider_url == "https://idp.internal"
    assert connection.idp_token == "bearer"


def test_environ_source_reads_os_environ_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """environ_source() without an argument reads the process environment."""
    monkeypatch.setenv("RBAC_ABAC_SERVICE_NAME", "billing_api")
    monkeypatch.setenv("RBAC_ABAC_CACHE_TTL", "3600")

    settings, _ = load_settings(sources=[environ_source()])

    assert settings.ttl == 3600


# Keyword arguments.


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ttl", "abc"),
        ("ttl", -5),
        ("ttl", 0),
        ("ttl", float("nan")),
        ("ttl", True),
        ("stale_grace", -1),
        ("local_maxsize", 1.5),
        ("local_maxsize", "1.5"),
        ("negative_ttl", [60]),
        ("ttl_jitter", 1),
        ("key_prefix", "a{b}"),
        ("redis_cluster", "maybe"),
    ],
)
def test_malformed_keyword_names_the_keyword(name: str, value: Any) -> None:
    """A malformed keyword argument raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=name):
        load_settings({"service_name": "billing_api", name: value})


def test_huge_integer_keyword_names_the_keyword() -> None:
    """An int too large for a float is a ConfigurationError naming the keyword."""
    with pytest.raises(ConfigurationError, match="ttl"):
        CacheSettings(service_name="billing_api", ttl=10**400)


def test_keyword_none_counts_as_not_given() -> None:
    """A None override leaves the value to the sources and defaults."""
    settings, _ = load_settings(
        {"service_name": "billing_api", "ttl": None},
        [environ_source({"RBAC_ABAC_CACHE_TTL": "60"})],
    )

    assert settings.ttl == 60


def test_refresh_after_not_below_ttl_is_rejected_naming_both() -> None:
    """refresh_after >= ttl cannot work and the error names both settings."""
    with pytest.raises(ConfigurationError, match="refresh_after") as caught:
        CacheSettings(service_name="billing_api", ttl=300, refresh_after=300)

    assert "ttl" in str(caught.value).replace("refresh_after", "")


def test_refresh_after_from_environment_is_checked_against_ttl() -> None:
    """The refresh_after/ttl check applies to values from the environment too."""
    with pytest.raises(ConfigurationError, match="refresh_after"):
        from_env(RBAC_ABAC_CACHE_TTL="300", RBAC_ABAC_CACHE_REFRESH_AFTER="600")


def test_refresh_after_zero_means_off() -> None:
    """refresh_after=0 turns background refresh off rather than always on."""
    assert (
        CacheSettings(service_name="billing_api", refresh_after=0).refresh_after is None
    )


def test_negative_stale_grace_is_rejected() -> None:
    """A negative stale_grace raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match="stale_grace"):
        CacheSettings(service_name="billing_api", stale_grace=-1)


def test_unknown_override_is_rejected() -> None:
    """A misspelt setting is an error, not silently ignored."""
    with pytest.raises(ConfigurationError, match="tll"):
        load_settings({"service_name": "billing_api", "tll": 60})


# Framework sources and precedence.


def test_django_source_reads_upper_cased_knob_names() -> None:
    """Django's RBAC_ABAC_CACHE dict takes knob names upper-cased."""
    source = django_source(
        {
            "SERVICE_NAME": "billing_api",
            "LOCAL_TTL": 5,
            "TTL": 600,
            "REDIS_URL": "redis://django:6379/0",
            "REFRESH_TOKENS": ["a", "b"],
            "IDENTITY_PROVIDER_URL": "https://idp.internal",
        }
    )

    settings, connection = load_settings(sources=[source])

    assert settings.local_ttl == 5
    assert settings.ttl == 600
    assert connection.redis_url == "redis://django:6379/0"
    assert connection.refresh_tokens == ("a", "b")
    assert connection.identity_provider_url == "https://idp.internal"


def test_django_source_errors_name_the_dict_key() -> None:
    """A malformed Django value is reported as ``RBAC_ABAC_CACHE['TTL']``."""
    source = django_source({"SERVICE_NAME": "billing_api", "TTL": "abc"})

    with pytest.raises(ConfigurationError, match=r"RBAC_ABAC_CACHE\['TTL'\]"):
        load_settings(sources=[source])


def test_mapping_source_reads_environment_variable_names() -> None:
    """Flask's config takes the environment variables' names."""
    source = mapping_source(
        {
            "RBAC_ABAC_SERVICE_NAME": "billing_api",
            "RBAC_ABAC_CACHE_TTL": 1200,
            "RBAC_ABAC_CACHE_LOCAL_TTL": 3,
            "RBAC_ABAC_REFRESH_TOKENS": "t1,t2",
            "RBAC_ABAC_REDIS_URL": "redis://flask:6379/0",
        }
    )

    settings, connection = load_settings(sources=[source])

    assert settings.ttl == 1200
    assert settings.local_ttl == 3
    assert connection.refresh_tokens == ("t1", "t2")
    assert connection.redis_url == "redis://flask:6379/0"


def test_mapping_source_errors_name_the_config_key() -> None:
    """A malformed Flask value is reported under its config key."""
    source = mapping_source(
        {"RBAC_ABAC_SERVICE_NAME": "billing_api", "RBAC_ABAC_CACHE_TTL": -5}
    )

    with pytest.raises(ConfigurationError, match="RBAC_ABAC_CACHE_TTL"):
        load_settings(sources=[source])


def test_mapping_source_skips_none_values() -> None:
    """A None in Flask's config counts as not given, so the next source answers."""
    flask = mapping_source({"RBAC_ABAC_CACHE_TTL": None})
    environ = environ_source({**SERVICE, "RBAC_ABAC_CACHE_TTL": "90"})

    settings, _ = load_settings(sources=[flask, environ])

    assert settings.ttl == 90


def test_precedence_is_overrides_then_sources_in_order() -> None:
    """Keyword overrides beat every source; earlier sources beat later ones."""
    django = django_source({"SERVICE_NAME": "from_django", "TTL": 200})
    environ = environ_source(
        {
            "RBAC_ABAC_SERVICE_NAME": "from_env",
            "RBAC_ABAC_CACHE_TTL": "300",
            "RBAC_ABAC_CACHE_LOCAL_TTL": "7",
        }
    )

    overridden, _ = load_settings({"ttl": 100}, [django, environ])
    framework_first, _ = load_settings({}, [django, environ])
    environ_first, _ = load_settings({}, [environ, django])

    assert overridden.ttl == 100
    assert overridden.service_name == "from_django"
    assert framework_first.ttl == 200
    assert framework_first.local_ttl == 7
    assert environ_first.ttl == 300
    assert environ_first.service_name == "from_env"


def test_secrets_are_not_in_repr() -> None:
    """signing_key, idp_token and refresh tokens never appear in repr."""
    settings = CacheSettings(service_name="billing_api", signing_key="sign-s3cret")
    connection = ConnectionSettings(
        idp_token="idp-s3cret", refresh_tokens=("refresh-s3cret",)
    )

    text = repr(settings) + repr(connection)

    assert "sign-s3cret" not in text
    assert "idp-s3cret" not in text
    assert "refresh-s3cret" not in text


# AttributeCache reads the same settings.


def test_cache_with_malformed_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AttributeCache refuses to start when RBAC_ABAC_CACHE_TTL is malformed."""
    monkeypatch.setenv("RBAC_ABAC_CACHE_TTL", "abc")
    client = fakeredis.FakeRedis()

    try:
        with pytest.raises(ConfigurationError, match="RBAC_ABAC_CACHE_TTL"):
            AttributeCache(client, None, service_name="x")
    finally:
        client.close()


def test_cache_keyword_error_names_the_keyword() -> None:
    """AttributeCache names a malformed keyword argument in its error."""
    client = fakeredis.FakeRedis()

    try:
        with pytest.raises(ConfigurationError, match="stale_grace"):
            AttributeCache(client, None, service_name="x", stale_grace=-1)
    finally:
        client.close()
