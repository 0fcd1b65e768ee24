"""A user's attributes for one service, in the wire format services cache.

The same function answers the HTTP API (what services' caches fetch) and
fills the provider's own cache, so both always say the same thing.
"""

from __future__ import annotations

import re
import time
from typing import Any

from .models import Account, Permission, Service

_CANONICAL_ID = re.compile(r"[1-9][0-9]{0,17}")


class UnknownServiceError(LookupError):
    """The service asked about is not in the directory."""


def find_account(user_id: str) -> Account | None:
    """Return the account whose id is ``user_id``, or ``None``.

    Only the canonical spelling of an id is accepted (``"7"``, not ``"07"``),
    because the answer names the user as asked and services check that it
    names the user they asked about.
    """
    if not _CANONICAL_ID.fullmatch(user_id):
        return None
    account: Account | None = Account.objects.filter(pk=int(user_id)).first()
    return account


def attributes_for(user_id: str, service_name: str) -> dict[str, Any] | None:
    """Return what ``service_name`` may know of the user, or ``None`` if unknown.

    Roles are all the user's roles; permissions are those their roles grant
    in this service only.

    Raises:
        UnknownServiceError: ``service_name`` is not in the directory.
    """
    if not Service.objects.filter(name=service_name).exists():
        raise UnknownServiceError(service_name)

    account = find_account(user_id)
    if account is None:
        return None

    roles = sorted(account.roles.values_list("name", flat=True))
    permissions = sorted(
        Permission.objects.filter(service__name=service_name, roles__accounts=account)
        .values_list("codename", flat=True)
        .distinct()
    )
    return {
        "user_id": user_id,
        "service_name": service_name,
        "roles": roles,
        "permissions": permissions,
        "attributes": account.attributes,
        "fetched_at": time.time(),
    }
