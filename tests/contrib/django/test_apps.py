"""Tests of the Django app configuration."""

from __future__ import annotations

from django.apps import apps
from django.core.checks import registry

from rbac_abac_cache.contrib.django.apps import RbacAbacCacheConfig
from rbac_abac_cache.contrib.django.checks import (
    check_middleware,
    check_refresh_url,
    check_settings,
)


def test_app_is_found_by_its_package_path() -> None:
    """INSTALLED_APPS names the package; Django finds the config by itself."""
    config = apps.get_app_config("rbac_abac_cache")

    assert isinstance(config, RbacAbacCacheConfig)
    assert config.name == "rbac_abac_cache.contrib.django"


def test_ready_registers_the_checks() -> None:
    """The checks are registered with Django's registry when the app is ready."""
    registered = registry.registry.get_checks()

    assert check_settings in registered
    assert check_middleware in registered
    assert check_refresh_url in registered
