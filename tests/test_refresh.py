"""Tests for :mod:`rbac_abac_cache.refresh`: the framework-free refresh endpoint."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import orjson
import pytest
import redis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rbac_abac_cache import AttributeCache, RefreshHandler, RefreshResponse
from rbac_abac_cache.testing import StaticFetcher

from .redis_server import RedisServer, free_port

SERVICE = "billing_api"
OTHER_SERVICE = "inventory_api"
TOKEN = "token-of-the-identity-provider"
SECRETS = ("role-kept-private", "perm.kept.private", "value-kept-private")
REFUSALS = {400, 401, 403, 405, 413}
PAYLOAD_KEYS = {"status", "user_id", "service_name", "error", "detail"}

Client = Any
ClientFactory = Callable[[], Client]


@pytest.fixture(params=["fake", "real"])
def connect(request: pytest.FixtureRequest) -> Iterator[ClientFactory]:
    """Make clients of one Redis, fake or real; each client plays one process."""
    clients: list[Client] = []
    if request.param == "fake":
        server = fakeredis.FakeServer()

        def make() -> Client:
            clients.append(fakeredis.FakeRedis(server=server))
            return clients[-1]
    else:
        request.getfixturevalue("real_redis")
        redis_server: RedisServer = request.getfixturevalue("redis_server")

        def make() -> Client:
            clients.append(redis_server.client())
            return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def users() -> StaticFetcher:
    """An identity provider that knows users 1 and 2, with private grants."""
    private = {
        "roles": [SECRETS[0]],
        "permissions": [SECRETS[1]],
        "attributes": {"department": SECRETS[2]},
    }
    return StaticFetcher({"1": private, "2": {"roles": ["viewer"]}})


@pytest.fixture
def make_cache(
    connect: ClientFactory, users: StaticFetcher
) -> Iterator[Callable[[], AttributeCache]]:
    """Build caches, each over its own client as another process would."""
    caches: list[AttributeCache] = []

    def make() -> AttributeCache:
        caches.append(AttributeCache(connect(), users, service_name=SERVICE))
        return caches[-1]

    yield make
    for cache in caches:
        cache.close()


@pytest.fixture
def make_handler(
    make_cache: Callable[[], AttributeCache],
) -> Callable[..., RefreshHandler]:
    """Build handlers accepting TOKEN, over a new cache unless one is given."""

    def make(cache: AttributeCache | None = None, **options: Any) -> RefreshHandler:
        options.setdefault("tokens", [TOKEN])
        return RefreshHandler(cache or make_cache(), **options)

    return make


@pytest.fixture
def handler(make_handler: Callable[..., RefreshHandler]) -> RefreshHandler:
    """A handler accepting TOKEN for any service."""
    return make_handler()


@pytest.fixture
def client(connect: ClientFactory) -> Client:
    """A client to inspect the keyspace the handlers use."""
    return connect()


def post(
    handler: RefreshHandler,
    body: Any = None,
    *,
    token: str | None = TOKEN,
    method: str = "POST",
    **headers: str,
) -> RefreshResponse:
    """Send a request; ``body`` is JSON-encoded unless it is bytes."""
    if body is None:
        body = {"user_id": 1, "service_name": SERVICE}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if token is not None:
        headers.setdefault("Authorization", f"Bearer {token}")
    return handler.handle(method, headers, raw)


def keyspace(client: Client) -> dict[bytes, bytes]:
    """Every key with its serialised value, to compare byte for byte."""
    return {key: client.dump(key) for key in sorted(client.keys("*"))}


def populate(cache: AttributeCache, handler: RefreshHandler) -> None:
    """Fill the keyspace with entries, a negative entry, generations and a bucket."""
    cache.get(1)
    cache.get(2)
    cache.get("unknown")
    cache.invalidate(3)
    assert post(handler, {"user_id": 2, "service_name": SERVICE}).status == 200


def assert_private(response: RefreshResponse) -> None:
    """The response carries none of the user's roles, permissions or attributes."""
    text = json.dumps([response.payload, response.headers])
    for secret in SECRETS:
        assert secret not in text


# Success


def test_refresh_fetches_the_user_again_and_answers_200(
    make_cache: Callable[[], AttributeCache],
    make_handler: Callable[..., RefreshHandler],
    users: StaticFetcher,
) -> None:
    """A valid request refetches the user and stores the new attributes."""
    cache = make_cache()
    handler = make_handler(cache)
    cache.get(2)
    users.add({"roles": ["admin"]}, user_id=2)

    response = post(handler, {"user_id": 2, "service_name": SERVICE})

    assert response.status == 200
    assert response.payload == {
        "status": "refreshed",
        "user_id": "2",
        "service_name": SERVICE,
    }
    served = cache.get(2)
    assert served is not None
    assert served.roles == frozenset({"admin"})
    assert users.count(2) == 2


