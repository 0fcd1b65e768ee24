"""The freshness rules checked against a simple model with a controllable clock."""

from __future__ import annotations

import time as real_time
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from rbac_abac_cache import AttributeCache, AttributesUnavailableError, FetchError
from rbac_abac_cache import cache as cache_module
from rbac_abac_cache import loader as loader_module

TTL = 100.0
GRACE = 50.0


class Clock:
    """A wall clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now


class Provider:
    """An identity provider whose answer and health the model controls."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.version = 0
        self.up = True
        self.calls = 0

    def __call__(self, user_id: str, service_name: str) -> dict[str, Any]:
        self.calls += 1
        if not self.up:
            raise FetchError("provider is down")
        return {
            "user_id": user_id,
            "service_name": service_name,
            "roles": [f"v{self.version}"],
            "permissions": [],
            "attributes": {},
            "fetched_at": self.clock.now,
        }


class FreshnessModel(RuleBasedStateMachine):
    """Reads, refreshes and invalidations against the rules of the freshness model."""

    @initialize()
    def build(self) -> None:
        self.clock = Clock()
        self.provider = Provider(self.clock)
        self.redis = fakeredis.FakeRedis()
        self.patch = pytest.MonkeyPatch()
        fake_time = SimpleNamespace(time=self.clock.time, sleep=real_time.sleep)
        for module in (cache_module, loader_module):
            self.patch.setattr(module, "time", fake_time)
        self.cache = AttributeCache(
            self.redis,
            self.provider,
            service_name="billing_api",
            ttl=TTL,
            stale_grace=GRACE,
            ttl_jitter=0,
        )
        self.cached: tuple[float, int] | None = None

    def teardown(self) -> None:
        if hasattr(self, "cache"):
            self.cache.close()
            self.patch.undo()

    @rule(seconds=st.floats(min_value=0, max_value=200))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule()
    def change_roles(self) -> None:
        self.provider.version += 1

    @rule(up=st.booleans())
    def provider_health(self, up: bool) -> None:
        self.provider.up = up

    @rule()
    def get(self) -> None:
        was_fresh = self.cached is not None and self._age() < TTL
        expected = self._expected_get()
        calls = self.provider.calls
        if expected is None:
            with pytest.raises(AttributesUnavailableError):
                self.cache.get("u")
            return

        value = self.cache.get("u")
        assert value is not None
        assert value.roles == {f"v{expected}"}
        if was_fresh:
            assert self.provider.calls == calls, "a fresh entry must not be fetched"

    def _age(self) -> float:
        assert self.cached is not None
        return self.clock.now - self.cached[0]

    def _expected_get(self) -> int | None:
        if self.cached is not None and self._age() < TTL:
            return self.cached[1]
        if self.provider.up:
            self.cached = (self.clock.now, self.provider.version)
            return self.provider.version
        if self.cached is not None and self._age() < TTL + GRACE:
            return self.cached[1]
        return None

    @rule()
    def refresh(self) -> None:
        if not self.provider.up:
            self.cached = None
            with pytest.raises(FetchError):
                self.cache.refresh("u")
            return

        self.cached = (self.clock.now, self.provider.version)
        assert self.cache.refresh("u").roles == {f"v{self.provider.version}"}

    @rule()
    def invalidate(self) -> None:
        self.cached = None
        self.cache.invalidate("u")

    @invariant()
    def never_raises_redis_errors(self) -> None:
        assert self.cache.stats()["redis_errors"] == 0


FreshnessModel.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None
)
TestFreshnessModel = FreshnessModel.TestCase
