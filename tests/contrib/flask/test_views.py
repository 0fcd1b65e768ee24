"""Tests for :mod:`rbac_abac_cache.contrib.flask.views`: the refresh route."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from rbac_abac_cache.testing import StaticFetcher

from .conftest import SERVICE, TOKEN

ROUTE = "/api/refresh-user-cache/"
BODY = {"user_id": 1, "service_name": SERVICE}


def refresh(
    client: FlaskClient,
    body: Any = BODY,
    *,
    token: str | None = TOKEN,
    path: str = ROUTE,
) -> Any:
    """POST a refresh request as the identity provider would."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        path, data=data, headers=headers, content_type="application/json"
    )


def keyspace(client: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key with its serialised value."""
    return {key: client.dump(key) for key in sorted(client.keys("*"))}


class CountingStream(io.RawIOBase):
    """An endless request body that counts how much of it is read."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = len(buffer)
        buffer[:size] = b" " * size
        self.read_bytes += size
        return size


# Answers


def test_a_valid_request_refreshes_the_user(
    client: FlaskClient, users: StaticFetcher, cache: Any
) -> None:
    """200 with a small JSON body, and the new attributes are cached."""
    cache.get(1)
    users.add({"roles": ["auditor"]}, user_id=1)

    response = refresh(client)

    assert response.status_code == 200
    assert response.json == {
        "status": "refreshed",
        "user_id": "1",
        "service_name": SERVICE,
    }
    assert cache.get(1).roles == frozenset({"auditor"})


def test_the_answer_never_contains_the_attributes(client: FlaskClient) -> None:
    """Roles, permissions and attribute values stay out of the response."""
    text = refresh(client).get_data(as_text=True)

    for value in ("viewer", "invoices.read", "finance"):
        assert value not in text


@pytest.mark.parametrize("token", [None, "", "wrong-token", TOKEN + "x"])
def test_a_missing_or_wrong_token_gets_401(
    client: FlaskClient, users: StaticFetcher, token: str | None
) -> None:
    """401 with a bearer challenge, and the identity provider is not asked."""
    response = refresh(client, token=token)

    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert users.count() == 0


def test_no_token_configured_refuses_everything(
    make_app: Callable[..., Flask],
) -> None:
    """The route without any token answers 401 to every request."""
    app = make_app({"RBAC_ABAC_REFRESH_ENDPOINT": True})

    assert refresh(app.test_client()).status_code == 401
    assert refresh(app.test_client(), token="").status_code == 401


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_methods_other_than_post_get_405_with_allow(
    client: FlaskClient, method: str
) -> None:
    """The handler, not Flask, answers other methods: JSON and Allow: POST."""
    response = client.open(ROUTE, method=method)

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json["error"] == "method_not_allowed"


def test_head_gets_405_without_a_body(client: FlaskClient) -> None:
    """HEAD is refused like GET."""
    response = client.head(ROUTE)

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_a_5_kib_body_gets_413(client: FlaskClient) -> None:
    """A body over 4 KiB is refused with a JSON 413."""
    body = json.dumps({**BODY, "padding": "x" * 5120}).encode()

    response = refresh(client, body)

    assert response.status_code == 413
    assert response.json["error"] == "payload_too_large"


def test_a_huge_body_is_not_read_in_full(client: FlaskClient) -> None:
    """Only the handler's limit plus one byte of the body is read."""
    stream = CountingStream()

    response = client.post(
        ROUTE,
        headers={"Authorization": f"Bearer {TOKEN}"},
        environ_overrides={
            "wsgi.input": io.BufferedReader(stream, buffer_size=1024),
            "CONTENT_LENGTH": str(100 * 1024 * 1024),
        },
    )

    assert response.status_code == 413
    assert 4097 <= stream.read_bytes <= 4096 + 1024


def test_the_apps_smaller_content_limit_still_gets_a_json_413(
    make_app: Callable[..., Flask],
) -> None:
    """With MAX_CONTENT_LENGTH below 4 KiB, a larger body is a JSON 413."""
    app = make_app(
        {
            "RBAC_ABAC_REFRESH_ENDPOINT": True,
            "RBAC_ABAC_REFRESH_TOKENS": TOKEN,
            "MAX_CONTENT_LENGTH": 64,
        }
    )
    body = json.dumps({**BODY, "padding": "x" * 100}).encode()

    response = refresh(app.test_client(), body)

    assert response.status_code == 413
    assert response.json["error"] == "payload_too_large"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"service_name": SERVICE}, "user_id"), ({"user_id": 1}, "service_name")],
)
def test_a_missing_field_gets_400_naming_it(
    client: FlaskClient, body: dict[str, Any], field: str
) -> None:
    """400 says which field is missing."""
    response = refresh(client, body)

    assert response.status_code == 400
    assert field in response.json["detail"]


