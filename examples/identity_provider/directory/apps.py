"""The directory app."""

from __future__ import annotations

from django.apps import AppConfig


class DirectoryConfig(AppConfig):  # type: ignore[misc]
    """Users, roles, permissions per service, and the attribute API."""

    name = "directory"
    default_auto_field = "django.db.models.BigAutoField"
