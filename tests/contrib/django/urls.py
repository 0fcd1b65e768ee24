"""URLs of the adapter's tests, with the adapter's own included at the root."""

from __future__ import annotations

from django.urls import include, path

from . import views

urlpatterns = [
    path("plain/", views.plain),
    path("whoami/", views.whoami),
    path("whoami-twice/", views.whoami_twice),
    path("invoices/", views.invoices),
    path("invoices/write/", views.invoices_write),
    path("invoices/<str:pk>/", views.invoice),
    path("audit/", views.audit),
    path("finance/", views.finance),
    path("async/invoices/", views.async_invoices),
    path("cbv/invoices/", views.InvoiceListView.as_view()),
    path("cbv/finance-admin/", views.FinanceAdminView.as_view()),
    path("cbv/invoices/<str:pk>/", views.InvoiceDetailView.as_view()),
    path("cbv/async/invoices/", views.AsyncInvoiceListView.as_view()),
    path("drf/invoices/", views.DRFInvoices.as_view()),
    path("drf/silent/invoices/", views.DRFSilentInvoices.as_view()),
    path("drf/write-or-admin/", views.DRFWriteOrAdmin.as_view()),
    path("drf/invoices/<str:pk>/", views.DRFInvoiceDetail.as_view()),
    path("", include("rbac_abac_cache.contrib.django.urls")),
]
