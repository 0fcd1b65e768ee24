"""Test stand-ins for a login: users named by the ``X-User-Id`` header."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication


class HeaderUser:
    """An authenticated user whose pk is the ``X-User-Id`` header."""

    is_authenticated = True
    is_active = True

    def __init__(self, pk: str) -> None:
        self.pk = pk


class HeaderUserMiddleware:
    """Authenticates from ``X-User-Id``, standing in for a login in tests."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        if "X-User-Id" in request.headers:
            request.user = HeaderUser(request.headers["X-User-Id"])
        return self.get_response(request)


class HeaderAuthentication(BaseAuthentication):
    """DRF authentication from ``X-User-Id``; challenges, so DRF answers 401."""

    def authenticate(self, request: Any) -> tuple[HeaderUser, None] | None:
        user_id = request.headers.get("X-User-Id")
        return None if user_id is None else (HeaderUser(user_id), None)

    def authenticate_header(self, request: Any) -> str:
        return "X-User-Id"


class SilentHeaderAuthentication(HeaderAuthentication):
    """The same without a challenge, so DRF answers 403 to anonymous users."""

    authenticate_header = BaseAuthentication.authenticate_header
