"""Who is asking, and which worker answers."""

from __future__ import annotations

import os
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


def user_id_from_header(request: HttpRequest) -> str | None:
    """The user named by ``X-User-Id``: a stand-in for real authentication.

    ``RBAC_ABAC_CACHE["USER_ID_RESOLVER"]`` points here. In a real service
    the id comes from the session or a verified token; never trust such a
    header from outside your network.
    """
    user_id: str | None = request.headers.get("X-User-Id")
    return user_id


class WorkerPidMiddleware:
    """Add ``X-Worker-Pid`` to every response, so a test can tell workers apart."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response["X-Worker-Pid"] = str(os.getpid())
        return response
