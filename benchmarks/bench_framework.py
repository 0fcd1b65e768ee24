"""Framework overhead: a guarded view against the same view unguarded.

One Flask app and one Django project, in this process, each serve the same
small JSON view twice: unguarded, and behind ``require_permission`` with
the local tier warm (``local_ttl=30``). Requests are WSGI calls made
in-process with a fresh environ each, so no server or test-client cost
dilutes the guard's. The Django project runs a lean API stack
(``SecurityMiddleware``, ``CommonMiddleware``, then ours). The user id
comes from an ``X-User-Id`` header read straight from the WSGI environ in
both frameworks, so that what is measured is this library's cost, not the
app's authentication.

Goal: guarded throughput at least 0.9x the unguarded.
"""

from __future__ import annotations

import argparse
import io
import time
import types
from collections.abc import Callable, Iterable
from itertools import repeat
from typing import Any

from _common import (
    SERVICE,
    USER_ID,
    Chart,
    Goal,
    Result,
    Timings,
    banner,
    close_cache,
    interleave,
    store_typical_user,
)
from _server import PrivateRedis
from werkzeug.test import EnvironBuilder

from rbac_abac_cache import AttributeCache

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
BATCH = 50
PAYLOAD = {"invoices": [{"id": 1, "total": "12.50"}, {"id": 2, "total": "80.00"}]}


def flask_app(cache: AttributeCache) -> App:
    """Build the Flask app: ``/open/`` and ``/guarded/``."""
    from flask import Flask, request

    from rbac_abac_cache.contrib.flask import RBACABAC

    app = Flask("bench")
    rbac = RBACABAC(app, cache=cache)

    @rbac.user_id_loader
    def load_user_id() -> str | None:
        return request.environ.get("HTTP_X_USER_ID")

    @app.get("/open/")
    def open_view() -> dict[str, Any]:
        return PAYLOAD

    @app.get("/guarded/")
    @rbac.require_permission("invoices.read")
    def guarded_view() -> dict[str, Any]:
        return PAYLOAD

    return app.wsgi_app


def django_app(cache: AttributeCache) -> App:
    """Configure Django in this process and return its WSGI handler."""
    import django
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application
    from django.http import HttpRequest, JsonResponse
    from django.urls import path

    from rbac_abac_cache.contrib.django.decorators import require_permission

    def open_view(request: HttpRequest) -> JsonResponse:
        return JsonResponse(PAYLOAD)

    @require_permission("invoices.read")
    def guarded_view(request: HttpRequest) -> JsonResponse:
        return JsonResponse(PAYLOAD)

    def user_id(request: HttpRequest) -> str | None:
        found: str | None = request.META.get("HTTP_X_USER_ID")
        return found

    urls = types.ModuleType("bench_framework_urls")
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("open/", open_view),
        path("guarded/", guarded_view),
    ]
    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-only-not-secret",  # noqa: S106
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=urls,
        INSTALLED_APPS=["rbac_abac_cache.contrib.django"],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.common.CommonMiddleware",
            "rbac_abac_cache.contrib.django.middleware.AttributeCacheMiddleware",
        ],
        DATABASES={},
        USE_TZ=True,
        RBAC_ABAC_CACHE={"CACHE": cache, "USER_ID_RESOLVER": user_id},
    )
    django.setup()
    return get_wsgi_application()  # type: ignore[no-any-return]


def requester(app: App, url: str, user: str) -> Callable[[], tuple[str, bytes]]:
    """Return a function making one WSGI request with a fresh environ."""
    builder = EnvironBuilder(path=url, headers=[("X-User-Id", user)])
    base = builder.get_environ()
    builder.close()
    status: list[str] = []

    def start_response(code: str, headers: Any, exc_info: Any = None) -> Any:
        status.append(code)
        return None

    def call() -> tuple[str, bytes]:
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO()
        response = app(environ, start_response)
        try:
            body = b"".join(response)
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()
        return status.pop(), body

    return call