def test_refresh_accepts_string_user_ids_and_other_services(
    handler: RefreshHandler, users: StaticFetcher
) -> None:
    """user_id may be a JSON string, and any well-formed service is refreshed."""
    response = post(handler, {"user_id": "2", "service_name": OTHER_SERVICE})

    assert response.status == 200
    assert users.calls == [("2", OTHER_SERVICE)]


def test_success_response_never_contains_the_attributes(
    handler: RefreshHandler,
) -> None:
    """Only the status, user id and service name are echoed."""
    response = post(handler)

    assert response.status == 200
    assert set(response.payload) == {"status", "user_id", "service_name"}
    assert_private(response)


# Authentication


def test_every_configured_token_is_accepted_for_rotation(
    make_handler: Callable[..., RefreshHandler],
) -> None:
    """Old and new tokens both work during a rotation; others do not."""
    handler = make_handler(tokens=["old-token", "new-token"])

    assert post(handler, token="old-token").status == 200
    assert post(handler, token="new-token").status == 200
    assert post(handler, token="other-token").status == 401


def test_tokens_default_to_the_comma_separated_environment_variable(
    make_handler: Callable[..., RefreshHandler], monkeypatch: pytest.MonkeyPatch
) -> None:
    """tokens=None reads RBAC_ABAC_REFRESH_TOKEN, split on commas."""
    monkeypatch.setenv("RBAC_ABAC_REFRESH_TOKEN", "first, second")
    handler = make_handler(tokens=None)

    assert post(handler, token="first").status == 200
    assert post(handler, token="second").status == 200
    assert post(handler, token="first, second").status == 401


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", f"Basic {TOKEN}", f"{TOKEN}", "Bearer wrong"],
)
def test_missing_or_wrong_tokens_are_refused_with_401(
    handler: RefreshHandler, users: StaticFetcher, authorization: str | None
) -> None:
    """Without the right bearer token the answer is 401 and nothing is fetched."""
    headers = {} if authorization is None else {"Authorization": authorization}

    response = post(handler, token=None, **headers)

    assert response.status == 401
    assert response.payload["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert users.count() == 0


def test_header_names_are_matched_case_insensitively(handler: RefreshHandler) -> None:
    """A lower-case authorization header, as some servers pass it, is honoured."""
    response = post(handler, token=None, authorization=f"Bearer {TOKEN}")

    assert response.status == 200


def test_with_no_token_configured_every_request_is_refused(
    make_handler: Callable[..., RefreshHandler],
    users: StaticFetcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No token at all: 401 for every request, and an error is logged."""
    with caplog.at_level(logging.ERROR, logger="rbac_abac_cache.refresh"):
        handler = make_handler(tokens=None)
        response = post(handler, token="")
        anything = post(handler, token="anything")

    assert response.status == 401
    assert anything.status == 401
    assert users.count() == 0
    assert "no token" in caplog.text


def test_tokens_never_reach_the_logs(
    handler: RefreshHandler, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the configured token nor a presented one is logged."""
    with caplog.at_level(logging.DEBUG):
        post(handler)
        post(handler, token="presented-but-wrong")

    assert TOKEN not in caplog.text
    assert "presented-but-wrong" not in caplog.text


# Malformed requests


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD"])
def test_methods_other_than_post_get_405_with_allow(
    handler: RefreshHandler, method: str
) -> None:
    """Only POST is served; others get 405 with Allow: POST."""
    response = post(handler, method=method)

    assert response.status == 405
    assert response.headers["Allow"] == "POST"


def test_a_body_over_4_kib_gets_413(handler: RefreshHandler) -> None:
    """4097 bytes are refused; 4096 bytes of the same request are accepted."""
    base = json.dumps({"user_id": 1, "service_name": SERVICE}).encode()
    exactly = base + b" " * (4096 - len(base))

    assert post(handler, exactly + b" ").status == 413
    assert post(handler, exactly).status == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"service_name": SERVICE}, "user_id"),
        ({"user_id": None, "service_name": SERVICE}, "user_id"),
        ({"user_id": "", "service_name": SERVICE}, "user_id"),
        ({"user_id": True, "service_name": SERVICE}, "user_id"),
        ({"user_id": 1.5, "service_name": SERVICE}, "user_id"),
        ({"user_id": [1], "service_name": SERVICE}, "user_id"),
        ({"user_id": "x" * 257, "service_name": SERVICE}, "user_id"),
        ({"user_id": "a\nb", "service_name": SERVICE}, "user_id"),
        ({"user_id": 1}, "service_name"),
        ({"user_id": 1, "service_name": ""}, "service_name"),
        ({"user_id": 1, "service_name": 7}, "service_name"),
        ({"user_id": 1, "service_name": "billing api"}, "service_name"),
        ({"user_id": 1, "service_name": "x" * 129}, "service_name"),
    ],
)
def test_a_missing_or_invalid_field_gets_400_naming_it(
    handler: RefreshHandler, users: StaticFetcher, body: dict[str, Any], field: str
) -> None:
    """The 400 detail names the field at fault, and nothing is fetched."""
    response = post(handler, body)

    assert response.status == 400
    assert response.payload["detail"].startswith(field)
    assert users.count() == 0


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"{" * 5000]
)
def test_a_body_that_is_not_a_json_object_gets_400(
    handler: RefreshHandler, body: bytes
) -> None:
    """Invalid JSON, non-objects and bad UTF-8 are 400 (or 413 when too long)."""
    response = post(handler, body)

    assert response.status == (413 if len(body) > 4096 else 400)


