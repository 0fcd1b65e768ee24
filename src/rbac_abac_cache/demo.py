"""A guided tour of the cache that needs no Redis server and no identity provider.

``rbac-abac-cache demo`` runs :func:`run`: it builds an
:class:`~rbac_abac_cache.AttributeCache` on an in-memory Redis (fakeredis)
in front of an in-process identity provider, then walks through the outage
this library was written to end and the situations that followed, printing
what each step measured. Every claim the tour makes is checked as it runs,
so it doubles as a smoke test of an installation.

The tour writes to the stream it is given and never to ``sys.stdout``
itself; the command line passes its standard output.
"""

from __future__ import annotations

import json
import logging
import statistics
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO

from .attributes import UserAttributes
from .cache import AttributeCache
from .config import CacheSettings, ConnectionSettings
from .exceptions import AttributesUnavailableError, FetchError, InvalidUserIdError

__all__ = ["FAKEREDIS_MISSING", "DemoIdentityProvider", "run"]

logger = logging.getLogger(__name__)

FAKEREDIS_MISSING = (
    "the demo needs fakeredis, an in-memory Redis: "
    "pip install 'rbac-abac-cache[testing]'"
)
"""The message of the :class:`ImportError` raised when fakeredis is missing."""

SERVICE = "billing_api"
_IDP_LATENCY = 0.02
_HITS = 1000
_DAY = 86400.0
_OLD_TTL = 0.1
_LIBRARY_LOGGER = "rbac_abac_cache"
_WIDTH = 79

_USERS: dict[str, dict[str, Any]] = {
    "1": {
        "roles": ["accountant"],
        "permissions": ["invoices.read", "invoices.create"],
        "attributes": {"department": "finance", "region": "eu"},
    },
    "2": {
        "roles": ["billing_admin"],
        "permissions": ["invoices.*"],
        "attributes": {"department": "finance", "region": "us"},
    },
    "3": {
        "roles": ["viewer"],
        "permissions": ["invoices.read"],
        "attributes": {"department": "sales", "region": "eu"},
    },
}


class DemoIdentityProvider:
    """An identity provider in a dict, which counts its calls and can go down.

    It is a :class:`~rbac_abac_cache.fetchers.Fetcher` and answers in the
    identity provider's wire format after a short pause, as a provider on
    the network would.

    Args:
        users: Wire-format fields (``roles``, ``permissions``,
            ``attributes``) by user id; copied.
        latency: Seconds each call takes. Default 0.02.
    """

    def __init__(
        self, users: Mapping[str, Mapping[str, Any]], latency: float = _IDP_LATENCY
    ) -> None:
        self.users = {uid: dict(fields) for uid, fields in users.items()}
        self.latency = latency
        self.calls = 0
        self.down = False
        self._lock = threading.Lock()

    def __call__(self, user_id: str, service_name: str) -> dict[str, Any] | None:
        """Answer like the identity provider's ``GET /api/users/<id>/attributes/``.

        Raises:
            FetchError: The provider has been put down.
        """
        with self._lock:
            self.calls += 1
        time.sleep(self.latency)

        if self.down:
            raise FetchError("identity provider is down: connection refused")

        fields = self.users.get(user_id)
        if fields is None:
            return None
        return {"user_id": user_id, "service_name": service_name, **fields}


def run(out: TextIO) -> bool:
    """Run the tour, writing it to ``out``.

    The cache is built from default settings only, so environment variables
    meant for a real deployment cannot change the story.

    Returns:
        Whether every step behaved as the tour says it does.

    Raises:
        ImportError: fakeredis is not installed; the message says how to
            install it.
    """
    try:
        import fakeredis
    except ImportError as exc:
        raise ImportError(FAKEREDIS_MISSING) from exc

    redis = fakeredis.FakeRedis()
    identity_provider = DemoIdentityProvider(_USERS)
    cache = AttributeCache.from_settings(
        CacheSettings(service_name=SERVICE),
        ConnectionSettings(),
        redis=redis,
        fetcher=identity_provider,
    )

    tour = _Tour(out, redis, identity_provider, cache)
    try:
        with _collect_library_warnings() as warnings:
            tour.warnings = warnings
            tour.run()
    finally:
        cache.close()
        redis.close()
    return tour.ok


@contextmanager
def _collect_library_warnings() -> Iterator[list[str]]:
    """Gather the library's warnings so the tour can show them in place."""
    collected: list[str] = []

    class Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            collected.append(f"{record.levelname} {record.getMessage()}")

    handler = Collector(logging.WARNING)
    library = logging.getLogger(_LIBRARY_LOGGER)
    propagate = library.propagate
    library.addHandler(handler)
    library.propagate = False
    try:
        yield collected
    finally:
        library.removeHandler(handler)
        library.propagate = propagate


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    """Return ``call()`` and the seconds it took."""
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _us(seconds: float) -> str:
    return f"{seconds * 1_000_000:.0f} us"


