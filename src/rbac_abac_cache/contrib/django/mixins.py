"""A mixin that guards class-based views, as the decorators guard functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from asgiref.sync import sync_to_async

from ...policy import Rule, requirement
from .decorators import authorize

__all__ = ["RBACRequiredMixin"]


class RBACRequiredMixin:
    """Refuse the request unless the user meets the view's requirements.

    Put it first among the view's bases. It answers like the decorators:
    401 without a user, 403 for an unknown user or one who lacks what is
    required, 503 with ``Retry-After`` when the attributes are unavailable.
    Sync and async views are served.

    Attributes:
        rbac_permissions: Permissions the user must all have.
        rbac_roles: Roles of which the user must have at least one.
        rbac_attributes: Attribute values the user must hold.
        rbac_rule: A further :class:`~rbac_abac_cache.policy.Rule`, checked
            against :meth:`get_rbac_resource`.

    Example::

        class InvoiceList(RBACRequiredMixin, ListView):
            rbac_permissions = ("invoices.read",)
    """

    rbac_permissions: Sequence[str] = ()
    rbac_roles: Sequence[str] = ()
    rbac_attributes: Mapping[str, Any] = {}
    rbac_rule: Rule | None = None

    def get_rbac_rule(self) -> Rule:
        """Return the rule the request must meet, from the ``rbac_*`` attributes."""
        rule = requirement(
            tuple(self.rbac_permissions), tuple(self.rbac_roles), self.rbac_attributes
        )
        if self.rbac_rule is None:
            return rule
        if not (self.rbac_permissions or self.rbac_roles or self.rbac_attributes):
            return self.rbac_rule
        return rule & self.rbac_rule

    def get_rbac_resource(self) -> Any:
        """Return what ``rbac_rule`` is checked against; ``None`` by default.

        Called only once the user is known; ``self.kwargs`` holds the URL's
        arguments.
        """
        return None

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        """Check the requirements, then dispatch as the view would."""
        if getattr(self, "view_is_async", False):
            return self._dispatch_async(request, *args, **kwargs)

        refusal = authorize(request, self.get_rbac_rule(), self.get_rbac_resource)
        if refusal is not None:
            return refusal
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    async def _dispatch_async(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # The lookup may wait on Redis or the identity provider, so it runs in
        # a thread rather than blocking the event loop.
        refusal = await sync_to_async(authorize)(
            request, self.get_rbac_rule(), self.get_rbac_resource
        )
        if refusal is not None:
            return refusal
        return await super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
