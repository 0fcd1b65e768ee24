"""Tests of the system checks: each id fires for its misconfiguration."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

from rbac_abac_cache.contrib.django import set_cache
from rbac_abac_cache.contrib.django.checks import (
    check_middleware,
    check_refresh_url,
    check_settings,
)
from rbac_abac_cache.contrib.django.middleware import AttributeCacheMiddleware
from rbac_abac_cache.testing import make_test_cache

from . import settings as test_settings

GOOD = test_settings.RBAC_ABAC_CACHE
OURS = "rbac_abac_cache.contrib.django.middleware.AttributeCacheMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"
SESSION = "django.contrib.sessions.middleware.SessionMiddleware"


def _ids(messages: list[Any]) -> list[str]:
    return [message.id for message in messages]


def _settings_ids(**options: Any) -> list[str]:
    with override_settings(RBAC_ABAC_CACHE=options):
        return _ids(check_settings())


def test_good_configuration_passes_every_check() -> None:
    """The test settings raise no message at all."""
    assert check_settings() == []
    assert check_middleware() == []
    assert check_refresh_url() == []


def test_checks_are_registered_by_the_app() -> None:
    """The AppConfig registers the checks, so manage.py check runs them."""
    with override_settings(RBAC_ABAC_CACHE={}, MIDDLEWARE=[]):
        ids = _ids(checks.run_checks())

    assert "rbac_abac_cache.E001" in ids
    assert "rbac_abac_cache.W001" in ids


def test_missing_service_name_is_e001() -> None:
    """Without SERVICE_NAME anywhere the cache cannot be built."""
    ids = _settings_ids(IDENTITY_PROVIDER_URL="https://idp.example")

    assert ids == ["rbac_abac_cache.E001"]


def test_service_name_from_the_environment_satisfies_e001(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RBAC_ABAC_SERVICE_NAME counts as a service name."""
    monkeypatch.setenv("RBAC_ABAC_SERVICE_NAME", "billing_api")

    assert _settings_ids(IDENTITY_PROVIDER_URL="https://idp.example") == []


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("TTL", "abc", "RBAC_ABAC_CACHE['TTL']"),
        ("LOCAL_TTL", -1, "RBAC_ABAC_CACHE['LOCAL_TTL']"),
        ("SERVICE_NAME", "bad name", "RBAC_ABAC_CACHE['SERVICE_NAME']"),
        ("REDIS_URL", "localhost", "RBAC_ABAC_CACHE['REDIS_URL']"),
        ("REFRESH_AFTER", 10**6, "refresh_after"),
    ],
)
def test_malformed_value_is_e002_with_the_message(
    key: str, value: Any, named: str
) -> None:
    """A malformed value, or one that cannot work with the others, is E002."""
    with override_settings(RBAC_ABAC_CACHE={**GOOD, key: value}):
        messages = check_settings()

    assert _ids(messages) == ["rbac_abac_cache.E002"]
    assert named in messages[0].msg


def test_every_malformed_value_is_reported() -> None:
    """Each malformed value gets its own message."""
    ids = _settings_ids(**GOOD, TTL="abc", STALE_GRACE=-1)

    assert ids == ["rbac_abac_cache.E002", "rbac_abac_cache.E002"]


def test_malformed_top_level_setting_is_e002() -> None:
    """RBAC_ABAC_CACHE_TTL is checked like the dict's keys."""
    with override_settings(RBAC_ABAC_CACHE_TTL="forever"):
        messages = check_settings()

    assert _ids(messages) == ["rbac_abac_cache.E002"]
    assert "RBAC_ABAC_CACHE_TTL" in messages[0].msg


def test_malformed_environment_variable_is_e002(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A malformed environment fallback is reported with the variable's name."""
    monkeypatch.setenv("RBAC_ABAC_CACHE_NEGATIVE_TTL", "soon")

    messages = check_settings()

    assert _ids(messages) == ["rbac_abac_cache.E002"]
    assert "RBAC_ABAC_CACHE_NEGATIVE_TTL" in messages[0].msg


def test_setting_that_is_not_a_dict_is_e003() -> None:
    """RBAC_ABAC_CACHE must be a dict."""
    with override_settings(RBAC_ABAC_CACHE="billing_api"):
        assert _ids(check_settings()) == ["rbac_abac_cache.E003"]


@pytest.mark.parametrize("resolver", ["tests.nowhere.resolve", 42])
def test_bad_resolver_is_e004(resolver: Any) -> None:
    """A USER_ID_RESOLVER that cannot be imported or called is E004."""
    assert _settings_ids(**GOOD, USER_ID_RESOLVER=resolver) == ["rbac_abac_cache.E004"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ALLOWED_SERVICES", "billing_api"),
        ("ALLOWED_SERVICES", ["bad name"]),
        ("REFRESH_RATE_LIMIT", 0),
        ("REFRESH_RATE_WINDOW", "never"),
    ],
)
def test_bad_refresh_options_are_e005(key: str, value: Any) -> None:
    """ALLOWED_SERVICES and REFRESH_RATE_* are checked."""
    assert _settings_ids(**GOOD, **{key: value}) == ["rbac_abac_cache.E005"]


