"""Profile 10k hits of our ``get()`` against 10k of the floor, with cProfile.

Prints, for each side, the CPU time by component (our package, redis-py,
JSON decoding, socket calls, the rest) and the functions with the most time
of their own. Not part of ``run_all.py``: run it when a hit goal is missed.

Usage: ``python benchmarks/profile_hit.py [--calls 10000] [--local]``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import cachetools
from _common import SERVICE, USER_ID, close_cache, store_typical_user
from _server import PrivateRedis

from rbac_abac_cache import AttributeCache


def component(filename: str, function: str) -> str:
    """Name the component a profiled function belongs to."""
    if "rbac_abac_cache" in filename:
        return "rbac_abac_cache"
    if "/redis/" in filename:
        return "redis-py"
    if "socket" in function or "poll" in function:
        return "socket + poll (kernel round trip)"
    if "json" in filename or "orjson" in function or "json" in function:
        return "JSON decoding"
    if "hiredis" in function:
        return "hiredis"
    if "cachetools" in filename:
        return "cachetools"
    return "other (stdlib, builtins)"


def profile(call: Callable[[], Any], calls: int) -> pstats.Stats:
    """Return the profile of ``calls`` calls of ``call``."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        call()
    profiler.disable()
    return pstats.Stats(profiler)


def show(name: str, stats: pstats.Stats, calls: int, top: int) -> None:
    """Print the time by component and the top functions of one side."""
    by_component: dict[str, float] = defaultdict(float)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _, function), (_, _, own, _, _) in raw.items():
        by_component[component(filename, function)] += own
    total = sum(by_component.values())

    print(f"\n=== {name}: {total / calls * 1e6:.1f} us per call under cProfile")
    for part, seconds in sorted(by_component.items(), key=lambda item: -item[1]):
        print(f"  {part:<36} {seconds / calls * 1e6:7.2f} us  {seconds / total:5.1%}")

    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    print(out.getvalue().split("\n\n", 2)[-1])


def main() -> None:
    """Start a private server, store one entry, profile both sides."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--local", action="store_true", help="local tier instead")
    options = parser.parse_args()

    with PrivateRedis() as server:
        client = server.client()
        local_ttl = 30 if options.local else 0
        cache = AttributeCache(server.url, None, SERVICE, local_ttl=local_ttl)
        store_typical_user(cache, client, USER_ID)
        key = cache.key_for(USER_ID)

        if options.local:
            ttl: cachetools.TTLCache[str, Any] = cachetools.TTLCache(10_000, 30)
            ttl[USER_ID] = cache.get(USER_ID)
            sides: dict[str, Callable[[], Any]] = {
                "cachetools.TTLCache[key]": lambda: ttl[USER_ID],
                "rbac-abac-cache get(), local tier": lambda: cache.get(USER_ID),
            }
        else:
            sides = {
                "floor: redis-py GET + json.loads": lambda: json.loads(
                    client.get(key)  # type: ignore[arg-type]
                ),
                "rbac-abac-cache get(), Redis tier": lambda: cache.get(USER_ID),
            }

        for call in sides.values():
            for _ in range(1000):
                call()
        if options.local and cache.stats()["hits_local"] == 0:
            raise SystemExit("the local tier did not serve; subscription not ready")
        for name, call in sides.items():
            show(name, profile(call, options.calls), options.calls, options.top)

        close_cache(cache)
        client.close()


if __name__ == "__main__":
    main()
