"""``manage.py rbac_invalidate <user_id> [--service NAME]``: forget a user, everywhere.

Exit codes: 0 invalidated, 1 Redis could not be reached, 2 invalid
arguments or settings.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from rbac_abac_cache.exceptions import RedisUnavailableError

from . import EXIT_FAILED, UserCommand

__all__ = ["Command"]


class Command(UserCommand):
    """Delete one user's cached attributes so the next request fetches them."""

    help = (
        "Delete a user's cached attributes on every instance; the next request "
        "fetches them from the identity provider."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        """Invalidate the user; a failure raises ``CommandError`` with its exit code."""
        cache, user_id = self.target(options)
        try:
            cache.invalidate(user_id)
        except RedisUnavailableError as exc:
            raise CommandError(
                f"could not invalidate user {user_id!r} of {cache.service_name!r}: "
                f"{exc}",
                returncode=EXIT_FAILED,
            ) from exc

        self.stdout.write(
            self.style.SUCCESS(
                f"invalidated user {user_id!r} of {cache.service_name!r}"
            )
        )
