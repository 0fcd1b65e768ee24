"""``manage.py seed_directory``: the example's services, roles and users.

It can run again: existing rows are updated to the values below, so the
directory is back to its known state. With ``IDP_ADMIN_PASSWORD`` set it
also creates (or resets) the superuser ``admin`` for the Django admin.
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from directory.models import Account, Permission, Role, Service

PERMISSIONS = {
    "billing_api": ["invoices.*", "invoices.read"],
    "inventory_api": ["stock.*", "stock.read"],
}

ROLES = {
    "accountant": [("billing_api", "invoices.*")],
    "viewer": [("billing_api", "invoices.read"), ("inventory_api", "stock.read")],
    "warehouse": [("inventory_api", "stock.*")],
}

# (id, username, attributes, roles): ids are fixed, because services and the
# end-to-end run name users by id.
ACCOUNTS: list[tuple[int, str, dict[str, Any], list[str]]] = [
    (1, "alice", {"department": "finance", "region": "eu"}, ["accountant"]),
    (2, "bob", {"department": "sales", "region": "us"}, ["viewer"]),
    (3, "carol", {"department": "operations", "site": "rotterdam"}, ["warehouse"]),
    (4, "dave", {"department": "finance", "region": "us"}, ["viewer"]),
    (5, "erin", {"department": "sales", "region": "eu"}, ["viewer"]),
    (6, "frank", {"department": "operations", "site": "lyon"}, ["warehouse", "viewer"]),
    (7, "grace", {"department": "finance", "region": "eu"}, ["accountant"]),
    (8, "heidi", {"department": "sales", "region": "us"}, ["viewer"]),
]


class Command(BaseCommand):  # type: ignore[misc]
    """Create or reset the example directory."""

    help = "Create or reset the example's services, permissions, roles and users."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        """Write every row, then the admin user if a password is given."""
        permissions = self._permissions()
        roles = self._roles(permissions)
        for pk, username, attributes, role_names in ACCOUNTS:
            account, _ = Account.objects.update_or_create(
                pk=pk, defaults={"username": username, "attributes": attributes}
            )
            account.roles.set([roles[name] for name in role_names])

        self._admin()
        self.stdout.write(f"seeded {len(ACCOUNTS)} users and {len(roles)} roles")

    def _permissions(self) -> dict[tuple[str, str], Permission]:
        found = {}
        for service_name, codenames in PERMISSIONS.items():
            service, _ = Service.objects.get_or_create(name=service_name)
            for codename in codenames:
                permission, _ = Permission.objects.get_or_create(
                    service=service, codename=codename
                )
                found[service_name, codename] = permission
        return found

    def _roles(self, permissions: dict[tuple[str, str], Permission]) -> dict[str, Role]:
        found = {}
        for name, grants in ROLES.items():
            role, _ = Role.objects.get_or_create(name=name)
            role.permissions.set([permissions[grant] for grant in grants])
            found[name] = role
        return found

    def _admin(self) -> None:
        password = os.environ.get("IDP_ADMIN_PASSWORD")
        if not password:
            return

        user, _ = get_user_model().objects.get_or_create(username="admin")
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        self.stdout.write("admin user ready")
