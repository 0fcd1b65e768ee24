"""Settings of the example identity provider.

Everything that differs between a laptop, the end-to-end run and
docker-compose comes from the environment:

- ``DJANGO_SECRET_KEY`` (required) and ``DJANGO_ALLOWED_HOSTS``
  (comma-separated, default ``127.0.0.1,localhost,identity-provider``);
- ``IDP_VAR_DIR``: where the SQLite database lives, created at start
  (default: ``rbac-abac-cache-idp`` in the system's temporary directory);
- ``RBAC_ABAC_IDP_TOKEN``: the bearer token services must send to read
  attributes;
- ``IDP_ADMIN_TOKEN``: the bearer token of the admin API (roles, stats);
- ``RBAC_ABAC_REFRESH_TOKEN``: the tokens ``POST /api/refresh-user-cache/``
  accepts;
- ``RBAC_ABAC_REDIS_URL`` and ``RBAC_ABAC_CACHE_TTL``: the shared cache the
  provider refreshes when it changes a user.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    raise ImproperlyConfigured("set DJANGO_SECRET_KEY")

DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = os.environ.get(
    "DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,identity-provider"
).split(",")

VAR_DIR = Path(
    os.environ.get("IDP_VAR_DIR") or Path(tempfile.gettempdir()) / "rbac-abac-cache-idp"
)
VAR_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rbac_abac_cache.contrib.django",
    "directory",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "directory.middleware.WorkerPidMiddleware",
]

ROOT_URLCONF = "idp.urls"
WSGI_APPLICATION = "idp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Two gunicorn workers write the request log at once: WAL lets readers go on
# while one writes, and IMMEDIATE transactions queue writers instead of
# failing them with "database is locked".
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "identity_provider.sqlite3",
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"

# The provider's own cache is built by directory.cache, because its misses
# are filled from this database rather than over HTTP. The refresh endpoint
# and the role changes of the admin API go through it.
RBAC_ABAC_CACHE = {
    "SERVICE_NAME": "identity_provider",
    "CACHE": "directory.cache.build_cache",
}
RBAC_ABAC_CACHE_TTL = os.environ.get("RBAC_ABAC_CACHE_TTL", "86400")

IDP_TOKEN = os.environ.get("RBAC_ABAC_IDP_TOKEN", "")
IDP_ADMIN_TOKEN = os.environ.get("IDP_ADMIN_TOKEN", "")

# This provider guards no view with cached attributes: it owns them, so it
# has no use for request.rbac.
SILENCED_SYSTEM_CHECKS = ["rbac_abac_cache.W001"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "directory": {"handlers": ["console"], "level": "INFO"},
        "rbac_abac_cache": {"handlers": ["console"], "level": "INFO"},
    },
}
