"""A small Flask app guarded by the extension, on the private real Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask, abort, g
from flask.testing import FlaskClient

from rbac_abac_cache import AttributeCache
from rbac_abac_cache.contrib.flask import RBACABAC, require_role
from rbac_abac_cache.policy import has_permission, same_attribute
from rbac_abac_cache.testing import StaticFetcher

SERVICE = "billing_api"
TOKEN = "token-of-the-identity-provider"
INVOICES = {
    1: {"id": 1, "department": "finance"},
    2: {"id": 2, "department": "sales"},
}


class Identity:
    """Who the test app's user id loader says is making the request."""

    def __init__(self) -> None:
        self.user_id: Any = None
        self.loads = 0

    def load(self) -> Any:
        """The loader registered with the extension."""
        self.loads += 1
        return self.user_id


class InvoiceStore:
    """Loads invoices for the policy route and counts the loads."""

    def __init__(self) -> None:
        self.loads = 0

    def load(self, invoice_id: int) -> dict[str, Any]:
        """Return the invoice, or abort with 404."""
        self.loads += 1
        if invoice_id not in INVOICES:
            abort(404)
        return INVOICES[invoice_id]


@pytest.fixture
def users() -> StaticFetcher:
    """The identity provider: 1 reads finance invoices, 2 is a sales admin, 3 bare."""
    return StaticFetcher(
        {
            "1": {
                "roles": ["viewer"],
                "permissions": ["invoices.read"],
                "attributes": {"department": "finance", "region": ["eu", "us"]},
            },
            "2": {
                "roles": ["admin"],
                "permissions": ["invoices.*"],
                "attributes": {"department": "sales"},
            },
            "3": {},
        }
    )


@pytest.fixture
def cache(real_redis: redis.Redis, users: StaticFetcher) -> Iterator[AttributeCache]:
    """A cache on the private real Redis, filled from ``users``."""
    with AttributeCache(real_redis, users, service_name=SERVICE) as built:
        yield built


@pytest.fixture
def identity() -> Identity:
    """The current user, set by each test; nobody by default."""
    return Identity()


@pytest.fixture
def invoices() -> InvoiceStore:
    """The invoice loader of the policy route."""
    return InvoiceStore()


@pytest.fixture
def make_app(
    cache: AttributeCache, identity: Identity, invoices: InvoiceStore
) -> Iterator[Callable[..., Flask]]:
    """Build the test app; ``cache=None`` builds the cache from the config."""
    built: list[RBACABAC] = []
    apps: list[Flask] = []

    def make(config: dict[str, Any] | None = None, *, use_cache: Any = cache) -> Flask:
        app = Flask("rbac_test_app")
        app.config.update(TESTING=True, **(config or {}))
        rbac = RBACABAC(app, cache=use_cache)
        rbac.user_id_loader(identity.load)
        add_routes(app, rbac, invoices)
        built.append(rbac)
        apps.append(app)
        return app

    yield make
    for rbac, app in zip(built, apps, strict=True):
        if rbac.get_cache(app) is not cache:
            rbac.get_cache(app).close()


def add_routes(app: Flask, rbac: RBACABAC, invoices: InvoiceStore) -> None:
    """One route per kind of guard, and two unguarded ones."""

    @app.get("/plain/")
    def plain() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/whoami/")
    def whoami() -> dict[str, Any]:
        user = g.rbac
        return {"user_id": None if user is None else user.user_id}

    @app.get("/invoices/")
    @rbac.require_permission("invoices.read")
    def invoice_list() -> dict[str, Any]:
        return {"user_id": g.rbac.user_id}

    @app.get("/admin/")
    @require_role("admin", "owner")
    def admin() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/finance/")
    @rbac.require_attributes(department="finance")
    def finance() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/invoices/<int:invoice_id>")
    @rbac.require(
        has_permission("invoices.read") & same_attribute("department"),
        resource=invoices.load,
    )
    def invoice(invoice_id: int) -> dict[str, Any]:
        return INVOICES[invoice_id]


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The test app over the shared cache, with the refresh route."""
    return make_app(
        {"RBAC_ABAC_REFRESH_ENDPOINT": True, "RBAC_ABAC_REFRESH_TOKENS": TOKEN}
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Flask's test client for ``app``."""
    return app.test_client()
