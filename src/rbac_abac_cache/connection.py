"""Redis clients built from a URL, with timeouts that suit a cache.

A cache must answer quickly whether or not Redis does, so clients built here
give up on a dead server within ``timeout`` seconds and retry a command at
most once (which reconnects a pooled connection after a server restart). A
plain ``redis.Redis`` passed in by the caller lends its address, credentials
and TLS settings to a pool of the cache's own with those same bounds (see
:func:`fail_fast`); other clients are used as they are.

Three deployments are understood, all described in ``docs/scaling.md``:

- one server: ``redis://``, ``rediss://`` (TLS) or ``unix://``;
- Redis Cluster: the URL of any node, with ``cluster=True``;
- Redis Sentinel: ``redis+sentinel://[user:password@]host:port[,host:port...]
  /service_name[/db]``, whose client follows the master through failovers.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.connection import parse_url
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from .exceptions import ConfigurationError, RedisUnavailableError
from .store import RedisClient

__all__ = [
    "SENTINEL_SCHEME",
    "SentinelUrl",
    "connect",
    "fail_fast",
    "parse_sentinel_url",
]

logger = logging.getLogger(__name__)

SENTINEL_SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379

_MAX_CONNECTIONS = 64
_HEALTH_CHECK_INTERVAL = 15
_SENTINEL_QUERY_OPTIONS = frozenset({"sentinel_username", "sentinel_password"})


def connect(url: str, *, cluster: bool = False, timeout: float = 0.5) -> RedisClient:
    """Return a client for ``url``: one server, a cluster node or sentinels.

    Args:
        url: ``redis://``, ``rediss://`` (TLS) or ``unix://``, with an
            optional ``user:password@``, ``/db`` and redis-py's query options
            (``?ssl_ca_certs=...``); or a ``redis+sentinel://`` URL (see
            :func:`parse_sentinel_url`).
        cluster: Whether ``url`` names a node of a Redis Cluster.
        timeout: Socket connect and read timeout, in seconds.

    Raises:
        ConfigurationError: The URL cannot be parsed or names an option
            redis-py does not know; the message never contains the password.
        RedisUnavailableError: With ``cluster``, no node let the client learn
            the slot map, which a cluster client needs when it is built.
    """
    scheme = url.partition("://")[0].lower()
    if scheme == SENTINEL_SCHEME:
        if cluster:
            raise ConfigurationError(
                "a redis+sentinel:// URL cannot name a Redis Cluster; "
                "turn RBAC_ABAC_REDIS_CLUSTER off or give a node's redis:// URL"
            )
        return _sentinel_client(parse_sentinel_url(url), timeout)

    if cluster:
        return _cluster_client(url, timeout)
    return _single_client(url, timeout)


def fail_fast(client: RedisClient, timeout: float = 0.5) -> tuple[RedisClient, bool]:
    """Return a client like ``client`` whose commands fail fast on a dead server.

    redis-py's defaults retry a failed connection ten times with backoff and
    wait forever on a silent server, so one command to a dead Redis can take
    seconds. For a plain ``redis.Redis`` this builds a new pool from the same
    connection settings (address, credentials, TLS, protocol, encoding) with
    one retry and no backoff, keeping the client's timeouts where it has
    them and using ``timeout`` where it has none. Cluster, Sentinel and
    other clients are returned unchanged.

    Returns:
        The client to use, and whether it was built here (and so must be
        closed by the cache).
    """
    if type(client) is not redis.Redis:
        return client, False

    pool = client.connection_pool
    if type(pool) not in (redis.ConnectionPool, redis.BlockingConnectionPool):
        return client, False

    options = dict(pool.connection_kwargs)
    options["retry"] = Retry(NoBackoff(), 1)
    for name in ("socket_timeout", "socket_connect_timeout"):
        if options.get(name) is None:
            options[name] = timeout
    bounded = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
        connection_class=pool.connection_class,
        max_connections=_MAX_CONNECTIONS,
        timeout=timeout,
        **options,
    )
    return redis.Redis(connection_pool=bounded, retry=Retry(NoBackoff(), 1)), True


def _connection_options(timeout: float) -> dict[str, Any]:
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": _HEALTH_CHECK_INTERVAL,
    }


def _single_client(url: str, timeout: float) -> redis.Redis:
    try:
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=_MAX_CONNECTIONS,
            timeout=timeout,
            retry=Retry(NoBackoff(), 1),
            **_connection_options(timeout),
        )
    except ValueError as exc:
        raise ConfigurationError(f"cannot use Redis URL: {exc}") from exc

    _check_connection_options(pool.connection_class, pool.connection_kwargs)
    return redis.Redis(connection_pool=pool)


def _check_connection_options(connection_class: Any, options: dict[str, Any]) -> None:
    """Fail now, not on the first command, when the URL has an unknown option.

    redis-py hands unknown query options to the connection class as they
    are, which would only fail when the first connection is made.
    """
    try:
        connection_class(**options)
    except TypeError as exc:
        raise ConfigurationError(f"unknown option in Redis URL: {exc}") from None


def _cluster_client(url: str, timeout: float) -> RedisCluster:
    """A cluster client that copes with nodes going away.

    ``require_full_coverage=False`` keeps the client usable while some slots
    have no live master: keys in the other slots are still served, and the
    rest fall back to the fetcher instead of failing every command. One
    retry after a connection error lets the client refresh its slot map
    and reach a promoted replica within the same call.
    """
    try:
        options = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigurationError(f"cannot use Redis URL: {exc}") from exc
    if "path" in options:
        raise ConfigurationError("a Redis Cluster cannot be reached over a unix socket")
    if options.get("db", 0) != 0:
        raise ConfigurationError("a Redis Cluster has only database 0; drop the /db")

    try:
        return RedisCluster.from_url(
            url,
            require_full_coverage=False,
            retry=Retry(NoBackoff(), 1),
            **_connection_options(timeout),
        )
    except (RedisClusterException, RedisError) as exc:
        raise RedisUnavailableError(
            f"cannot learn the Redis Cluster's slot map ({type(exc).__name__}): "
            "a cluster client must reach a node, log in and run CLUSTER SLOTS "
            "and COMMAND when it is built"
        ) from exc


class SentinelUrl(NamedTuple):
    """What a ``redis+sentinel://`` URL says."""

    sentinels: list[tuple[str, int]]
    service_name: str
    db: int
    username: str | None
    password: str | None
    sentinel_username: str | None
    sentinel_password: str | None

    def __repr__(self) -> str:
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"<SentinelUrl {hosts}/{self.service_name}/{self.db}>"


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Parse ``redis+sentinel://[user:password@]host:port[,...]/service[/db]``.

    The credentials in the URL are those of the Redis master and replicas.
    Sentinels that require a password of their own get it from the
    ``sentinel_password`` (and ``sentinel_username``) query options. A host
    without a port means 26379.

    Raises:
        ConfigurationError: The URL is malformed; the message never contains
            a password.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != SENTINEL_SCHEME:
        raise ConfigurationError(f"a Sentinel URL starts with {SENTINEL_SCHEME}://")

    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, password = _credentials(userinfo)
    sentinels = [_host_and_port(item) for item in hosts.split(",")]
    service_name, db = _service_and_db(parts.path)
    options = _sentinel_options(parts.query)
    return SentinelUrl(
        sentinels=sentinels,
        service_name=service_name,
        db=db,
        username=username,
        password=password,
        sentinel_username=options.get("sentinel_username"),
        sentinel_password=options.get("sentinel_password"),
    )


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, has_password, password = userinfo.partition(":")
    return unquote(user) or None, unquote(password) if has_password else None