def test_a_service_outside_the_allowed_ones_gets_403(
    make_handler: Callable[..., RefreshHandler], users: StaticFetcher
) -> None:
    """allowed_services limits what may be refreshed."""
    handler = make_handler(allowed_services=[SERVICE])

    refused = post(handler, {"user_id": 1, "service_name": OTHER_SERVICE})
    allowed = post(handler, {"user_id": 1, "service_name": SERVICE})

    assert refused.status == 403
    assert allowed.status == 200
    assert users.calls == [("1", SERVICE)]


# Outcomes of the refresh itself


def test_an_unknown_user_gets_404(handler: RefreshHandler) -> None:
    """A user the identity provider does not know is 404."""
    response = post(handler, {"user_id": 99, "service_name": SERVICE})

    assert response.status == 404
    assert response.payload["error"] == "not_found"


def test_a_failing_identity_provider_gets_503_with_retry_after(
    handler: RefreshHandler, users: StaticFetcher
) -> None:
    """When the fetch fails the answer is 503 with Retry-After."""
    users.fail()

    response = post(handler)

    assert response.status == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert_private(response)


def test_an_unreachable_redis_gets_503(users: StaticFetcher) -> None:
    """Without Redis the rate limit cannot be kept, so the answer is 503."""
    with AttributeCache(
        f"redis://127.0.0.1:{free_port()}/0", users, service_name=SERVICE
    ) as cache:
        response = post(RefreshHandler(cache, tokens=[TOKEN]))

    assert response.status == 503
    assert "Retry-After" in response.headers
    assert users.count() == 0


def test_the_sixth_refresh_in_a_minute_gets_429_across_processes(
    make_handler: Callable[..., RefreshHandler], users: StaticFetcher
) -> None:
    """The per-user limit is kept in Redis, so two handlers share it."""
    first, second = make_handler(), make_handler()
    statuses = [post(h).status for h in (first, second, first, second, first)]

    refused = post(second)
    also_refused = post(first)

    assert statuses == [200] * 5
    assert refused.status == 429
    assert also_refused.status == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert users.count(1) == 5


def test_the_rate_limit_is_per_user_and_service(
    handler: RefreshHandler,
) -> None:
    """Exhausting one user's quota leaves other users and services alone."""
    for _ in range(5):
        post(handler)

    assert post(handler).status == 429
    assert post(handler, {"user_id": 2, "service_name": SERVICE}).status == 200
    assert post(handler, {"user_id": 1, "service_name": OTHER_SERVICE}).status == 200


# Refusals change nothing


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"method": "GET"}, 405),
        ({"token": None}, 401),
        ({"token": "wrong"}, 401),
        ({"body": b"\x00" * 4097}, 413),
        ({"body": {"user_id": 1}}, 400),
        ({"body": {"user_id": 1, "service_name": "not allowed!"}}, 400),
        ({"body": {"user_id": 1, "service_name": OTHER_SERVICE}}, 403),
    ],
)
def test_a_refused_request_leaves_the_keyspace_unchanged(
    make_cache: Callable[[], AttributeCache],
    make_handler: Callable[..., RefreshHandler],
    users: StaticFetcher,
    client: Client,
    kwargs: dict[str, Any],
    status: int,
) -> None:
    """Every key and value in Redis is byte-for-byte the same after a refusal."""
    cache = make_cache()
    handler = make_handler(cache, allowed_services=[SERVICE])
    populate(cache, handler)
    before = keyspace(client)
    calls = users.count()

    options = dict(kwargs)
    response = post(handler, options.pop("body", None), **options)

    assert response.status == status
    assert keyspace(client) == before
    assert users.count() == calls


