"""Django configured from this folder's settings, and a cache on the real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import django
import pytest
import redis
from django.conf import settings
from django.test import Client

from rbac_abac_cache import AttributeCache
from rbac_abac_cache.contrib.django import reset, set_cache

from ...conftest import CountingFetcher
from . import settings as test_settings

# Configured at import, before the test modules import views or DRF. Other
# test folders never touch Django, so configuring it here changes nothing
# for them.
if not settings.configured:
    settings.configure(
        **{
            name: getattr(test_settings, name)
            for name in dir(test_settings)
            if name.isupper()
        }
    )
    django.setup()


@pytest.fixture(autouse=True)
def _fresh_adapter() -> Iterator[None]:
    """Each test starts without a cache built or injected, and leaves none."""
    set_cache(None)
    yield
    set_cache(None)
    reset()


@pytest.fixture
def cache(
    real_redis: redis.Redis, fetcher: CountingFetcher
) -> Iterator[AttributeCache]:
    """A cache on the private real Redis, injected into the adapter."""
    built = AttributeCache(real_redis, fetcher, service_name="billing_api")
    set_cache(built)
    yield built
    set_cache(None)
    built.close()


@pytest.fixture
def client() -> Client:
    """Django's test client; exceptions in views are raised, not turned into 500s."""
    return Client()
