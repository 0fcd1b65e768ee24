"""The Django admin of the directory.

Every change that alters what a user may do refreshes the users it affects
in every service's cache once the change is committed, as the roles API
does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from .cache import refresh_after_commit
from .models import Account, Permission, Role, Service


class _RefreshesAccounts(admin.ModelAdmin):  # type: ignore[misc]
    """Refreshes, after commit, the accounts a saved or deleted object affects."""

    def affected(self, objects: Iterable[Any]) -> list[int]:
        """Return the ids of the accounts whose attributes ``objects`` shape."""
        raise NotImplementedError

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: bool
    ) -> None:
        """Save the many-to-many fields too, then refresh the affected accounts."""
        super().save_related(request, form, formsets, change)
        refresh_after_commit(self.affected([form.instance]))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        """Delete the object, then refresh the accounts it affected."""
        affected = self.affected([obj])
        super().delete_model(request, obj)
        refresh_after_commit(affected)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Delete the objects, then refresh the accounts they affected."""
        affected = self.affected(list(queryset))
        super().delete_queryset(request, queryset)
        refresh_after_commit(affected)


@admin.register(Account)
class AccountAdmin(_RefreshesAccounts):
    """Accounts, their attributes and roles; a deleted one becomes unknown."""

    list_display = ["id", "username", "attributes"]
    filter_horizontal = ["roles"]

    def affected(self, objects: Iterable[Account]) -> list[int]:
        """The accounts themselves."""
        return [account.pk for account in objects]


@admin.register(Role)
class RoleAdmin(_RefreshesAccounts):
    """Roles and the permissions they grant."""

    list_display = ["name"]
    filter_horizontal = ["permissions"]

    def affected(self, objects: Iterable[Role]) -> list[int]:
        """Everyone holding one of the roles."""
        accounts = Account.objects.filter(roles__in=list(objects))
        return list(accounts.values_list("pk", flat=True).distinct())


@admin.register(Permission)
class PermissionAdmin(_RefreshesAccounts):
    """Permissions, one service each."""

    list_display = ["codename", "service"]
    list_filter = ["service"]

    def affected(self, objects: Iterable[Permission]) -> list[int]:
        """Everyone holding a role that grants one of the permissions."""
        accounts = Account.objects.filter(roles__permissions__in=list(objects))
        return list(accounts.values_list("pk", flat=True).distinct())


admin.site.register(Service)
