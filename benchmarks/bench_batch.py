"""Batch reads: ``get_many`` of 1000 cached users against the anchors.

Contenders, interleaved, each reading the same 1000 users (650-byte
entries, local tier off): 1000 ``get()`` calls, one ``get_many``,
dogpile.cache's ``get_multi`` and a hand-written ``MGET`` + ``json.loads``.

Goal: ``get_many`` at least 15x faster than 1000 ``get()`` calls, and ahead
of dogpile's ``get_multi``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import orjson
from _common import (
    ENTRY_BYTES,
    SERVICE,
    Chart,
    Goal,
    Result,
    Timings,
    banner,
    interleave,
    padding_for,
    typical_user,
)
from _server import PrivateRedis
from dogpile.cache import make_region

from rbac_abac_cache import AttributeCache

USERS = 1000
FLOOR = "redis-py MGET + json.loads (floor)"
LOOP = "rbac-abac-cache 1000 x get()"
OURS = "rbac-abac-cache get_many()"
DOGPILE = "dogpile.cache get_multi (redis)"


def per_batch(call: Callable[[], Any]) -> Callable[[int], list[float]]:
    """Return a runner that times ``n`` whole batches, one sample each."""

    def run(n: int) -> list[float]:
        samples: list[float] = []
        for _ in range(n):
            started = time.perf_counter_ns()
            call()
            samples.append(time.perf_counter_ns() - started)
        return samples

    return run


def run(rounds: int, per_round: int) -> Result:
    """Measure every batch contender, interleaved, and return the result."""
    result = Result("batch", f"Reading {USERS} cached users (650-byte entries)")
    with PrivateRedis() as server:
        client = server.client()
        cache = AttributeCache(server.url, None, SERVICE, local_ttl=0)
        ids = [str(20_000 + number) for number in range(USERS)]
        keys = [cache.key_for(uid) for uid in ids]
        fill(cache, client, ids)

        region = make_region().configure(
            "dogpile.cache.redis",
            expiration_time=3600,
            arguments={"host": "127.0.0.1", "port": server.port, "db": 0},
        )
        dogpile_keys = [f"dogpile:{uid}" for uid in ids]
        region.set_multi(
            {
                name: json.loads(raw)  # type: ignore[arg-type]
                for name, raw in zip(dogpile_keys, client.mget(keys), strict=True)
            }
        )

        def loop() -> dict[str, Any]:
            return {uid: cache.get(uid) for uid in ids}

        calls: dict[str, Callable[[], Any]] = {
            FLOOR: lambda: [
                json.loads(raw)  # type: ignore[arg-type]
                for raw in client.mget(keys)
            ],
            OURS: lambda: cache.get_many(ids),
            LOOP: loop,
            DOGPILE: lambda: region.get_multi(dogpile_keys),  # type: ignore[no-untyped-call]
            "redis-py MGET + orjson.loads": lambda: [
                orjson.loads(raw)  # type: ignore[arg-type]
                for raw in client.mget(keys)
            ],
        }
        for name, call in calls.items():
            assert len(call()) == USERS, name

        samples = interleave(
            {name: per_batch(call) for name, call in calls.items()},
            rounds=rounds,
            per_round=per_round,
        )
        cache.close()
        client.close()

    report(result, samples)
    result.params = {"rounds": rounds, "batches_per_round": per_round, "users": USERS}
    return result


def fill(cache: AttributeCache, client: Any, ids: list[str]) -> None:
    """Store every user through the cache, then check the entries' size."""
    padding = padding_for(cache, client, ids[0])
    for uid in ids:
        cache.set(typical_user(uid, padding))
    sizes = [len(raw) for raw in client.mget([cache.key_for(uid) for uid in ids])]
    assert min(sizes) >= ENTRY_BYTES - 5, min(sizes)


def report(result: Result, samples: dict[str, Timings]) -> None:
    """Turn samples into rows, goals and chart panels."""
    speedup = samples[LOOP].ratio_to(samples[OURS])
    goal = Goal("get_many(1000) vs 1000 get()", speedup, ">=", 15, "x")
    for name, taken in samples.items():
        users_per_second = USERS / (taken.median() / 1e9)
        result.row_from_samples(
            name,
            taken,
            unit="ms",
            anchor=FLOOR,
            anchor_samples=samples[FLOOR],
            goal=goal if name == OURS else None,
            note=f"{users_per_second:,.0f} users/s; "
            f"{samples[LOOP].ratio_to(taken):.1f}x the get() loop",
        )

    ahead = samples[OURS].median() < samples[DOGPILE].median()
    result.notes.append(
        "get_many ahead of dogpile's get_multi: " + ("yes." if ahead else "no.")
    )
    result.charts.append(
        Chart(
            "Batch of 1000 (x faster than 1000 get())",
            "speed-up",
            {
                name: samples[LOOP].ratio_to(taken)
                for name, taken in samples.items()
                if name != LOOP
            },
            goal=15,
            ours=[OURS],
        )
    )


def main() -> None:
    """Parse options, run, print and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--per-round", type=int, default=2)
    options = parser.parse_args()

    banner("bench_batch")
    run(options.rounds, options.per_round).write()


if __name__ == "__main__":
    main()
