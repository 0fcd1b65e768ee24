"""Name the worker process that answered, so a test can tell workers apart."""

from __future__ import annotations

import os
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class WorkerPidMiddleware:
    """Add ``X-Worker-Pid`` to every response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response["X-Worker-Pid"] = str(os.getpid())
        return response