def test_a_rate_limited_request_leaves_the_cache_unchanged(
    handler: RefreshHandler, users: StaticFetcher, client: Client
) -> None:
    """A 429 changes nothing at all, not even its own rate-limit counter."""
    for _ in range(5):
        post(handler)
    before = keyspace(client)

    response = post(handler)

    assert response.status == 429
    assert keyspace(client) == before
    assert users.count(1) == 5


# Anything a client may send


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
_USER_IDS = (
    st.sampled_from([1, "1", 2, "2", 99, "", 0, -1, 2**70, True, None, 1.0])
    | st.text(max_size=300)
    | _JSON
)
_SERVICES = (
    st.sampled_from([SERVICE, OTHER_SERVICE, "", "a b", "x" * 129, None]) | _JSON
)
_FIELDS = st.fixed_dictionaries(
    {}, optional={"user_id": _USER_IDS, "service_name": _SERVICES, "extra": _JSON}
)
_WELL_FORMED = st.fixed_dictionaries(
    {"user_id": st.sampled_from([1, "2", 99]), "service_name": _SERVICES}
)
_BODIES = st.one_of(
    st.binary(max_size=600),
    st.builds(
        lambda head, size: (head + b"x" * size)[:size],
        st.binary(max_size=50),
        st.integers(4090, 4100),
    ),
    _JSON.map(json.dumps),
    _FIELDS.map(json.dumps),
    _WELL_FORMED.map(json.dumps),
    _WELL_FORMED.map(lambda value: json.dumps(value) + " " * 4100),
).map(lambda body: body if isinstance(body, bytes) else body.encode())
_AUTHORIZATIONS = st.sampled_from(
    [f"bearer {TOKEN}", f"Bearer  {TOKEN} ", f"Bearer {TOKEN}x", "Bearer", ""]
) | st.text(max_size=40)
_OTHER_METHODS = st.sampled_from(["post", "GET", "PUT", "HEAD"]) | st.text(max_size=8)


@st.composite
def _requests(draw: st.DrawFn) -> tuple[str, dict[str, str], bytes]:
    """Mostly well-authenticated POSTs, so that bodies reach the parser."""
    method = "POST" if draw(st.integers(0, 9)) else draw(_OTHER_METHODS)
    headers = draw(st.dictionaries(st.text(min_size=1, max_size=20), st.text()))
    name = draw(st.sampled_from(["Authorization", "authorization", "AUTHORIZATION"]))
    if draw(st.integers(0, 4)):
        headers[name] = f"Bearer {TOKEN}"
    else:
        headers[name] = draw(_AUTHORIZATIONS)
    return method, headers, draw(_BODIES)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(request=_requests())
def test_no_request_breaks_the_handler_or_touches_the_cache_when_refused(
    make_handler: Callable[..., RefreshHandler],
    client: Client,
    request: tuple[str, dict[str, str], bytes],
) -> None:
    """Whatever arrives: no exception, no 5xx but 503, nothing changed on refusal."""
    method, headers, body = request
    handler = make_handler(allowed_services=[SERVICE])
    before = keyspace(client)

    response = handler.handle(method, headers, body)

    after = keyspace(client)
    event(f"status {response.status}")
    assert response.status in {200, 400, 401, 403, 404, 405, 413, 429, 503}
    assert set(response.payload) <= PAYLOAD_KEYS
    orjson.dumps(response.payload)
    assert_private(response)
    if response.status in REFUSALS or response.status == 429:
        assert after == before


def test_the_handler_repr_hides_the_tokens(handler: RefreshHandler) -> None:
    """repr() names the service but never a token."""
    assert TOKEN not in repr(handler)
    assert SERVICE in repr(handler)


def test_two_clients_see_one_server(connect: ClientFactory) -> None:
    """The process-playing clients share one keyspace, as the tests assume."""
    one: redis.Redis = connect()
    other: redis.Redis = connect()

    one.set("probe", "1")

    assert other.get("probe") == b"1"
