"""Tests for :mod:`rbac_abac_cache.identity_provider`.

The first part mocks HTTP with ``responses`` and replaces the provider's
clock and sleep, so retries and the circuit breaker run instantly. The second
part talks to a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
import responses
from hypothesis import given, settings
from hypothesis import strategies as st
from tenacity import RetryError

from rbac_abac_cache.attributes import UserAttributes
from rbac_abac_cache.exceptions import (
    ConfigurationError,
    FetchError,
    IdentityProviderUnavailableError,
)
from rbac_abac_cache.identity_provider import MAX_BODY_BYTES, HttpIdentityProvider

BASE = "http://idp.test"
URL = f"{BASE}/api/users/42/attributes/"
ANY_URL = re.compile(r"http://idp\.test/.*")
SERVICE = "billing_api"


def wire(
    user_id: Any = "42", service_name: str = SERVICE, **extra: Any
) -> dict[str, Any]:
    """Return an identity provider answer in the wire format."""
    return {
        "user_id": user_id,
        "service_name": service_name,
        "roles": ["admin"],
        "permissions": ["invoices.read"],
        "attributes": {"department": "finance-secret"},
        **extra,
    }


class FakeClock:
    """A monotonic clock that moves only when told to (or when slept on)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock whose sleep advances it instead of waiting."""
    return FakeClock()


@pytest.fixture
def make_provider(clock: FakeClock) -> Iterator[Callable[..., HttpIdentityProvider]]:
    """Build providers on the fake clock, and close them after the test."""
    made: list[HttpIdentityProvider] = []

    def make(base_url: str = BASE, **kwargs: Any) -> HttpIdentityProvider:
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("sleep", clock.sleep)
        provider = HttpIdentityProvider(base_url, **kwargs)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """Intercept requests' HTTP calls; unused registrations are fine."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


# URL and headers


@pytest.mark.parametrize(
    ("user_id", "segment"),
    [
        ("42", "42"),
        ("a/b", "a%2Fb"),
        ("john doe", "john%20doe"),
        ("jörg", "j%C3%B6rg"),
        ("100%", "100%25"),
        ("a?b#c", "a%3Fb%23c"),
    ],
)
def test_user_id_is_quoted_into_one_path_segment(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    user_id: str,
    segment: str,
) -> None:
    """The user id is percent-encoded, slashes included, into the path."""
    mocked.add(responses.GET, ANY_URL, json=wire(user_id))

    result = make_provider()(user_id, SERVICE)

    assert result is not None
    assert result.user_id == user_id
    assert mocked.calls[0].request.url == (
        f"{BASE}/api/users/{segment}/attributes/?service_name={SERVICE}"
    )


@pytest.mark.parametrize(
    "base_url", ["http://idp.test", "http://idp.test/", "http://idp.test//"]
)
def test_trailing_slash_of_base_url_is_ignored(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    base_url: str,
) -> None:
    """A base URL with or without a trailing slash gives the same URL."""
    mocked.add(responses.GET, ANY_URL, json=wire())

    make_provider(base_url)("42", SERVICE)

    assert mocked.calls[0].request.url == f"{URL}?service_name={SERVICE}"


def test_base_url_prefix_and_custom_path_are_joined(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """A base URL with a path prefix and a custom path template combine."""
    mocked.add(responses.GET, ANY_URL, json=wire())

    make_provider(f"{BASE}/idp/", path="v2/users/{user_id}")("42", SERVICE)

    assert (
        mocked.calls[0].request.url == f"{BASE}/idp/v2/users/42?service_name={SERVICE}"
    )


@given(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc")),
        min_size=1,
        max_size=40,
    ).filter(lambda text: text not in (".", ".."))
)
@settings(max_examples=60, deadline=None)
def test_any_user_id_round_trips_through_the_path(user_id: str) -> None:
    """Decoding the requested path segment always gives back the user id."""
    with (
        responses.RequestsMock() as mock,
        HttpIdentityProvider(BASE, sleep=lambda _: None) as provider,
    ):
        mock.add(responses.GET, ANY_URL, status=404)
        provider(user_id, SERVICE)
        path = urlsplit(str(mock.calls[0].request.url)).path

    segments = path.split("/")
    assert segments[:3] == ["", "api", "users"]
    assert segments[4:] == ["attributes", ""]
    assert unquote(segments[3]) == user_id


