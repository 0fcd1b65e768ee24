"""Clients built from URLs: timeouts, bounded retries, cluster and Sentinel options."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster
from redis.sentinel import SentinelConnectionPool

from rbac_abac_cache import AttributeCache
from rbac_abac_cache.connection import (
    DEFAULT_SENTINEL_PORT,
    SentinelUrl,
    connect,
    parse_sentinel_url,
)
from rbac_abac_cache.exceptions import ConfigurationError, RedisUnavailableError

from .cluster import start_or_skip
from .conftest import CountingFetcher
from .redis_server import RedisServer, free_port


def test_single_server_client_has_short_timeouts_and_one_retry() -> None:
    """A URL gives a plain client whose pool bounds connections, waits and retries."""
    client = connect("redis://user:secret@127.0.0.1:6390/3", timeout=0.3)

    assert type(client) is redis.Redis
    pool = client.connection_pool
    assert isinstance(pool, redis.BlockingConnectionPool)
    assert pool.max_connections == 64
    options = pool.connection_kwargs
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 0.3
    assert options["retry"].get_retries() == 1
    assert (options["username"], options["password"], options["db"]) == (
        "user",
        "secret",
        3,
    )
    client.close()


def test_tls_options_pass_through_the_query_string() -> None:
    """``rediss://`` with ``ssl_*`` query options builds a TLS pool with them."""
    client = connect(
        "rediss://127.0.0.1:6390/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.crt"
    )

    pool = client.connection_pool
    assert issubclass(pool.connection_class, redis.SSLConnection)
    assert pool.connection_kwargs["ssl_ca_certs"] == "/etc/ca.crt"
    assert pool.connection_kwargs["ssl_cert_reqs"] == "required"
    client.close()


def test_unknown_query_option_is_rejected_when_the_client_is_built() -> None:
    """An option redis-py does not know fails at once, not on the first command."""
    with pytest.raises(ConfigurationError, match="bogus") as caught:
        connect("redis://user:hunter2@127.0.0.1:6390/0?bogus=1")

    assert "hunter2" not in str(caught.value)


def test_unparsable_url_is_a_configuration_error() -> None:
    """A URL redis-py cannot read raises ConfigurationError, for every deployment."""
    with pytest.raises(ConfigurationError):
        connect("http://127.0.0.1:6390/0")
    with pytest.raises(ConfigurationError):
        connect("http://127.0.0.1:6390/0", cluster=True)


def test_cluster_rejects_a_database_or_a_unix_socket() -> None:
    """A cluster has only database 0 and no unix sockets; both are named errors."""
    with pytest.raises(ConfigurationError, match="database 0"):
        connect("redis://127.0.0.1:6390/2", cluster=True)
    with pytest.raises(ConfigurationError, match="unix socket"):
        connect("unix:///tmp/redis.sock", cluster=True)


def test_cluster_without_a_live_node_fails_fast_with_our_error() -> None:
    """Building a cluster client with no node answering raises RedisUnavailableError."""
    began = time.monotonic()
    with pytest.raises(RedisUnavailableError, match="slot map"):
        connect(f"redis://127.0.0.1:{free_port()}/0", cluster=True, timeout=0.2)

    assert time.monotonic() - began < 2.0


def test_cluster_client_options_suit_a_cache() -> None:
    """Cluster clients retry once and keep working when some slots are uncovered."""
    server = start_or_skip(
        lambda: RedisServer(
            None, "--cluster-enabled", "yes", "--cluster-port", str(free_port())
        ).start()
    )
    try:
        server.client().execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        client = connect(server.url, cluster=True, timeout=0.3)
        assert isinstance(client, RedisCluster)
        assert client.retry.get_retries() == 1
        assert client.nodes_manager._require_full_coverage is False
        options = client.nodes_manager.connection_kwargs
        assert options["socket_timeout"] == options["socket_connect_timeout"] == 0.3
        client.close()
    finally:
        server.stop()


def test_sentinel_url_names_every_part() -> None:
    """Hosts, default port, IPv6, service, db and both sets of credentials parse."""
    parsed = parse_sentinel_url(
        "redis+sentinel://app%40corp:p%3Ass@10.0.0.1:26380,sentinel-b,[::1]:26381"
        "/billing-redis/4?sentinel_username=watcher&sentinel_password=s%26p"
    )

    assert parsed.sentinels == [
        ("10.0.0.1", 26380),
        ("sentinel-b", DEFAULT_SENTINEL_PORT),
        ("::1", 26381),
    ]
    assert (parsed.service_name, parsed.db) == ("billing-redis", 4)
    assert (parsed.username, parsed.password) == ("app@corp", "p:ss")
    assert (parsed.sentinel_username, parsed.sentinel_password) == ("watcher", "s&p")


def test_sentinel_url_defaults_to_db_zero_and_no_credentials() -> None:
    """Without a db or credentials, the master's db 0 is used without AUTH."""
    parsed = parse_sentinel_url("redis+sentinel://127.0.0.1/mymaster")

    assert parsed == SentinelUrl(
        [("127.0.0.1", 26379)], "mymaster", 0, None, None, None, None
    )


