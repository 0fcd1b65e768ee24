"""Management commands of the adapter: ``rbac_refresh`` and ``rbac_invalidate``."""
