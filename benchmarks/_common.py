"""What every benchmark shares: the typical entry, interleaved timing, results.

Contenders run in one process and one run, round-robin: each round gives
every contender a block of operations, in a rotated order, so that the noise
of a shared two-core machine falls on all of them alike. Results are medians
and p99s over every sample, and ratios to an anchor paired round by round.
"""

from __future__ import annotations

import gc
import json
import math
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from itertools import repeat
from pathlib import Path
from typing import Any

import redis

from rbac_abac_cache import AttributeCache, UserAttributes

SERVICE = "billing_api"
USER_ID = "10042"
ENTRY_BYTES = 650
RESULTS = Path(__file__).resolve().parent / "results"

# A contender runs ``n`` operations and returns one duration (ns) per sample.
Runner = Callable[[int], list[float]]


def typical_user(user_id: str, padding: int = 0) -> UserAttributes:
    """Return a user shaped like a billing service's: a few roles, many grants."""
    return UserAttributes(
        user_id,
        SERVICE,
        roles=["billing.viewer", "billing.editor", "employee"],
        permissions=[
            "invoices.read",
            "invoices.create",
            "invoices.update",
            "payments.read",
            "payments.refund",
            "customers.read",
            "reports.*",
        ],
        attributes={
            "department": "finance",
            "region": "eu-west-1",
            "cost_center": "CC-4410",
            "clearance": 3,
            "tenant_id": "tenant-7f3a",
            "manager_id": "10007",
            "employment": {"type": "full_time", "since": "2019-04-01"},
            "locales": ["en-GB", "de-DE"],
            "display_name": "Dana Example" + "x" * padding,
        },
        # A fixed number of decimals keeps the entry's length the same.
        fetched_at=int(time.time()) + 0.125,
    )


def store_typical_user(cache: AttributeCache, client: redis.Redis, uid: str) -> bytes:
    """Store a typical user through ``cache`` so its entry is exactly 650 bytes.

    Returns:
        The bytes the cache stored at ``cache.key_for(uid)``.
    """
    cache.set(typical_user(uid, padding_for(cache, client, uid)))
    raw = client.get(cache.key_for(uid))
    assert isinstance(raw, bytes)
    return raw


def padding_for(cache: AttributeCache, client: redis.Redis, uid: str) -> int:
    """Return the padding that makes ``uid``'s stored entry 650 bytes long."""
    padding = 0
    for _ in range(4):
        cache.set(typical_user(uid, padding))
        raw = client.get(cache.key_for(uid))
        assert isinstance(raw, bytes)
        if len(raw) == ENTRY_BYTES:
            break
        padding = max(0, padding + ENTRY_BYTES - len(raw))
    return padding


def close_cache(cache: AttributeCache) -> None:
    """Close ``cache`` and wait for its invalidation listener to end.

    Otherwise the listener may still be reading when the benchmark stops its
    private server, and log a lost subscription that means nothing here.
    """
    cache.close()
    for thread in threading.enumerate():
        if thread.name == "rbac-abac-cache-invalidations":
            thread.join(timeout=3)


def each_call(call: Callable[[], object], n: int) -> list[float]:
    """Run ``call`` ``n`` times and return each call's duration in ns."""
    clock = time.perf_counter_ns
    samples: list[float] = []
    append = samples.append
    for _ in repeat(None, n):
        started = clock()
        call()
        append(clock() - started)
    return samples