def per_request(call: Callable[[], object]) -> Callable[[int], list[float]]:
    """Return a runner timing batches of requests; one sample (ns) per batch."""

    def run(n: int) -> list[float]:
        samples: list[float] = []
        for _ in range(max(1, n // BATCH)):
            started = time.perf_counter_ns()
            for _ in repeat(None, BATCH):
                call()
            samples.append((time.perf_counter_ns() - started) / BATCH)
        return samples

    return run


def run(rounds: int, per_round: int) -> Result:
    """Measure both frameworks' views, interleaved, and return the result."""
    result = Result("framework", "Framework overhead: guarded vs unguarded view")
    with PrivateRedis() as server:
        client = server.client()
        cache = AttributeCache(server.url, None, SERVICE, local_ttl=30)
        store_typical_user(cache, client, USER_ID)
        wait_for_local_hits(cache)

        apps = {"Flask": flask_app(cache), "Django": django_app(cache)}
        calls: dict[str, Callable[[], tuple[str, bytes]]] = {}
        for name, app in apps.items():
            calls[f"{name} unguarded"] = requester(app, "/open/", USER_ID)
            calls[f"{name} guarded"] = requester(app, "/guarded/", USER_ID)
            check(name, app, calls)

        before = dict(cache.stats())
        samples = interleave(
            {name: per_request(call) for name, call in calls.items()},
            rounds=rounds,
            per_round=per_round,
        )
        after = cache.stats()
        close_cache(cache)
        client.close()

    served_local = after["hits_local"] - before["hits_local"]
    served_redis = after["hits_redis"] - before["hits_redis"]
    report(result, samples, served_local, served_redis)
    result.params = {
        "rounds": rounds,
        "requests_per_round": per_round,
        "batch": BATCH,
    }
    return result


def wait_for_local_hits(cache: AttributeCache, timeout: float = 10) -> None:
    """Read until the local tier serves, which needs a confirmed subscription."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cache.get(USER_ID)
        if cache.stats()["hits_local"] > 0:
            return
        time.sleep(0.01)
    raise RuntimeError("the local tier never served a hit")


def check(name: str, app: App, calls: dict[str, Callable[[], Any]]) -> None:
    """Make sure both views answer 200, and the guard really refuses others."""
    for label in (f"{name} unguarded", f"{name} guarded"):
        status, body = calls[label]()
        assert status.startswith("200"), (label, status, body[:200])
    status, _ = requester(app, "/guarded/", "no-such-user")()
    assert status.startswith(("403", "503")), (name, status)


def report(
    result: Result,
    samples: dict[str, Timings],
    served_local: int,
    served_redis: int,
) -> None:
    """Turn samples into rows, goals and chart panels."""
    ratios: dict[str, float] = {}
    for framework in ("Flask", "Django"):
        open_samples = samples[f"{framework} unguarded"]
        guarded = samples[f"{framework} guarded"]
        ratios[framework] = open_samples.ratio_to(guarded)
        goal = Goal(
            f"{framework} guarded throughput vs unguarded",
            ratios[framework],
            ">=",
            0.9,
            "x",
        )
        for label, taken in ((f"{framework} unguarded", open_samples),):
            result.row_from_samples(
                label,
                taken,
                note=f"{1e9 / taken.median():,.0f} requests/s",
            )
        row = result.row_from_samples(
            f"{framework} guarded (require_permission)",
            guarded,
            anchor=f"{framework} unguarded",
            goal=goal,
            note=f"{1e9 / guarded.median():,.0f} requests/s; guard costs "
            f"{(guarded.median() - open_samples.median()) / 1e3:.1f} us",
        )
        row.ratio = ratios[framework]

    result.notes.append(
        "Ratios are throughputs, guarded / unguarded. During the timed "
        f"requests the cache served {served_local:,} local-tier hits and "
        f"{served_redis:,} Redis-tier hits."
    )
    result.charts.append(
        Chart(
            "Guarded view throughput (x unguarded)",
            "guarded / unguarded",
            {f"{name} guarded": ratio for name, ratio in ratios.items()},
            goal=0.9,
            ours=[f"{name} guarded" for name in ratios],
        )
    )


def main() -> None:
    """Parse options, run, print and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--per-round", type=int, default=100)
    options = parser.parse_args()

    banner("bench_framework")
    run(options.rounds, options.per_round).write()


if __name__ == "__main__":
    main()