class _Tour:
    """The steps of the tour, sharing one cache, Redis and identity provider."""

    def __init__(
        self,
        out: TextIO,
        redis: Any,
        identity_provider: DemoIdentityProvider,
        cache: AttributeCache,
    ) -> None:
        self.out = out
        self.redis = redis
        self.idp = identity_provider
        self.cache = cache
        self.failures: list[str] = []
        self.warnings: list[str] = []

    @property
    def ok(self) -> bool:
        return not self.failures

    def run(self) -> None:
        self.say(
            "rbac-abac-cache demo: an in-memory Redis (fakeredis) and an "
            "in-process identity provider"
        )
        self.say(
            f"that answers in about {_ms(self.idp.latency)}, like one on the "
            f"network. Service: {SERVICE}; TTL {self.cache.settings.ttl:g} s "
            f"(24 h), stale grace {self.cache.settings.stale_grace:g} s."
        )

        self.the_problem()
        self.first_request()
        self.cache_hits()
        self.refresh_on_read()
        self.role_change()
        self.unknown_user()
        self.bad_user_id()
        self.identity_provider_down()
        self.stats()
        self.verdict()

    # Output

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def headline(self, number: int, title: str) -> None:
        self.say()
        self.say(f"{number}. {title}")

    def tell(self, text: str) -> None:
        self.say(
            textwrap.fill(text, _WIDTH, initial_indent="   ", subsequent_indent="   ")
        )

    def expect(self, condition: bool, claim: str) -> None:
        """Record a claim of the tour; say so at once if it did not hold."""
        if not condition:
            self.failures.append(claim)
            self.tell(f"UNEXPECTED: {claim} did not hold")

    def show_warnings(self) -> None:
        for line in self.warnings:
            self.tell(f"log: {line}")
        self.warnings.clear()

    def access(self, attributes: UserAttributes | None, permission: str) -> str:
        if attributes is not None and attributes.has_permission(permission):
            return f"has {permission!r}"
        return f"denied {permission!r}"

    # Steps

    def the_problem(self) -> None:
        self.headline(1, "The problem: entries that expire and are never refreshed")
        self.tell(
            "The old services cached each user's attributes for 300 s and never "
            "refreshed them."
        )

        key = f"old_cache:{SERVICE}:1"
        self.redis.set(key, json.dumps(_USERS["1"]), px=int(_OLD_TTL * 1000))
        time.sleep(_OLD_TTL * 1.5)
        found = self.redis.get(key)

        self.tell(
            f"Replayed with {_OLD_TTL:g} s standing in for 300 s: a read "
            f"{_OLD_TTL * 1.5:g} s later finds {'nothing' if found is None else found}"
            ", so user 1 is denied."
        )
        self.tell("In production that meant every user lost access every five minutes.")
        self.expect(found is None, "the old entry expired with nobody to refresh it")

    def first_request(self) -> None:
        self.headline(2, "The first request asks the identity provider")
        before = self.idp.calls

        value, took = _timed(lambda: self.cache.get("1"))

        self.tell(
            f"get('1') took {_ms(took)}; identity provider calls: "
            f"{before} -> {self.idp.calls}."
        )
        self.tell(
            f"User 1: roles {sorted(value.roles) if value else None}, "
            f"{self.access(value, 'invoices.create')}."
        )
        self.expect(
            value is not None and self.idp.calls == before + 1,
            "one identity provider call filled the miss",
        )

    def cache_hits(self) -> None:
        self.headline(3, "Later requests are served from Redis")
        before = self.idp.calls

        timings = [_timed(lambda: self.cache.get("1"))[1] for _ in range(_HITS)]

        self.tell(
            f"{_HITS} more get('1') calls: median {_us(statistics.median(timings))}"
            f" each, slowest {_us(max(timings))}."
        )
        self.tell(f"Identity provider calls: {before} -> {self.idp.calls}.")
        self.expect(self.idp.calls == before, "cache hits did not reach the provider")

    def refresh_on_read(self) -> None:
        self.headline(4, "An entry past its TTL is refreshed on read, access kept")
        self.backdate("1", _DAY + 600)
        before = self.idp.calls

        value, took = _timed(lambda: self.cache.get("1"))

        self.tell(
            "User 1's entry was fetched 24 h 10 min ago, past the 24 h TTL (the "
            "demo backdates it with cache.set() rather than wait a day)."
        )
        self.tell(
            f"get('1') refreshed it in {_ms(took)}: "
            f"{self.access(value, 'invoices.read')}, identity provider calls "
            f"{before} -> {self.idp.calls}, entry age now {self.age(value)}."
        )
        self.expect(
            value is not None and self.idp.calls == before + 1,
            "the expired entry was refreshed with one call and access kept",
        )

    def role_change(self) -> None:
        self.headline(5, "A role change at the identity provider applies at once")
        permission = "invoices.delete"
        before = self.cache.get("2")
        self.idp.users["2"] = dict(_USERS["3"])
        cached = self.cache.get("2")

        after = self.cache.refresh("2")

        self.tell(
            f"User 2 is a billing_admin: {self.access(before, permission)}. The "
            "identity provider now revokes the role."
        )
        self.tell(
            f"Cached, user 2 still {self.access(cached, permission)} (for up to "
            "24 h, the price of a long TTL) until the service calls refresh('2')."
        )
        self.tell(
            f"After refresh('2'): roles {sorted(after.roles) if after else None}, "
            f"{self.access(after, permission)}; every instance was told."
        )
        self.expect(
            before is not None
            and before.has_permission(permission)
            and after is not None
            and not after.has_permission(permission),
            "refresh() applied the revocation",
        )

    def unknown_user(self) -> None:
        self.headline(6, "An unknown user is remembered as unknown")
        before = self.idp.calls

        first = self.cache.get("mallory")
        middle = self.idp.calls
        second = self.cache.get("mallory")

        negative_ttl = self.cache.settings.negative_ttl
        self.tell(
            f"get('mallory') -> {first}: identity provider calls {before} -> {middle}."
        )
        self.tell(
            f"get('mallory') again -> {second}: calls {middle} -> {self.idp.calls}; "
            f"the answer is remembered for {negative_ttl:g} s, so a flood of bogus "
            "ids cannot reach the provider."
        )
        self.expect(
            first is None and second is None and middle == before + 1 == self.idp.calls,
            "the second lookup of an unknown user stayed in the cache",
        )

    def bad_user_id(self) -> None:
        self.headline(7, "A malformed user id is rejected before any lookup")
        before = self.idp.calls
        rejected = 0

        for label, user_id in (
            ("'bad\\nid'", "bad\nid"),
            ("a 300-character id", "u" * 300),
        ):
            try:
                self.cache.get(user_id)
            except InvalidUserIdError as exc:
                rejected += 1
                self.tell(f"get({label}) -> InvalidUserIdError: {exc}")
            else:
                self.tell(f"get({label}) was accepted")

        self.tell(f"Identity provider calls: {before} -> {self.idp.calls}.")
        self.expect(
            rejected == 2 and self.idp.calls == before,
            "both malformed ids were rejected without a call",
        )

    def identity_provider_down(self) -> None:
        self.headline(
            8, "The identity provider goes down: stale within grace, never empty"
        )
        self.backdate("1", _DAY + 1800)
        self.backdate("4", _DAY + 2 * 3600, fields=_USERS["3"])
        self.idp.down = True
        try:
            stale = self.cache.get("1")
            self.tell(
                "User 1's entry is 24 h 30 min old, inside the 1 h grace: get('1') "
                f"serves it stale, {self.access(stale, 'invoices.read')}."
            )
            self.show_warnings()
            refused = [
                self.unavailable("3", "never cached"),
                self.unavailable("4", "cached 26 h ago, past the grace"),
            ]
        finally:
            self.idp.down = False

        self.expect(
            stale is not None and all(refused),
            "stale served within grace and AttributesUnavailableError otherwise",
        )

    def stats(self) -> None:
        self.say()
        self.say("Counters of this cache: cache.stats()")
        counters = self.cache.stats()
        width = max(len(name) for name in counters)
        for name, value in counters.items():
            self.tell(f"{name:<{width}}  {value}")

    def verdict(self) -> None:
        self.say()
        if self.ok:
            self.say("Every step behaved as described.")
            return
        self.say(f"{len(self.failures)} step(s) did not behave as described:")
        for claim in self.failures:
            self.tell(claim)

    # Helpers

    def backdate(
        self, user_id: str, age: float, fields: Mapping[str, Any] | None = None
    ) -> None:
        """Store the user's entry as if the provider had answered ``age`` s ago."""
        data = fields if fields is not None else self.idp.users[user_id]
        self.cache.set(
            UserAttributes(
                user_id,
                SERVICE,
                roles=data["roles"],
                permissions=data["permissions"],
                attributes=data["attributes"],
                fetched_at=time.time() - age,
            )
        )

    def age(self, value: UserAttributes | None) -> str:
        if value is None:
            return "none"
        return _ms(max(0.0, time.time() - value.fetched_at))

    def unavailable(self, user_id: str, situation: str) -> bool:
        """Ask for a user who cannot be served; report whether the cache refused."""
        try:
            value = self.cache.get(user_id)
        except AttributesUnavailableError as exc:
            self.tell(
                f"User {user_id}, {situation}: AttributesUnavailableError "
                f"(retry after {exc.retry_after:g} s), so the request is denied."
            )
            return True

        self.tell(f"User {user_id}, {situation}: got {value!r}")
        return False
