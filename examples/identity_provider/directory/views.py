"""The provider's HTTP API.

- ``GET /api/users/<id>/attributes/?service_name=...``: what services cache
  (bearer token ``RBAC_ABAC_IDP_TOKEN``); 404 for an unknown user.
- ``POST /api/users/<id>/roles/`` with ``{"roles": [...]}``: replace the
  user's roles and refresh their cached attributes in every service; the
  answer lists the services ``refreshed`` and ``not_refreshed`` (bearer
  token ``IDP_ADMIN_TOKEN``).
- ``GET /api/stats/``: attribute requests received, per user and service
  (bearer token ``IDP_ADMIN_TOKEN``).
- ``GET /healthz``: liveness, without a token.

``POST /api/refresh-user-cache/`` is the library's ``RefreshUserCacheView``,
routed in ``idp/urls.py``.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .attributes import UnknownServiceError, attributes_for, find_account
from .cache import refresh_everywhere
from .models import AttributeRequest, Role

logger = logging.getLogger(__name__)

_MAX_BODY_BYTES = 4096


@require_GET
def user_attributes(request: HttpRequest, user_id: str) -> JsonResponse:
    """Answer a service's request for one user's attributes in that service."""
    if not _has_token(request, settings.IDP_TOKEN, "RBAC_ABAC_IDP_TOKEN"):
        return _error(401, "unauthorized", "a valid bearer token is required")

    service_name = request.GET.get("service_name", "")
    try:
        found = attributes_for(user_id, service_name)
    except UnknownServiceError:
        response = _error(400, "bad_request", "service_name: unknown service")
    else:
        response = (
            JsonResponse(found)
            if found is not None
            else _error(404, "not_found", "the directory does not know this user")
        )

    AttributeRequest.objects.create(
        user_key=user_id[:256],
        service_name=service_name[:128],
        status=response.status_code,
    )
    return response


@csrf_exempt
@require_POST
def user_roles(request: HttpRequest, user_id: str) -> JsonResponse:
    """Replace a user's roles, then refresh the user in every service's cache."""
    if not _has_token(request, settings.IDP_ADMIN_TOKEN, "IDP_ADMIN_TOKEN"):
        return _error(401, "unauthorized", "a valid bearer token is required")

    names = _role_names(request.body)
    if names is None:
        return _error(400, "bad_request", 'send {"roles": ["name", ...]}')

    with transaction.atomic():
        account = find_account(user_id)
        if account is None:
            return _error(404, "not_found", "the directory does not know this user")

        roles = list(Role.objects.filter(name__in=names))
        unknown = sorted(set(names) - {role.name for role in roles})
        if unknown:
            return _error(400, "bad_request", f"roles: unknown {', '.join(unknown)}")

        account.roles.set(roles)

    # Committed: every connection now reads the new roles.
    logger.info("roles of user %s set to %s", account.pk, sorted(names))
    outcome = refresh_everywhere([account.pk])
    key = str(account.pk)
    return JsonResponse(
        {
            "user_id": key,
            "roles": sorted(names),
            "refreshed": outcome.refreshed.get(key, []),
            "not_refreshed": outcome.failed.get(key, []),
        }
    )


@require_GET
def stats(request: HttpRequest) -> JsonResponse:
    """Count attribute requests per user and service, since the database was made."""
    if not _has_token(request, settings.IDP_ADMIN_TOKEN, "IDP_ADMIN_TOKEN"):
        return _error(401, "unauthorized", "a valid bearer token is required")

    counts: dict[str, dict[str, int]] = {}
    rows = AttributeRequest.objects.values("user_key", "service_name").annotate(
        requests=Count("id")
    )
    for row in rows:
        counts.setdefault(row["user_key"], {})[row["service_name"]] = row["requests"]
    return JsonResponse({"attribute_requests": counts})


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Say that this worker is up; no token, no database."""
    return JsonResponse({"status": "ok"})


def _has_token(request: HttpRequest, expected: str, name: str) -> bool:
    if not expected:
        logger.error("%s is not set, so every request is refused", name)
        return False

    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


def _role_names(body: bytes) -> list[str] | None:
    """The role names of a ``{"roles": [...]}`` body, or ``None`` if malformed."""
    if len(body) > _MAX_BODY_BYTES:
        return None
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None

    roles = data.get("roles") if isinstance(data, dict) else None
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        return None
    return list(dict.fromkeys(roles))


def _error(status: int, error: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": error, "detail": detail}, status=status)
