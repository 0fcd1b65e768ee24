"""The refresh route: a thin view over :class:`~rbac_abac_cache.RefreshHandler`.

Registered by the extension when ``RBAC_ABAC_REFRESH_ENDPOINT`` is set. It
accepts every method so that the handler, not Flask, answers the wrong ones
(405 with ``Allow: POST`` and a JSON body), and reads at most one byte more
than the handler accepts, so an oversized body is refused without being read
in full.
"""

from __future__ import annotations

import logging

from flask import Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from ...refresh import MAX_BODY_BYTES
from .responses import json_response
from .state import get_state

__all__ = ["REFRESH_ENDPOINT", "REFRESH_METHODS", "refresh_user_cache"]

logger = logging.getLogger(__name__)

REFRESH_ENDPOINT = "rbac_abac_cache.refresh_user_cache"
REFRESH_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def refresh_user_cache() -> Response:
    """Refresh one user's cached attributes; see ``docs/refresh-endpoint.md``."""
    handler = get_state().refresh_handler()
    headers = dict(request.headers.items())
    result = handler.handle(request.method, headers, _read_body())
    return json_response(result.status, result.payload, result.headers)


def _read_body() -> bytes:
    try:
        return request.stream.read(MAX_BODY_BYTES + 1)
    except RequestEntityTooLarge:
        # The app's MAX_CONTENT_LENGTH is smaller still; a body of the
        # handler's limit plus one makes the handler answer 413 itself, after
        # the method and token checks, as for any other oversized body.
        return bytes(MAX_BODY_BYTES + 1)
