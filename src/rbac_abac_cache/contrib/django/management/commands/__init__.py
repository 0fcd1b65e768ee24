"""The adapter's management commands, and what they share."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from rbac_abac_cache.cache import AttributeCache
from rbac_abac_cache.contrib.django.conf import get_cache
from rbac_abac_cache.exceptions import ConfigurationError, InvalidUserIdError
from rbac_abac_cache.keys import normalize_user_id

__all__ = [
    "EXIT_FAILED",
    "EXIT_INVALID",
    "EXIT_UNKNOWN_USER",
    "UserCommand",
]

#: The change could not be made: the identity provider or Redis failed.
EXIT_FAILED = 1
#: The arguments or the settings are invalid.
EXIT_INVALID = 2
#: The identity provider does not know the user.
EXIT_UNKNOWN_USER = 3


class UserCommand(BaseCommand):  # type: ignore[misc]
    """A command about one user of this service, or of another with ``--service``."""

    def add_arguments(self, parser: Any) -> None:
        """Take the user id and an optional service name."""
        parser.add_argument("user_id", help="the user's id")
        parser.add_argument(
            "--service",
            metavar="NAME",
            help="the service whose entry to change (default: SERVICE_NAME)",
        )

    def target(self, options: dict[str, Any]) -> tuple[AttributeCache, str]:
        """Return the cache of the chosen service and the normalised user id.

        Raises:
            CommandError: The id, the service name or the settings are invalid.
        """
        try:
            user_id = normalize_user_id(options["user_id"])
            cache = get_cache()
            if options.get("service") and options["service"] != cache.service_name:
                cache = cache.for_service(options["service"])
        except (InvalidUserIdError, ConfigurationError) as exc:
            raise CommandError(str(exc), returncode=EXIT_INVALID) from exc
        return cache, user_id
