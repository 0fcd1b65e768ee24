"""The billing API: a Flask service guarded by the ``RBACABAC`` extension.

Run it with ``gunicorn billing:app`` (or ``flask --app billing run``). The
extension reads its settings from the environment, under the names the
original services used: ``RBAC_ABAC_SERVICE_NAME`` (here ``billing_api``),
``RBAC_ABAC_REDIS_URL``, ``IDENTITY_PROVIDER_URL``, ``RBAC_ABAC_IDP_TOKEN``,
``RBAC_ABAC_CACHE_TTL`` and any ``RBAC_ABAC_CACHE_<KNOB>``.

The user is named by the ``X-User-Id`` header. That stands in for real
authentication (a session, or a verified token's subject): never trust such
a header from outside your network.

Invoices live in a dictionary; the example has no database.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, Response, abort, g, request

from rbac_abac_cache.contrib.flask import RBACABAC
from rbac_abac_cache.policy import has_permission, same_attribute

INVOICES: dict[int, dict[str, Any]] = {
    1001: {"id": 1001, "department": "finance", "customer": "Acme", "total": 1200},
    1002: {"id": 1002, "department": "sales", "customer": "Globex", "total": 560},
    1003: {"id": 1003, "department": "operations", "customer": "Initech", "total": 90},
}

rbac = RBACABAC()


def create_app() -> Flask:
    """Build the app; the cache itself is built on the first request."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
    )
    app = Flask(__name__)
    app.config["RBAC_ABAC_SERVICE_NAME"] = os.environ.get(
        "RBAC_ABAC_SERVICE_NAME", "billing_api"
    )
    rbac.init_app(app)
    app.after_request(_name_worker)
    app.register_error_handler(404, _not_found)

    app.add_url_rule("/healthz", view_func=healthz)
    app.add_url_rule("/cache-stats", view_func=cache_stats)
    app.add_url_rule("/invoices/", view_func=list_invoices, methods=["GET"])
    app.add_url_rule("/invoices/", view_func=create_invoice, methods=["POST"])
    app.add_url_rule("/invoices/<int:invoice_id>", view_func=show_invoice)
    return app


@rbac.user_id_loader
def user_id_from_header() -> str | None:
    """The user named by ``X-User-Id``: a stand-in for real authentication."""
    return request.headers.get("X-User-Id")


def healthz() -> dict[str, str]:
    """Say that this worker is up, without touching the cache."""
    return {"status": "ok"}


def cache_stats() -> dict[str, Any]:
    """This worker's cache counters; internal, so guard it in a real service."""
    return {"pid": os.getpid(), "stats": dict(rbac.get_cache().stats())}


@rbac.require_permission("invoices.read")
def list_invoices() -> dict[str, Any]:
    """The invoices of the user's own department."""
    department = g.rbac.attributes.get("department")
    mine = [
        invoice for invoice in INVOICES.values() if invoice["department"] == department
    ]
    return {"invoices": mine}


def load_invoice(invoice_id: int) -> dict[str, Any]:
    """The invoice a rule is checked against; 404 if there is none."""
    invoice = INVOICES.get(invoice_id)
    if invoice is None:
        abort(404)
    return invoice


@rbac.require(
    has_permission("invoices.read") & same_attribute("department"),
    resource=load_invoice,
)
def show_invoice(invoice_id: int) -> dict[str, Any]:
    """One invoice, for a reader of invoices in the invoice's department."""
    return INVOICES[invoice_id]


@rbac.require_role("accountant")
def create_invoice() -> tuple[dict[str, Any], int]:
    """Accept an invoice from an accountant (not stored: there is no database)."""
    body = request.get_json(silent=True) or {}
    invoice = {
        "customer": str(body.get("customer", "")),
        "total": body.get("total", 0),
        "department": g.rbac.attributes.get("department"),
        "created_by": g.rbac.user_id,
    }
    return invoice, 201


def _not_found(error: Exception) -> tuple[dict[str, str], int]:
    return {"error": "not_found", "detail": "no such resource"}, 404


def _name_worker(response: Response) -> Response:
    # The end-to-end run checks that every worker process answers alike.
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response


app = create_app()
