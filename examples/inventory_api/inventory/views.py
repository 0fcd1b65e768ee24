"""The inventory's views, each guarded by one kind of rule.

- ``GET /stock/``: a permission (``stock.read``);
- ``POST /stock/<sku>/adjust/``: a role (``warehouse``);
- ``GET /stock/valuation/``: an attribute (``department`` is ``finance``).
"""

from __future__ import annotations

import json
import os
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from rbac_abac_cache.contrib.django import get_cache
from rbac_abac_cache.contrib.django.decorators import (
    require_attributes,
    require_permission,
    require_role,
)

STOCK: dict[str, dict[str, Any]] = {
    "BOLT-M8": {"sku": "BOLT-M8", "quantity": 1200, "unit_cost": 0.12},
    "NUT-M8": {"sku": "NUT-M8", "quantity": 900, "unit_cost": 0.05},
    "PALLET": {"sku": "PALLET", "quantity": 40, "unit_cost": 11.0},
}


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Say that this worker is up, without touching the cache."""
    return JsonResponse({"status": "ok"})


@require_GET
def cache_stats(request: HttpRequest) -> JsonResponse:
    """This worker's cache counters; internal, so guard it in a real service."""
    return JsonResponse({"pid": os.getpid(), "stats": dict(get_cache().stats())})


@require_GET
@require_permission("stock.read")
def stock(request: HttpRequest) -> JsonResponse:
    """Every stock line, for users who may read stock."""
    return JsonResponse({"stock": list(STOCK.values())})


@csrf_exempt
@require_POST
@require_role("warehouse")
def adjust(request: HttpRequest, sku: str) -> JsonResponse:
    """Accept a stock adjustment from warehouse staff (not stored)."""
    if sku not in STOCK:
        return JsonResponse({"error": "not_found"}, status=404)

    try:
        delta = int(json.loads(request.body or b"{}").get("delta", 0))
    except (ValueError, TypeError, AttributeError):
        return JsonResponse({"error": "bad_request"}, status=400)
    return JsonResponse({"sku": sku, "delta": delta, "by": request.rbac.user_id})


@require_GET
@require_attributes(department="finance")
def valuation(request: HttpRequest) -> JsonResponse:
    """What the stock is worth, for the finance department only."""
    total = sum(line["quantity"] * line["unit_cost"] for line in STOCK.values())
    return JsonResponse({"valuation": round(total, 2)})
