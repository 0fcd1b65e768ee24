"""The Django app: add ``"rbac_abac_cache.contrib.django"`` to ``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks

from .checks import check_middleware, check_refresh_url, check_settings

__all__ = ["RbacAbacCacheConfig"]


class RbacAbacCacheConfig(AppConfig):  # type: ignore[misc]
    """Registers the system checks of :mod:`.checks` once Django is ready."""

    name = "rbac_abac_cache.contrib.django"
    label = "rbac_abac_cache"
    verbose_name = "RBAC/ABAC attribute cache"
    default = True

    def ready(self) -> None:
        """Register the checks; settings are read only when they run."""
        checks.register(check_settings)
        checks.register(check_middleware)
        checks.register(check_refresh_url, checks.Tags.urls)
