"""Cold-key stampede: 4 processes x 25 threads ask for one user at once.

The fetcher sleeps 50 ms and counts its calls with ``INCR`` on a separate
Redis key, so calls from every process are counted. All callers are
released together by a ``multiprocessing.Event`` set once every thread of
every process is ready; each caller's latency runs from that moment to its
answer. Each round uses a fresh key; contenders take turns round by round.

Contenders: this library; dogpile.cache's Redis backend with and without
``distributed_lock``; a naive get-then-set.

Goal: exactly 1 fetch, and every caller answered within 3x the fetch time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.synchronize
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from _common import SERVICE, Chart, Goal, Result, banner, median
from _server import PrivateRedis
from dogpile.cache import make_region

from rbac_abac_cache import AttributeCache

PROCESSES = 4
THREADS = 25
FETCH_SECONDS = 0.05
OURS = "rbac-abac-cache get()"
DOGPILE_LOCK = "dogpile.cache, distributed_lock=True"
DOGPILE = "dogpile.cache, distributed_lock=False"
NAIVE = "naive GET, fetch, SET"
CONTENDERS = (OURS, DOGPILE_LOCK, DOGPILE, NAIVE)


class SlowFetcher:
    """Sleeps like an identity provider, and counts calls for ``target`` in Redis.

    Other users, read only to warm the connection pools up, are answered at
    once and not counted.
    """

    def __init__(self, port: int, counter_key: str, target: str) -> None:
        self.client = redis.Redis(host="127.0.0.1", port=port)
        self.counter_key = counter_key
        self.target = target

    def __call__(self, user_id: str, service_name: str = SERVICE) -> dict[str, Any]:
        if user_id == self.target:
            self.client.incr(self.counter_key)
            time.sleep(FETCH_SECONDS)
        return {
            "user_id": user_id,
            "service_name": service_name,
            "roles": ["billing.viewer"],
            "permissions": ["invoices.read"],
            "attributes": {"department": "finance"},
        }


def build(contender: str, port: int, fetcher: SlowFetcher) -> Callable[[str], Any]:
    """Return ``read(user_id)`` for ``contender``, built in the calling process."""
    url = f"redis://127.0.0.1:{port}/0"
    if contender == OURS:
        cache = AttributeCache(url, fetcher, SERVICE)
        return cache.get

    if contender in (DOGPILE_LOCK, DOGPILE):
        region = make_region().configure(
            "dogpile.cache.redis",
            expiration_time=3600,
            arguments={
                "host": "127.0.0.1",
                "port": port,
                "db": 0,
                "distributed_lock": contender == DOGPILE_LOCK,
                "lock_timeout": 10,
                "thread_local_lock": False,
            },
        )
        return lambda uid: region.get_or_create(f"dogpile:{uid}", lambda: fetcher(uid))

    client = redis.Redis(host="127.0.0.1", port=port)

    def naive(uid: str) -> Any:
        raw = client.get(f"naive:{uid}")
        if raw is not None:
            return json.loads(raw)
        value = fetcher(uid)
        client.set(f"naive:{uid}", json.dumps(value), ex=3600)
        return value

    return naive


def worker(
    contender: str,
    port: int,
    uid: str,
    counter_key: str,
    ready: multiprocessing.synchronize.Barrier,
    go: multiprocessing.synchronize.Event,
    answers: multiprocessing.Queue[list[tuple[float, bool]]],
) -> None:
    """Run one process's threads: warm up, wait for the start, read once."""
    read = build(contender, port, SlowFetcher(port, counter_key, uid))
    finished: list[tuple[float, bool]] = []
    lock = threading.Lock()

    def caller() -> None:
        # Reading another user together fills the contender's connection pool,
        # so the stampede measures waiting for the fetch, not connecting.
        read(f"warm-{uid}")
        ready.wait(timeout=30)
        go.wait(timeout=30)
        value = read(uid)
        done = time.time()
        with lock:
            finished.append((done, value is not None))

    threads = [threading.Thread(target=caller) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    answers.put(finished)


def one_round(contender: str, port: int, uid: str) -> dict[str, Any]:
    """Stampede one cold key; return the fetch count and callers' latencies."""
    context = multiprocessing.get_context("fork")
    counter_key = f"bench:fetches:{uid}"
    ready = context.Barrier(PROCESSES * THREADS + 1)
    go = context.Event()
    answers: multiprocessing.Queue[list[tuple[float, bool]]] = context.Queue()
    processes = [
        context.Process(
            target=worker,
            args=(contender, port, uid, counter_key, ready, go, answers),
        )
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()

    ready.wait(timeout=30)
    time.sleep(0.05)
    started = time.time()
    go.set()

    finished = [item for _ in processes for item in answers.get(timeout=30)]
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()

    client = redis.Redis(host="127.0.0.1", port=port)
    fetches = int(client.get(counter_key) or 0)
    client.close()
    latencies = [done - started for done, _ in finished]
    return {
        "fetches": fetches,
        "slowest": max(latencies),
        "median_caller": median(latencies),
        "answered": sum(1 for _, ok in finished if ok),
        "callers": len(finished),
    }


def run(rounds: int) -> Result:
    """Run every contender ``rounds`` times, taking turns, and return the result."""
    result = Result(
        "stampede",
        f"Cold-key stampede: {PROCESSES} processes x {THREADS} threads, "
        f"{FETCH_SECONDS * 1000:.0f} ms fetcher",
    )
    outcomes: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
    with PrivateRedis() as server:
        for round_number in range(rounds):
            shift = round_number % len(CONTENDERS)
            for index, name in enumerate(CONTENDERS[shift:] + CONTENDERS[:shift]):
                uid = f"{90_000 + round_number * 10 + index}"
                outcomes[name].append(one_round(name, server.port, uid))

    report(result, outcomes)
    result.params = {
        "rounds": rounds,
        "processes": PROCESSES,
        "threads": THREADS,
        "fetch_ms": FETCH_SECONDS * 1000,
    }
    return result


def report(result: Result, outcomes: dict[str, list[dict[str, Any]]]) -> None:
    """Turn rounds into rows, goals and chart panels."""
    ours = outcomes[OURS]
    fetch_goal = Goal(
        "Stampede fetches (worst round)",
        max(item["fetches"] for item in ours),
        "==",
        1,
        "",
    )
    latency_goal = Goal(
        "Stampede slowest caller (worst round) vs fetch time",
        max(item["slowest"] for item in ours) / FETCH_SECONDS,
        "<=",
        3,
        "x",
    )
    for name, rounds in outcomes.items():
        slowest = [item["slowest"] * 1e9 for item in rounds]
        fetches = [item["fetches"] for item in rounds]
        answered = min(item["answered"] / item["callers"] for item in rounds)
        row = result.row_from_samples(
            name,
            slowest,
            unit="ms",
            anchor="fetch time",
            note=f"fetches: median {median(fetches):g}, worst {max(fetches)}; "
            f"median caller {median(i['median_caller'] for i in rounds) * 1000:.0f} "
            f"ms; answered {answered:.0%}",
        )
        row.ratio = row.median / (FETCH_SECONDS * 1000)
        row.p99 = max(slowest) / 1e6
        if name == OURS:
            row.goal = f"{fetch_goal.text()} fetch, {latency_goal.text()}"
            row.met = fetch_goal.met and latency_goal.met
    result.goals += [fetch_goal, latency_goal]
    result.notes.append(
        "median and p99 columns: the slowest caller's latency, median over "
        "rounds and worst round; ratio: median slowest caller / fetch time."
    )
    result.charts.append(
        Chart(
            "Stampede: fetches (median of rounds)",
            "fetches",
            {
                name: median(i["fetches"] for i in rounds)
                for name, rounds in outcomes.items()
            },
            goal=1,
            ours=[OURS],
            log=True,
        )
    )
    result.charts.append(
        Chart(
            "Stampede: slowest caller (x fetch time)",
            "slowest / fetch time",
            {
                name: median(i["slowest"] for i in rounds) / FETCH_SECONDS
                for name, rounds in outcomes.items()
            },
            goal=3,
            ours=[OURS],
        )
    )


def main() -> None:
    """Parse options, run, print and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()

    banner("bench_stampede")
    run(options.rounds).write()


if __name__ == "__main__":
    main()
