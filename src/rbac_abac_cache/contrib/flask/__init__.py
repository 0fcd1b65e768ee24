"""Flask support: the :class:`RBACABAC` extension, ``g.rbac`` and decorators.

::

    from rbac_abac_cache.contrib.flask import RBACABAC

    rbac = RBACABAC(app)

    @rbac.user_id_loader
    def load_user_id():
        return session.get("user_id")

    @app.get("/invoices/")
    @rbac.require_permission("invoices.read")
    def invoices():
        return {"department": g.rbac.attributes["department"]}

This package is the only part of rbac-abac-cache that imports Flask; it
needs the ``flask`` extra. See ``docs/flask.md``.
"""

from __future__ import annotations

# Checked first, so that without Flask the error names the extra to install.
try:
    import flask  # noqa: F401
except ImportError as exc:
    raise ImportError(
        "rbac_abac_cache.contrib.flask needs Flask: pip install rbac-abac-cache[flask]"
    ) from exc

from .decorators import require, require_attributes, require_permission, require_role
from .extension import RBACABAC
from .state import EXTENSION_KEY, UserIdLoader
from .views import REFRESH_ENDPOINT, refresh_user_cache

__all__ = [
    "EXTENSION_KEY",
    "RBACABAC",
    "REFRESH_ENDPOINT",
    "UserIdLoader",
    "refresh_user_cache",
    "require",
    "require_attributes",
    "require_permission",
    "require_role",
]
