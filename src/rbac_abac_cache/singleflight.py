"""Single-flight: concurrent calls for one key inside a process share one call."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _Call(Generic[T]):
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[T]):
    """Runs at most one call per key at a time; latecomers get its outcome.

    The first caller for a key runs the function; callers arriving while it
    runs wait and receive the same result or exception. The next call after
    it finishes runs anew, so results are never cached here.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call[T]] = {}

    def do(self, key: str, function: Callable[[], T]) -> T:
        """Return ``function()``, sharing one execution among concurrent callers."""
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()

        if not leader:
            call.done.wait()
            if call.error is not None:
                raise call.error
            return call.result  # type: ignore[return-value]

        try:
            call.result = function()
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()
        return call.result

    def running(self, key: str) -> bool:
        """Whether a call for ``key`` is in progress."""
        return key in self._calls
