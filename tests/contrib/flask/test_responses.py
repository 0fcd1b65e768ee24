"""Tests for :mod:`rbac_abac_cache.contrib.flask.responses`."""

from __future__ import annotations

import pytest
from flask import Flask

from rbac_abac_cache import AttributesUnavailableError
from rbac_abac_cache.contrib.flask.responses import (
    error_response,
    json_response,
    unavailable_response,
)


@pytest.fixture
def app() -> Flask:
    """A bare app, for its JSON provider."""
    return Flask("responses")


def test_error_response_is_the_documented_json_body(app: Flask) -> None:
    """{"error": ..., "detail": ...} with the status and extra headers."""
    with app.app_context():
        response = error_response(403, "forbidden", "no", {"X-Reason": "test"})

    assert response.status_code == 403
    assert response.get_json() == {"error": "forbidden", "detail": "no"}
    assert response.headers["X-Reason"] == "test"


def test_json_response_copies_the_payload(app: Flask) -> None:
    """Any mapping is sent as a JSON object."""
    with app.app_context():
        response = json_response(200, {"status": "refreshed"})

    assert response.get_json() == {"status": "refreshed"}


@pytest.mark.parametrize(
    ("retry_after", "header"), [(0.2, "1"), (1.0, "1"), (2.5, "3")]
)
def test_unavailable_response_rounds_retry_after_up(
    app: Flask, retry_after: float, header: str
) -> None:
    """503 with Retry-After in whole seconds, at least 1."""
    error = AttributesUnavailableError("down", retry_after=retry_after)

    with app.app_context():
        response = unavailable_response(error)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == header
    assert response.get_json()["error"] == "unavailable"
    assert "down" not in response.get_data(as_text=True)
