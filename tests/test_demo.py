"""The guided tour run by ``rbac-abac-cache demo``."""

from __future__ import annotations

import io
import logging
import re
import sys
import time

import pytest

from rbac_abac_cache.demo import FAKEREDIS_MISSING, DemoIdentityProvider, run
from rbac_abac_cache.exceptions import FetchError

HEADLINES = [
    "1. The problem: entries that expire and are never refreshed",
    "2. The first request asks the identity provider",
    "3. Later requests are served from Redis",
    "4. An entry past its TTL is refreshed on read, access kept",
    "5. A role change at the identity provider applies at once",
    "6. An unknown user is remembered as unknown",
    "7. A malformed user id is rejected before any lookup",
    "8. The identity provider goes down: stale within grace, never empty",
]


@pytest.fixture(scope="module")
def tour() -> tuple[bool, str, float]:
    """Run the tour once for the module: its verdict, output and duration."""
    out = io.StringIO()
    started = time.monotonic()
    behaved = run(out)
    return behaved, out.getvalue(), time.monotonic() - started


def test_every_step_behaves_as_described(tour: tuple[bool, str, float]) -> None:
    """The tour's own checks all hold and it says so."""
    behaved, output, _ = tour

    assert behaved, output
    assert "UNEXPECTED" not in output
    assert output.rstrip().endswith("Every step behaved as described.")


def test_the_steps_are_told_in_order(tour: tuple[bool, str, float]) -> None:
    """Each of the eight headlines appears once, in order."""
    _, output, _ = tour

    positions = [output.index(headline) for headline in HEADLINES]
    assert positions == sorted(positions)
    for headline in HEADLINES:
        assert output.count(headline) == 1


def test_the_steps_report_measured_numbers(tour: tuple[bool, str, float]) -> None:
    """Latencies and identity provider call counts are printed."""
    _, output, _ = tour
    flat = " ".join(output.split())

    assert re.search(
        r"get\('1'\) took \d+\.\d ms; identity provider calls: 0 -> 1", flat
    )
    assert re.search(r"1000 more get\('1'\) calls: median \d+ us", flat)
    assert "Identity provider calls: 1 -> 1." in flat
    assert "identity provider calls 1 -> 2" in flat
    assert "InvalidUserIdError" in flat
    assert "serves it stale" in flat
    assert flat.count("AttributesUnavailableError") == 2


def test_the_tour_ends_with_the_cache_counters(
    tour: tuple[bool, str, float],
) -> None:
    """The counters of cache.stats() close the tour."""
    _, output, _ = tour

    stats = output[output.index("Counters of this cache: cache.stats()") :]
    for counter in ("hits_redis", "fetches", "stale_served", "unavailable"):
        assert re.search(rf"^\s+{counter}\s+\d+$", stats, re.MULTILINE)
    assert re.search(r"^\s+hits_redis\s+1001$", stats, re.MULTILINE)
    assert re.search(r"^\s+stale_served\s+1$", stats, re.MULTILINE)


def test_the_tour_is_quick(tour: tuple[bool, str, float]) -> None:
    """The whole tour takes well under five seconds."""
    _, _, duration = tour

    assert duration < 5.0


def test_the_library_warning_is_shown_in_place(
    tour: tuple[bool, str, float],
) -> None:
    """The stale-served warning appears inside step 8 and names no attribute values."""
    _, output, _ = tour

    step_8 = " ".join(
        output[output.index(HEADLINES[7]) : output.index("Counters of this")].split()
    )
    assert "log: WARNING serving stale attributes of user '1'" in step_8
    assert "finance" not in step_8


def test_the_tour_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Variables meant for a deployment, even malformed ones, do not change it."""
    monkeypatch.setenv("RBAC_ABAC_CACHE_TTL", "abc")
    monkeypatch.setenv("RBAC_ABAC_REDIS_URL", "redis://127.0.0.1:1/0")

    assert run(io.StringIO())


def test_the_tour_restores_the_library_logger() -> None:
    """The handler that gathers warnings is removed afterwards."""
    library = logging.getLogger("rbac_abac_cache")
    handlers, propagate = list(library.handlers), library.propagate

    run(io.StringIO())

    assert library.handlers == handlers
    assert library.propagate == propagate


def test_missing_fakeredis_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without fakeredis the tour raises ImportError naming the extra."""
    monkeypatch.setitem(sys.modules, "fakeredis", None)

    with pytest.raises(ImportError, match=re.escape(FAKEREDIS_MISSING)):
        run(io.StringIO())


def test_demo_identity_provider_counts_calls_and_can_go_down() -> None:
    """The in-process provider answers in wire format, counts calls, can fail."""
    provider = DemoIdentityProvider(
        {"1": {"roles": ["r"], "permissions": [], "attributes": {}}}, latency=0
    )

    assert provider("1", "svc") == {
        "user_id": "1",
        "service_name": "svc",
        "roles": ["r"],
        "permissions": [],
        "attributes": {},
    }
    assert provider("2", "svc") is None

    provider.down = True
    with pytest.raises(FetchError):
        provider("1", "svc")
    assert provider.calls == 3
