"""A fetcher that asks the identity provider for a user's attributes over HTTP.

:class:`HttpIdentityProvider` sends one ``GET`` per user and service over a
pooled :class:`requests.Session`. Transient failures (429, 502, 503, 504,
connection errors, timeouts) are retried with tenacity within a bounded total
time; everything else fails at once. A circuit breaker stops calling a
provider that keeps failing, and conditional requests (``ETag`` and
``If-None-Match``) let the provider answer ``304`` for attributes that have
not changed.

Every failure reaches the caller as :class:`~rbac_abac_cache.FetchError`,
chained with ``raise ... from`` to the requests or JSON error behind it; no
requests or tenacity exception escapes this module.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from functools import partial
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base
from typing_extensions import Self

from .attributes import UserAttributes
from .breaker import CircuitBreaker
from .config import ConnectionSettings, integer, seconds
from .exceptions import (
    ConfigurationError,
    FetchError,
    InvalidAttributesError,
)

__all__ = ["DEFAULT_PATH", "MAX_BODY_BYTES", "HttpIdentityProvider"]

logger = logging.getLogger(__name__)

DEFAULT_PATH = "/api/users/{user_id}/attributes/"
"""The path template used when none is given; ``{user_id}`` is replaced."""

MAX_BODY_BYTES = 1024 * 1024
"""Largest answer body read from the identity provider (1 MiB)."""

_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_INITIAL_BACKOFF = 0.1
_CHUNK_BYTES = 64 * 1024
_DELAY_SECONDS = re.compile(r"\d{1,10}(?:\.\d{1,6})?")
_TOKEN = re.compile(r"[\x21-\x7e]+")
_TOO_LARGE = f"identity provider's answer is larger than {MAX_BODY_BYTES} bytes"
_UNSENDABLE_IDS = frozenset({".", ".."})
_TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class HttpIdentityProvider:
    """Fetches users' attributes from the identity provider's HTTP API.

    An instance is a :class:`~rbac_abac_cache.fetchers.Fetcher`:
    ``provider(user_id, service_name)`` sends
    ``GET {base_url}{path}?service_name={service_name}`` with the user id
    percent-encoded into ``path``, and returns the user's attributes, or
    ``None`` when the provider answers 404. It is safe to share between
    threads.

    Redirects are not followed: a 3xx answer is a :class:`FetchError`, so the
    bearer token is never sent anywhere but ``base_url``. The user ids ``.``
    and ``..`` cannot be requested, because they would change the path.

    Circuit breaker: after ``breaker_threshold`` consecutive failed calls
    (each after its retries) calls are refused with
    :class:`IdentityProviderUnavailableError`, without touching the network,
    for ``breaker_cooldown`` seconds; then one trial call is let through, and
    its success closes the breaker while its failure opens it again. A call
    fails the breaker when the provider looks down or broken: 429, 5xx,
    network errors, timeouts and unusable 200 bodies. Any other answer (200,
    304, 404, and 3xx or 4xx, which mean our request or configuration is
    wrong) shows that the provider is up, and counts as a success.

    Args:
        base_url: The provider's root URL, ``http`` or ``https``; a trailing
            slash is ignored. Usually ``IDENTITY_PROVIDER_URL``.
        path: The path template appended to ``base_url``; must contain
            ``{user_id}``. Default ``"/api/users/{user_id}/attributes/"``.
        token: Bearer token sent as ``Authorization: Bearer ...``; ``None``
            sends no ``Authorization`` header. Usually
            ``RBAC_ABAC_IDP_TOKEN``. Default ``None``.
        timeout: Seconds to wait for a connection and for each read, as a
            ``(connect, read)`` pair or one number for both. Default
            ``(2.0, 5.0)``.
        retries: Attempts made after the first for a transient failure.
            Default 3.
        max_retry_wait: Longest pause between attempts in seconds; a longer
            ``Retry-After`` is cut to it. Default 2.0.
        total_timeout: Seconds one call may take, all attempts and pauses
            included; no pause is started that would end past it. Default
            10.0.
        session: A :class:`requests.Session` to send with. It is not closed
            by :meth:`close`. Default: a session of our own, with a pool of
            ``pool_maxsize`` connections and urllib3's retries off.
        breaker_threshold: Consecutive failed calls that open the circuit
            breaker; ``None`` turns the breaker off. Default 5.
        breaker_cooldown: Seconds the open breaker refuses calls before it
            lets one trial call through. Default 5.0.
        etag_cache_size: Most ``(user, service)`` answers remembered with
            their ``ETag`` for conditional requests; 0 turns conditional
            requests off. Default 1024.
        pool_maxsize: Connections kept open to the provider by our own
            session. Default 10.
        clock: Monotonic clock in seconds, for the deadline and the breaker.
            Tests replace it. Default :func:`time.monotonic`.
        sleep: Pauses between attempts. Tests replace it. Default
            :func:`time.sleep`.

    Raises:
        ConfigurationError: An argument has a value that cannot work; the
            message names it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        path: str = DEFAULT_PATH,
        token: str | None = None,
        timeout: float | tuple[float, float] = (2.0, 5.0),
        retries: int = 3,
        max_retry_wait: float = 2.0,
        total_timeout: float = 10.0,
        session: requests.Session | None = None,
        breaker_threshold: int | None = 5,
        breaker_cooldown: float = 5.0,
        etag_cache_size: int = 1024,
        pool_maxsize: int = 10,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base_url = _check_base_url(base_url)
        self._url_template = _join(self._base_url, _check_path(path))
        self._token = _check_token(token)
        self._auth = None if self._token is None else _BearerAuth(self._token)
        self._timeout = _check_timeout(timeout)
        self._retries = integer(0)(retries, "retries")
        self._max_retry_wait = seconds(0.0)(max_retry_wait, "max_retry_wait")
        self._total_timeout = seconds(0.0, exclusive=True)(
            total_timeout, "total_timeout"
        )
        self._backoff = wait_exponential(
            multiplier=_INITIAL_BACKOFF, max=self._max_retry_wait
        ) + wait_random(0, _INITIAL_BACKOFF)
        self._clock = clock
        self._sleep = sleep

        self._breaker = CircuitBreaker(
            _check_threshold(breaker_threshold),
            seconds(0.0, exclusive=True)(breaker_cooldown, "breaker_cooldown"),
            clock,
        )
        self._remembered = _ConditionalCache(
            integer(0)(etag_cache_size, "etag_cache_size")
        )

        self._owns_session = session is None
        self._session = session or _new_session(
            integer(1)(pool_maxsize, "pool_maxsize")
        )

    def __repr__(self) -> str:
        token = None if self._token is None else "***"
        return f"{type(self).__name__}(base_url={self._base_url!r}, token={token!r})"

    @classmethod
    def from_settings(cls, connection: ConnectionSettings) -> Self:
        """Build a provider from ``IDENTITY_PROVIDER_URL`` and its companions.

        Uses ``RBAC_ABAC_IDP_TOKEN``, ``RBAC_ABAC_IDP_TIMEOUT`` and
        ``RBAC_ABAC_IDP_RETRIES`` when they are set, else the defaults above.

        Raises:
            ConfigurationError: No identity provider URL is configured.
        """
        if not connection.identity_provider_url:
            raise ConfigurationError("IDENTITY_PROVIDER_URL is not set")

        options: dict[str, Any] = {"token": connection.idp_token}
        if connection.idp_timeout is not None:
            options["timeout"] = connection.idp_timeout
        if connection.idp_retries is not None:
            options["retries"] = connection.idp_retries
        return cls(connection.identity_provider_url, **options)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the session's connections, if the session is our own."""
        if self._owns_session:
            self._session.close()

    def __call__(self, user_id: str, service_name: str) -> UserAttributes | None:
        """Ask the identity provider for a user's attributes in one service.

        Args:
            user_id: The user's id, as a string.
            service_name: The service whose attributes are wanted.

        Returns:
            The attributes, or ``None`` when the provider answers 404.

        Raises:
            IdentityProviderUnavailableError: The circuit breaker is open, so
                no request was sent.
            FetchError: The provider could not be reached in time, answered
                with an error status, or sent a body that is too large, not
                JSON, malformed, or about another user or service.
        """
        call = self._start(user_id, service_name)
        is_trial = self._breaker.enter()
        succeeded: bool | None = None
        try:
            result = self._retrying(call)(self._attempt, call)
            succeeded = True
            return result

        except _AttemptError as failure:
            succeeded = not failure.provider_fault
            call.outcome = f"{call.outcome} ({failure.message})"
            message = failure.message
            if call.attempts > 1:
                message += f" (gave up after {call.attempts} attempts)"
            raise FetchError(message) from failure.__cause__

        except Exception as exc:
            # A session supplied by the user may raise anything; it still
            # reaches the caller as a FetchError.
            succeeded = False
            call.outcome = type(exc).__name__
            raise FetchError(f"identity provider call failed: {call.outcome}") from exc

        finally:
            self._breaker.exit(is_trial=is_trial, succeeded=succeeded)
            self._log_call(call)

    def _start(self, user_id: str, service_name: str) -> _Call:
        if user_id in _UNSENDABLE_IDS:
            raise FetchError(f"user_id {user_id!r} cannot be sent in a URL path")

        started = self._clock()
        return _Call(
            user_id=user_id,
            service_name=service_name,
            url=self._url_template.replace("{user_id}", quote(user_id, safe="")),
            started=started,
            deadline=started + self._total_timeout,
            remembered=self._remembered.get((user_id, service_name)),
        )

    def _retrying(self, call: _Call) -> Retrying:
        plan = partial(self._planned_wait, call)
        return Retrying(
            stop=stop_after_attempt(self._retries + 1)
            | _StopAtDeadline(plan, self._clock, call.deadline),
            wait=_PlannedWait(plan),
            retry=retry_if_exception(_is_retryable),
            sleep=self._sleep,
            before_sleep=_log_retry,
            reraise=True,
        )

    def _planned_wait(self, call: _Call, retry_state: RetryCallState) -> float:
        """Pause before the next attempt: backoff, or ``Retry-After`` if longer.

        Tenacity asks for it twice per attempt (to decide whether to stop and
        how long to sleep), so the jittered value is computed once per attempt.
        """
        number = retry_state.attempt_number
        if call.wait is not None and call.wait[0] == number:
            return call.wait[1]

        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None else None
        hinted = failure.retry_after if isinstance(failure, _AttemptError) else None
        wait = min(max(self._backoff(retry_state), hinted or 0.0), self._max_retry_wait)

        call.wait = (number, wait)
        return wait

    def _attempt(self, call: _Call) -> UserAttributes | None:
        call.attempts += 1
        headers = {"Accept": "application/json"}
        if call.remembered is not None:
            headers["If-None-Match"] = call.remembered.etag

        try:
            response = self._session.get(
                call.url,
                params={"service_name": call.service_name},
                headers=headers,
                auth=self._auth,
                timeout=self._attempt_timeout(call),
                stream=True,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise _translate(exc, "request to the identity provider") from exc

        with response:
            call.outcome = str(response.status_code)
            return self._handle(call, response)

    def _attempt_timeout(self, call: _Call) -> tuple[float, float]:
        # No attempt may wait past the call's deadline; a small floor keeps
        # requests from reading a zero timeout as "no timeout".
        remaining = max(call.deadline - self._clock(), 0.001)
        connect, read = self._timeout
        return min(connect, remaining), min(read, remaining)

    def _handle(
        self, call: _Call, response: requests.Response
    ) -> UserAttributes | None:
        status = response.status_code
        if status == 200:
            return self._accept(call, response)

        if status == 304 and call.remembered is not None:
            return _refreshed(call.remembered.attributes)

        if status == 404:
            self._remembered.discard(call.key)
            return None

        if status in _RETRY_STATUSES:
            raise _AttemptError(
                f"identity provider answered {status}",
                retryable=True,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )

        # A 304 nobody asked for is the provider's fault; 3xx and 4xx
        # otherwise mean that our request or configuration is wrong.
        provider_fault = status >= 500 or status == 304
        raise _AttemptError(
            f"identity provider answered {status}", provider_fault=provider_fault
        )

    def _accept(self, call: _Call, response: requests.Response) -> UserAttributes:
        body = self._read_body(call, response)
        data = _parse_object(body)

        try:
            attributes = UserAttributes.from_dict(data)
        except InvalidAttributesError as exc:
            raise _AttemptError(
                f"identity provider sent invalid attributes: {exc}"
            ) from exc

        if attributes.user_id != call.user_id:
            raise _AttemptError("identity provider answered about another user")

        if attributes.service_name != call.service_name:
            raise _AttemptError("identity provider answered about another service")

        etag = response.headers.get("ETag")
        if etag:
            self._remembered.put(call.key, _Remembered(etag, attributes))
        else:
            self._remembered.discard(call.key)
        return attributes

    def _read_body(self, call: _Call, response: requests.Response) -> bytes:
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise _AttemptError(_TOO_LARGE)

        # Content-Length may be absent or wrong, so the body is also read in
        # chunks and cut off as soon as it passes the limit or the deadline.
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(_CHUNK_BYTES):
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise _AttemptError(_TOO_LARGE)
                if self._clock() > call.deadline:
                    raise _AttemptError(
                        "identity provider's answer took too long", retryable=True
                    )
                chunks.append(chunk)
        except requests.RequestException as exc:
            raise _translate(exc, "reading the identity provider's answer") from exc

        return b"".join(chunks)

    def _log_call(self, call: _Call) -> None:
        elapsed_ms = (self._clock() - call.started) * 1000.0
        logger.info(
            "identity provider call for user %r in %s: %s after %d attempt(s), %.0f ms",
            call.user_id,
            call.service_name,
            call.outcome,
            call.attempts,
            elapsed_ms,
        )


@dataclass
class _Call:
    """The state of one call to the provider, shared by its attempts."""

    user_id: str
    service_name: str
    url: str
    started: float
    deadline: float
    remembered: _Remembered | None
    attempts: int = 0
    outcome: str = "no answer"
    wait: tuple[int, float] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.user_id, self.service_name)


