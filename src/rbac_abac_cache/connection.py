"""Redis clients built from a URL, with timeouts that suit a cache.

A cache must answer quickly whether or not Redis does, so clients built here
give up on a dead server within ``timeout`` seconds and retry a command at
most once (which reconnects a pooled connection after a server restart). A
client passed in by the caller is used exactly as configured.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from .exceptions import ConfigurationError
from .store import RedisClient

__all__ = ["connect"]

_MAX_CONNECTIONS = 64


def connect(url: str, *, cluster: bool = False, timeout: float = 0.5) -> RedisClient:
    """Return a client for ``url``, a single server or any node of a cluster.

    Args:
        url: ``redis://``, ``rediss://`` (TLS) or ``unix://``, with an
            optional ``user:password@`` and ``/db``.
        cluster: Whether ``url`` names a node of a Redis Cluster.
        timeout: Socket connect and read timeout, in seconds.

    Raises:
        ConfigurationError: The URL cannot be parsed.
    """
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 1),
        "health_check_interval": 15,
    }

    try:
        if cluster:
            return RedisCluster.from_url(url, **options)
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=_MAX_CONNECTIONS, timeout=timeout, **options
        )
        return redis.Redis(connection_pool=pool, retry=Retry(NoBackoff(), 1))
    except ValueError as exc:
        raise ConfigurationError(f"cannot use Redis URL: {exc}") from exc
