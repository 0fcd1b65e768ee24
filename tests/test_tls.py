"""The cache over TLS as an ACL user that holds only the permissions it needs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

import rbac_abac_cache.cache
from rbac_abac_cache import AttributeCache, RefreshHandler

from .cluster import (
    CACHE_PASSWORD,
    CACHE_USER,
    TlsRedisServer,
    TlsUnsupportedError,
    in_ci,
    start_or_skip,
    unavailable,
    wait_until,
)
from .conftest import CountingFetcher
from .redis_server import RedisServerUnavailableError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TlsRedisServer]:
    """A redis-server on a TLS port only, with certificates made for this module.

    A redis-server built without TLS is a skip with the reason, and an
    expected failure with the reason under CI, never a silent pass.
    """
    server = start_or_skip(TlsRedisServer)
    try:
        server.start()
    except TlsUnsupportedError as exc:
        server.stop()
        if in_ci():
            pytest.xfail(str(exc))
        pytest.skip(str(exc))
    except RedisServerUnavailableError as exc:
        server.stop()
        unavailable(str(exc))
    yield server
    server.stop()


@pytest.fixture
def admin(tls_server: TlsRedisServer) -> Iterator[redis.Redis]:
    """An admin client over TLS; the server is emptied before the test."""
    client = tls_server.client()
    client.flushall()
    yield client
    client.close()


def test_cache_works_over_tls_as_the_minimal_acl_user(
    tls_server: TlsRedisServer, admin: redis.Redis, fetcher: CountingFetcher
) -> None:
    """get, get_many, refresh, invalidate and set all work with the minimal ACL."""
    with AttributeCache(tls_server.url, fetcher, service_name="billing_api") as cache:
        assert cache.get("1") is not None
        assert cache.get("1") is not None
        assert fetcher.count("1") == 1
        assert cache.get_many(["1", "2", "nobody"]).keys() == {"1", "2"}
        assert cache.refresh("1") is not None
        cache.invalidate("2")
        refreshed = cache.refresh("alice")
        assert refreshed is not None
        cache.set(refreshed)
        assert cache.stats()["redis_errors"] == 0

    assert admin.exists(cache.key_for("1")) == 1
    assert admin.acl_log() == []


def test_refresh_rate_limit_works_with_the_minimal_acl(
    tls_server: TlsRedisServer, admin: redis.Redis, fetcher: CountingFetcher
) -> None:
    """The refresh endpoint's counter needs nothing beyond the documented ACL."""
    with AttributeCache(tls_server.url, fetcher, service_name="billing_api") as cache:
        handler = RefreshHandler(cache, tokens=["t0ken"], rate_limit=1)
        headers = {"Authorization": "Bearer t0ken"}
        body = b'{"user_id": "1", "service_name": "billing_api"}'

        statuses = [handler.handle("POST", headers, body).status for _ in range(2)]

    assert statuses == [200, 429]
    assert admin.acl_log() == []


def test_local_tier_invalidation_works_over_tls(
    tls_server: TlsRedisServer,
    admin: redis.Redis,
    fetcher: CountingFetcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The minimal ACL may subscribe and publish on the invalidation channel."""
    monkeypatch.setattr(rbac_abac_cache.cache, "deliver_in_process", lambda *args: None)
    writer = AttributeCache(tls_server.url, fetcher, "billing_api", local_ttl=30)
    reader = AttributeCache(tls_server.url, fetcher, "billing_api", local_ttl=30)
    try:
        assert reader._bus is not None
        assert reader._bus.wait_confirmed(5)
        reader.get("1")
        reader.get("1")
        assert reader.stats()["hits_local"] == 1

        fetcher.users["1"]["roles"] = ["viewer"]
        writer.refresh("1")
        wait_until(
            lambda: reader.get("1").has_role("viewer"),
            2.0,
            "the reader to see the refresh",
            interval=0.005,
        )
    finally:
        writer.close()
        reader.close()


@pytest.mark.parametrize(
    "command",
    [
        ("KEYS", "*"),
        ("FLUSHALL",),
        ("CONFIG", "GET", "maxmemory"),
        ("GET", "someone-elses-key"),
        ("PUBLISH", "someone-elses-channel", "x"),
        ("SCRIPT", "FLUSH"),
    ],
)
def test_the_cache_user_can_do_nothing_else(
    tls_server: TlsRedisServer, command: tuple[str, ...]
) -> None:
    """The documented ACL refuses other commands, keys and channels."""
    client = redis.Redis.from_url(tls_server.url)
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
    finally:
        client.close()


def test_untrusted_certificate_falls_back_to_the_fetcher(
    tls_server: TlsRedisServer, fetcher: CountingFetcher
) -> None:
    """A server certificate the client cannot verify is an outage, not an error."""
    url = f"rediss://{CACHE_USER}:{CACHE_PASSWORD}@127.0.0.1:{tls_server.port}/0"
    url += f"?ssl_cert_reqs=required&ssl_ca_certs={tls_server.certificates.cert}"

    with AttributeCache(url, fetcher, service_name="billing_api") as cache:
        value = cache.get("1")
        assert value is not None
        assert value.has_role("admin")
        assert cache.stats()["redis_errors"] >= 1


def test_wrong_password_falls_back_to_the_fetcher(
    tls_server: TlsRedisServer, fetcher: CountingFetcher
) -> None:
    """A refused login is an outage for get(), which answers from the fetcher."""
    url = tls_server.url_for(CACHE_USER, "not-the-password")

    with AttributeCache(url, fetcher, service_name="billing_api") as cache:
        value = cache.get("1")
        assert value is not None
        assert value.has_role("admin")
        assert cache.stats()["redis_errors"] >= 1
