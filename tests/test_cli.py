"""The ``rbac-abac-cache`` command line, against a private Redis and a local IdP."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import redis

from rbac_abac_cache import cli
from rbac_abac_cache.cli import main

from .redis_server import RedisServer, free_port

_PATH = re.compile(r"/api/users/([^/]+)/attributes/")

USERS: dict[str, dict[str, Any]] = {
    "1": {
        "roles": ["admin"],
        "permissions": ["invoices.*"],
        "attributes": {"department": "finance", "clearance": "secret-level-7"},
    },
    "2": {
        "roles": ["viewer"],
        "permissions": ["invoices.read"],
        "attributes": {"department": "sales"},
    },
}


class IdentityProvider:
    """A tiny identity provider over HTTP that records what it was asked."""

    def __init__(self) -> None:
        self.users = {uid: dict(fields) for uid, fields in USERS.items()}
        self.calls: list[str] = []
        self.authorizations: list[str | None] = []
        self.status = 200
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> IdentityProvider:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def answer(self, path: str) -> tuple[int, dict[str, Any] | None]:
        parts = urlsplit(path)
        match = _PATH.fullmatch(parts.path)
        if match is None:
            return 404, None

        user_id = unquote(match.group(1))
        self.calls.append(user_id)
        if self.status != 200:
            return self.status, {"detail": "failing on purpose"}

        fields = self.users.get(user_id)
        if fields is None:
            return 404, None
        service = parse_qs(parts.query)["service_name"][0]
        return 200, {"user_id": user_id, "service_name": service, **fields}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.authorizations.append(self.headers.get("Authorization"))
                status, body = provider.answer(self.path)
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                # Keep the test output free of access logs.
                return

        return Handler


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    """A local identity provider serving USERS, stopped after the test."""
    provider = IdentityProvider().start()
    yield provider
    provider.stop()


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    real_redis: redis.Redis,
    idp: IdentityProvider,
) -> pytest.MonkeyPatch:
    """Point the environment at the private Redis (flushed) and the local IdP."""
    monkeypatch.setenv("RBAC_ABAC_REDIS_URL", redis_server.url)
    monkeypatch.setenv("RBAC_ABAC_SERVICE_NAME", "billing_api")
    monkeypatch.setenv("IDENTITY_PROVIDER_URL", idp.url)
    return monkeypatch


Run = Callable[..., "tuple[int, str, str]"]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``main`` in-process; return the exit status, stdout and stderr."""

    def invoke(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def one_error_line(err: str) -> str:
    """Assert that ``err`` is one error line without a traceback; return it."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rbac-abac-cache: error: ")
    return lines[0]


# get


@pytest.mark.usefixtures("env")
def test_get_fetches_once_then_serves_from_the_cache(
    run: Run, idp: IdentityProvider
) -> None:
    """The first get asks the IdP; the second is served from Redis."""
    code, out, err = run("get", "1")

    assert (code, err) == (0, "")
    assert "identity provider" in out
    assert "admin" in out
    assert "invoices.*" in out
    assert "clearance, department" in out
    assert idp.calls == ["1"]

    code, out, _ = run("get", "1")
    assert code == 0
    assert re.search(r"source\s+cache", out)
    assert idp.calls == ["1"]


@pytest.mark.usefixtures("env")
def test_get_prints_attribute_values_only_when_asked(run: Run) -> None:
    """Attribute values stay hidden unless --show-values is given."""
    _, hidden, _ = run("get", "1")
    _, shown, _ = run("get", "1", "--show-values")

    assert "secret-level-7" not in hidden
    assert '"secret-level-7"' in shown


@pytest.mark.usefixtures("env")
def test_get_json_is_parseable_and_names_attributes_only(run: Run) -> None:
    """--json prints one JSON object with attribute names but no values."""
    code, out, _ = run("get", "1", "--json")

    report = json.loads(out)
    assert code == 0
    assert report["user_id"] == "1"
    assert report["service_name"] == "billing_api"
    assert report["roles"] == ["admin"]
    assert report["permissions"] == ["invoices.*"]
    assert report["attribute_names"] == ["clearance", "department"]
    assert report["source"] == "identity provider"
    assert 0 <= report["age_seconds"] < 60
    assert "attributes" not in report
    assert "secret-level-7" not in out


@pytest.mark.usefixtures("env")
def test_get_json_with_show_values_includes_the_attributes(run: Run) -> None:
    """--json --show-values adds the attribute values."""
    code, out, _ = run("get", "2", "--json", "--show-values")

    assert code == 0
    assert json.loads(out)["attributes"] == {"department": "sales"}


@pytest.mark.usefixtures("env")
def test_get_no_fetch_reads_the_cache_only(run: Run, idp: IdentityProvider) -> None:
    """--no-fetch exits 1 for an uncached user without asking the IdP."""
    code, out, err = run("get", "1", "--no-fetch")

    assert code == 1
    assert out == ""
    assert "not cached" in one_error_line(err)
    assert idp.calls == []

    run("get", "1")
    code, out, _ = run("get", "1", "--no-fetch", "--json")
    assert code == 0
    assert json.loads(out)["source"] == "cache"


@pytest.mark.usefixtures("env")
def test_get_no_fetch_needs_no_identity_provider(
    run: Run, env: pytest.MonkeyPatch
) -> None:
    """--no-fetch works with no identity provider configured."""
    env.delenv("IDENTITY_PROVIDER_URL")

    code, _, err = run("get", "1", "--no-fetch")

    assert code == 1
    assert "not cached" in err


@pytest.mark.usefixtures("env")
def test_get_unknown_user_exits_1_and_is_remembered(
    run: Run, idp: IdentityProvider
) -> None:
    """A user the IdP does not know exits 1; asking again does not reach it."""
    code, out, err = run("get", "ghost")
    assert (code, out) == (1, "")
    assert "unknown to the identity provider" in one_error_line(err)

    code, _, err = run("get", "ghost")
    assert code == 1
    assert "remembered as unknown" in err
    assert idp.calls == ["ghost"]


@pytest.mark.usefixtures("env")
def test_get_without_identity_provider_is_a_usage_error(
    run: Run, env: pytest.MonkeyPatch
) -> None:
    """get must be able to fill a miss, so it needs an identity provider."""
    env.delenv("IDENTITY_PROVIDER_URL")

    code, _, err = run("get", "1")

    assert code == 2
    line = one_error_line(err)
    assert "IDENTITY_PROVIDER_URL" in line
    assert "--no-fetch" in line


@pytest.mark.usefixtures("env")
def test_get_serves_a_stale_entry_when_the_identity_provider_fails(
    run: Run, env: pytest.MonkeyPatch, idp: IdentityProvider
) -> None:
    """Past its TTL but within grace, a failing IdP gets the stale entry served."""
    env.setenv("RBAC_ABAC_CACHE_TTL", "0.2")
    run("get", "1")
    time.sleep(0.3)
    idp.status = 500

    code, out, err = run("get", "1", "--json")

    assert code == 0
    assert json.loads(out)["source"].startswith("stale entry")
    assert "stale" in err
    assert len(idp.calls) == 2


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("command", ["get", "refresh", "invalidate"])
@pytest.mark.parametrize(
    "user_id",
    ["bad\nid", "u" * 300, "", "tab\there"],
    ids=["newline", "long", "empty", "tab"],
)
def test_invalid_user_id_exits_2_before_any_lookup(
    run: Run, idp: IdentityProvider, command: str, user_id: str
) -> None:
    """A malformed user id is refused with exit 2, one line and no IdP call."""
    code, out, err = run(command, user_id)

    assert (code, out) == (2, "")
    assert "user_id" in one_error_line(err)
    assert idp.calls == []


# refresh


@pytest.mark.usefixtures("env")
def test_refresh_applies_a_role_change_at_once(run: Run, idp: IdentityProvider) -> None:
    """After the IdP revokes a role, refresh makes every read see it."""
    run("get", "1")
    idp.users["1"] = dict(USERS["2"])
    _, cached, _ = run("get", "1", "--json")

    code, refreshed, err = run("refresh", "1", "--json")
    _, after, _ = run("get", "1", "--json")

    assert json.loads(cached)["roles"] == ["admin"]
    assert (code, err) == (0, "")
    assert json.loads(refreshed)["roles"] == ["viewer"]
    assert json.loads(after)["roles"] == ["viewer"]
    assert json.loads(after)["source"] == "cache"
    assert idp.calls == ["1", "1"]


@pytest.mark.usefixtures("env")
def test_refresh_of_an_unknown_user_exits_1(run: Run) -> None:
    """refresh exits 1 when the IdP does not know the user."""
    code, out, err = run("refresh", "ghost")

    assert (code, out) == (1, "")
    assert "unknown to the identity provider" in one_error_line(err)


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("command", ["get", "refresh"])
def test_failing_identity_provider_exits_3(
    run: Run, idp: IdentityProvider, command: str
) -> None:
    """With nothing cached, an IdP answering 500 makes get and refresh exit 3."""
    idp.status = 500

    code, out, err = run(command, "1")

    assert (code, out) == (3, "")
    assert "500" in one_error_line(err)


# invalidate


@pytest.mark.usefixtures("env")
def test_invalidate_drops_the_entry(run: Run) -> None:
    """After invalidate the user is no longer cached; it says whether it was."""
    run("get", "1")

    code, out, err = run("invalidate", "1")
    assert (code, err) == (0, "")
    assert "an entry was cached" in out

    code, _, _ = run("get", "1", "--no-fetch")
    assert code == 1

    code, out, _ = run("invalidate", "1", "--json")
    assert code == 0
    assert json.loads(out) == {
        "user_id": "1",
        "service_name": "billing_api",
        "invalidated": True,
        "was_cached": False,
    }


# stats


@pytest.mark.usefixtures("env")
def test_stats_counts_the_service_entries_and_shows_settings(run: Run) -> None:
    """stats reports reachability, this service's entries and the settings."""
    run("get", "1")
    run("get", "2")
    run("get", "ghost")
    run("get", "1", "--service", "inventory_api")

    code, out, err = run("stats", "--json")

    report = json.loads(out)
    assert (code, err) == (0, "")
    assert report["service_name"] == "billing_api"
    assert report["redis"]["reachable"] is True
    assert report["redis"]["version"]
    assert report["redis"]["entries"]["count"] == 3
    assert report["redis"]["entries"]["complete"] is True
    assert report["settings"]["ttl"] == 86400
    assert report["settings"]["signing_key"] == "not set"
    assert set(report["counters"].values()) == {0}


@pytest.mark.usefixtures("env")
def test_stats_text_lists_reachability_entries_and_settings(
    run: Run, env: pytest.MonkeyPatch
) -> None:
    """The text report shows the settings in effect, environment included."""
    env.setenv("RBAC_ABAC_CACHE_TTL", "3600")
    run("get", "1")

    code, out, _ = run("stats")

    assert code == 0
    assert re.search(r"reachable\s+yes", out)
    assert re.search(r"cached entries\s+1\b", out)
    assert re.search(r"ttl\s+3600 \(1 h\)", out)
    assert "counters of this process" in out


@pytest.mark.usefixtures("env")
def test_stats_count_is_bounded_and_says_so(
    run: Run, real_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When SCAN hits its bound, stats reports "at least" the count it saw."""
    for number in range(200):
        real_redis.set(f"rbac_abac:{{billing_api:u{number}}}:attrs", b"x")
    monkeypatch.setattr(cli, "_SCAN_BATCH", 10)
    monkeypatch.setattr(cli, "_SCAN_MAX_CALLS", 2)

    code, out, _ = run("stats", "--json")
    _, text, _ = run("stats")

    entries = json.loads(out)["redis"]["entries"]
    assert code == 0
    assert entries["complete"] is False
    assert 0 < entries["count"] < 200
    assert re.search(r"cached entries\s+at least \d+", text)


# Configuration and failures


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("value", ["abc", "-5"])
def test_malformed_environment_variable_exits_2_naming_it(
    run: Run, env: pytest.MonkeyPatch, value: str
) -> None:
    """A malformed RBAC_ABAC_CACHE_TTL is reported by name, without a traceback."""
    env.setenv("RBAC_ABAC_CACHE_TTL", value)

    code, out, err = run("get", "1")

    assert (code, out) == (2, "")
    assert "RBAC_ABAC_CACHE_TTL" in one_error_line(err)


@pytest.mark.usefixtures("env")
def test_options_override_the_environment(run: Run, idp: IdentityProvider) -> None:
    """--service, --redis-url and --idp-url win over their variables."""
    code, out, _ = run(
        "get", "1", "--json", "--service", "inventory_api", "--idp-url", idp.url
    )

    assert code == 0
    assert json.loads(out)["service_name"] == "inventory_api"


def test_options_work_without_the_environment(
    run: Run, redis_server: RedisServer, real_redis: redis.Redis, idp: IdentityProvider
) -> None:
    """Every connection setting can be given as an option."""
    code, out, _ = run(
        "get",
        "2",
        "--json",
        "--redis-url",
        redis_server.url,
        "--service",
        "billing_api",
        "--idp-url",
        idp.url,
    )

    assert code == 0
    assert json.loads(out)["roles"] == ["viewer"]
    assert real_redis.dbsize() > 0


@pytest.mark.parametrize("option", ["--service", "--idp-url", "--redis-url"])
def test_malformed_option_exits_2_naming_it(run: Run, option: str) -> None:
    """A malformed option value is reported with the option's name."""
    code, _, err = run("get", "1", "--service", "billing_api", option, "not a url")

    assert code == 2
    assert option in one_error_line(err)


def test_missing_service_exits_2(run: Run) -> None:
    """Without --service or RBAC_ABAC_SERVICE_NAME the command says what to set."""
    code, _, err = run("stats")

    assert code == 2
    assert "RBAC_ABAC_SERVICE_NAME" in one_error_line(err)


@pytest.mark.parametrize("command", ["get", "refresh", "invalidate", "stats"])
def test_unreachable_redis_exits_3_quickly(
    run: Run, idp: IdentityProvider, command: str
) -> None:
    """A closed Redis port makes every command exit 3 well within two seconds."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    argv = [command] + (["1"] if command != "stats" else [])

    started = time.monotonic()
    code, _, err = run(
        *argv, "--redis-url", url, "--service", "s", "--idp-url", idp.url
    )

    assert time.monotonic() - started < 2.0
    assert code == 3
    assert "cannot reach Redis" in one_error_line(err)
    assert idp.calls == []


def test_secrets_are_never_printed(
    run: Run, monkeypatch: pytest.MonkeyPatch, idp: IdentityProvider
) -> None:
    """Redis passwords and identity provider tokens never reach the output."""
    monkeypatch.setenv("RBAC_ABAC_IDP_TOKEN", "idp-token-123")
    monkeypatch.setenv("RBAC_ABAC_REFRESH_TOKEN", "refresh-token-456")
    monkeypatch.setenv("RBAC_ABAC_SERVICE_NAME", "billing_api")
    monkeypatch.setenv("IDENTITY_PROVIDER_URL", f"{idp.url}/?key=query-secret")
    monkeypatch.setenv(
        "RBAC_ABAC_REDIS_URL", f"redis://user:hunter2@127.0.0.1:{free_port()}/0"
    )

    outputs = [run("stats"), run("stats", "--json", "-v")]

    text = "".join(out + err for _, out, err in outputs)
    for secret in ("hunter2", "idp-token-123", "refresh-token-456", "query-secret"):
        assert secret not in text
    assert "redis://***@127.0.0.1" in text
    assert "token set" in text


@pytest.mark.usefixtures("env")
def test_the_identity_provider_token_is_sent(
    run: Run, env: pytest.MonkeyPatch, idp: IdentityProvider
) -> None:
    """RBAC_ABAC_IDP_TOKEN reaches the identity provider as a bearer token."""
    env.setenv("RBAC_ABAC_IDP_TOKEN", "idp-token-123")

    code, out, err = run("get", "1", "-v")

    assert code == 0
    assert idp.authorizations == ["Bearer idp-token-123"]
    assert "idp-token-123" not in out + err


@pytest.mark.parametrize(
    "argv",
    [[], ["bogus"], ["get"], ["get", "1", "--bogus"], ["stats", "extra"]],
    ids=["none", "unknown-command", "missing-user", "unknown-option", "extra"],
)
def test_usage_errors_exit_2_in_one_line(run: Run, argv: list[str]) -> None:
    """Bad command lines exit 2 with one line pointing at --help."""
    code, out, err = run(*argv)

    assert (code, out) == (2, "")
    assert "--help" in one_error_line(err)


def test_help_exits_0_and_lists_the_commands(run: Run) -> None:
    """--help prints every subcommand and exits 0."""
    code, out, _ = run("--help")

    assert code == 0
    for command in ("demo", "get", "refresh", "invalidate", "stats"):
        assert command in out


@pytest.mark.usefixtures("env")
def test_main_leaves_no_logging_handler_behind(run: Run) -> None:
    """In-process runs remove the handler they add to the library's logger."""
    library = logging.getLogger("rbac_abac_cache")
    handlers, level = list(library.handlers), library.level

    run("get", "1", "-v")

    assert library.handlers == handlers
    assert library.level == level


# demo


def test_demo_exits_0(run: Run) -> None:
    """cli demo tells the whole story and exits 0."""
    code, out, err = run("demo")

    assert (code, err) == (0, "")
    assert "Every step behaved as described." in out


def test_demo_without_fakeredis_exits_2_with_the_install_command(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without fakeredis the demo names the extra to install."""
    monkeypatch.setitem(sys.modules, "fakeredis", None)

    code, out, err = run("demo")

    assert (code, out) == (2, "")
    assert "pip install 'rbac-abac-cache[testing]'" in one_error_line(err)


def test_console_script_is_declared() -> None:
    """The rbac-abac-cache script points at cli.main."""
    scripts = entry_points(group="console_scripts", name="rbac-abac-cache")

    assert [script.value for script in scripts] == ["rbac_abac_cache.cli:main"]


def test_demo_runs_as_a_program() -> None:
    """python -m rbac_abac_cache demo runs in a fresh process and exits 0."""
    result = subprocess.run(
        [sys.executable, "-m", "rbac_abac_cache", "demo"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("rbac-abac-cache demo")
    assert "8. The identity provider goes down" in result.stdout
    assert "Every step behaved as described." in result.stdout


def test_common_options_may_come_before_the_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`rbac-abac-cache --service X stats` works like `stats --service X`."""
    closed = f"redis://127.0.0.1:{free_port()}/0"

    code = main(["--service", "billing_api", "--redis-url", closed, "--json", "stats"])

    assert code == 3
    report = json.loads(capsys.readouterr().out)
    assert report["service_name"] == "billing_api"