def _host_and_port(item: str) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise ConfigurationError("a Sentinel URL needs host[:port] for every sentinel")

    if not port_text:
        return host, DEFAULT_SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(f"sentinel {host!r} has a malformed port")
    return host, int(port_text)


def _service_and_db(path: str) -> tuple[str, int]:
    segments = [unquote(segment) for segment in path.strip("/").split("/")]
    if not segments[0] or len(segments) > 2:
        raise ConfigurationError(
            "a Sentinel URL ends with /<service_name> or /<service_name>/<db>"
        )
    if len(segments) == 1:
        return segments[0], 0
    if not segments[1].isdigit():
        raise ConfigurationError("the database in a Sentinel URL must be a number")
    return segments[0], int(segments[1])


def _sentinel_options(query: str) -> dict[str, str]:
    options = {
        name: values[-1]
        for name, values in parse_qs(query, keep_blank_values=True).items()
    }
    unknown = set(options) - _SENTINEL_QUERY_OPTIONS
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) in Sentinel URL: {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(_SENTINEL_QUERY_OPTIONS))}"
        )
    return options


class _SentinelPool(SentinelConnectionPool):
    """Closes the connections to the sentinels along with those to the master."""

    def disconnect(self, inuse_connections: bool = True) -> None:
        super().disconnect(inuse_connections)
        for sentinel in self.sentinel_manager.sentinels:
            sentinel.connection_pool.disconnect(inuse_connections)


def _sentinel_client(target: SentinelUrl, timeout: float) -> redis.Redis:
    """A client of the master that ``target``'s sentinels name.

    Each new connection asks the sentinels where the master is, so after a
    failover the client reaches the promoted replica by itself. A sentinel
    that does not answer is skipped at once, without retries, for the next.
    """
    sentinel_options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    if target.sentinel_password is not None:
        sentinel_options["username"] = target.sentinel_username
        sentinel_options["password"] = target.sentinel_password

    logger.debug(
        "Redis master %r is found through %d sentinel(s)",
        target.service_name,
        len(target.sentinels),
    )
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        target.sentinels, sentinel_kwargs=sentinel_options
    )
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.service_name,
        connection_pool_class=_SentinelPool,
        db=target.db,
        username=target.username,
        password=target.password,
        retry=Retry(NoBackoff(), 1),
        **_connection_options(timeout),
    )
    return client
