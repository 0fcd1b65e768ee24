"""Routes of the example inventory API."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("healthz", views.healthz),
    path("cache-stats", views.cache_stats),
    path("stock/", views.stock),
    path("stock/valuation/", views.valuation),
    path("stock/<str:sku>/adjust/", views.adjust),
]