def batched(function: Callable[[str], object], arg: str, n: int) -> list[float]:
    """Time ``function(arg)`` in batches; return the mean ns per call of each.

    Sub-microsecond calls cannot be timed one by one: the clock costs as
    much as the call. The empty loop's cost is subtracted.
    """
    batch = 500
    clock = time.perf_counter_ns
    samples: list[float] = []
    for _ in range(max(1, n // batch)):
        started = clock()
        for _ in repeat(None, batch):
            pass
        empty = clock() - started

        started = clock()
        for _ in repeat(None, batch):
            function(arg)
        samples.append((clock() - started - empty) / batch)
    return samples


class Timings:
    """One contender's samples (ns), kept round by round.

    Ratios are paired by round: the median, over rounds, of the contender's
    median in that round divided by the anchor's in the same round. On a
    noisy machine that cancels the slow drifts both of them saw.
    """

    def __init__(self, rounds: list[list[float]]) -> None:
        self.rounds = [taken for taken in rounds if taken]

    @property
    def all(self) -> list[float]:
        """Every sample of every round."""
        return [sample for taken in self.rounds for sample in taken]

    def median(self) -> float:
        """The median of every sample."""
        return median(self.all)

    def p99(self) -> float:
        """The 99th percentile of every sample."""
        return percentile(self.all, 0.99)

    def ratio_to(self, anchor: Timings) -> float:
        """The paired ratio of this contender's medians to ``anchor``'s."""
        pairs = zip(self.rounds, anchor.rounds, strict=False)
        return median(median(mine) / median(theirs) for mine, theirs in pairs)


def interleave(
    contenders: Mapping[str, Runner],
    *,
    rounds: int,
    per_round: int,
    warmup: int = 1,
) -> dict[str, Timings]:
    """Run every contender round-robin and return its timings.

    Each round runs ``per_round`` operations of each contender, starting
    with a different one each round. The first ``warmup`` rounds are
    discarded.
    """
    names = list(contenders)
    taken: dict[str, list[list[float]]] = {name: [] for name in names}
    for round_number in range(warmup + rounds):
        gc.collect()
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            samples = contenders[name](per_round)
            if round_number >= warmup:
                taken[name].append(samples)
    return {name: Timings(rounds_taken) for name, rounds_taken in taken.items()}


def percentile(values: Iterable[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def median(values: Iterable[float]) -> float:
    """Return the median of ``values``."""
    return percentile(values, 0.5)


@dataclass
class Row:
    """One contender's line in a result table."""

    contender: str
    median: float
    p99: float | None
    unit: str
    ratio: float | None = None
    anchor: str | None = None
    goal: str | None = None
    met: bool | None = None
    note: str = ""


@dataclass
class Goal:
    """One of the design's targets, with what was measured against it."""

    name: str
    measured: float
    op: str
    target: float
    unit: str

    @property
    def met(self) -> bool:
        """Whether the measurement reaches the target."""
        if self.op == "<=":
            return self.measured <= self.target
        if self.op == ">=":
            return self.measured >= self.target
        return self.measured == self.target

    def text(self) -> str:
        """The target as a short phrase, such as ``<= 0.8x``."""
        return f"{self.op} {self.target:g}{self.unit}"


@dataclass
class Chart:
    """One panel of the summary chart: bars against the goal line."""

    title: str
    ylabel: str
    bars: dict[str, float]
    goal: float | None = None
    ours: list[str] = field(default_factory=list)
    log: bool = False


@dataclass
class Result:
    """Everything one benchmark reports."""

    benchmark: str
    title: str
    rows: list[Row] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def row_from_samples(
        self,
        name: str,
        samples: Timings | list[float],
        *,
        unit: str = "us",
        anchor: str | None = None,
        anchor_samples: Timings | None = None,
        goal: Goal | None = None,
        note: str = "",
    ) -> Row:
        """Add a row summarising ``samples`` (ns), with its ratio to an anchor."""
        if not isinstance(samples, Timings):
            samples = Timings([samples])
        scale = {"ns": 1.0, "us": 1e3, "ms": 1e6}[unit]
        ratio = None
        if anchor_samples is not None:
            ratio = samples.ratio_to(anchor_samples)
        row = Row(
            contender=name,
            median=samples.median() / scale,
            p99=samples.p99() / scale,
            unit=unit,
            ratio=ratio,
            anchor=anchor,
            goal=goal.text() if goal else None,
            met=goal.met if goal else None,
            note=note,
        )
        self.rows.append(row)
        if goal is not None:
            self.goals.append(goal)
        return row

    def write(self) -> Path:
        """Print the table and write ``results/<benchmark>.json``."""
        print_table(self)
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{self.benchmark}.json"
        data = asdict(self)
        for goal, goal_data in zip(self.goals, data["goals"], strict=True):
            goal_data["met"] = goal.met
            goal_data["text"] = goal.text()
        data["machine"] = machine()
        path.write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote {path}")
        return path


def print_table(result: Result) -> None:
    """Print a result as a plain-text table."""
    print(f"\n{result.title}")
    header = f"{'contender':<44} {'median':>10} {'p99':>10} {'ratio':>8}  goal"
    print(header)
    print("-" * len(header))
    for row in result.rows:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        p99 = f"{row.p99:>8.2f}{row.unit:<2}" if row.p99 is not None else " " * 10
        goal = ""
        if row.goal:
            goal = f"{row.goal} {'met' if row.met else 'NOT met'}"
        print(
            f"{row.contender:<44} {row.median:>8.2f}{row.unit:<2} "
            f"{p99} {ratio:>8}  {goal}{'  ' + row.note if row.note else ''}"
        )
    for target in result.goals:
        verdict = "met" if target.met else "NOT met"
        print(
            f"goal: {target.name}: {target.measured:.3g} {target.text()} -> {verdict}"
        )
    for note in result.notes:
        print(f"note: {note}")


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """Describe the machine and the versions of everything measured."""
    import os

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "versions": versions(),
    }


def versions() -> dict[str, str]:
    """Return the versions of Python, redis-server and the libraries compared."""
    found = {"python": platform.python_version()}
    try:
        banner = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=True
        ).stdout
        found["redis-server"] = banner.split("v=", 1)[1].split()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        found["redis-server"] = "unknown"

    for package in (
        "rbac-abac-cache",
        "redis",
        "hiredis",
        "orjson",
        "dogpile.cache",
        "cashews",
        "aiocache",
        "cachetools",
        "flask",
        "django",
    ):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def banner(title: str) -> None:
    """Print which benchmark is starting, for run_all's log."""
    print(f"== {title} (python {sys.version.split()[0]})", flush=True)
