"""The public surface: ``__all__`` against the design, errors, import hygiene."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from importlib import resources

import pytest

import rbac_abac_cache
from rbac_abac_cache import (
    AttributeCacheError,
    AttributesUnavailableError,
    ConfigurationError,
    FetchError,
    IdentityProviderUnavailableError,
    InvalidAttributesError,
    InvalidUserIdError,
    RedisUnavailableError,
)

# The import list of DESIGN.md section 3, which users' code relies on.
CONTRACT_NAMES = (
    "AttributeCache",
    "UserAttributes",
    "HttpIdentityProvider",
    "RefreshHandler",
    "AttributeCacheError",
    "InvalidUserIdError",
    "InvalidAttributesError",
    "FetchError",
    "AttributesUnavailableError",
    "get_user_attributes",
    "refresh_user_attributes_from_identity_provider",
)

ERRORS = (
    AttributesUnavailableError,
    ConfigurationError,
    FetchError,
    IdentityProviderUnavailableError,
    InvalidAttributesError,
    InvalidUserIdError,
    RedisUnavailableError,
)


def test_all_contains_every_contract_name() -> None:
    """Every name the design promises is exported in ``__all__``."""
    missing = set(CONTRACT_NAMES) - set(rbac_abac_cache.__all__)

    assert not missing


@pytest.mark.parametrize("name", rbac_abac_cache.__all__)
def test_every_exported_name_is_importable(name: str) -> None:
    """Each name in ``__all__`` exists on the package."""
    assert getattr(rbac_abac_cache, name, None) is not None


def test_all_has_no_duplicates_or_private_names() -> None:
    """``__all__`` lists each public name once and no ``_private`` names."""
    names = rbac_abac_cache.__all__

    assert len(names) == len(set(names))
    assert not [name for name in names if name.startswith("_")]


def test_star_import_yields_exactly_all() -> None:
    """``from rbac_abac_cache import *`` binds every name in ``__all__``."""
    namespace: dict[str, object] = {}

    exec("from rbac_abac_cache import *", namespace)  # noqa: S102

    assert set(namespace) - {"__builtins__"} == set(rbac_abac_cache.__all__)


def test_contract_import_statement_works() -> None:
    """The design's exact import statement runs."""
    exec(  # noqa: S102
        "from rbac_abac_cache import (\n"
        "    AttributeCache, UserAttributes, HttpIdentityProvider, RefreshHandler,\n"
        "    AttributeCacheError, InvalidUserIdError, InvalidAttributesError,\n"
        "    FetchError, AttributesUnavailableError,\n"
        "    get_user_attributes, refresh_user_attributes_from_identity_provider,\n"
        ")\n",
        {},
    )


@pytest.mark.parametrize("error", ERRORS)
def test_every_error_derives_from_attribute_cache_error(error: type) -> None:
    """One ``except AttributeCacheError`` catches everything the library raises."""
    assert issubclass(error, AttributeCacheError)
    assert issubclass(AttributeCacheError, Exception)


@pytest.mark.parametrize(
    "error", [InvalidUserIdError, InvalidAttributesError, ConfigurationError]
)
def test_bad_input_errors_are_value_errors(error: type) -> None:
    """Errors about bad input are also ValueErrors."""
    assert issubclass(error, ValueError)


def test_fetch_failures_are_not_value_errors() -> None:
    """Failures of the identity provider are not mistaken for bad input."""
    assert not issubclass(FetchError, ValueError)
    assert not issubclass(AttributesUnavailableError, ValueError)
    assert issubclass(IdentityProviderUnavailableError, FetchError)


def test_attributes_unavailable_carries_retry_after() -> None:
    """AttributesUnavailableError tells adapters what Retry-After to send."""
    assert AttributesUnavailableError("down", retry_after=3.0).retry_after == 3.0
    assert AttributesUnavailableError("down").retry_after > 0


def test_kept_functions_have_the_original_signatures() -> None:
    """The functions kept from the original services take the same arguments."""
    get = inspect.signature(rbac_abac_cache.get_user_attributes)
    refresh = inspect.signature(
        rbac_abac_cache.refresh_user_attributes_from_identity_provider
    )

    assert list(get.parameters) == ["user_id", "service_name", "auto_refresh"]
    assert get.parameters["auto_refresh"].default is True
    assert list(refresh.parameters) == ["user_id", "service_name"]


@pytest.mark.parametrize(
    "method",
    [
        "get",
        "get_many",
        "refresh",
        "invalidate",
        "set",
        "key_for",
        "for_service",
        "stats",
        "close",
        "from_env",
        "__enter__",
        "__exit__",
    ],
)
def test_attribute_cache_has_the_contract_methods(method: str) -> None:
    """AttributeCache offers every method the design lists."""
    assert callable(getattr(rbac_abac_cache.AttributeCache, method, None))


def test_attribute_cache_constructor_takes_the_contract_arguments() -> None:
    """AttributeCache(redis, fetcher, service_name=..., ttl=None, auto_refresh=True)."""
    parameters = inspect.signature(rbac_abac_cache.AttributeCache).parameters

    assert list(parameters)[:5] == [
        "redis",
        "fetcher",
        "service_name",
        "ttl",
        "auto_refresh",
    ]
    assert parameters["ttl"].default is None
    assert parameters["auto_refresh"].default is True


@pytest.mark.parametrize(
    "method",
    [
        "has_role",
        "has_permission",
        "has_any_role",
        "has_all_permissions",
        "to_dict",
        "from_dict",
    ],
)
def test_user_attributes_has_the_contract_methods(method: str) -> None:
    """UserAttributes offers every method the design lists."""
    assert callable(getattr(rbac_abac_cache.UserAttributes, method, None))


def test_import_does_not_import_frameworks() -> None:
    """Importing the package in a fresh interpreter imports neither Django nor Flask."""
    code = (
        "import sys, rbac_abac_cache\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('django', 'flask', 'rest_framework', 'werkzeug'))\n"
        "print(','.join(loaded))\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert result.stdout.strip() == ""


def test_py_typed_is_shipped() -> None:
    """The package carries the PEP 561 ``py.typed`` marker."""
    marker = resources.files("rbac_abac_cache").joinpath("py.typed")

    assert marker.is_file()


def test_package_has_a_version() -> None:
    """The package exposes its version string."""
    module = importlib.import_module("rbac_abac_cache")

    assert isinstance(module.__version__, str)
    assert module.__version__