def test_an_unknown_user_gets_404(client: FlaskClient) -> None:
    """A user the identity provider does not know is 404."""
    assert refresh(client, {"user_id": 99, "service_name": SERVICE}).status_code == 404


def test_a_failing_identity_provider_gets_503(
    client: FlaskClient, users: StaticFetcher
) -> None:
    """503 with Retry-After when the fetch fails."""
    users.fail()

    response = refresh(client)

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1


def test_the_sixth_refresh_of_a_user_gets_429(client: FlaskClient) -> None:
    """The per-user rate limit applies through the route."""
    statuses = [refresh(client).status_code for _ in range(6)]

    assert statuses == [200] * 5 + [429]


def test_a_refused_request_changes_nothing_in_redis(
    client: FlaskClient, cache: Any, real_redis: redis.Redis
) -> None:
    """A 401 and a 400 leave every key byte-for-byte as it was."""
    cache.get(1)
    cache.get(2)
    before = keyspace(real_redis)

    refresh(client, token="wrong")
    refresh(client, {"user_id": 1})

    assert keyspace(real_redis) == before


# Configuration of the route


def test_the_route_is_off_unless_asked_for(make_app: Callable[..., Flask]) -> None:
    """Without RBAC_ABAC_REFRESH_ENDPOINT there is no refresh route."""
    app = make_app({"RBAC_ABAC_REFRESH_TOKENS": TOKEN})

    assert refresh(app.test_client()).status_code == 404


@pytest.mark.parametrize("value", [False, "false", "0", ""])
def test_a_false_setting_registers_no_route(
    make_app: Callable[..., Flask], value: Any
) -> None:
    """False-like values keep the route off."""
    app = make_app({"RBAC_ABAC_REFRESH_ENDPOINT": value})

    assert refresh(app.test_client()).status_code == 404


def test_a_string_setting_is_the_url_rule(make_app: Callable[..., Flask]) -> None:
    """A value starting with / is used as the route."""
    app = make_app(
        {
            "RBAC_ABAC_REFRESH_ENDPOINT": "/internal/refresh",
            "RBAC_ABAC_REFRESH_TOKENS": TOKEN,
        }
    )
    client = app.test_client()

    assert refresh(client, path="/internal/refresh").status_code == 200
    assert refresh(client).status_code == 404


def test_several_tokens_are_accepted_for_rotation(
    make_app: Callable[..., Flask],
) -> None:
    """A list of tokens in config: old and new both work."""
    app = make_app(
        {
            "RBAC_ABAC_REFRESH_ENDPOINT": True,
            "RBAC_ABAC_REFRESH_TOKENS": ["old-token", "new-token"],
        }
    )
    client = app.test_client()

    assert refresh(client, token="old-token").status_code == 200
    assert refresh(client, token="new-token").status_code == 200
    assert refresh(client, token=TOKEN).status_code == 401


def test_route_and_tokens_fall_back_to_the_environment(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    """RBAC_ABAC_REFRESH_ENDPOINT and RBAC_ABAC_REFRESH_TOKEN from the environment."""
    monkeypatch.setenv("RBAC_ABAC_REFRESH_ENDPOINT", "true")
    monkeypatch.setenv("RBAC_ABAC_REFRESH_TOKEN", "env-old,env-new")
    client = make_app().test_client()

    assert refresh(client, token="env-old").status_code == 200
    assert refresh(client, token="env-new").status_code == 200


def test_allowed_services_limit_the_route(make_app: Callable[..., Flask]) -> None:
    """RBAC_ABAC_REFRESH_ALLOWED_SERVICES refuses other services with 403."""
    app = make_app(
        {
            "RBAC_ABAC_REFRESH_ENDPOINT": True,
            "RBAC_ABAC_REFRESH_TOKENS": TOKEN,
            "RBAC_ABAC_REFRESH_ALLOWED_SERVICES": SERVICE,
        }
    )
    client = app.test_client()

    other = refresh(client, {"user_id": 1, "service_name": "inventory_api"})

    assert other.status_code == 403
    assert refresh(client).status_code == 200
