"""``manage.py rbac_refresh <user_id> [--service NAME]``: fetch a user again.

Exit codes: 0 refreshed, 1 the identity provider or Redis failed, 2 invalid
arguments or settings, 3 the identity provider does not know the user.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from rbac_abac_cache.exceptions import FetchError, RedisUnavailableError

from . import EXIT_FAILED, EXIT_UNKNOWN_USER, UserCommand

__all__ = ["Command"]


class Command(UserCommand):
    """Refresh one user's cached attributes from the identity provider."""

    help = (
        "Fetch a user's attributes from the identity provider now, store them "
        "and tell every instance (after a change of roles, say)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        """Refresh the user; a failure raises ``CommandError`` with its exit code."""
        cache, user_id = self.target(options)
        try:
            attributes = cache.refresh(user_id)
        except (FetchError, RedisUnavailableError) as exc:
            raise CommandError(
                f"could not refresh user {user_id!r} of {cache.service_name!r}: {exc}",
                returncode=EXIT_FAILED,
            ) from exc

        if attributes is None:
            raise CommandError(
                f"the identity provider does not know user {user_id!r} of "
                f"{cache.service_name!r}",
                returncode=EXIT_UNKNOWN_USER,
            )

        self.stdout.write(
            self.style.SUCCESS(f"refreshed user {user_id!r} of {cache.service_name!r}")
        )
