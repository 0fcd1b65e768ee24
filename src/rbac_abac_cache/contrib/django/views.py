"""The refresh endpoint as a Django view, over the core's :class:`RefreshHandler`.

``POST /api/refresh-user-cache/`` with ``Authorization: Bearer <token>`` and
``{"user_id": 123, "service_name": "billing_api"}`` fetches the user again
and tells every instance. Everything it decides (tokens, method, body, rate
limit) is the handler's; this view only reads a bounded body and sends back
what the handler answers.
"""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from ...refresh import MAX_BODY_BYTES
from .conf import get_refresh_handler

__all__ = ["RefreshUserCacheView"]


@method_decorator(csrf_exempt, name="dispatch")
class RefreshUserCacheView(View):  # type: ignore[misc]
    """Refreshes one user's cached attributes on an authenticated POST.

    It is exempt from CSRF checks because callers authenticate with a bearer
    token, not a cookie. Tokens come from ``RBAC_ABAC_CACHE["REFRESH_TOKENS"]``
    (else ``RBAC_ABAC_REFRESH_TOKEN``); with none, every request gets 401.
    Services may be limited with ``RBAC_ABAC_CACHE["ALLOWED_SERVICES"]``.
    """

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> JsonResponse:
        """Answer any method; the handler refuses all but POST with 405."""
        body = _read_body(request)
        answer = get_refresh_handler().handle(request.method, request.headers, body)
        return JsonResponse(
            answer.payload, status=answer.status, headers=answer.headers
        )


def _read_body(request: Any) -> bytes:
    """Read one byte more than allowed, so an oversized body is seen as one (413)
    without being read whole."""
    return bytes(request.read(MAX_BODY_BYTES + 1))
