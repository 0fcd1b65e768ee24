"""The JSON responses the extension sends: ``{"error": ..., "detail": ...}``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from flask import Response, jsonify

from ...exceptions import AttributesUnavailableError

__all__ = ["error_response", "json_response", "unavailable_response"]


def json_response(
    status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    """Return ``payload`` as a JSON response with ``status`` and ``headers``."""
    response = jsonify(dict(payload))
    response.status_code = status
    if headers:
        response.headers.update(headers)
    return response


def error_response(
    status: int, error: str, detail: str, headers: Mapping[str, str] | None = None
) -> Response:
    """Return the error body ``{"error": error, "detail": detail}``."""
    return json_response(status, {"error": error, "detail": detail}, headers)


def unavailable_response(error: AttributesUnavailableError) -> Response:
    """The 503 answer, with ``Retry-After``, to unavailable attributes.

    The extension registers it as the app's handler of
    :class:`~rbac_abac_cache.AttributesUnavailableError`, for views that
    read ``g.rbac`` themselves.
    """
    retry_after = str(max(1, math.ceil(error.retry_after)))
    return error_response(
        503,
        "unavailable",
        "the user's attributes are unavailable; try again later",
        {"Retry-After": retry_after},
    )
