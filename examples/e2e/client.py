"""HTTP calls of the end-to-end run, all to 127.0.0.1.

Each call names its user with ``X-User-Id`` and records the status, the
gunicorn worker that answered (``X-Worker-Pid``) and how long it took.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
from services import Cluster, Service

TIMEOUT = 15.0


@dataclass(frozen=True)
class Answer:
    """What one request got back."""

    status: int
    pid: int | None
    elapsed: float
    headers: Mapping[str, str] = field(repr=False)
    body: Any = field(repr=False)


class Http:
    """Requests to the cluster's services, one keep-alive session per thread."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            # No proxy from the environment: every call stays on loopback.
            session.trust_env = False
        return session

    def call(
        self,
        service: Service,
        method: str,
        path: str,
        user: int | str | None = None,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        fresh: bool = False,
    ) -> Answer:
        """Send one request; ``fresh`` uses a new connection, for any worker to take."""
        sent = dict(headers or {})
        if user is not None:
            sent["X-User-Id"] = str(user)
        if fresh:
            sent["Connection"] = "close"

        started = time.monotonic()
        response = self._session().request(
            method, service.url + path, headers=sent, json=json, timeout=TIMEOUT
        )
        elapsed = time.monotonic() - started
        return Answer(
            response.status_code,
            _pid(response.headers.get("X-Worker-Pid")),
            elapsed,
            response.headers,
            _json(response),
        )

    def spread(
        self,
        service: Service,
        path: str,
        user: int | str | None,
        *,
        until_pids: Iterable[int] = (),
        batch: int = 8,
        max_batches: int = 12,
    ) -> list[Answer]:
        """Send concurrent batches of fresh requests until two or more workers answered.

        Also until every pid of ``until_pids`` answered, so that workers seen
        before a change are all seen after it.
        """
        wanted = set(until_pids)
        answers: list[Answer] = []
        with ThreadPoolExecutor(batch) as pool:
            for _ in range(max_batches):
                futures = [
                    pool.submit(self.call, service, "GET", path, user, fresh=True)
                    for _ in range(batch)
                ]
                answers.extend(future.result() for future in futures)
                seen = {answer.pid for answer in answers}
                if len(seen) >= 2 and wanted <= seen:
                    break
        return answers

    def worker_stats(self, service: Service) -> dict[str, int]:
        """The cache counters of every worker of ``service``, added up."""
        latest: dict[int | None, dict[str, int]] = {}
        for answer in self.spread(service, "/cache-stats", None):
            latest[answer.pid] = answer.body["stats"]
        if len(latest) < service.spec.workers:
            raise RuntimeError(f"only workers {sorted(map(str, latest))} answered")

        total: dict[str, int] = {}
        for stats in latest.values():
            for name, count in stats.items():
                total[name] = total.get(name, 0) + count
        return total

    # The identity provider's admin API

    def idp_counts(self) -> dict[str, dict[str, int]]:
        """Attribute requests the provider received, per user and service."""
        answer = self._admin("GET", "/api/stats/")
        counts: dict[str, dict[str, int]] = answer.body["attribute_requests"]
        return counts

    def set_roles(self, user: int, roles: list[str]) -> Answer:
        """Replace a user's roles at the provider (which refreshes the caches)."""
        return self._admin("POST", f"/api/users/{user}/roles/", {"roles": roles})

    def refresh_endpoint(
        self, user: int, service_name: str, token: str | None
    ) -> Answer:
        """Call ``POST /api/refresh-user-cache/``, the original manual refresh."""
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return self.call(
            self.cluster.idp,
            "POST",
            "/api/refresh-user-cache/",
            json={"user_id": user, "service_name": service_name},
            headers=headers,
        )

    def _admin(self, method: str, path: str, body: Any = None) -> Answer:
        token = self.cluster.secrets.admin_token
        answer = self.call(
            self.cluster.idp,
            method,
            path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        if answer.status != 200:
            raise RuntimeError(f"{method} {path} answered {answer.status}")
        return answer


def delta(
    before: Mapping[str, Mapping[str, int]],
    after: Mapping[str, Mapping[str, int]],
    user: int | str,
    service_name: str | None = None,
) -> int:
    """How many more attribute requests for ``user`` (in one service, or all)."""

    def total(counts: Mapping[str, Mapping[str, int]]) -> int:
        per_service = counts.get(str(user), {})
        if service_name is not None:
            return per_service.get(service_name, 0)
        return sum(per_service.values())

    return total(after) - total(before)


def _pid(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
