"""The six scenarios: each returns a one-line account or raises ScenarioError.

Users (seeded by ``seed_directory``): 1 alice (finance, accountant), 2 bob
(sales, viewer), 3 carol (operations, warehouse), 4 dave (finance, viewer),
5-8 more, 999 unknown. Invoice 1001 belongs to finance, 1002 to sales.
A viewer may read invoices and stock; an accountant has ``invoices.*``;
warehouse staff have ``stock.*``. Stock valuation is for finance only.
"""

from __future__ import annotations

import math
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from client import Answer, Http, delta
from services import Cluster, Service, port_refuses

ALICE, BOB, CAROL, DAVE, GRACE, UNKNOWN = 1, 2, 3, 4, 7, 999
PRODUCTION_TTL = 86400


class ScenarioError(Exception):
    """A scenario saw something the system must never do."""


@dataclass
class Run:
    """What every scenario works with."""

    cluster: Cluster
    http: Http

    @property
    def ttl(self) -> float:
        """The services' ``RBAC_ABAC_CACHE_TTL``."""
        return self.cluster.ttl


def expect(answer: Answer, status: int, what: str) -> Answer:
    """Fail unless ``answer`` has ``status``."""
    if answer.status != status:
        raise ScenarioError(
            f"{what}: expected {status}, got {answer.status} {answer.body}"
        )
    return answer


def expect_all(answers: Iterable[Answer], status: int, what: str) -> set[int | None]:
    """Fail unless every answer has ``status``; return the workers that answered."""
    answers = list(answers)
    statuses = Counter(answer.status for answer in answers)
    if set(statuses) != {status}:
        raise ScenarioError(f"{what}: expected only {status}, got {dict(statuses)}")
    return {answer.pid for answer in answers}


def expect_workers(pids: set[int | None], what: str, before: set[int | None]) -> None:
    """Fail unless at least two workers answered, including all of ``before``."""
    if len(pids) < 2 or not before <= pids:
        raise ScenarioError(f"{what}: answered by workers {sorted(map(str, pids))}")


# 1. Granted, then served from the cache


def served_from_cache(run: Run) -> str:
    """Alice is granted, then her requests no longer reach the identity provider."""
    http, billing, inventory = run.http, run.cluster.billing, run.cluster.inventory
    before = http.idp_counts()
    expect(http.call(billing, "GET", "/invoices/1001", ALICE), 200, "alice reads 1001")
    expect(
        http.call(inventory, "GET", "/stock/valuation/", ALICE), 200, "alice valuation"
    )
    warm = http.idp_counts()
    fetched = delta(before, warm, ALICE)
    if fetched != 2:
        raise ScenarioError(f"first requests asked the provider {fetched} times, not 2")

    calls = [
        (billing, "GET", "/invoices/1001", 200),
        (billing, "GET", "/invoices/", 200),
        (billing, "GET", "/invoices/1002", 403),
        (billing, "POST", "/invoices/", 201),
        (inventory, "GET", "/stock/valuation/", 200),
        (inventory, "GET", "/stock/", 403),
    ]
    started, sent = time.monotonic(), 0
    for _ in range(10):
        for service, method, path, status in calls:
            body = {"customer": "Acme", "total": 10} if method == "POST" else None
            answer = http.call(service, method, path, ALICE, json=body)
            expect(answer, status, f"alice {method} {service.name}{path}")
            sent += 1
    took = time.monotonic() - started
    if took >= run.ttl:
        raise ScenarioError(f"{sent} requests took {took:.1f}s, longer than the TTL")

    moved = delta(warm, http.idp_counts(), ALICE)
    if moved:
        raise ScenarioError(
            f"{sent} cached requests still asked the provider {moved} times"
        )

    in_memory = http.worker_stats(billing).get("hits_local", 0)
    from_redis = http.worker_stats(inventory).get("hits_redis", 0)
    if not in_memory or not from_redis:
        raise ScenarioError(
            f"billing hits in memory: {in_memory}, inventory hits in Redis: "
            f"{from_redis}; expected both"
        )
    return (
        f"alice granted (and refused another department's invoice); {sent} more "
        f"requests, identity provider asked 0 times (billing: {in_memory} hits "
        f"in worker memory; inventory: {from_redis} hits in Redis)"
    )


