"""URLs of the adapter: ``api/refresh-user-cache/``.

Include them at the root to serve ``/api/refresh-user-cache/``::

    urlpatterns = [path("", include("rbac_abac_cache.contrib.django.urls"))]

The route is named ``rbac_abac_cache:refresh-user-cache``.
"""

from __future__ import annotations

from django.urls import path

from .views import RefreshUserCacheView

__all__ = ["app_name", "urlpatterns"]

app_name = "rbac_abac_cache"

urlpatterns = [
    path(
        "api/refresh-user-cache/",
        RefreshUserCacheView.as_view(),
        name="refresh-user-cache",
    ),
]
