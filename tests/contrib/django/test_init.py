"""Tests of the package's import guard and public surface."""

from __future__ import annotations

import subprocess
import sys

import rbac_abac_cache.contrib.django as adapter


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_core_does_not_import_django() -> None:
    """Importing rbac_abac_cache leaves Django unimported."""
    result = _run(
        "import sys, rbac_abac_cache, rbac_abac_cache.testing\n"
        "assert 'django' not in sys.modules, 'django imported'\n"
        "assert 'rest_framework' not in sys.modules, 'DRF imported'\n"
    )

    assert result.returncode == 0, result.stderr


def test_missing_django_names_the_extra() -> None:
    """Without Django the adapter fails with an ImportError naming the extra."""
    result = _run(
        "import sys\n"
        "sys.modules['django'] = None\n"
        "import rbac_abac_cache.contrib.django\n"
    )

    assert result.returncode != 0
    assert "rbac-abac-cache[django]" in result.stderr


def test_missing_drf_names_the_package() -> None:
    """Without DRF only the permissions module fails, naming what to install."""
    result = _run(
        "import sys\n"
        "sys.modules['rest_framework'] = None\n"
        "import rbac_abac_cache.contrib.django.decorators\n"
        "import rbac_abac_cache.contrib.django.permissions\n"
    )

    assert result.returncode != 0
    assert "pip install djangorestframework" in result.stderr
    assert "decorators" not in result.stderr


def test_all_names_exist() -> None:
    """Every name in __all__ is defined."""
    for name in adapter.__all__:
        assert hasattr(adapter, name), name
