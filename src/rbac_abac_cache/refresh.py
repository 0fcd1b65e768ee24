"""The refresh endpoint, free of any web framework.

``POST /api/refresh-user-cache/`` with ``{"user_id": 123, "service_name":
"billing_api"}`` makes the cache fetch the user again and tells every
instance. The framework views are thin wrappers that hand the method,
headers and body to :meth:`RefreshHandler.handle` and send back what it
returns.

The endpoint changes what users may do, so it is guarded: bearer tokens
compared in constant time (none configured refuses everything), POST only,
a small body, named errors for malformed input, an optional list of allowed
services, and a per-user rate limit kept in Redis. A refused request
changes nothing, and no response carries a user's attributes.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import orjson

from .cache import AttributeCache
from .config import tokens as parse_tokens
from .exceptions import (
    ConfigurationError,
    FetchError,
    InvalidUserIdError,
    RedisUnavailableError,
)
from .keys import check_service_name, normalize_user_id

__all__ = ["RefreshHandler", "RefreshResponse"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 4096
_KEPT_SIBLINGS = 64


class RefreshResponse(NamedTuple):
    """What the view should answer: status, JSON payload and extra headers."""

    status: int
    payload: dict[str, Any]
    headers: dict[str, str]


class _Refusal(Exception):  # noqa: N818 - control flow, never raised to users
    def __init__(self, response: RefreshResponse) -> None:
        super().__init__(response.status)
        self.response = response


def _error(status: int, message: str, **headers: str) -> _Refusal:
    payload = {"error": _REASONS[status], "detail": message}
    return _Refusal(RefreshResponse(status, payload, dict(headers)))


_REASONS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "too_many_requests",
    503: "unavailable",
}


class RefreshHandler:
    """Handles refresh requests for one cache and its sibling services.

    Args:
        cache: The cache whose entries are refreshed; other services are
            reached through :meth:`AttributeCache.for_service`.
        tokens: Bearer tokens accepted (several, for rotation). ``None``
            reads the comma-separated ``RBAC_ABAC_REFRESH_TOKEN``. With no
            token at all every request is refused with 401.
        allowed_services: Services that may be refreshed; ``None`` accepts
            any well-formed service name.
        rate_limit: Refreshes allowed per user and service per window.
            Default 5.
        rate_window: The window, in seconds. Default 60.
    """

    def __init__(
        self,
        cache: AttributeCache,
        *,
        tokens: Iterable[str] | str | None = None,
        allowed_services: Iterable[str] | None = None,
        rate_limit: int = 5,
        rate_window: float = 60.0,
    ) -> None:
        if tokens is None:
            tokens = os.environ.get("RBAC_ABAC_REFRESH_TOKEN", "")
            name = "RBAC_ABAC_REFRESH_TOKEN"
        else:
            name = "tokens"
        self._tokens = tuple(t.encode() for t in parse_tokens(tokens, name))

        self._allowed = None
        if allowed_services is not None:
            self._allowed = frozenset(
                check_service_name(s, setting="allowed_services")
                for s in allowed_services
            )

        if rate_limit < 1 or not math.isfinite(rate_window) or rate_window <= 0:
            raise ConfigurationError(
                "rate_limit must be at least 1 and rate_window positive"
            )
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self._cache = cache
        self._siblings: dict[str, AttributeCache] = {cache.service_name: cache}

        if not self._tokens:
            logger.error(
                "the refresh endpoint has no token configured "
                "(RBAC_ABAC_REFRESH_TOKEN); it refuses every request"
            )

    def __repr__(self) -> str:
        return f"<RefreshHandler service={self._cache.service_name!r} tokens=***>"

    def handle(
        self, method: str, headers: Mapping[str, str], body: bytes
    ) -> RefreshResponse:
        """Answer one request; never raises for anything the client sent.

        Args:
            method: The HTTP method.
            headers: Request headers; names are matched case-insensitively.
            body: The raw request body.
        """
        user_id = service_name = None
        try:
            self._check_method(method)
            self._authenticate(headers)
            user_id, service_name = self._parse(body)
            response = self._refresh(user_id, service_name)
        except _Refusal as refusal:
            response = refusal.response

        logger.info(
            "refresh request: status=%d user_id=%r service_name=%r",
            response.status,
            user_id,
            service_name,
        )
        return response

    def _check_method(self, method: str) -> None:
        if method.upper() != "POST":
            raise _error(405, "use POST", Allow="POST")

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        if not self._tokens:
            logger.error("refused a refresh request: no token is configured")
            raise _error(401, "refresh endpoint is not configured", **_CHALLENGE)

        scheme, _, presented = _header(headers, "authorization").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise _error(401, "a bearer token is required", **_CHALLENGE)

        if not self._token_matches(presented.strip().encode()):
            raise _error(401, "the bearer token is not valid", **_CHALLENGE)

    def _token_matches(self, presented: bytes) -> bool:
        # Every configured token is compared, so the time taken does not
        # reveal which one, if any, came close.
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(presented, token)
        return matched

    def _parse(self, body: bytes) -> tuple[str, str]:
        if len(body) > MAX_BODY_BYTES:
            raise _error(413, f"the body must be at most {MAX_BODY_BYTES} bytes")

        try:
            data = orjson.loads(body)
        except (orjson.JSONDecodeError, RecursionError, ValueError) as exc:
            # orjson names the problem (syntax, a number too large, nesting
            # too deep) and where it is, without echoing the body.
            raise _error(400, f"the body is not valid JSON: {exc}") from None

        if not isinstance(data, dict):
            raise _error(400, "the body must be a JSON object")

        return _user_id(data), self._service_name(data)

    def _service_name(self, data: dict[str, Any]) -> str:
        if "service_name" not in data:
            raise _error(400, "service_name: field is missing")

        try:
            service_name = check_service_name(data["service_name"])
        except ConfigurationError as exc:
            raise _error(400, str(exc)) from None

        if self._allowed is not None and service_name not in self._allowed:
            raise _error(403, "service_name: this service may not be refreshed here")
        return service_name

    def _refresh(self, user_id: str, service_name: str) -> RefreshResponse:
        cache = self._sibling(service_name)
        try:
            wait = cache._take_refresh_quota(user_id, self.rate_limit, self.rate_window)
            if wait:
                raise _error(
                    429,
                    "too many refreshes of this user; try again later",
                    **{"Retry-After": str(math.ceil(wait))},
                )
            attributes = cache.refresh(user_id)
        except (FetchError, RedisUnavailableError) as exc:
            logger.warning("refresh of user %r failed: %s", user_id, type(exc).__name__)
            raise _error(
                503, "the attributes could not be refreshed", **{"Retry-After": "5"}
            ) from None

        if attributes is None:
            raise _error(404, "the identity provider does not know this user")

        payload = {
            "status": "refreshed",
            "user_id": user_id,
            "service_name": service_name,
        }
        return RefreshResponse(200, payload, {})

    def _sibling(self, service_name: str) -> AttributeCache:
        cache = self._siblings.get(service_name)
        if cache is not None:
            return cache

        # Without allowed_services any well-formed name is accepted, so only
        # a bounded number of siblings is kept for reuse.
        cache = self._cache.for_service(service_name)
        if len(self._siblings) < _KEPT_SIBLINGS:
            self._siblings[service_name] = cache
        return cache


_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        for key, item in headers.items():
            if key.lower() == name:
                value = item
                break
    return value if isinstance(value, str) else ""


def _user_id(data: dict[str, Any]) -> str:
    if "user_id" not in data:
        raise _error(400, "user_id: field is missing")

    try:
        return normalize_user_id(data["user_id"])
    except InvalidUserIdError as exc:
        raise _error(400, f"user_id: {exc}") from None
