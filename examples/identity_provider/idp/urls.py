"""Routes of the example identity provider."""

from __future__ import annotations

from directory import views
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/users/<str:user_id>/attributes/", views.user_attributes),
    path("api/users/<str:user_id>/roles/", views.user_roles),
    path("api/stats/", views.stats),
    path("healthz", views.healthz),
    # POST /api/refresh-user-cache/, the manual refresh of the original fix.
    path("", include("rbac_abac_cache.contrib.django.urls")),
]