# 2. A revoked role is denied at once, on every worker


def revocation(run: Run) -> str:
    """Bob loses his role at the provider: every worker of both services denies him."""
    http, cluster = run.http, run.cluster
    probes = [(cluster.billing, "/invoices/1002"), (cluster.inventory, "/stock/")]

    workers: dict[str, set[int | None]] = {}
    for service, path in probes:
        pids = expect_all(http.spread(service, path, BOB), 200, f"bob {service.name}")
        expect_workers(pids, f"bob before on {service.name}", set())
        workers[service.name] = pids

    revoked = expect(http.set_roles(BOB, []), 200, "revoke bob's viewer role")
    if sorted(revoked.body["refreshed"]) != ["billing_api", "inventory_api"]:
        raise ScenarioError(f"the provider refreshed only {revoked.body}")
    changed, denials = time.monotonic(), 0
    for service, path in probes:
        before = workers[service.name]
        answers = http.spread(service, path, BOB, until_pids=_known(before))
        pids = expect_all(answers, 403, f"bob on {service.name} after the revocation")
        expect_workers(pids, f"bob after on {service.name}", before)
        denials += len(answers)
    denied_within = time.monotonic() - changed

    expect(http.set_roles(BOB, ["viewer"]), 200, "give bob's role back")
    for service, path in probes:
        expect_all(http.spread(service, path, BOB), 200, f"bob back on {service.name}")

    secrets = cluster.secrets
    refreshed = http.refresh_endpoint(BOB, "billing_api", secrets.refresh_token)
    expect(refreshed, 200, "POST /api/refresh-user-cache/ with the token")
    expect(
        http.refresh_endpoint(BOB, "billing_api", None), 401, "refresh without a token"
    )
    counts = ", ".join(
        f"{name} pids {sorted(map(str, p))}" for name, p in workers.items()
    )
    return (
        f"bob's role revoked at the provider: all {denials} requests of the next "
        f"{denied_within:.2f}s denied, by every worker ({counts}); role restored; "
        "manual refresh endpoint 200 with its token, 401 without"
    )


def _known(pids: set[int | None]) -> set[int]:
    return {pid for pid in pids if pid is not None}


# 3. Past its TTL, an entry is refreshed without a denial


def ttl_boundary(run: Run) -> str:
    """Dave keeps working across several TTLs; the provider is asked once per TTL."""
    http, cluster = run.http, run.cluster
    duration = run.ttl * 2.5
    before = http.idp_counts()

    answers: list[Answer] = []
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        answers.append(http.call(cluster.billing, "GET", "/invoices/1001", DAVE))
        answers.append(http.call(cluster.inventory, "GET", "/stock/", DAVE))
        time.sleep(0.02)
    expect_all(answers, 200, "dave across the TTL boundary")

    after = http.idp_counts()
    most = math.ceil(duration / run.ttl) + 2
    fetches = {}
    for service_name in ("billing_api", "inventory_api"):
        fetches[service_name] = delta(before, after, DAVE, service_name)
        if not 2 <= fetches[service_name] <= most:
            raise ScenarioError(
                f"{service_name} asked the provider {fetches[service_name]} times "
                f"in {duration:.1f}s with a {run.ttl:g}s TTL"
            )
    slowest = max(answer.elapsed for answer in answers)
    return (
        f"{len(answers)} requests over {duration:.1f}s (TTL {run.ttl:g}s), all "
        f"200; provider asked {fetches['billing_api']}x by billing, "
        f"{fetches['inventory_api']}x by inventory; slowest {slowest * 1000:.0f}ms"
    )


# 4. Identity provider down

# HttpIdentityProvider's default breaker_cooldown, in seconds.
BREAKER_COOLDOWN = 5.0