@pytest.mark.parametrize("user_id", [".", ".."])
def test_dot_user_ids_are_refused_without_a_request(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    user_id: str,
) -> None:
    """``.`` and ``..`` would change the path, so they are never sent."""
    with pytest.raises(FetchError, match="cannot be sent"):
        make_provider()(user_id, SERVICE)

    assert len(mocked.calls) == 0


def test_bearer_token_and_accept_headers_are_sent(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """With a token, the request carries it as a bearer token and asks for JSON."""
    mocked.add(responses.GET, URL, json=wire())

    make_provider(token="s3cret")("42", SERVICE)

    headers = mocked.calls[0].request.headers
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Accept"] == "application/json"


def test_no_authorization_header_without_token(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """Without a token, no Authorization header is sent."""
    mocked.add(responses.GET, URL, json=wire())

    make_provider()("42", SERVICE)

    assert "Authorization" not in mocked.calls[0].request.headers


def test_timeout_is_passed_and_capped_by_total_timeout(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """Each attempt's (connect, read) timeout never exceeds the time left."""
    mocked.add(responses.GET, URL, json=wire())
    mocked.add(responses.GET, URL, json=wire())

    make_provider()("42", SERVICE)
    make_provider(timeout=3.0, total_timeout=1.5)("42", SERVICE)

    sent = [call.request.req_kwargs["timeout"] for call in mocked.calls]  # type: ignore[attr-defined]
    assert sent == [(2.0, 5.0), (1.5, 1.5)]


# Answers


def test_200_returns_validated_attributes(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """A 200 with a valid body becomes UserAttributes stamped with the time now."""
    mocked.add(responses.GET, URL, json=wire())
    before = time.time()

    result = make_provider()("42", SERVICE)

    assert isinstance(result, UserAttributes)
    assert result.roles == {"admin"}
    assert result.has_permission("invoices.read")
    assert result.attributes["department"] == "finance-secret"
    assert before <= result.fetched_at <= time.time()


def test_numeric_user_id_in_body_is_normalised(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """A JSON number user id matches the same id asked as a string."""
    mocked.add(responses.GET, URL, json=wire(42))

    result = make_provider()("42", SERVICE)

    assert result is not None
    assert result.user_id == "42"


def test_404_returns_none(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """A 404 means the provider does not know the user."""
    mocked.add(responses.GET, URL, status=404)

    assert make_provider()("42", SERVICE) is None
    assert len(mocked.calls) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 409, 500, 501, 301, 302])
def test_other_statuses_fail_at_once(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    status: int,
) -> None:
    """Statuses that retrying cannot fix fail after one request, status named."""
    mocked.add(responses.GET, URL, status=status, headers={"Location": "http://x/"})

    with pytest.raises(FetchError, match=str(status)):
        make_provider()("42", SERVICE)

    assert len(mocked.calls) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (wire("43"), "another user"),
        (wire(43), "another user"),
        (wire(service_name="inventory_api"), "another service"),
    ],
)
def test_answer_about_someone_else_fails_at_once(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    body: dict[str, Any],
    message: str,
) -> None:
    """A body for another user or service is refused without retrying."""
    mocked.add(responses.GET, URL, json=body)

    with pytest.raises(FetchError, match=message):
        make_provider()("42", SERVICE)

    assert len(mocked.calls) == 1


def test_invalid_json_fails_from_the_decode_error(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """A body that is not JSON is a FetchError chained to the JSON error."""
    mocked.add(responses.GET, URL, body=b"<html>oops</html>")

    with pytest.raises(FetchError, match="not valid JSON") as caught:
        make_provider()("42", SERVICE)

    assert isinstance(caught.value.__cause__, ValueError)
    assert len(mocked.calls) == 1


@pytest.mark.parametrize("body", [[1, 2], "text", 42, None])
def test_non_object_json_fails(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    body: Any,
) -> None:
    """A JSON value that is not an object is refused."""
    mocked.add(responses.GET, URL, body=json.dumps(body))

    with pytest.raises(FetchError, match="not an object"):
        make_provider()("42", SERVICE)


@pytest.mark.parametrize(
    ("change", "field_name"),
    [
        ({"roles": "admin"}, "roles"),
        ({"permissions": [1]}, "permissions"),
        ({"attributes": []}, "attributes"),
        ({"user_id": None}, "user_id"),
        ({"fetched_at": "yesterday"}, "fetched_at"),
    ],
)
def test_invalid_attributes_fail_naming_the_field(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    change: dict[str, Any],
    field_name: str,
) -> None:
    """A malformed field is a FetchError whose message names that field."""
    mocked.add(responses.GET, URL, json={**wire(), **change})

    with pytest.raises(FetchError, match=field_name):
        make_provider()("42", SERVICE)


def test_missing_field_fails_naming_it(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """A body without ``service_name`` is refused with the field named."""
    body = wire()
    del body["service_name"]
    mocked.add(responses.GET, URL, json=body)

    with pytest.raises(FetchError, match="service_name"):
        make_provider()("42", SERVICE)


def test_declared_oversized_body_is_refused(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """A Content-Length over 1 MiB is refused before the body is read."""
    mocked.add(
        responses.GET,
        URL,
        body=b"{}",
        headers={"Content-Length": str(MAX_BODY_BYTES + 1)},
    )

    with pytest.raises(FetchError, match="larger than"):
        make_provider()("42", SERVICE)


def test_streamed_oversized_body_is_cut_off(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """A body without Content-Length is cut off once it passes 1 MiB."""
    padding = "x" * MAX_BODY_BYTES
    mocked.add(responses.GET, URL, body=json.dumps(wire(padding=padding)))

    with pytest.raises(FetchError, match="larger than"):
        make_provider()("42", SERVICE)

    response = mocked.calls[0].response
    assert isinstance(response, requests.Response)
    assert "Content-Length" not in response.headers


def test_body_just_under_the_limit_is_accepted(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """A body of almost 1 MiB is still read and used."""
    body = json.dumps(wire(padding=""))
    padding = "x" * (MAX_BODY_BYTES - len(body))
    mocked.add(responses.GET, URL, body=json.dumps(wire(padding=padding)))

    assert make_provider()("42", SERVICE) is not None


def test_redirect_is_not_followed(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """A redirect fails at once; the token never goes to another URL."""
    mocked.add(
        responses.GET, URL, status=302, headers={"Location": "http://evil.test/"}
    )
    mocked.add(responses.GET, "http://evil.test/", json=wire())

    with pytest.raises(FetchError, match="302"):
        make_provider(token="s3cret")("42", SERVICE)

    assert [call.request.url for call in mocked.calls] == [
        f"{URL}?service_name={SERVICE}"
    ]


def test_unexpected_session_error_becomes_fetch_error(
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """Whatever a custom session raises reaches the caller as a FetchError."""

    class BrokenSession(requests.Session):
        def get(self, *args: Any, **kwargs: Any) -> requests.Response:
            raise RuntimeError("adapter bug")

    with BrokenSession() as session, pytest.raises(FetchError) as caught:
        make_provider(session=session)("42", SERVICE)

    assert isinstance(caught.value.__cause__, RuntimeError)


# Retries


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_transient_status_is_retried_until_success(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    clock: FakeClock,
    status: int,
) -> None:
    """429, 502, 503 and 504 are retried after a short backoff."""
    mocked.add(responses.GET, URL, status=status)
    mocked.add(responses.GET, URL, json=wire())

    result = make_provider()("42", SERVICE)

    assert result is not None
    assert len(mocked.calls) == 2
    assert len(clock.sleeps) == 1
    assert 0.1 <= clock.sleeps[0] <= 0.2


@pytest.mark.parametrize(
    "error",
    [
        requests.ConnectionError("refused"),
        requests.ReadTimeout("slow"),
        requests.ConnectTimeout("slow"),
        requests.exceptions.ChunkedEncodingError("cut"),
    ],
)
def test_network_errors_are_retried(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    error: Exception,
) -> None:
    """Connection errors and timeouts are retried."""
    mocked.add(responses.GET, URL, body=error)
    mocked.add(responses.GET, URL, json=wire())

    assert make_provider()("42", SERVICE) is not None
    assert len(mocked.calls) == 2


def test_persistent_503_gives_up_with_fetch_error(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    clock: FakeClock,
) -> None:
    """After ``retries`` retries the caller gets a FetchError, never RetryError."""
    mocked.add(responses.GET, URL, status=503)

    with pytest.raises(FetchError, match=r"503.*4 attempts") as caught:
        make_provider(retries=3)("42", SERVICE)

    assert not isinstance(caught.value, RetryError)
    assert len(mocked.calls) == 4
    assert len(clock.sleeps) == 3
    assert clock.sleeps == sorted(clock.sleeps)


def test_persistent_connection_error_is_chained(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """The final FetchError is raised from the requests exception."""
    mocked.add(responses.GET, URL, body=requests.ConnectionError("refused"))

    with pytest.raises(FetchError) as caught:
        make_provider(retries=1)("42", SERVICE)

    assert isinstance(caught.value.__cause__, requests.ConnectionError)
    assert len(mocked.calls) == 2


def test_ssl_errors_are_not_retried(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """A certificate problem fails after one attempt."""
    mocked.add(responses.GET, URL, body=requests.exceptions.SSLError("bad cert"))

    with pytest.raises(FetchError):
        make_provider()("42", SERVICE)

    assert len(mocked.calls) == 1


def test_retries_zero_means_one_attempt(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """With ``retries=0`` a transient failure is not retried."""
    mocked.add(responses.GET, URL, status=503)

    with pytest.raises(FetchError, match="503"):
        make_provider(retries=0)("42", SERVICE)

    assert len(mocked.calls) == 1


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("1", 1.0),
        ("1.5", 1.5),
        ("120", 2.0),
        (
            format_datetime(
                datetime.now(timezone.utc) + timedelta(hours=1), usegmt=True
            ),
            2.0,
        ),
    ],
)
def test_retry_after_is_honoured_but_capped(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    clock: FakeClock,
    retry_after: str,
    expected: float,
) -> None:
    """Retry-After (seconds or HTTP date) sets the pause, up to max_retry_wait."""
    mocked.add(responses.GET, URL, status=503, headers={"Retry-After": retry_after})
    mocked.add(responses.GET, URL, json=wire())

    make_provider(max_retry_wait=2.0)("42", SERVICE)

    assert clock.sleeps == [pytest.approx(expected)]


@pytest.mark.parametrize(
    "retry_after",
    ["soon", "-5", "", "inf", "Wed, 21 Oct 2015 07:28:00 GMT"],
)
def test_unusable_or_past_retry_after_falls_back_to_backoff(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    clock: FakeClock,
    retry_after: str,
) -> None:
    """A malformed or past Retry-After leaves the normal backoff in place."""
    mocked.add(responses.GET, URL, status=429, headers={"Retry-After": retry_after})
    mocked.add(responses.GET, URL, json=wire())

    make_provider()("42", SERVICE)

    assert len(clock.sleeps) == 1
    assert 0.1 <= clock.sleeps[0] <= 0.2


def test_total_timeout_bounds_the_retries(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    clock: FakeClock,
) -> None:
    """No pause is started that would end past total_timeout."""
    mocked.add(responses.GET, URL, status=503, headers={"Retry-After": "0.6"})

    with pytest.raises(FetchError, match="503"):
        make_provider(retries=10, total_timeout=1.0)("42", SERVICE)

    assert len(mocked.calls) == 2
    assert sum(clock.sleeps) <= 1.0


# Circuit breaker


def test_breaker_opens_after_threshold_and_refuses_without_network(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """After N consecutive failed calls the next ones fail without a request."""
    mocked.add(responses.GET, URL, status=500)
    provider = make_provider(breaker_threshold=3)

    for _ in range(3):
        with pytest.raises(FetchError, match="500"):
            provider("42", SERVICE)

    with pytest.raises(IdentityProviderUnavailableError):
        provider("42", SERVICE)
    assert len(mocked.calls) == 3


def test_breaker_lets_one_trial_through_after_cooldown_and_closes(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    clock: FakeClock,
) -> None:
    """After the cooldown one trial call goes through; its success closes it."""
    provider = make_provider(breaker_threshold=1, breaker_cooldown=5.0)
    mocked.add(responses.GET, URL, status=500)
    with pytest.raises(FetchError, match="500"):
        provider("42", SERVICE)

    clock.now += 4.9
    with pytest.raises(IdentityProviderUnavailableError):
        provider("42", SERVICE)

    clock.now += 0.1
    mocked.replace(responses.GET, URL, json=wire())
    assert provider("42", SERVICE) is not None
    assert provider("42", SERVICE) is not None
    assert len(mocked.calls) == 3


def test_failed_trial_opens_the_breaker_again(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    clock: FakeClock,
) -> None:
    """A failed half-open trial refuses calls for another full cooldown."""
    provider = make_provider(breaker_threshold=2, breaker_cooldown=5.0)
    mocked.add(responses.GET, URL, status=500)
    for _ in range(2):
        with pytest.raises(FetchError, match="500"):
            provider("42", SERVICE)

    clock.now += 5.0
    with pytest.raises(FetchError, match="500"):
        provider("42", SERVICE)

    clock.now += 4.0
    with pytest.raises(IdentityProviderUnavailableError):
        provider("42", SERVICE)
    assert len(mocked.calls) == 3


def test_only_one_trial_runs_while_half_open(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    clock: FakeClock,
) -> None:
    """While the trial call is in flight, other calls are still refused."""
    provider = make_provider(breaker_threshold=1, breaker_cooldown=1.0)
    mocked.add(responses.GET, URL, status=500)
    with pytest.raises(FetchError):
        provider("42", SERVICE)
    clock.now += 1.0

    refused: list[BaseException] = []

    def during_trial(
        request: requests.PreparedRequest,
    ) -> tuple[int, dict[str, str], str]:
        try:
            provider("42", SERVICE)
        except IdentityProviderUnavailableError as exc:
            refused.append(exc)
        return 200, {}, json.dumps(wire())

    mocked.remove(responses.GET, URL)
    mocked.add_callback(responses.GET, URL, callback=during_trial)

    assert provider("42", SERVICE) is not None
    assert len(refused) == 1


def test_transient_failures_trip_the_breaker_after_retries(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """A call that fails after all its retries counts once toward the threshold."""
    mocked.add(responses.GET, URL, status=429)
    provider = make_provider(retries=2, breaker_threshold=2)

    for _ in range(2):
        with pytest.raises(FetchError, match="429"):
            provider("42", SERVICE)

    with pytest.raises(IdentityProviderUnavailableError):
        provider("42", SERVICE)
    assert len(mocked.calls) == 6


@pytest.mark.parametrize("status", [400, 401, 403])
def test_client_errors_do_not_trip_the_breaker(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    status: int,
) -> None:
    """4xx answers mean our request is wrong, not that the provider is down."""
    mocked.add(responses.GET, URL, status=status)
    provider = make_provider(breaker_threshold=1)

    for _ in range(3):
        with pytest.raises(FetchError, match=str(status)):
            provider("42", SERVICE)

    assert len(mocked.calls) == 3


def test_success_and_404_reset_the_failure_count(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """Only consecutive failures count: a 404 in between starts over."""
    provider = make_provider(breaker_threshold=2)
    statuses = [500, 404, 500, 200, 500]
    for status in statuses:
        mocked.add(responses.GET, URL, status=status, json=wire())

    for status in statuses:
        if status >= 500:
            with pytest.raises(FetchError, match="500"):
                provider("42", SERVICE)
        else:
            provider("42", SERVICE)

    assert len(mocked.calls) == len(statuses)


def test_bad_body_counts_as_failure(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """A provider that answers 200 with garbage trips the breaker."""
    mocked.add(responses.GET, URL, body=b"garbage")
    provider = make_provider(breaker_threshold=1)

    with pytest.raises(FetchError, match="JSON"):
        provider("42", SERVICE)

    with pytest.raises(IdentityProviderUnavailableError):
        provider("42", SERVICE)


def test_breaker_can_be_turned_off(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """With ``breaker_threshold=None`` every call reaches the provider."""
    mocked.add(responses.GET, URL, status=500)
    provider = make_provider(breaker_threshold=None)

    for _ in range(10):
        with pytest.raises(FetchError, match="500"):
            provider("42", SERVICE)

    assert len(mocked.calls) == 10


def test_breaker_refusal_is_a_fetch_error(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """Callers that catch FetchError also catch the open breaker."""
    mocked.add(responses.GET, URL, status=502)
    provider = make_provider(retries=0, breaker_threshold=1)
    with pytest.raises(FetchError):
        provider("42", SERVICE)

    with pytest.raises(FetchError, match="refused"):
        provider("42", SERVICE)


# Conditional requests


def test_etag_is_sent_back_and_304_reuses_attributes(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """A remembered ETag is sent; 304 returns the same attributes, stamped now."""
    mocked.add(
        responses.GET, URL, json=wire(fetched_at=1000.0), headers={"ETag": '"v1"'}
    )
    mocked.add(responses.GET, URL, status=304)
    provider = make_provider()

    first = provider("42", SERVICE)
    second = provider("42", SERVICE)

    assert first is not None
    assert second is not None
    assert "If-None-Match" not in mocked.calls[0].request.headers
    assert mocked.calls[1].request.headers["If-None-Match"] == '"v1"'
    assert second.to_dict() == {**first.to_dict(), "fetched_at": second.fetched_at}
    assert second.fetched_at > 1000.0


def test_no_etag_means_no_conditional_request(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """An answer without ETag is not remembered, and replaces an older one."""
    mocked.add(responses.GET, URL, json=wire(), headers={"ETag": '"v1"'})
    mocked.add(responses.GET, URL, json=wire())
    mocked.add(responses.GET, URL, json=wire())
    provider = make_provider()

    for _ in range(3):
        provider("42", SERVICE)

    assert mocked.calls[1].request.headers["If-None-Match"] == '"v1"'
    assert "If-None-Match" not in mocked.calls[2].request.headers


def test_404_forgets_the_etag(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """After a 404 the old answer is no longer offered for revalidation."""
    mocked.add(responses.GET, URL, json=wire(), headers={"ETag": '"v1"'})
    mocked.add(responses.GET, URL, status=404)
    mocked.add(responses.GET, URL, status=404)
    provider = make_provider()

    for _ in range(3):
        provider("42", SERVICE)

    assert "If-None-Match" not in mocked.calls[2].request.headers


def test_etags_are_kept_per_user_and_service_in_a_bounded_lru(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """The ETag memory holds at most ``etag_cache_size`` answers."""
    for user_id in ("1", "2"):
        mocked.add(
            responses.GET,
            f"{BASE}/api/users/{user_id}/attributes/",
            json=wire(user_id),
            headers={"ETag": f'"{user_id}"'},
        )
    provider = make_provider(etag_cache_size=1)

    for user_id in ("1", "2", "2", "1"):
        provider(user_id, SERVICE)

    sent = [call.request.headers.get("If-None-Match") for call in mocked.calls]
    assert sent == [None, None, '"2"', None]


def test_conditional_requests_can_be_turned_off(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """With ``etag_cache_size=0`` no If-None-Match is ever sent."""
    mocked.add(responses.GET, URL, json=wire(), headers={"ETag": '"v1"'})
    provider = make_provider(etag_cache_size=0)

    provider("42", SERVICE)
    provider("42", SERVICE)

    assert "If-None-Match" not in mocked.calls[1].request.headers


def test_unasked_304_fails(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
) -> None:
    """A 304 to a request without If-None-Match is a FetchError."""
    mocked.add(responses.GET, URL, status=304)

    with pytest.raises(FetchError, match="304"):
        make_provider()("42", SERVICE)


# Construction, repr, logging, closing


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"base_url": "idp.test"}, "base_url"),
        ({"base_url": "ftp://idp.test"}, "base_url"),
        ({"base_url": "http://idp.test/?x=1"}, "base_url"),
        ({"path": "/api/users/"}, "path"),
        ({"token": ""}, "token"),
        ({"token": "two words"}, "token"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": (1.0, -1.0)}, "timeout"),
        ({"timeout": (1.0, 2.0, 3.0)}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"max_retry_wait": -1}, "max_retry_wait"),
        ({"total_timeout": 0}, "total_timeout"),
        ({"breaker_threshold": 0}, "breaker_threshold"),
        ({"breaker_cooldown": 0}, "breaker_cooldown"),
        ({"etag_cache_size": -1}, "etag_cache_size"),
        ({"pool_maxsize": 0}, "pool_maxsize"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs: dict[str, Any], name: str) -> None:
    """An argument that cannot work raises ConfigurationError naming it."""
    base_url = kwargs.pop("base_url", BASE)

    with pytest.raises(ConfigurationError, match=name):
        HttpIdentityProvider(base_url, **kwargs)


def test_repr_masks_the_token() -> None:
    """The token never appears in the repr."""
    with HttpIdentityProvider(BASE, token="s3cret") as provider:
        text = repr(provider)

    assert "s3cret" not in text
    assert "***" in text


def test_one_info_log_per_call_without_secrets(
    mocked: responses.RequestsMock,
    make_provider: Callable[..., HttpIdentityProvider],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each call logs one INFO line with user and status, never token or values."""
    mocked.add(responses.GET, URL, status=503)
    mocked.add(responses.GET, URL, json=wire())
    caplog.set_level(logging.DEBUG, logger="rbac_abac_cache.identity_provider")

    make_provider(token="s3cret")("42", SERVICE)

    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1
    assert "'42'" in infos[0].getMessage()
    assert "200" in infos[0].getMessage()
    assert "s3cret" not in caplog.text
    assert "finance-secret" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_close_closes_only_our_own_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """close() closes the session we made, not one the caller passed in."""
    closed: list[str] = []

    def spy(session: requests.Session, name: str) -> None:
        original = session.close

        def close() -> None:
            closed.append(name)
            original()

        monkeypatch.setattr(session, "close", close)

    theirs = requests.Session()
    spy(theirs, "theirs")
    HttpIdentityProvider(BASE, session=theirs).close()
    with HttpIdentityProvider(BASE) as ours:
        spy(ours._session, "ours")

    assert closed == ["ours"]
    theirs.close()


def test_own_session_has_no_urllib3_retries() -> None:
    """The provider's own session leaves retrying to tenacity."""
    with HttpIdentityProvider(BASE) as provider:
        adapter = provider._session.get_adapter(BASE)

    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    assert adapter.max_retries.total == 0


# Against a real HTTP server


@dataclass
class Reply:
    """What the test server answers to one request."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    endless: bool = False


def json_reply(data: Any, **kwargs: Any) -> Reply:
    """A reply whose body is ``data`` encoded as JSON."""
    return Reply(body=json.dumps(data).encode(), **kwargs)


class IdentityServer(ThreadingHTTPServer):
    """A scripted identity provider: replies are served in order, the last repeats."""

    daemon_threads = False
    block_on_close = True
    request_queue_size = 64

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.replies: list[Reply] = [Reply(status=404)]
        self.paths: list[str] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def next_reply(self, path: str) -> Reply:
        with self._lock:
            self.paths.append(path)
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out close their socket before the late reply is
        # written; that is what those tests want, not an error.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: IdentityServer

    def do_GET(self) -> None:
        reply = self.server.next_reply(self.path)
        if reply.delay:
            self.server.stopping.wait(reply.delay)

        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.endless:
            self._send_endless_body()
            return

        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def _send_endless_body(self) -> None:
        # Without Content-Length an HTTP/1.0 body lasts until the connection
        # closes, so only the client's own limit can stop it.
        self.end_headers()
        self.wfile.write(b'{"padding": "')
        chunk = b"x" * 65536
        while not self.server.stopping.is_set():
            self.wfile.write(chunk)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityServer]:
    """A real HTTP identity provider on 127.0.0.1, shut down after the test."""
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

    idp = IdentityServer()
    thread = threading.Thread(target=idp.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield idp

    idp.stopping.set()
    idp.shutdown()
    idp.server_close()
    thread.join()


@pytest.fixture
def real_provider(
    server: IdentityServer,
) -> Iterator[Callable[..., HttpIdentityProvider]]:
    """Build providers for the real server, and close them after the test."""
    made: list[HttpIdentityProvider] = []

    def make(**kwargs: Any) -> HttpIdentityProvider:
        kwargs.setdefault("token", "s3cret")
        provider = HttpIdentityProvider(server.url, **kwargs)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


def test_real_server_200(
    server: IdentityServer, real_provider: Callable[..., HttpIdentityProvider]
) -> None:
    """A real 200 answer becomes the user's attributes."""
    server.replies = [json_reply(wire("u/1"))]

    result = real_provider()("u/1", SERVICE)

    assert result is not None
    assert result.roles == {"admin"}
    assert server.paths == [f"/api/users/u%2F1/attributes/?service_name={SERVICE}"]


def test_real_server_404(
    server: IdentityServer, real_provider: Callable[..., HttpIdentityProvider]
) -> None:
    """A real 404 answer means an unknown user."""
    server.replies = [Reply(status=404, body=b"not found")]

    assert real_provider()("42", SERVICE) is None


def test_real_server_persistent_500_is_not_retried(
    server: IdentityServer, real_provider: Callable[..., HttpIdentityProvider]
) -> None:
    """A 500 fails at once, after exactly one request."""
    server.replies = [Reply(status=500, body=b"boom")]

    with pytest.raises(FetchError, match="500"):
        real_provider()("42", SERVICE)

    assert len(server.paths) == 1


def test_real_server_503_with_retry_after_then_200(
    server: IdentityServer, real_provider: Callable[..., HttpIdentityProvider]
) -> None:
    """A 503 with Retry-After: 1 is retried about a second later."""
    server.replies = [
        Reply(status=503, headers={"Retry-After": "1"}),
        json_reply(wire()),
    ]
    started = time.monotonic()

    result = real_provider()("42", SERVICE)

    assert result is not None
    assert len(server.paths) == 2
    assert 1.0 <= time.monotonic() - started < 2.5


def test_real_server_hang_times_out(
    server: IdentityServer, real_provider: Callable[..., HttpIdentityProvider]
) -> None:
    """A server slower than the read timeout fails within a bounded time."""
    server.replies = [json_reply(wire(), delay=3.0)]
    started = time.monotonic()

    with pytest.raises(FetchError, match="Timeout") as caught:
        real_provider(timeout=0.3, retries=1)("42", SERVICE)

    assert time.monotonic() - started < 1.5
    assert isinstance(caught.value.__cause__, requests.RequestException)
    assert len(server.paths) == 2


def test_real_server_hang_is_bounded_by_total_timeout(
    server: IdentityServer, real_provider: Callable[..., HttpIdentityProvider]
) -> None:
    """Many retries of a hanging server still end near total_timeout."""
    server.replies = [json_reply(wire(), delay=3.0)]
    started = time.monotonic()

    with pytest.raises(FetchError):
        real_provider(timeout=0.3, retries=50, total_timeout=1.0)("42", SERVICE)

    assert time.monotonic() - started < 1.6


def test_real_server_garbage_body(
    server: IdentityServer, real_provider: Callable[..., HttpIdentityProvider]
) -> None:
    """A 200 whose body is not JSON fails at once."""
    server.replies = [Reply(body=b"\x00\xffnot json at all")]

    with pytest.raises(FetchError, match="JSON"):
        real_provider()("42", SERVICE)

    assert len(server.paths) == 1


def test_real_server_mismatched_user(
    server: IdentityServer, real_provider: Callable[..., HttpIdentityProvider]
) -> None:
    """A 200 about another user fails at once."""
    server.replies = [json_reply(wire("43"))]

    with pytest.raises(FetchError, match="another user"):
        real_provider()("42", SERVICE)


def test_real_server_oversized_body(
    server: IdentityServer, real_provider: Callable[..., HttpIdentityProvider]
) -> None:
    """A real answer over 1 MiB is refused."""
    server.replies = [json_reply(wire(padding="x" * MAX_BODY_BYTES))]

    with pytest.raises(FetchError, match="larger than"):
        real_provider()("42", SERVICE)


def test_real_server_endless_body_is_cut_off(
    server: IdentityServer, real_provider: Callable[..., HttpIdentityProvider]
) -> None:
    """A body without Content-Length that never ends is cut off after 1 MiB."""
    server.replies = [Reply(endless=True)]
    started = time.monotonic()

    with pytest.raises(FetchError, match="larger than"):
        real_provider()("42", SERVICE)

    assert time.monotonic() - started < 2.0


def test_real_server_serves_concurrent_callers(
    server: IdentityServer, real_provider: Callable[..., HttpIdentityProvider]
) -> None:
    """One provider shared by many threads answers each of them."""
    server.replies = [json_reply(wire())]
    provider = real_provider(pool_maxsize=4)
    results: list[UserAttributes | None] = []

    def ask() -> None:
        results.append(provider("42", SERVICE))

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 16
    assert all(result is not None for result in results)


def test_unreachable_port_fails(clock: FakeClock) -> None:
    """A port nobody listens on is a FetchError chained to the connection error."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with (
        HttpIdentityProvider(f"http://127.0.0.1:{port}", sleep=clock.sleep) as provider,
        pytest.raises(FetchError) as caught,
    ):
        provider("42", SERVICE)

    assert isinstance(caught.value.__cause__, requests.ConnectionError)
    assert len(clock.sleeps) == 3


def test_from_settings_reads_the_identity_provider_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """IDENTITY_PROVIDER_URL, RBAC_ABAC_IDP_TIMEOUT and _RETRIES shape the provider."""
    from rbac_abac_cache.config import environ_source, load_settings

    monkeypatch.setenv("IDENTITY_PROVIDER_URL", "http://idp.test")
    monkeypatch.setenv("RBAC_ABAC_IDP_TOKEN", "t0ken")
    monkeypatch.setenv("RBAC_ABAC_IDP_TIMEOUT", "0.75")
    monkeypatch.setenv("RBAC_ABAC_IDP_RETRIES", "0")
    _, connection = load_settings({"service_name": "billing_api"}, [environ_source()])

    with HttpIdentityProvider.from_settings(connection) as provider:
        assert provider._timeout == (0.75, 0.75)
        assert provider._retries == 0
        assert "t0ken" not in repr(provider)


def test_from_settings_needs_a_url() -> None:
    """Without IDENTITY_PROVIDER_URL there is nothing to build."""
    from rbac_abac_cache.config import ConnectionSettings

    with pytest.raises(ConfigurationError, match="IDENTITY_PROVIDER_URL"):
        HttpIdentityProvider.from_settings(ConnectionSettings())


def test_malformed_identity_provider_timeout_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RBAC_ABAC_IDP_TIMEOUT=soon is refused, naming the variable."""
    from rbac_abac_cache.config import environ_source, load_settings

    monkeypatch.setenv("RBAC_ABAC_IDP_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match="RBAC_ABAC_IDP_TIMEOUT"):
        load_settings({"service_name": "billing_api"}, [environ_source()])
