"""Views, users and authentication used by the adapter's tests."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpResponse, JsonResponse
from django.views import View
from rest_framework.response import Response
from rest_framework.views import APIView

from rbac_abac_cache.contrib.django.decorators import (
    require_attributes,
    require_permission,
    require_role,
    require_rule,
)
from rbac_abac_cache.contrib.django.middleware import aget_attributes
from rbac_abac_cache.contrib.django.mixins import RBACRequiredMixin
from rbac_abac_cache.contrib.django.permissions import (
    HasPermission,
    HasRBACPermission,
    HasRole,
    HasRule,
)
from rbac_abac_cache.policy import same_attribute

from .auth import SilentHeaderAuthentication

INVOICES = {"1": {"department": "finance"}, "2": {"department": "sales"}}
loaded: list[str] = []


def load_invoice(request: Any, pk: str) -> dict[str, str]:
    loaded.append(pk)
    if pk not in INVOICES:
        raise Http404("no such invoice")
    return INVOICES[pk]


def plain(request: Any) -> HttpResponse:
    return HttpResponse("ok")


def whoami(request: Any) -> JsonResponse:
    rbac = request.rbac
    return JsonResponse({"roles": sorted(rbac.roles) if rbac else None})


def whoami_twice(request: Any) -> JsonResponse:
    first = sorted(request.rbac.roles)
    second = sorted(request.rbac.roles)
    return JsonResponse({"same": first == second})


@require_permission("invoices.read")
def invoices(request: Any) -> HttpResponse:
    return HttpResponse("invoices")


@require_permission("invoices.read", "invoices.write")
def invoices_write(request: Any) -> HttpResponse:
    return HttpResponse("written")


@require_role("admin", "auditor")
def audit(request: Any) -> HttpResponse:
    return HttpResponse("audit")


@require_attributes(department="finance")
def finance(request: Any) -> HttpResponse:
    return HttpResponse("finance")


@require_rule(same_attribute("department"), resource=load_invoice)
def invoice(request: Any, pk: str) -> HttpResponse:
    return HttpResponse(f"invoice {pk}")


@require_permission("invoices.read")
async def async_invoices(request: Any) -> HttpResponse:
    attributes = await aget_attributes(request)
    return HttpResponse(f"async {attributes.user_id if attributes else None}")


class InvoiceListView(RBACRequiredMixin, View):
    rbac_permissions = ("invoices.read",)

    def get(self, request: Any) -> HttpResponse:
        return HttpResponse("list")


class FinanceAdminView(RBACRequiredMixin, View):
    rbac_roles = ("admin",)
    rbac_attributes = {"department": "finance"}

    def get(self, request: Any) -> HttpResponse:
        return HttpResponse("finance admin")


class InvoiceDetailView(RBACRequiredMixin, View):
    rbac_rule = same_attribute("department")

    def get_rbac_resource(self) -> Any:
        return load_invoice(self.request, self.kwargs["pk"])

    def get(self, request: Any, pk: str) -> HttpResponse:
        return HttpResponse(f"detail {pk}")


class AsyncInvoiceListView(RBACRequiredMixin, View):
    rbac_permissions = ("invoices.read",)

    async def get(self, request: Any) -> HttpResponse:
        return HttpResponse("async list")


class DRFInvoices(APIView):
    permission_classes = [HasRBACPermission]
    required_permissions = ("invoices.read",)

    def get(self, request: Any) -> Response:
        return Response({"user": request.user.pk})


class DRFSilentInvoices(DRFInvoices):
    authentication_classes = [SilentHeaderAuthentication]


class DRFWriteOrAdmin(APIView):
    permission_classes = [HasPermission("invoices.write") | HasRole("admin")]

    def get(self, request: Any) -> Response:
        return Response({"ok": True})


class DRFInvoiceDetail(APIView):
    permission_classes = [HasRule(same_attribute("department"))]

    def get(self, request: Any, pk: str) -> Response:
        invoice = load_invoice(request, pk)
        self.check_object_permissions(request, invoice)
        return Response({"invoice": pk})
