"""Settings of the example inventory API.

As in the original service's settings, ``RBAC_ABAC_CACHE_TTL`` and
``IDENTITY_PROVIDER_URL`` are top-level settings read from the environment;
the rest of the cache's configuration is the ``RBAC_ABAC_CACHE`` dict, whose
missing keys fall back to the environment (``RBAC_ABAC_IDP_TOKEN``,
``RBAC_ABAC_CACHE_LOCAL_TTL``, ...).
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    raise ImproperlyConfigured("set DJANGO_SECRET_KEY")

DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = os.environ.get(
    "DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,inventory-api"
).split(",")

INSTALLED_APPS = ["rbac_abac_cache.contrib.django"]

# No authentication middleware: the user comes from a header, through
# USER_ID_RESOLVER below.
MIDDLEWARE = [
    "inventory.identity.WorkerPidMiddleware",
    "rbac_abac_cache.contrib.django.middleware.AttributeCacheMiddleware",
]

ROOT_URLCONF = "inventory.urls"
WSGI_APPLICATION = "inventory.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
TIME_ZONE = "UTC"

RBAC_ABAC_CACHE = {
    "SERVICE_NAME": os.environ.get("RBAC_ABAC_SERVICE_NAME", "inventory_api"),
    "REDIS_URL": os.environ.get("RBAC_ABAC_REDIS_URL", "redis://localhost:6379/0"),
    "USER_ID_RESOLVER": "inventory.identity.user_id_from_header",
}
RBAC_ABAC_CACHE_TTL = os.environ.get("RBAC_ABAC_CACHE_TTL", "86400")
IDENTITY_PROVIDER_URL = os.environ.get("IDENTITY_PROVIDER_URL")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"rbac_abac_cache": {"handlers": ["console"], "level": "INFO"}},
}
