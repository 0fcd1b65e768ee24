"""Revocation: how soon a ``refresh()`` is seen by instances in other processes.

Three listener processes each hold a cache with the local tier on
(``local_ttl=30``) and read one user every millisecond, as a busy service
would between requests. The identity provider is a Redis key outside the
cache's key space holding the user's current revision; every fetcher reads
it. The main process bumps the revision, calls ``refresh()`` and measures
the time until each listener's ``get()`` returns the new roles (``time.time()``,
all on one host).

For reference, blocks of revocations alternate with a second group of three
listeners whose local tier is off: they read Redis on every call, so they
show how fast the change can be seen at all.

Goal: the local-tier listeners see the change within 50 ms at p99.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.synchronize
import queue
import time
from typing import Any

import redis
from _common import SERVICE, Chart, Goal, Result, banner, median, percentile
from _server import PrivateRedis

from rbac_abac_cache import AttributeCache

LISTENERS = 3
USER = "10042"
SOURCE_KEY = "bench:idp:revision"
LOCAL = "local tier on (local_ttl=30)"
REDIS_ONLY = "local tier off (reference)"
POLL_SECONDS = 0.001


class RevisionFetcher:
    """An identity provider whose answer is the revision stored in Redis."""

    def __init__(self, port: int) -> None:
        self.client = redis.Redis(host="127.0.0.1", port=port)

    def __call__(self, user_id: str, service_name: str) -> dict[str, Any]:
        revision = int(self.client.get(SOURCE_KEY) or 0)
        return {
            "user_id": user_id,
            "service_name": service_name,
            "roles": ["billing.viewer", f"revision-{revision}"],
            "permissions": ["invoices.read"],
            "attributes": {"department": "finance"},
        }


def revision_of(roles: frozenset[str]) -> int:
    """Return the revision encoded in a user's roles."""
    for role in roles:
        if role.startswith("revision-"):
            return int(role.removeprefix("revision-"))
    return -1


def listener(
    group: str,
    index: int,
    port: int,
    active: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
    reports: multiprocessing.Queue[tuple[Any, ...]],
) -> None:
    """Read the user every millisecond; report each new revision's arrival."""
    local_ttl = 30 if group == LOCAL else 0
    url = f"redis://127.0.0.1:{port}/0"
    cache = AttributeCache(url, RevisionFetcher(port), SERVICE, local_ttl=local_ttl)
    warm(cache, local_ttl > 0)
    reports.put(("ready", group, index))

    seen = -1
    while not stop.is_set():
        if not active.is_set():
            active.wait(0.05)
            continue
        value = cache.get(USER)
        now = time.time()
        revision = revision_of(value.roles) if value is not None else -1
        if revision != seen:
            seen = revision
            reports.put(("seen", group, index, revision, now))
        time.sleep(POLL_SECONDS)

    reports.put(("stats", group, index, dict(cache.stats())))
    cache.close()


