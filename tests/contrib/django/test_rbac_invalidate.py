"""Tests of ``manage.py rbac_invalidate``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from rbac_abac_cache import AttributeCache
from rbac_abac_cache.contrib.django import set_cache
from rbac_abac_cache.contrib.django.management.commands import (
    EXIT_FAILED,
    EXIT_INVALID,
)

from ...conftest import CountingFetcher


@pytest.fixture
def dead_redis_cache() -> Iterator[AttributeCache]:
    """A cache whose Redis nobody listens to, injected into the adapter."""
    cache = AttributeCache("redis://127.0.0.1:1/0", None, service_name="billing_api")
    set_cache(cache)
    yield cache
    cache.close()


def test_invalidate_makes_the_next_read_fetch(
    cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """After the command the user's entry is gone and is fetched again."""
    cache.get("1")
    out = io.StringIO()

    call_command("rbac_invalidate", "1", stdout=out)
    cache.get("1")

    assert fetcher.count("1") == 2
    assert "invalidated user '1' of 'billing_api'" in out.getvalue()


def test_service_option_invalidates_another_service(
    cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """--service names the service whose entry is deleted."""
    other = cache.for_service("inventory_api")
    other.get("1")

    call_command(
        "rbac_invalidate", "1", "--service", "inventory_api", stdout=io.StringIO()
    )
    other.get("1")

    assert fetcher.calls == [("1", "inventory_api"), ("1", "inventory_api")]


def test_unreachable_redis_exits_1(dead_redis_cache: AttributeCache) -> None:
    """When Redis cannot be reached the command fails with exit code 1."""
    with pytest.raises(CommandError, match="could not invalidate") as raised:
        call_command("rbac_invalidate", "1", stdout=io.StringIO())

    assert raised.value.returncode == EXIT_FAILED


def test_invalid_user_id_exits_2(cache: AttributeCache) -> None:
    """A malformed user id is an error with exit code 2."""
    with pytest.raises(CommandError) as raised:
        call_command("rbac_invalidate", "a\nb", stdout=io.StringIO())

    assert raised.value.returncode == EXIT_INVALID


def test_exit_code_reaches_the_shell() -> None:
    """Run as django-admin, a failure prints the error and exits with its code."""
    root = Path(__file__).resolve().parents[3]
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("RBAC_ABAC_")
    }
    environment["DJANGO_SETTINGS_MODULE"] = "tests.contrib.django.settings"

    result = subprocess.run(
        [sys.executable, "-m", "django", "rbac_invalidate", "1"],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == EXIT_FAILED
    assert "could not invalidate user '1'" in result.stderr
