"""Tests of the adapter's URLconf."""

from __future__ import annotations

from django.urls import resolve, reverse

from rbac_abac_cache.contrib.django.views import RefreshUserCacheView


def test_refresh_url_is_served_under_its_name() -> None:
    """Included at the root, the refresh view is at /api/refresh-user-cache/."""
    url = reverse("rbac_abac_cache:refresh-user-cache")

    assert url == "/api/refresh-user-cache/"
    assert resolve(url).func.view_class is RefreshUserCacheView