def warm(cache: AttributeCache, local: bool) -> None:
    """Read until the user is served from the local tier (when it is on)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        cache.get(USER)
        if not local or cache.stats()["hits_local"] > 0:
            return
        time.sleep(0.01)
    raise RuntimeError("the local tier never served a hit")


class Listeners:
    """Both groups of listener processes and the queue they report on."""

    def __init__(self, port: int) -> None:
        context = multiprocessing.get_context("fork")
        self.reports: multiprocessing.Queue[tuple[Any, ...]] = context.Queue()
        self.stop = context.Event()
        self.active = {group: context.Event() for group in (LOCAL, REDIS_ONLY)}
        self.processes = [
            context.Process(
                target=listener,
                args=(group, index, port, self.active[group], self.stop, self.reports),
            )
            for group in (LOCAL, REDIS_ONLY)
            for index in range(LISTENERS)
        ]
        for process in self.processes:
            process.start()
        ready = [self.reports.get(timeout=30) for _ in self.processes]
        assert all(item[0] == "ready" for item in ready), ready

    def activate(self, group: str) -> None:
        """Let one group read; the other idles so it takes no CPU."""
        for name, event in self.active.items():
            if name == group:
                event.set()
            else:
                event.clear()

    def wait_for(self, group: str, revision: int, timeout: float) -> list[float]:
        """Return when each listener of ``group`` first saw ``revision``."""
        arrivals: dict[int, float] = {}
        deadline = time.monotonic() + timeout
        while len(arrivals) < LISTENERS:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = self.reports.get(timeout=remaining)
            except queue.Empty:
                break
            if item[0] == "seen" and item[1] == group and item[3] == revision:
                arrivals[item[2]] = item[4]
        return list(arrivals.values())

    def close(self) -> list[tuple[Any, ...]]:
        """Stop every listener; return their final counters."""
        self.stop.set()
        for event in self.active.values():
            event.set()
        stats: list[tuple[Any, ...]] = []
        deadline = time.monotonic() + 15
        while len(stats) < len(self.processes) and time.monotonic() < deadline:
            try:
                item = self.reports.get(timeout=1)
            except queue.Empty:
                continue
            if item[0] == "stats":
                stats.append(item)
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        return stats


def run(revocations: int, block: int) -> Result:
    """Revoke ``revocations`` times per group, in alternating blocks."""
    result = Result(
        "revocation",
        f"Revocation: refresh() seen by {LISTENERS} listener processes",
    )
    delays: dict[str, list[float]] = {LOCAL: [], REDIS_ONLY: []}
    durations: list[float] = []
    missed = dict.fromkeys(delays, 0)

    with PrivateRedis() as server:
        client = server.client()
        client.set(SOURCE_KEY, 0)
        main_cache = AttributeCache(
            server.url, RevisionFetcher(server.port), SERVICE, local_ttl=0
        )
        main_cache.refresh(USER)
        listeners = Listeners(server.port)

        revision = 0
        done = dict.fromkeys(delays, 0)
        while min(done.values()) < revocations:
            for group in (LOCAL, REDIS_ONLY):
                listeners.activate(group)
                time.sleep(0.1)
                for _ in range(min(block, revocations - done[group])):
                    revision += 1
                    client.set(SOURCE_KEY, revision)
                    started = time.time()
                    main_cache.refresh(USER)
                    durations.append((time.time() - started) * 1e9)

                    arrivals = listeners.wait_for(group, revision, timeout=2)
                    delays[group] += [(seen - started) * 1e9 for seen in arrivals]
                    missed[group] += LISTENERS - len(arrivals)
                    done[group] += 1
                    # Give the listeners time to serve from the local tier again.
                    time.sleep(0.02)

        stats = listeners.close()
        main_cache.close()
        client.close()

    report(result, delays, durations, missed, stats)
    result.params = {
        "revocations_per_group": revocations,
        "block": block,
        "listeners": LISTENERS,
        "poll_ms": POLL_SECONDS * 1000,
    }
    return result


def report(
    result: Result,
    delays: dict[str, list[float]],
    durations: list[float],
    missed: dict[str, int],
    stats: list[tuple[Any, ...]],
) -> None:
    """Turn delays into rows, goals and chart panels."""
    goal = Goal(
        "Revocation visible, p99",
        percentile(delays[LOCAL], 0.99) / 1e6 if delays[LOCAL] else float("inf"),
        "<=",
        50,
        " ms",
    )
    for group, taken in delays.items():
        result.row_from_samples(
            f"listeners, {group}",
            taken,
            unit="ms",
            goal=goal if group == LOCAL else None,
            note=f"{len(taken)} observations, {missed[group]} missed",
        )
    result.row_from_samples("refresh() call itself", durations, unit="ms")

    local_hits = sum(item[3]["hits_local"] for item in stats if item[1] == LOCAL)
    redis_hits = sum(item[3]["hits_redis"] for item in stats if item[1] == LOCAL)
    share = local_hits / max(1, local_hits + redis_hits)
    result.notes.append(
        f"Local-tier listeners served {share:.1%} of their reads from the local "
        "tier, so the change had to reach them through the invalidation channel."
    )
    result.charts.append(
        Chart(
            "Revocation visible (ms)",
            "ms",
            {
                "p50 local tier on": median(delays[LOCAL]) / 1e6,
                "p99 local tier on": percentile(delays[LOCAL], 0.99) / 1e6,
                "p99 local tier off": percentile(delays[REDIS_ONLY], 0.99) / 1e6,
            },
            goal=50,
            ours=["p50 local tier on", "p99 local tier on"],
        )
    )


def main() -> None:
    """Parse options, run, print and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revocations", type=int, default=200)
    parser.add_argument("--block", type=int, default=25)
    options = parser.parse_args()

    banner("bench_revocation")
    run(options.revocations, options.block).write()


if __name__ == "__main__":
    main()