@pytest.mark.parametrize("value", [42, "tests.nowhere.cache"])
def test_bad_cache_option_is_e006(value: Any) -> None:
    """CACHE must be a cache, or the path of one or of a factory."""
    assert _settings_ids(CACHE=value) == ["rbac_abac_cache.E006"]


def test_cache_option_skips_the_cache_settings() -> None:
    """With a CACHE given, SERVICE_NAME and the identity provider are not needed."""
    cache = make_test_cache(service_name="billing_api")

    assert _settings_ids(CACHE=cache) == []
    cache.close()


def test_injected_cache_skips_the_cache_settings() -> None:
    """A cache given to set_cache (say, in AppConfig.ready) needs no settings."""
    cache = make_test_cache(service_name="billing_api")
    set_cache(cache)

    assert _settings_ids() == []
    cache.close()


def test_middleware_before_authentication_is_e007() -> None:
    """AttributeCacheMiddleware must come after AuthenticationMiddleware."""
    with override_settings(MIDDLEWARE=[SESSION, OURS, AUTH]):
        messages = check_middleware()

    assert _ids(messages) == ["rbac_abac_cache.E007"]
    assert messages[0].hint


def test_missing_middleware_is_w001() -> None:
    """Without the middleware request.rbac is not set: a warning."""
    with override_settings(MIDDLEWARE=[SESSION, AUTH]):
        assert _ids(check_middleware()) == ["rbac_abac_cache.W001"]


def test_subclass_of_the_middleware_counts() -> None:
    """A subclass of AttributeCacheMiddleware is recognised by its path."""
    path = "tests.contrib.django.test_checks.CustomMiddleware"
    with override_settings(MIDDLEWARE=[SESSION, AUTH, path]):
        assert check_middleware() == []


def test_refresh_url_without_token_is_w002() -> None:
    """A routed refresh endpoint with no token would refuse everything."""
    options = {key: value for key, value in GOOD.items() if key != "REFRESH_TOKENS"}
    with override_settings(RBAC_ABAC_CACHE=options):
        assert _ids(check_refresh_url()) == ["rbac_abac_cache.W002"]


def test_unrouted_refresh_view_needs_no_token() -> None:
    """Without the refresh URL, no token is needed."""
    with override_settings(
        ROOT_URLCONF="tests.contrib.django.test_checks", RBAC_ABAC_CACHE={}
    ):
        assert check_refresh_url() == []


def test_missing_identity_provider_is_w003() -> None:
    """Without an identity provider misses cannot be filled: a warning."""
    assert _settings_ids(SERVICE_NAME="billing_api") == ["rbac_abac_cache.W003"]


def test_unknown_key_is_w004() -> None:
    """A misspelt key is reported rather than silently ignored."""
    with override_settings(RBAC_ABAC_CACHE={**GOOD, "SERVICENAME": "x"}):
        messages = check_settings()

    assert _ids(messages) == ["rbac_abac_cache.W004"]
    assert "SERVICENAME" in messages[0].msg


def test_no_authentication_with_default_resolver_is_w005() -> None:
    """The default resolver needs request.user, set by AuthenticationMiddleware."""
    with override_settings(MIDDLEWARE=[OURS]):
        assert _ids(check_middleware()) == ["rbac_abac_cache.W005"]

    options = {**GOOD, "USER_ID_RESOLVER": "tests.contrib.django.test_checks.resolve"}
    with override_settings(MIDDLEWARE=[OURS], RBAC_ABAC_CACHE=options):
        assert check_middleware() == []


class CustomMiddleware(AttributeCacheMiddleware):
    """A subclass, for the test that recognises subclasses."""


def resolve(request: Any) -> None:
    """A resolver, for the W005 test."""


urlpatterns: list[Any] = []
