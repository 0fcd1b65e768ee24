"""Tests for :mod:`rbac_abac_cache.contrib.flask` as a package: its imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import rbac_abac_cache.contrib.flask as flask_adapter


def run(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter and return what it printed."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_importing_the_core_imports_no_framework() -> None:
    """Importing rbac_abac_cache and its testing module loads no framework."""
    result = run(
        """
        import sys
        import rbac_abac_cache
        import rbac_abac_cache.testing
        frameworks = ("flask", "werkzeug", "django", "rest_framework")
        loaded = sorted(
            name for name in sys.modules if name.split(".")[0] in frameworks
        )
        print(loaded)
        """
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_without_flask_the_adapter_names_the_extra() -> None:
    """Importing the adapter without Flask says: pip install rbac-abac-cache[flask]."""
    result = run(
        """
        import sys
        sys.modules["flask"] = None
        try:
            import rbac_abac_cache.contrib.flask
        except ImportError as exc:
            print(exc)
        """
    )

    assert result.returncode == 0, result.stderr
    assert "pip install rbac-abac-cache[flask]" in result.stdout


def test_all_names_exist() -> None:
    """Every name in __all__ can be imported from the package."""
    for name in flask_adapter.__all__:
        assert hasattr(flask_adapter, name), name
