"""Django settings for the adapter's tests; applied by this folder's conftest."""

from __future__ import annotations

SECRET_KEY = "tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
DATABASES: dict[str, dict[str, str]] = {}

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "rbac_abac_cache.contrib.django",
]

# Sessions live in signed cookies, so no test needs a database.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tests.contrib.django.auth.HeaderUserMiddleware",
    "rbac_abac_cache.contrib.django.middleware.AttributeCacheMiddleware",
]

ROOT_URLCONF = "tests.contrib.django.urls"

RBAC_ABAC_CACHE = {
    "SERVICE_NAME": "billing_api",
    # Nothing listens on port 1: a test that forgot to inject its cache fails
    # fast instead of reaching a developer's Redis.
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "IDENTITY_PROVIDER_URL": "http://idp.invalid",
    "REFRESH_TOKENS": ["test-refresh-token"],
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tests.contrib.django.auth.HeaderAuthentication"
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