class _AttemptError(Exception):
    """An attempt failed; the provider turns it into a :class:`FetchError`.

    Attributes:
        message: What went wrong, for the ``FetchError``.
        retryable: Whether another attempt may succeed.
        provider_fault: Whether the failure counts against the breaker.
        retry_after: Seconds the provider asked us to wait, if it did.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        provider_fault: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.provider_fault = provider_fault
        self.retry_after = retry_after


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, _AttemptError) and exc.retryable


def _translate(exc: requests.RequestException, doing: str) -> _AttemptError:
    # A certificate problem will not go away in a second, so it is not retried.
    transient = isinstance(exc, _TRANSIENT) and not isinstance(
        exc, requests.exceptions.SSLError
    )
    return _AttemptError(f"{doing} failed: {type(exc).__name__}", retryable=transient)


_Plan = Callable[[RetryCallState], float]


class _StopAtDeadline(stop_base):
    """Stops retrying when the next pause would end past the call's deadline.

    This is ``stop_after_delay`` measured on the provider's clock, and
    checked before the pause rather than after it.
    """

    def __init__(
        self, plan: _Plan, clock: Callable[[], float], deadline: float
    ) -> None:
        self._plan = plan
        self._clock = clock
        self._deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._clock() + self._plan(retry_state) >= self._deadline


class _PlannedWait(wait_base):
    """Waits as long as the provider planned for this attempt."""

    def __init__(self, plan: _Plan) -> None:
        self._plan = plan

    def __call__(self, retry_state: RetryCallState) -> float:
        return self._plan(retry_state)


def _log_retry(retry_state: RetryCallState) -> None:
    outcome = retry_state.outcome
    reason = outcome.exception() if outcome is not None else None
    pause = retry_state.next_action.sleep if retry_state.next_action else 0.0
    logger.debug(
        "identity provider attempt %d failed (%s); retrying in %.2f s",
        retry_state.attempt_number,
        reason,
        pause,
    )


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or ``None`` if unusable."""
    if value is None:
        return None

    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None

    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - time.time())


