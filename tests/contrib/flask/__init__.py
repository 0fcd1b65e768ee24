"""Tests of :mod:`rbac_abac_cache.contrib.flask`."""
