"""Hit latency: our Redis-tier and local-tier hits against the anchors.

Redis tier (local tier off): ``AttributeCache.get()`` against the floor, a
hand-written redis-py ``GET`` + ``json.loads`` of the very bytes the cache
stored; against dogpile.cache's ``get_or_create`` hit; against a bare socket
with a hiredis reader; and, in an asyncio loop of their own, cashews and
aiocache against the async floor (``redis.asyncio`` ``GET`` + ``json.loads``).

Local tier (``local_ttl=30``, after the invalidation subscription is
confirmed): ``get()`` against a ``cachetools.TTLCache`` lookup.

Goals: Redis-tier hit <= 0.8x the floor; local hit <= 1.5x TTLCache.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import cachetools
import hiredis
import orjson
import redis
import redis.asyncio
from _common import (
    SERVICE,
    USER_ID,
    Chart,
    Goal,
    Result,
    Timings,
    banner,
    batched,
    close_cache,
    each_call,
    interleave,
    store_typical_user,
)
from _server import PrivateRedis
from aiocache import RedisCache
from cashews import Cache as CashewsCache
from dogpile.cache import make_region

from rbac_abac_cache import AttributeCache

FLOOR = "redis-py GET + json.loads (floor)"
ASYNC_FLOOR = "redis.asyncio GET + json.loads (async floor)"
OURS = "rbac-abac-cache get(), Redis tier"
TTLCACHE = "cachetools.TTLCache[key]"
OURS_LOCAL = "rbac-abac-cache get(), local tier"


class HiredisSocket:
    """GET over a bare TCP socket parsed by hiredis: the wire's own floor."""

    def __init__(self, port: int, key: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = hiredis.Reader()
        name = key.encode()
        self.command = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(name), name)

    def get(self) -> Any:
        """Send GET and decode the reply with ``json.loads``."""
        self.sock.sendall(self.command)
        reply = self.reader.gets()
        while reply is False:
            self.reader.feed(self.sock.recv(65536))
            reply = self.reader.gets()
        return json.loads(reply)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def async_runner(
    loop: asyncio.AbstractEventLoop, call: Callable[[], Any]
) -> Callable[[int], list[float]]:
    """Return a runner that times ``await call()`` ``n`` times inside ``loop``."""

    async def timed(n: int) -> list[float]:
        clock = time.perf_counter_ns
        samples: list[float] = []
        for _ in range(n):
            started = clock()
            await call()
            samples.append(clock() - started)
        return samples

    return lambda n: loop.run_until_complete(timed(n))


