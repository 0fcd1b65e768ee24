"""The provider's own attribute cache, and how a change reaches every service.

The services cache users' attributes in the shared Redis. When the provider
changes what a user may do, it refreshes that user's entry of every service
at once, through the library's ``for_service(...).refresh(...)``: every
service instance sees the change on its next request, instead of after its
cache's TTL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction

from rbac_abac_cache import AttributeCache, AttributeCacheError
from rbac_abac_cache.contrib.django import get_cache

from .attributes import attributes_for
from .models import Service

logger = logging.getLogger(__name__)


def build_cache() -> AttributeCache:
    """Build the cache named by ``RBAC_ABAC_CACHE["CACHE"]``.

    Its misses are filled from this database, not over HTTP: the provider
    must not call itself. Redis and the tuning knobs come from the
    environment (``RBAC_ABAC_REDIS_URL``, ``RBAC_ABAC_CACHE_*``), as in every
    other service.
    """
    return AttributeCache.from_env(
        fetcher=fetch_from_directory,
        service_name=settings.RBAC_ABAC_CACHE["SERVICE_NAME"],
        ttl=settings.RBAC_ABAC_CACHE_TTL,
    )


def fetch_from_directory(user_id: str, service_name: str) -> dict[str, Any] | None:
    """The cache's fetcher: the user's attributes straight from the database."""
    return attributes_for(user_id, service_name)


@dataclass
class Propagation:
    """Which services' entries a change reached, per user id."""

    refreshed: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, list[str]] = field(default_factory=dict)


def refresh_everywhere(user_ids: Iterable[int | str]) -> Propagation:
    """Refresh the users' cached attributes in every service of the directory.

    A service whose entry cannot be refreshed (Redis down, say) is logged
    and reported; its instances see the change when their entry expires.
    """
    cache = get_cache()
    services = list(Service.objects.values_list("name", flat=True))
    outcome = Propagation()

    for user_id in user_ids:
        key = str(user_id)
        for service_name in services:
            try:
                cache.for_service(service_name).refresh(key)
            except AttributeCacheError as exc:
                logger.warning(
                    "could not refresh user %s in %s: %s",
                    key,
                    service_name,
                    type(exc).__name__,
                )
                outcome.failed.setdefault(key, []).append(service_name)
            else:
                outcome.refreshed.setdefault(key, []).append(service_name)

    logger.info(
        "refreshed %d user(s) in %d service(s)", len(outcome.refreshed), len(services)
    )
    return outcome


def refresh_after_commit(user_ids: Iterable[int | str]) -> None:
    """Refresh the users everywhere once the current transaction commits.

    Refreshing earlier would read the database before the change is there
    for every connection to see; a rolled-back change refreshes nothing.
    """
    transaction.on_commit(partial(refresh_everywhere, list(user_ids)))
