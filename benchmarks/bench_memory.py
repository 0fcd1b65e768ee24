"""Memory: what 100k local-tier entries cost, against simpler ways to hold them.

Redis is filled with 100k typical 650-byte entries. Each contender then
runs in a fresh subprocess that loads all of them into process memory and
reports the growth of its resident set (``/proc/self/statm``), and, in
another subprocess, the bytes ``tracemalloc`` traced:

- our local tier (``local_ttl`` on, filled through ``get_many``);
- a ``cachetools.TTLCache`` of the ``json.loads`` dicts;
- a plain dict of the raw bytes, the least any copy could take.

There is no goal in the design for memory; the numbers are for sizing.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cachetools
import redis
from _common import (
    SERVICE,
    USER_ID,
    Chart,
    Result,
    Row,
    banner,
    store_typical_user,
)
from _server import PrivateRedis

from rbac_abac_cache import AttributeCache

ENTRIES = 100_000
CHUNK = 1000
OURS = "rbac-abac-cache local tier"
TTLCACHE = "cachetools.TTLCache of json.loads dicts"
RAW = "dict of raw bytes"
CONTENDERS = (OURS, TTLCACHE, RAW)


def user_ids(count: int) -> list[str]:
    """Return the ids of the users stored for this benchmark."""
    return [str(1_000_000 + number) for number in range(count)]


def fill_redis(url: str, count: int) -> int:
    """Store ``count`` typical users; return the size of one entry."""
    client = redis.Redis.from_url(url)
    cache = AttributeCache(url, None, SERVICE, local_ttl=0)
    template = store_typical_user(cache, client, USER_ID)
    marker = f'"user_id":"{USER_ID}"'.encode()
    assert marker in template

    ids = user_ids(count)
    for start in range(0, count, CHUNK):
        pipe = client.pipeline(transaction=False)
        for uid in ids[start : start + CHUNK]:
            raw = template.replace(marker, f'"user_id":"{uid}"'.encode())
            pipe.set(cache.key_for(uid), raw, ex=3600)
        pipe.execute()

    assert cache.get(ids[-1]) is not None
    cache.close()
    client.close()
    return len(template)


def resident_bytes() -> int:
    """Return this process's resident set size, from /proc/self/statm."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def loader(contender: str, url: str, count: int) -> tuple[Callable[[], None], Any]:
    """Return a function that loads every user, and what keeps them alive."""
    ids = user_ids(count)
    chunks = [ids[start : start + CHUNK] for start in range(0, count, CHUNK)]

    if contender == OURS:
        cache = AttributeCache(url, None, SERVICE, local_ttl=3600, local_maxsize=count)
        deadline = time.monotonic() + 10
        while cache.stats()["hits_local"] == 0 and time.monotonic() < deadline:
            cache.get(ids[0])
            time.sleep(0.01)

        def load_ours() -> None:
            for chunk in chunks:
                cache.get_many(chunk)

        return load_ours, cache

    client = redis.Redis.from_url(url)
    client.ping()
    holder: dict[str, Any] | cachetools.TTLCache[str, Any]
    if contender == TTLCACHE:
        holder = cachetools.TTLCache(maxsize=count, ttl=3600)
    else:
        holder = {}
    key_space = AttributeCache(url, None, SERVICE, local_ttl=0)

    def load_others() -> None:
        for chunk in chunks:
            raws = client.mget([key_space.key_for(uid) for uid in chunk])
            for uid, raw in zip(chunk, raws, strict=True):
                assert isinstance(raw, bytes)
                holder[uid] = json.loads(raw) if contender == TTLCACHE else raw

    return load_others, holder


def child(contender: str, url: str, count: int, traced: bool) -> None:
    """Measure one contender in this (fresh) process and print JSON."""
    load, holder = loader(contender, url, count)
    gc.collect()
    if traced:
        tracemalloc.start()
    before_rss = resident_bytes()
    before_traced = tracemalloc.get_traced_memory()[0] if traced else 0

    load()
    gc.collect()
    grown = resident_bytes() - before_rss
    traced_bytes = tracemalloc.get_traced_memory()[0] - before_traced if traced else 0

    if contender == OURS:
        before = holder.stats()["hits_local"]
        holder.get_many(user_ids(count))
        held = holder.stats()["hits_local"] - before
    else:
        held = len(holder)
    print(json.dumps({"rss": grown, "traced": traced_bytes, "held": held}))


def measure(contender: str, url: str, count: int, traced: bool) -> dict[str, Any]:
    """Run :func:`child` in a subprocess and return what it printed."""
    command = [sys.executable, __file__, "--child", contender, "--url", url]
    command += ["--entries", str(count)]
    if traced:
        command.append("--traced")
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def run(count: int) -> Result:
    """Measure every contender and return the result."""
    result = Result(
        "memory", f"Memory held in process: MB per 100k entries ({count:,} loaded)"
    )
    with PrivateRedis() as server:
        entry_bytes = fill_redis(server.url, count)
        measured = {
            name: (
                measure(name, server.url, count, traced=False),
                measure(name, server.url, count, traced=True),
            )
            for name in CONTENDERS
        }

    for name, (plain, traced) in measured.items():
        assert plain["held"] == count, (name, plain["held"])
        result.rows.append(
            row(name, plain["rss"], traced["traced"], count, measured[TTLCACHE])
        )
    result.notes.append(
        f"Entries are {entry_bytes} bytes in Redis. RSS is the resident-set "
        "growth of a fresh process; tracemalloc counts the Python objects "
        "allocated, in another fresh process."
    )
    result.charts.append(
        Chart(
            f"Memory per entry (RSS, {count:,} entries)",
            "bytes per entry",
            {name: plain["rss"] / count for name, (plain, _) in measured.items()},
            ours=[OURS],
        )
    )
    result.params = {"entries": count, "entry_bytes": entry_bytes}
    return result


def row(
    name: str,
    rss: int,
    traced: int,
    count: int,
    anchor: tuple[dict[str, Any], dict[str, Any]],
) -> Row:
    """Build the table row of one contender."""
    return Row(
        contender=name,
        median=rss / 2**20 * 100_000 / count,
        p99=None,
        unit="MB",
        ratio=rss / anchor[0]["rss"],
        anchor=TTLCACHE,
        note=f"RSS {rss / count:,.0f} B/entry; "
        f"tracemalloc {traced / 2**20 * 100_000 / count:.1f} MB per 100k "
        f"({traced / count:,.0f} B/entry)",
    )


def main() -> None:
    """Parse options, run, print and write the result (or be a child)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=ENTRIES)
    parser.add_argument("--child", choices=CONTENDERS)
    parser.add_argument("--url")
    parser.add_argument("--traced", action="store_true")
    options = parser.parse_args()

    if options.child:
        child(options.child, options.url, options.entries, options.traced)
        return

    banner("bench_memory")
    run(options.entries).write()


if __name__ == "__main__":
    main()
