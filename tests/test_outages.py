"""Redis killed and restarted under traffic; the subscription lost and regained."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rbac_abac_cache import (
    AttributeCache,
    AttributesUnavailableError,
    HttpIdentityProvider,
    RedisUnavailableError,
)

from .conftest import CountingFetcher
from .redis_server import RedisServer

pytestmark = pytest.mark.slow


def _wait_until(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def test_gets_keep_answering_while_redis_is_dead(
    fresh_redis_server: RedisServer, fetcher: CountingFetcher
) -> None:
    """With Redis killed, every get answers correctly, fast, and nothing raises."""
    cache = AttributeCache(
        fresh_redis_server.url,
        fetcher,
        service_name="billing_api",
        redis_retry_interval=0.2,
    )
    assert cache.get("1").has_role("admin")

    fresh_redis_server.kill()
    durations = []
    for n in range(100):
        began = time.monotonic()
        value = cache.get("2" if n % 2 else "1")
        durations.append(time.monotonic() - began)
        assert value is not None
        assert value.has_role("viewer" if n % 2 else "admin")

    assert max(durations) < 0.5
    assert sorted(durations)[50] < 0.05
    stats = cache.stats()
    assert 1 <= stats["redis_errors"] < 50, "only probes may reach a dead Redis"
    assert stats["redis_skipped"] > stats["redis_errors"]
    cache.close()


def test_hits_come_from_redis_again_after_a_restart(
    fresh_redis_server: RedisServer, fetcher: CountingFetcher
) -> None:
    """After Redis returns, the cache stores and hits Redis again within seconds."""
    cache = AttributeCache(
        fresh_redis_server.url,
        fetcher,
        service_name="billing_api",
        redis_retry_interval=0.2,
    )
    cache.get("1")
    fresh_redis_server.kill()
    cache.get("1")

    fresh_redis_server.restart()
    hits = cache.stats()["hits_redis"]

    assert _wait_until(lambda: cache.get("1") and cache.stats()["hits_redis"] > hits)
    assert fresh_redis_server.client().exists(cache.key_for("1"))
    cache.close()


def test_concurrent_gets_survive_a_kill_mid_traffic(
    fresh_redis_server: RedisServer, fetcher: CountingFetcher
) -> None:
    """Threads reading while Redis is SIGKILLed and restarted never see an error."""
    cache = AttributeCache(
        fresh_redis_server.url,
        fetcher,
        service_name="billing_api",
        redis_retry_interval=0.1,
    )
    stop = threading.Event()
    failures: list[BaseException] = []
    answers = [0]

    def reader() -> None:
        while not stop.is_set():
            try:
                assert cache.get("1").has_role("admin")
                answers[0] += 1
            except BaseException as exc:
                failures.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    fresh_redis_server.kill()
    time.sleep(0.5)
    fresh_redis_server.restart()
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(5)

    assert failures == []
    assert answers[0] > 100
    cache.close()


def test_changes_report_that_redis_is_unreachable(
    fresh_redis_server: RedisServer, fetcher: CountingFetcher
) -> None:
    """refresh, invalidate and set raise RedisUnavailableError instead of pretending."""
    cache = AttributeCache(fresh_redis_server.url, fetcher, service_name="billing_api")
    value = cache.get("1")
    fresh_redis_server.kill()

    with pytest.raises(RedisUnavailableError):
        cache.invalidate("1")
    with pytest.raises(RedisUnavailableError):
        cache.refresh("1")
    with pytest.raises(RedisUnavailableError):
        cache.set(value)
    cache.close()


def test_local_tier_serves_during_an_outage_and_is_cleared_after(
    fresh_redis_server: RedisServer, fetcher: CountingFetcher
) -> None:
    """Local entries serve while Redis is down; resubscribing clears them."""
    cache = AttributeCache(
        fresh_redis_server.url,
        fetcher,
        service_name="billing_api",
        local_ttl=30,
        redis_retry_interval=0.1,
    )
    bus = cache._bus
    assert bus is not None
    assert bus.wait_confirmed(5)
    cache.get("1")
    assert cache.get("1") is not None
    assert cache.stats()["hits_local"] == 1

    fresh_redis_server.kill()
    assert _wait_until(lambda: not bus.confirmed)
    fetches = fetcher.count()
    assert cache.get("1").has_role("admin")
    assert fetcher.count() == fetches, "a held local entry should be served"

    cache.get("2")
    cache.get("2")
    assert fetcher.count("2") == 2, "nothing new is stored locally while unsubscribed"

    fresh_redis_server.restart()
    assert _wait_until(lambda: bus.confirmed, timeout=10)
    assert cache._local is not None
    assert len(cache._local) == 0
    cache.close()


def test_a_dead_redis_costs_milliseconds_not_seconds(fetcher: CountingFetcher) -> None:
    """Nothing listening on the port: each get still answers quickly."""
    from .redis_server import free_port

    cache = AttributeCache(
        f"redis://127.0.0.1:{free_port()}/0", fetcher, service_name="billing_api"
    )
    began = time.monotonic()
    for _ in range(20):
        assert cache.get("1") is not None
    assert time.monotonic() - began < 2.0
    cache.close()


class _Provider(BaseHTTPRequestHandler):
    """An identity provider whose behaviour the test switches: ok, error, hang."""

    mode = "ok"

    def do_GET(self) -> None:
        if self.mode == "hang":
            time.sleep(2)
        if self.mode in ("error", "hang"):
            self.send_response(500)
            self.end_headers()
            return

        user_id = self.path.split("/")[3]
        body = json.dumps(
            {
                "user_id": user_id,
                "service_name": "billing_api",
                "roles": ["admin"],
                "permissions": ["invoices.*"],
                "attributes": {},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def provider() -> Any:
    """A real HTTP identity provider on a loopback port, stopped after the test."""
    handler = type("Handler", (_Provider,), {"mode": "ok"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.parametrize("mode", ["error", "hang", "stopped"])
def test_identity_provider_outage_serves_stale_then_refuses(
    real_redis: Any, provider: Any, mode: str
) -> None:
    """IdP failing, hanging or gone: stale within grace, unavailable past it or cold."""
    server, handler = provider
    url = f"http://127.0.0.1:{server.server_port}"
    idp = HttpIdentityProvider(url, timeout=0.3, retries=1, total_timeout=1.0)
    cache = AttributeCache(
        real_redis, idp, service_name="billing_api", ttl=0.3, stale_grace=1.5
    )
    assert cache.get("1").has_role("admin")
    time.sleep(0.35)

    if mode == "stopped":
        server.shutdown()
        server.server_close()
    else:
        handler.mode = mode

    began = time.monotonic()
    assert cache.get("1").has_role("admin")
    assert time.monotonic() - began < 2.5
    assert cache.stats()["stale_served"] == 1
    with pytest.raises(AttributesUnavailableError):
        cache.get("cold-user")

    time.sleep(1.6)
    with pytest.raises(AttributesUnavailableError):
        cache.get("1")
    idp.close()


def test_a_callers_default_client_also_fails_fast(
    fresh_redis_server: RedisServer, fetcher: CountingFetcher
) -> None:
    """A redis.Redis with redis-py's slow default retries still costs milliseconds."""
    client = fresh_redis_server.client()
    cache = AttributeCache(client, fetcher, service_name="billing_api")
    assert cache.get("1").has_role("admin")

    fresh_redis_server.kill()
    durations = []
    for n in range(30):
        began = time.monotonic()
        assert cache.get("1") is not None
        assert cache.get_many(["1", "2"]).keys() == {"1", "2"}
        durations.append(time.monotonic() - began)
        if n == 10:
            time.sleep(1.1)  # past redis_retry_interval: one call probes Redis
    with pytest.raises(RedisUnavailableError):
        cache.invalidate("1")

    assert max(durations) < 0.5
    fresh_redis_server.restart()
    assert _wait_until(lambda: cache.get("1") and cache.stats()["hits_redis"] > 1)
    cache.close()
    client.close()
