"""Tests of ``manage.py rbac_refresh``."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from rbac_abac_cache import AttributeCache, FetchError
from rbac_abac_cache.contrib.django.management.commands import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_UNKNOWN_USER,
)

from ...conftest import CountingFetcher


def test_refresh_fetches_the_user_again(
    cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """The command fetches the user, stores the result and says so."""
    cache.get("1")
    fetcher.users["1"]["roles"] = ["auditor"]
    out = io.StringIO()

    call_command("rbac_refresh", "1", stdout=out)

    refreshed = cache.get("1")
    assert refreshed is not None
    assert refreshed.roles == frozenset({"auditor"})
    assert "refreshed user '1' of 'billing_api'" in out.getvalue()
    assert "auditor" not in out.getvalue()


def test_service_option_refreshes_another_service(
    cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """--service names the service whose entry is refreshed."""
    call_command(
        "rbac_refresh", "2", "--service", "inventory_api", stdout=io.StringIO()
    )

    assert fetcher.calls == [("2", "inventory_api")]


def test_unknown_user_exits_3(cache: AttributeCache) -> None:
    """A user the identity provider does not know is an error with exit code 3."""
    with pytest.raises(CommandError, match="does not know") as raised:
        call_command("rbac_refresh", "nobody", stdout=io.StringIO())

    assert raised.value.returncode == EXIT_UNKNOWN_USER


def test_identity_provider_failure_exits_1(
    cache: AttributeCache, fetcher: CountingFetcher
) -> None:
    """A failing identity provider is an error with exit code 1."""
    fetcher.error = FetchError("down")

    with pytest.raises(CommandError, match="could not refresh") as raised:
        call_command("rbac_refresh", "1", stdout=io.StringIO())

    assert raised.value.returncode == EXIT_FAILED


@pytest.mark.parametrize("arguments", [["x" * 300], ["1", "--service", "bad name"]])
def test_invalid_arguments_exit_2(cache: AttributeCache, arguments: list[str]) -> None:
    """A malformed user id or service name is an error with exit code 2."""
    with pytest.raises(CommandError) as raised:
        call_command("rbac_refresh", *arguments, stdout=io.StringIO())

    assert raised.value.returncode == EXIT_INVALID