def test_sentinel_url_repr_hides_passwords() -> None:
    """The parsed URL's repr shows hosts and service, never a password."""
    parsed = parse_sentinel_url(
        "redis+sentinel://:hunter2@127.0.0.1/mymaster?sentinel_password=hunter3"
    )

    assert "hunter" not in repr(parsed)
    assert "127.0.0.1:26379/mymaster/0" in repr(parsed)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://:hunter2@127.0.0.1:26379", "service_name"),
        ("redis+sentinel://:hunter2@127.0.0.1:26379/", "service_name"),
        ("redis+sentinel://:hunter2@127.0.0.1:26379/m/x", "must be a number"),
        ("redis+sentinel://:hunter2@127.0.0.1:26379/m/0/extra", "service_name"),
        ("redis+sentinel://:hunter2@127.0.0.1:port/m", "malformed port"),
        ("redis+sentinel://:hunter2@127.0.0.1:70000/m", "malformed port"),
        ("redis+sentinel://:hunter2@127.0.0.1,/m", "host"),
        ("redis+sentinel://:hunter2@127.0.0.1/m?ssl=true", "unknown option"),
        ("redis://:hunter2@127.0.0.1/m", "redis\\+sentinel://"),
    ],
)
def test_malformed_sentinel_url_is_named_without_its_password(
    url: str, message: str
) -> None:
    """Each malformed part of a Sentinel URL has its own message, password-free."""
    with pytest.raises(ConfigurationError, match=message) as caught:
        parse_sentinel_url(url)

    assert "hunter2" not in str(caught.value)


def test_sentinel_client_is_a_plain_client_that_follows_the_master() -> None:
    """A Sentinel URL gives a ``redis.Redis`` on a sentinel-managed pool."""
    client = connect(
        "redis+sentinel://:pw@127.0.0.1:1,127.0.0.1:2/mymaster/2?sentinel_password=spw",
        timeout=0.3,
    )

    assert type(client) is redis.Redis
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "mymaster"
    options = pool.connection_kwargs
    assert (options["db"], options["password"]) == (2, "pw")
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 0.3
    assert options["retry"].get_retries() == 1

    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [1, 2]
    for sentinel in sentinels:
        sentinel_options = sentinel.connection_pool.connection_kwargs
        assert sentinel_options["password"] == "spw"
        assert sentinel_options["socket_connect_timeout"] == 0.3
        assert sentinel_options["retry"].get_retries() == 0
    client.close()


def test_sentinel_url_cannot_be_a_cluster() -> None:
    """Asking for a cluster with a Sentinel URL is a configuration error."""
    with pytest.raises(ConfigurationError, match="Cluster"):
        connect("redis+sentinel://127.0.0.1/mymaster", cluster=True)


def test_unreachable_sentinels_fall_back_to_the_fetcher_quickly(
    fetcher: CountingFetcher,
) -> None:
    """With no sentinel answering, get() asks the fetcher within milliseconds."""
    url = f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{free_port()}/m/0"
    cache = AttributeCache(url, fetcher, service_name="billing_api")

    began = time.monotonic()
    value = cache.get("1")
    elapsed = time.monotonic() - began

    assert value is not None

    assert value.has_role("admin")
    assert elapsed < 0.5
    assert cache.stats()["redis_errors"] >= 1
    cache.close()


def test_cluster_url_from_the_environment_builds_a_cluster_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``RBAC_ABAC_REDIS_CLUSTER=1`` turns the URL into a cluster client."""
    monkeypatch.setenv("RBAC_ABAC_REDIS_CLUSTER", "1")
    monkeypatch.setenv("RBAC_ABAC_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")

    with pytest.raises(RedisUnavailableError, match="Redis Cluster"):
        AttributeCache.from_env(service_name="billing_api")


def test_fail_fast_keeps_a_callers_settings_with_bounded_retries(
    redis_server: RedisServer,
) -> None:
    """fail_fast copies address, credentials and decoding, bounding retries."""
    from redis.backoff import NoBackoff

    from rbac_abac_cache.connection import fail_fast

    theirs = redis.Redis(
        port=redis_server.port,
        decode_responses=True,
        client_name="billing",
        socket_timeout=None,
        socket_connect_timeout=2.0,
    )
    ours, built = fail_fast(theirs, timeout=0.25)

    assert built
    assert ours is not theirs
    options = ours.connection_pool.connection_kwargs
    assert options["port"] == redis_server.port
    assert options["decode_responses"] is True
    assert options["client_name"] == "billing"
    assert options["socket_timeout"] == 0.25
    assert options["socket_connect_timeout"] == 2.0
    assert isinstance(options["retry"]._backoff, NoBackoff)
    assert ours.ping()
    ours.close()
    theirs.close()


def test_fail_fast_leaves_other_clients_alone(fake_redis: Any) -> None:
    """Subclasses such as fakeredis are used exactly as given."""
    from rbac_abac_cache.connection import fail_fast

    assert fail_fast(fake_redis) == (fake_redis, False)