def wait_for_local_hits(cache: AttributeCache, uid: str, timeout: float = 10) -> None:
    """Read until the local tier serves, which needs a confirmed subscription."""
    before = cache.stats()["hits_local"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cache.get(uid)
        if cache.stats()["hits_local"] > before:
            return
        time.sleep(0.01)
    raise RuntimeError("the local tier never served a hit")


def run(rounds: int, per_round: int, local_per_round: int) -> Result:
    """Measure every hit contender, interleaved, and return the result."""
    result = Result("hit", "Hit latency (one 650-byte entry, loopback Redis)")
    with PrivateRedis() as server:
        client = server.client()
        cache = AttributeCache(server.url, None, SERVICE, local_ttl=0)
        raw = store_typical_user(cache, client, USER_ID)
        key = cache.key_for(USER_ID)
        decoded = json.loads(raw)

        users_cache = AttributeCache(client, None, SERVICE, local_ttl=0)
        region = make_region().configure(
            "dogpile.cache.redis",
            expiration_time=3600,
            arguments={"host": "127.0.0.1", "port": server.port, "db": 0},
        )
        dogpile_key = f"dogpile:{USER_ID}"
        region.set(dogpile_key, decoded)
        socket_floor = HiredisSocket(server.port, key)

        loop = asyncio.new_event_loop()
        async_client = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
        cashews = CashewsCache()
        cashews.setup(server.url)
        aiocache = RedisCache(endpoint="127.0.0.1", port=server.port)
        loop.run_until_complete(cashews.set(f"cashews:{USER_ID}", decoded))

        async def async_floor() -> Any:
            return json.loads(await async_client.get(key))  # type: ignore[arg-type]

        def creator() -> Any:
            raise AssertionError("dogpile should hit")

        sync_calls: dict[str, Callable[[], Any]] = {
            FLOOR: lambda: json.loads(client.get(key)),  # type: ignore[arg-type]
            OURS: lambda: cache.get(USER_ID),
            "rbac-abac-cache get(), caller's redis.Redis": lambda: users_cache.get(
                USER_ID
            ),
            "redis-py GET + orjson.loads": lambda: orjson.loads(client.get(key)),  # type: ignore[arg-type]
            "dogpile.cache get_or_create (redis)": lambda: region.get_or_create(
                dogpile_key, creator
            ),
            "bare socket + hiredis + json.loads": socket_floor.get,
        }
        async_calls: dict[str, Callable[[], Any]] = {
            ASYNC_FLOOR: async_floor,
            "cashews get": lambda: cashews.get(f"cashews:{USER_ID}"),
            "aiocache get (same bytes)": lambda: aiocache.get(key),
        }
        check(sync_calls, async_calls, loop, decoded)

        contenders: dict[str, Callable[[int], list[float]]] = {
            name: functools.partial(each_call, call)
            for name, call in sync_calls.items()
        }
        for name, acall in async_calls.items():
            contenders[name] = async_runner(loop, acall)
        samples = interleave(contenders, rounds=rounds, per_round=per_round)

        local = local_samples(server.url, client, local_per_round, rounds)

        socket_floor.close()
        loop.run_until_complete(cashews.close())
        loop.run_until_complete(aiocache.close())
        loop.run_until_complete(async_client.aclose())
        loop.close()
        cache.close()
        users_cache.close()
        client.close()

    report(result, samples, local, len(raw))
    result.params = {
        "rounds": rounds,
        "calls_per_round": per_round,
        "local_calls_per_round": local_per_round,
        "entry_bytes": len(raw),
    }
    return result


def check(
    sync_calls: dict[str, Callable[[], Any]],
    async_calls: dict[str, Callable[[], Any]],
    loop: asyncio.AbstractEventLoop,
    decoded: Any,
) -> None:
    """Make sure every contender really hits and returns the same user."""
    for name, call in sync_calls.items():
        value = call()
        roles = value.roles if hasattr(value, "roles") else value["roles"]
        assert sorted(roles) == sorted(decoded["roles"]), name
    for name, acall in async_calls.items():
        value = loop.run_until_complete(acall())
        assert value["roles"] == decoded["roles"], name


def local_samples(
    url: str, client: redis.Redis, per_round: int, rounds: int
) -> dict[str, Timings]:
    """Time local-tier hits against cachetools.TTLCache, interleaved."""
    cache = AttributeCache(url, None, SERVICE, local_ttl=30)
    store_typical_user(cache, client, USER_ID)
    wait_for_local_hits(cache, USER_ID)

    ttl: cachetools.TTLCache[str, Any] = cachetools.TTLCache(maxsize=10_000, ttl=30)
    ttl[USER_ID] = cache.get(USER_ID)
    numeric = int(USER_ID)

    before = cache.stats()["hits_local"]
    samples = interleave(
        {
            TTLCACHE: lambda n: batched(ttl.__getitem__, USER_ID, n),
            OURS_LOCAL: lambda n: batched(cache.get, USER_ID, n),
            "cachetools.TTLCache.get(key)": lambda n: batched(ttl.get, USER_ID, n),
            "rbac-abac-cache get(int id), local tier": lambda n: batched(
                cache.get,
                numeric,  # type: ignore[arg-type]
                n,
            ),
        },
        rounds=rounds,
        per_round=per_round,
    )
    served = cache.stats()["hits_local"] - before
    expected = 2 * (rounds + 1) * (per_round // 500) * 500
    assert served >= expected, f"only {served} of {expected} reads were local hits"
    close_cache(cache)
    return samples


def report(
    result: Result,
    samples: dict[str, Timings],
    local: dict[str, Timings],
    entry_bytes: int,
) -> None:
    """Turn samples into rows, goals and chart panels."""
    floor, async_floor = samples[FLOOR], samples[ASYNC_FLOOR]
    hit_goal = Goal(
        "Redis-tier hit vs floor",
        samples[OURS].ratio_to(floor),
        "<=",
        0.8,
        "x",
    )
    for name, taken in samples.items():
        is_async = name in (ASYNC_FLOOR, "cashews get", "aiocache get (same bytes)")
        anchor = ASYNC_FLOOR if is_async else FLOOR
        note = ""
        if is_async and name != ASYNC_FLOOR:
            note = f"{taken.ratio_to(floor):.2f}x the sync floor"
        result.row_from_samples(
            name,
            taken,
            anchor=anchor,
            anchor_samples=async_floor if is_async else floor,
            goal=hit_goal if name == OURS else None,
            note=note,
        )

    local_goal = Goal(
        "Local-tier hit vs TTLCache",
        local[OURS_LOCAL].ratio_to(local[TTLCACHE]),
        "<=",
        1.5,
        "x",
    )
    for name, taken in local.items():
        result.row_from_samples(
            name,
            taken,
            unit="ns",
            anchor=TTLCACHE,
            anchor_samples=local[TTLCACHE],
            goal=local_goal if name == OURS_LOCAL else None,
        )

    rivals = (
        "dogpile.cache get_or_create (redis)",
        "cashews get",
        "aiocache get (same bytes)",
    )
    behind = [
        name for name in rivals if samples[name].median() <= samples[OURS].median()
    ]
    result.notes.append(
        f"Entry: {entry_bytes} bytes. Async contenders' ratios are to the async "
        "floor; their ratio to the sync floor is in the note column."
    )
    result.notes.append(
        "Ahead of dogpile.cache, cashews and aiocache (absolute medians): "
        + ("yes." if not behind else f"no, behind {', '.join(behind)}.")
    )
    result.charts.append(
        Chart(
            "Redis-tier hit (x floor)",
            "median / floor",
            {
                row.contender
                + (" (x async floor)" if row.anchor == ASYNC_FLOOR else ""): row.ratio
                or 0.0
                for row in result.rows
                if row.unit == "us" and row.contender not in (FLOOR, ASYNC_FLOOR)
            },
            goal=0.8,
            ours=[OURS, "rbac-abac-cache get(), caller's redis.Redis"],
        )
    )
    result.charts.append(
        Chart(
            "Local-tier hit (x TTLCache[key])",
            "median / TTLCache",
            {
                row.contender: row.ratio or 0.0
                for row in result.rows
                if row.unit == "ns" and row.contender != TTLCACHE
            },
            goal=1.5,
            ours=[OURS_LOCAL, "rbac-abac-cache get(int id), local tier"],
        )
    )


def main() -> None:
    """Parse options, run, print and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--per-round", type=int, default=100)
    parser.add_argument("--local-per-round", type=int, default=5000)
    options = parser.parse_args()

    banner("bench_hit")
    run(options.rounds, options.per_round, options.local_per_round).write()


if __name__ == "__main__":
    main()
