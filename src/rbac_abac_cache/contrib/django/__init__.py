"""Django support: settings, ``request.rbac``, decorators, DRF and the refresh view.

Add ``"rbac_abac_cache.contrib.django"`` to ``INSTALLED_APPS`` and
``"rbac_abac_cache.contrib.django.middleware.AttributeCacheMiddleware"``
after Django's ``AuthenticationMiddleware``; configure the ``RBAC_ABAC_CACHE``
setting (see :mod:`.conf`). Guard views with :mod:`.decorators`,
:mod:`.mixins` or, with Django REST framework, :mod:`.permissions`. The
guide is ``docs/django.md``.

This package is the only part of the library that imports Django.
"""

from __future__ import annotations

try:
    import django  # noqa: F401 - imported only to fail early and clearly
except ImportError as exc:
    raise ImportError(
        "rbac_abac_cache.contrib.django needs Django: "
        "pip install 'rbac-abac-cache[django]'"
    ) from exc

from .conf import get_cache, get_refresh_handler, reset, set_cache
from .middleware import aget_attributes, get_attributes

__all__ = [
    "aget_attributes",
    "get_attributes",
    "get_cache",
    "get_refresh_handler",
    "reset",
    "set_cache",
]