def idp_outage(run: Run) -> str:
    """Provider stopped: cached users keep their access, nobody gets a wrong 200."""
    http, cluster = run.http, run.cluster
    billing, inventory = cluster.billing, cluster.inventory
    checks: list[tuple[Service, str, int, int]] = [
        (billing, "/invoices/1001", ALICE, 200),
        (inventory, "/stock/valuation/", ALICE, 200),
        (inventory, "/stock/", CAROL, 200),
        (billing, "/invoices/1001", CAROL, 403),
    ]
    for service, path, user, status in checks:
        expect(http.call(service, "GET", path, user), status, f"warm user {user}")
    warmed = time.monotonic()
    counters = [http.worker_stats(billing), http.worker_stats(inventory)]

    # Users never seen before cannot be checked: 503, never a guess.
    checks += [
        (billing, "/invoices/1001", GRACE, 503),
        (inventory, "/stock/valuation/", GRACE, 503),
        (billing, "/invoices/", UNKNOWN, 503),
    ]
    stopped_in = cluster.idp.stop(signal.SIGTERM)
    try:
        if not port_refuses(cluster.idp.port):
            raise ScenarioError("the identity provider still listens after SIGTERM")
        answers = _while_idp_down(run, checks, stale_after=warmed + run.ttl)
        stale = _grown(counters, run, "stale_served")
        if not stale:
            raise ScenarioError("no stale entry was served past the TTL")
    finally:
        cluster.idp.restart()

    restarted = time.monotonic()
    _wait_for(
        lambda: all(
            http.call(service, "GET", path, GRACE).status == 200
            for service, path in (
                (billing, "/invoices/1001"),
                (inventory, "/stock/valuation/"),
            )
        ),
        timeout=20,
        what="grace is served once the provider is back",
    )
    # Each worker has its own circuit breaker, and one that opened during the
    # outage refuses calls until its cooldown ends, even with the provider
    # back. The next scenario needs the provider, so let every cooldown end.
    time.sleep(max(0.0, restarted + BREAKER_COOLDOWN + 0.5 - time.monotonic()))
    refused = [answer.elapsed for answer in answers if answer.status == 503]
    return (
        f"IdP stopped by SIGTERM ({stopped_in:.1f}s); {len(answers)} requests: "
        f"cached users kept exactly their rights ({stale} stale entries served "
        f"past the TTL), uncached users got {len(refused)} 503s with Retry-After "
        f"(slowest {max(refused) * 1000:.0f}ms: retries, then the breaker); "
        f"restarted, uncached user served {time.monotonic() - restarted:.1f}s later"
    )


def _while_idp_down(
    run: Run, checks: list[tuple[Service, str, int, int]], stale_after: float
) -> list[Answer]:
    """Send ``checks`` in rounds until one round started past ``stale_after``.

    Past it, the entries cached before the outage are older than the TTL:
    they are refreshed on read, that fails, and the stale entry is served
    within the grace period.
    """
    answers: list[Answer] = []
    while True:
        started = time.monotonic()
        for service, path, user, status in checks:
            answer = run.http.call(service, "GET", path, user)
            what = f"user {user} {service.name}{path} with the IdP down"
            answers.append(expect(answer, status, what))
            if status == 503 and not answer.headers.get("Retry-After"):
                raise ScenarioError(f"{what}: 503 without Retry-After")
        if started > stale_after + 0.5:
            return answers


# 5. Redis down


def redis_outage(run: Run) -> str:
    """Redis killed: services answer from the provider; back, the cache serves again."""
    http, cluster = run.http, run.cluster
    billing, inventory = cluster.billing, cluster.inventory
    checks: list[tuple[Service, str, int, int]] = [
        (billing, "/invoices/1001", ALICE, 200),
        (billing, "/invoices/1002", ALICE, 403),
        (billing, "/invoices/1002", BOB, 200),
        (inventory, "/stock/", CAROL, 200),
        (inventory, "/stock/valuation/", CAROL, 403),
        (billing, "/invoices/", UNKNOWN, 403),
    ]

    def one_round(what: str) -> float:
        slowest = 0.0
        for service, path, user, status in checks:
            answer = expect(http.call(service, "GET", path, user), status, what)
            slowest = max(slowest, answer.elapsed)
        return slowest

    one_round("before the Redis crash")
    counters = [http.worker_stats(billing), http.worker_stats(inventory)]
    cluster.redis.kill()
    try:
        before = http.idp_counts()
        slowest, rounds = 0.0, 0
        down_until = time.monotonic() + 3
        while time.monotonic() < down_until:
            slowest = max(slowest, one_round("with Redis down"))
            rounds += 1
        users = (ALICE, BOB, CAROL)
        during = sum(delta(before, http.idp_counts(), user) for user in users)
        errors = _grown(counters, run, "redis_errors")
        if not errors:
            raise ScenarioError("the services never noticed that Redis was down")
    finally:
        cluster.redis.start()
    back = time.monotonic()

    def cache_used() -> bool:
        counts = http.idp_counts()
        one_round("after Redis came back")
        return all(
            delta(counts, http.idp_counts(), user) == 0
            for user in (ALICE, BOB, CAROL, UNKNOWN)
        )

    _wait_for(cache_used, timeout=15, what="the cache is used again")
    return (
        f"Redis SIGKILLed: {rounds * len(checks)} requests in 3s all answered "
        f"correctly (slowest {slowest * 1000:.0f}ms, {errors} reads skipped Redis, "
        f"provider asked {during}x); "
        f"restarted on its port, cache used again after "
        f"{time.monotonic() - back:.1f}s"
    )