def _parse_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _AttemptError("identity provider's answer is not valid JSON") from exc

    if not isinstance(data, dict):
        raise _AttemptError(
            f"identity provider's answer is a JSON {type(data).__name__}, not an object"
        )
    return data


def _refreshed(attributes: UserAttributes) -> UserAttributes:
    """The same attributes, confirmed by the provider just now."""
    return UserAttributes(
        user_id=attributes.user_id,
        service_name=attributes.service_name,
        roles=attributes.roles,
        permissions=attributes.permissions,
        attributes=attributes.attributes,
    )


class _Remembered(NamedTuple):
    """An answer kept for conditional requests."""

    etag: str
    attributes: UserAttributes


class _ConditionalCache:
    """A small thread-safe LRU of the last answer with an ETag per user and service."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._entries: OrderedDict[tuple[str, str], _Remembered] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> _Remembered | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: tuple[str, str], entry: _Remembered) -> None:
        if self._maxsize == 0:
            return

        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)

    def discard(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._entries.pop(key, None)


class _BearerAuth(AuthBase):
    """Sends the token as a bearer token; a ``.netrc`` entry cannot replace it."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth('***')"


def _new_session(pool_maxsize: int) -> requests.Session:
    session = requests.Session()

    # Tenacity does the retrying, so urllib3's own retries are turned off.
    adapter = HTTPAdapter(pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _check_base_url(base_url: object) -> str:
    if not isinstance(base_url, str):
        raise ConfigurationError(
            f"base_url must be a string, not {type(base_url).__name__}"
        )

    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"base_url={base_url!r} is not an http(s) URL")

    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"base_url={base_url!r} must not have a query or fragment"
        )
    return base_url.strip().rstrip("/")


def _check_path(path: object) -> str:
    if not isinstance(path, str) or "{user_id}" not in path:
        raise ConfigurationError(
            f"path={path!r} must be a string containing '{{user_id}}'"
        )
    return path


def _join(base_url: str, path: str) -> str:
    return f"{base_url}/{path.lstrip('/')}"


def _check_token(token: object) -> str | None:
    if token is None:
        return None

    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise ConfigurationError(
            "token must be a non-empty string of printable ASCII without spaces"
        )
    return token


def _check_timeout(timeout: object) -> tuple[float, float]:
    positive = seconds(0.0, exclusive=True)
    if not isinstance(timeout, tuple):
        value = positive(timeout, "timeout")
        return value, value

    if len(timeout) != 2:
        raise ConfigurationError("timeout must be a number or a (connect, read) pair")
    return positive(timeout[0], "timeout[0]"), positive(timeout[1], "timeout[1]")


def _check_threshold(threshold: object) -> int | None:
    if threshold is None:
        return None
    return integer(1)(threshold, "breaker_threshold")
