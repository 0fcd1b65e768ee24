"""The directory: services, their permissions, roles, and the accounts that hold them.

A permission belongs to one service (``invoices.read`` of ``billing_api``).
A role is a job function (``accountant``) that grants permissions in any
number of services. An account holds roles and carries attributes (its
department, say) that services compare with their own data.
"""

from __future__ import annotations

from django.db import models


class Service(models.Model):  # type: ignore[misc]
    """A service that asks this provider for its users' attributes."""

    name = models.CharField(max_length=128, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return str(self.name)


class Permission(models.Model):  # type: ignore[misc]
    """Something a service lets a user do; ``*`` suffixes are wildcards."""

    service = models.ForeignKey(
        Service, on_delete=models.CASCADE, related_name="permissions"
    )
    codename = models.CharField(max_length=128)

    class Meta:
        ordering = ["service__name", "codename"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "codename"], name="unique_permission_per_service"
            )
        ]

    def __str__(self) -> str:
        return f"{self.service.name}: {self.codename}"


class Role(models.Model):  # type: ignore[misc]
    """A job function, granting permissions in one or more services."""

    name = models.CharField(max_length=64, unique=True)
    permissions = models.ManyToManyField(Permission, blank=True, related_name="roles")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return str(self.name)


class Account(models.Model):  # type: ignore[misc]
    """A user: the id services know them by, their roles and their attributes."""

    username = models.CharField(max_length=150, unique=True)
    attributes = models.JSONField(default=dict, blank=True)
    roles = models.ManyToManyField(Role, blank=True, related_name="accounts")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.pk} {self.username}"


class AttributeRequest(models.Model):  # type: ignore[misc]
    """One authenticated request for a user's attributes, for ``/api/stats/``.

    It shows how often services really reach the provider, which is what
    their cache is meant to keep low.
    """

    user_key = models.CharField(max_length=256)
    service_name = models.CharField(max_length=128)
    status = models.PositiveSmallIntegerField()
    requested_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["user_key", "service_name"])]