# 6. A cold deploy does not stampede the provider


def cold_stampede(run: Run) -> str:
    """2,000 requests of 20 clients on a cold cache reach the provider once per user."""
    http, cluster = run.http, run.cluster
    users = [1, 2, 3, 4, 5, 6, 7, 8, UNKNOWN]
    expected = dict.fromkeys(users, 200) | {CAROL: 403, UNKNOWN: 403}

    # A deploy: the production TTL, empty Redis, new processes.
    cluster.billing.stop()
    with cluster.redis.client() as redis_client:
        redis_client.flushall()
    cluster.billing.restart({"RBAC_ABAC_CACHE_TTL": str(PRODUCTION_TTL)})
    before = http.idp_counts()

    total, clients = 2000, 20
    answers: list[tuple[int, Answer]] = []
    lock = threading.Lock()

    def one_client(index: int) -> None:
        mine = []
        for n in range(index, total, clients):
            user = users[n % len(users)]
            mine.append((user, http.call(cluster.billing, "GET", "/invoices/", user)))
        with lock:
            answers.extend(mine)

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(one_client, i) for i in range(clients)]:
            future.result()
    took = time.monotonic() - started

    wrong = Counter(
        (user, answer.status)
        for user, answer in answers
        if answer.status != expected[user]
    )
    if len(answers) != total or wrong:
        raise ScenarioError(
            f"{len(answers)} answers, unexpected (user, status): {dict(wrong)}"
        )

    after = http.idp_counts()
    fetches = {user: delta(before, after, user, "billing_api") for user in users}
    if any(count > 1 for count in fetches.values()):
        raise ScenarioError(f"provider asked more than once for a user: {fetches}")

    waits = http.worker_stats(cluster.billing).get("lock_waits", 0)
    latencies = sorted(answer.elapsed for _, answer in answers)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    return (
        f"{total} requests by {clients} clients in {took:.1f}s "
        f"({total / took:.0f}/s, p50 {statistics.median(latencies) * 1000:.0f}ms, "
        f"p99 {p99 * 1000:.0f}ms); provider asked {sum(fetches.values())}x for "
        f"{len(users)} users (at most once each; {waits} lock waits for another "
        "worker's fetch)"
    )


def _grown(before: list[dict[str, int]], run: Run, counter: str) -> int:
    """How much ``counter`` grew, added up over billing's and inventory's workers."""
    cluster = run.cluster
    after = [
        run.http.worker_stats(cluster.billing),
        run.http.worker_stats(cluster.inventory),
    ]
    return sum(
        now.get(counter, 0) - then.get(counter, 0)
        for then, now in zip(before, after, strict=True)
    )


def _wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise ScenarioError(f"timed out after {timeout:g}s waiting until {what}")


SCENARIOS: list[tuple[str, Callable[[Run], str]]] = [
    ("granted, then served from the cache", served_from_cache),
    ("a revoked role is denied on every worker", revocation),
    ("refreshed past the TTL without a denial", ttl_boundary),
    ("identity provider down", idp_outage),
    ("Redis down", redis_outage),
    ("a cold cache does not stampede the provider", cold_stampede),
]
