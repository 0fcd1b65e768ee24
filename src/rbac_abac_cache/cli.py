"""The ``rbac-abac-cache`` command: look at and manage cached attributes.

Subcommands::

    demo                 a guided tour on an in-memory Redis, no server needed
    get USER_ID          a user's roles, permissions and attribute names
    refresh USER_ID      ask the identity provider now and tell every instance
    invalidate USER_ID   drop the user's entry everywhere
    stats                Redis reachability, cached entries, settings in effect

Options fall back to the same environment variables as the library
(``RBAC_ABAC_REDIS_URL``, ``REDIS_URL``, ``RBAC_ABAC_SERVICE_NAME``,
``IDENTITY_PROVIDER_URL``, ``RBAC_ABAC_IDP_TOKEN`` and every
``RBAC_ABAC_CACHE_<SETTING>``), so the command sees what a service would.

Exit codes: 0 success; 1 the user is unknown or not cached; 2 usage error
or bad input (a malformed user id or setting); 3 Redis unreachable, or the
attributes unavailable because the identity provider is failing.

Attribute values can be personal data, so they are printed only when asked
for with ``--show-values``; tokens and passwords are never printed, and URLs
are shown with their credentials and query masked. See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.exceptions import RedisError

from . import __version__
from .attributes import UserAttributes
from .cache import AttributeCache
from .config import (
    SETTINGS,
    CacheSettings,
    ConnectionSettings,
    Setting,
    environ_source,
    load_settings,
)
from .exceptions import (
    AttributesUnavailableError,
    ConfigurationError,
    FetchError,
    InvalidAttributesError,
    InvalidUserIdError,
    RedisUnavailableError,
)
from .keys import KeySpace, normalize_user_id
from .store import RedisClient

__all__ = [
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "main",
]

logger = logging.getLogger(__name__)

EXIT_OK = 0
"""The command did what was asked."""

EXIT_NOT_FOUND = 1
"""The user is unknown to the identity provider, or not cached."""

EXIT_USAGE = 2
"""Bad usage or input: an unknown option, a malformed user id or setting."""

EXIT_UNAVAILABLE = 3
"""Redis is unreachable, or the identity provider is failing."""

_PROG = "rbac-abac-cache"
_LIBRARY_LOGGER = "rbac_abac_cache"
_SCAN_BATCH = 1000
_SCAN_MAX_CALLS = 1000
_SCAN_MAX_SECONDS = 5.0
_DURATION_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))

# The command-line options that stand for a setting, and the setting.
_OPTION_SETTINGS = (
    ("service", "--service", "service_name"),
    ("redis_url", "--redis-url", "redis_url"),
    ("idp_url", "--idp-url", "identity_provider_url"),
)


class _UsageError(Exception):
    """The command line cannot be parsed; raised instead of argparse's exit."""


class _CommandError(Exception):
    """A command failed in a way it has explained; ``code`` is the exit status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """An argument parser that reports errors to :func:`main` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status.

    Args:
        argv: The arguments after the program name; ``None`` reads
            ``sys.argv``.

    Returns:
        0 on success, 1 when the user is unknown or not cached, 2 on a usage
        error or bad input, 3 when Redis or the identity provider fails.
    """
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        return _fail(EXIT_USAGE, f"{exc} (see {_PROG} --help)")
    except SystemExit as exc:
        # --help and --version exit through argparse after printing.
        return exc.code if isinstance(exc.code, int) else EXIT_OK

    with _library_logging(args.command != "demo", getattr(args, "verbose", False)):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Run the chosen subcommand, turning every expected failure into a status."""
    command: Callable[[argparse.Namespace], int] = args.handler
    try:
        return command(args)
    except _CommandError as exc:
        return _fail(exc.code, str(exc))
    except (ConfigurationError, InvalidUserIdError, InvalidAttributesError) as exc:
        return _fail(EXIT_USAGE, str(exc))
    except (AttributesUnavailableError, FetchError, RedisUnavailableError) as exc:
        return _fail(EXIT_UNAVAILABLE, str(exc))
    except RedisError as exc:
        return _fail(EXIT_UNAVAILABLE, f"Redis failed: {_reason(exc)}")
    except KeyboardInterrupt:
        return _fail(130, "interrupted")


# The command line


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=_PROG,
        description="Look at and manage the users' attributes cached in Redis.",
        epilog="Exit codes: 0 ok, 1 unknown or not cached, 2 usage or bad "
        "input, 3 Redis or identity provider unavailable.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    _add_common_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # The common options may come before or after the command. After it,
    # only the options actually given may override those given before.
    common = _Parser(add_help=False, argument_default=argparse.SUPPRESS)
    _add_common_options(common)

    demo = commands.add_parser(
        "demo", help="tour the cache on an in-memory Redis; needs no server"
    )
    demo.set_defaults(handler=_demo)

    get = commands.add_parser(
        "get", parents=[common], help="show a user's roles, permissions and attributes"
    )
    _user_argument(get)
    get.add_argument(
        "--no-fetch",
        action="store_true",
        help="read the cache only; never ask the identity provider",
    )
    _show_values_option(get)
    get.set_defaults(handler=_get)

    refresh = commands.add_parser(
        "refresh",
        parents=[common],
        help="fetch a user from the identity provider now and tell every instance",
    )
    _user_argument(refresh)
    _show_values_option(refresh)
    refresh.set_defaults(handler=_refresh)

    invalidate = commands.add_parser(
        "invalidate", parents=[common], help="drop a user's entry on every instance"
    )
    _user_argument(invalidate)
    invalidate.set_defaults(handler=_invalidate)

    stats = commands.add_parser(
        "stats",
        parents=[common],
        help="Redis reachability, cached entries and the settings in effect",
    )
    stats.set_defaults(handler=_stats)
    return parser


def _add_common_options(common: argparse.ArgumentParser) -> None:
    common.add_argument(
        "--redis-url",
        metavar="URL",
        help="Redis to use (env RBAC_ABAC_REDIS_URL, else REDIS_URL, else "
        "redis://localhost:6379/0)",
    )
    common.add_argument(
        "--service",
        metavar="NAME",
        help="service whose attributes to use (env RBAC_ABAC_SERVICE_NAME)",
    )
    common.add_argument(
        "--idp-url",
        metavar="URL",
        help="identity provider's base URL (env IDENTITY_PROVIDER_URL); its "
        "token is read from RBAC_ABAC_IDP_TOKEN only",
    )
    common.add_argument(
        "--json", action="store_true", help="print one JSON object, for scripts"
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", help="log the library's debug messages"
    )


def _user_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("user_id", metavar="USER_ID", help="the user's id")


def _show_values_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--show-values",
        action="store_true",
        help="print attribute values too (they may be personal data); "
        "by default only their names are printed",
    )


# Subcommands


def _demo(args: argparse.Namespace) -> int:
    from .demo import run

    try:
        behaved = run(sys.stdout)
    except ImportError as exc:
        raise _CommandError(EXIT_USAGE, str(exc)) from exc
    return EXIT_OK if behaved else EXIT_NOT_FOUND


def _get(args: argparse.Namespace) -> int:
    user_id = normalize_user_id(args.user_id)
    with _session(args, fetch=not args.no_fetch) as session:
        _ping(session)
        before = session.cache.stats()
        value = session.cache.get(user_id, auto_refresh=not args.no_fetch)
        changes = _changes(before, session.cache.stats())

    if value is None:
        reason = _absence(changes)
        raise _CommandError(EXIT_NOT_FOUND, f"user {user_id!r} {reason}{_of(session)}")

    _show_user(args, value, _source(changes))
    return EXIT_OK


def _refresh(args: argparse.Namespace) -> int:
    user_id = normalize_user_id(args.user_id)
    with _session(args, fetch=True) as session:
        _ping(session)
        try:
            value = session.cache.refresh(user_id)
        except FetchError as exc:
            raise _CommandError(
                EXIT_UNAVAILABLE,
                f"could not refresh user {user_id!r}: {exc}; its old entry is no "
                "longer served",
            ) from exc

    if value is None:
        raise _CommandError(
            EXIT_NOT_FOUND,
            f"user {user_id!r} is unknown to the identity provider{_of(session)}",
        )

    _show_user(args, value, "identity provider (refreshed)")
    return EXIT_OK


def _invalidate(args: argparse.Namespace) -> int:
    user_id = normalize_user_id(args.user_id)
    with _session(args, fetch=False) as session:
        _ping(session)
        was_cached = bool(session.cache.redis.exists(session.cache.key_for(user_id)))
        session.cache.invalidate(user_id)

    if args.json:
        _emit_json(
            {
                "user_id": user_id,
                "service_name": session.settings.service_name,
                "invalidated": True,
                "was_cached": was_cached,
            }
        )
        return EXIT_OK

    held = "an entry was cached" if was_cached else "nothing was cached"
    _emit(f"invalidated user {_clean(user_id)}{_of(session)} ({held})")
    return EXIT_OK


def _stats(args: argparse.Namespace) -> int:
    with _session(args, fetch=False) as session:
        report = _settings_report(session)
        try:
            report["redis"].update(_redis_report(session))
        except _CommandError:
            report["redis"]["reachable"] = False
            _show_stats(args, report)
            raise

        report["counters"] = dict(session.cache.stats())

    _show_stats(args, report)
    return EXIT_OK


# Building the cache


@dataclasses.dataclass
class _Session:
    cache: AttributeCache
    settings: CacheSettings
    connection: ConnectionSettings


@contextmanager
def _session(args: argparse.Namespace, *, fetch: bool) -> Iterator[_Session]:
    """Build the cache as a service would, from the options and the environment.

    Args:
        fetch: Whether misses may be filled from the identity provider; when
            set, an identity provider must be configured.
    """
    settings, connection = load_settings(_overrides(args), [environ_source()])

    with ExitStack() as stack:
        fetcher = None
        if fetch:
            fetcher = stack.enter_context(_identity_provider(connection))

        # The cache must not build an identity provider of its own: this
        # command decides whether one is used, and closes it.
        without_idp = dataclasses.replace(connection, identity_provider_url=None)
        try:
            cache = AttributeCache.from_settings(
                settings, without_idp, fetcher=fetcher, auto_refresh=fetch
            )
        except (RedisError, OSError) as exc:
            raise _unreachable(connection, exc) from exc

        stack.callback(cache.close)
        yield _Session(cache, settings, connection)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Check the options that stand for settings, naming the option if malformed."""
    if args.service is None and "RBAC_ABAC_SERVICE_NAME" not in os.environ:
        raise _CommandError(
            EXIT_USAGE, "no service: pass --service NAME or set RBAC_ABAC_SERVICE_NAME"
        )

    overrides: dict[str, Any] = {}
    for dest, option, attr in _OPTION_SETTINGS:
        value = getattr(args, dest)
        if value is not None:
            overrides[attr] = _setting(attr).parse(value, option)
    return overrides


def _setting(attr: str) -> Setting:
    return next(setting for setting in SETTINGS if setting.attr == attr)


@contextmanager
def _identity_provider(connection: ConnectionSettings) -> Iterator[Any]:
    url = connection.identity_provider_url
    if url is None:
        raise _CommandError(
            EXIT_USAGE,
            "no identity provider: pass --idp-url URL or set IDENTITY_PROVIDER_URL "
            "(get --no-fetch reads the cache only)",
        )

    from .identity_provider import HttpIdentityProvider

    with HttpIdentityProvider.from_settings(connection) as provider:
        yield provider


def _ping(session: _Session) -> float:
    """Check that Redis answers; return the round trip in seconds."""
    started = time.perf_counter()
    try:
        session.cache.redis.ping()
    except (RedisError, OSError) as exc:
        raise _unreachable(session.connection, exc) from exc
    return time.perf_counter() - started


def _unreachable(connection: ConnectionSettings, exc: BaseException) -> _CommandError:
    return _CommandError(
        EXIT_UNAVAILABLE,
        f"cannot reach Redis at {_mask_url(connection.redis_url)}: {_reason(exc)}",
    )


# What happened during a read, from the cache's counters


def _changes(before: Mapping[str, int], after: Mapping[str, int]) -> set[str]:
    return {name for name, value in after.items() if value != before.get(name)}


def _source(changes: set[str]) -> str:
    if "stale_served" in changes:
        return "stale entry (the identity provider is failing)"
    if "fetches" in changes:
        return "identity provider"
    return "cache"


def _absence(changes: set[str]) -> str:
    if "negative_hits" in changes:
        return "is remembered as unknown to the identity provider"
    if "unknown_users" in changes:
        return "is unknown to the identity provider"
    return "is not cached (or its entry is past its TTL)"


def _of(session: _Session) -> str:
    return f" in service {session.settings.service_name!r}"


# Reports


def _user_report(
    value: UserAttributes, source: str, show_values: bool
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "user_id": value.user_id,
        "service_name": value.service_name,
        "source": source,
        "roles": sorted(value.roles),
        "permissions": sorted(value.permissions),
        "attribute_names": sorted(value.attributes),
        "fetched_at": value.fetched_at,
        "age_seconds": round(max(0.0, time.time() - value.fetched_at), 3),
    }
    if show_values:
        report["attributes"] = value.to_dict()["attributes"]
    return report


def _show_user(args: argparse.Namespace, value: UserAttributes, source: str) -> None:
    report = _user_report(value, source, args.show_values)
    if args.json:
        _emit_json(report)
        return

    fetched = datetime.fromtimestamp(value.fetched_at, timezone.utc)
    rows = [
        ("user", _clean(value.user_id)),
        ("service", value.service_name),
        ("source", source),
        ("roles", _names(report["roles"])),
        ("permissions", _names(report["permissions"])),
        ("attributes", _names(report["attribute_names"])),
    ]
    if args.show_values:
        rows += [
            (f"  {_clean(name)}", json.dumps(item, ensure_ascii=True))
            for name, item in sorted(report["attributes"].items())
        ]
    rows.append(
        (
            "age",
            f"{_duration(report['age_seconds'])} "
            f"(fetched {fetched:%Y-%m-%d %H:%M:%S} UTC)",
        )
    )
    _emit_rows(rows)


def _settings_report(session: _Session) -> dict[str, Any]:
    settings = dataclasses.asdict(session.settings)
    settings["signing_key"] = "set" if session.settings.signing_key else "not set"
    connection = session.connection
    return {
        "service_name": session.settings.service_name,
        "redis": {
            "url": _mask_url(connection.redis_url),
            "cluster": connection.redis_cluster,
            "timeout_seconds": connection.redis_timeout,
        },
        "identity_provider": {
            "url": _mask_url(connection.identity_provider_url),
            "token": "set" if connection.idp_token else "not set",
        },
        "refresh_tokens_configured": len(connection.refresh_tokens),
        "settings": settings,
    }


def _redis_report(session: _Session) -> dict[str, Any]:
    """Ping Redis and count the service's entries, within a bounded time."""
    ping = _ping(session)
    client = session.cache.redis
    settings = session.settings
    pattern = KeySpace(settings.key_prefix, settings.service_name).entry_pattern()
    count, complete = _count_keys(client, pattern)
    return {
        "reachable": True,
        "ping_ms": round(ping * 1000, 3),
        "version": _server_version(client),
        "entries": {"count": count, "complete": complete, "pattern": pattern},
    }


def _count_keys(client: RedisClient, pattern: str) -> tuple[int, bool]:
    """Count keys matching ``pattern``; ``False`` if the count was cut short.

    SCAN is bounded in calls and time, so a huge keyspace cannot hold the
    command (or the server) for long.
    """
    deadline = time.monotonic() + _SCAN_MAX_SECONDS
    if not isinstance(client, redis.Redis):
        return _count_keys_in_cluster(client, pattern, deadline)

    count, cursor = 0, 0
    for _ in range(_SCAN_MAX_CALLS):
        cursor, keys = client.scan(cursor=cursor, match=pattern, count=_SCAN_BATCH)
        count += len(keys)
        if cursor == 0:
            return count, True
        if time.monotonic() > deadline:
            break
    return count, False


def _count_keys_in_cluster(
    client: RedisClient, pattern: str, deadline: float
) -> tuple[int, bool]:
    count = 0
    for _ in client.scan_iter(match=pattern, count=_SCAN_BATCH):
        count += 1
        if count >= _SCAN_MAX_CALLS * _SCAN_BATCH or time.monotonic() > deadline:
            return count, False
    return count, True


def _server_version(client: RedisClient) -> str | None:
    try:
        info = client.info("server")
    except RedisError:
        return None
    version = info.get("redis_version") if isinstance(info, dict) else None
    return str(version) if version is not None else None


def _show_stats(args: argparse.Namespace, report: dict[str, Any]) -> None:
    if args.json:
        _emit_json(report)
        return

    redis_info = report["redis"]
    rows = [
        ("service", report["service_name"]),
        (
            "redis",
            f"{redis_info['url']}{' (cluster)' if redis_info['cluster'] else ''}",
        ),
        ("reachable", _reachability(redis_info)),
    ]
    if "entries" in redis_info:
        rows.append(("cached entries", _entries(redis_info["entries"])))

    idp = report["identity_provider"]
    rows.append(
        ("identity provider", f"{idp['url'] or 'not configured'}, token {idp['token']}")
    )
    rows.append(("refresh tokens", f"{report['refresh_tokens_configured']} configured"))
    _emit_rows(rows)

    _emit("\nsettings in effect")
    _emit_rows(
        [
            (f"  {name}", _setting_text(value))
            for name, value in report["settings"].items()
        ]
    )

    if "counters" in report:
        _emit("\ncounters of this process (they start at zero in a new process)")
        _emit_rows(
            [(f"  {name}", str(value)) for name, value in report["counters"].items()]
        )


def _reachability(redis_info: Mapping[str, Any]) -> str:
    if not redis_info.get("reachable"):
        return "no"
    version = redis_info.get("version")
    server = f", Redis {version}" if version else ""
    return f"yes (ping {redis_info['ping_ms']:.2f} ms{server})"


def _entries(entries: Mapping[str, Any]) -> str:
    bound = "" if entries["complete"] else "at least "
    return (
        f"{bound}{entries['count']}, users remembered as unknown included "
        f"(keys {entries['pattern']})"
    )


def _setting_text(value: Any) -> str:
    if isinstance(value, float) and value >= 60:
        return f"{value:g} ({_duration(value)})"
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


# Output


def _emit(text: str) -> None:
    sys.stdout.write(text + "\n")


def _emit_json(report: Mapping[str, Any]) -> None:
    _emit(json.dumps(report, indent=2, ensure_ascii=True))


def _emit_rows(rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    for label, text in rows:
        _emit(f"{label:<{width}}  {text}")


def _fail(code: int, message: str) -> int:
    """Write ``message`` to standard error on one line and return ``code``."""
    sys.stderr.write(f"{_PROG}: error: {' '.join(message.split())}\n")
    return code


def _names(names: Sequence[str]) -> str:
    return ", ".join(_clean(name) for name in names) if names else "(none)"


def _clean(text: str) -> str:
    """Return ``text`` safe for a terminal: escaped if it is not printable."""
    return text if text.isprintable() else ascii(text)


def _duration(seconds: float) -> str:
    """Say ``seconds`` the way people read durations: ``4.2 s``, ``1 h 30 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"

    remaining = int(seconds)
    parts = []
    for unit, size in _DURATION_UNITS:
        amount, remaining = divmod(remaining, size)
        if amount:
            parts.append(f"{amount} {unit}")
    return " ".join(parts[:2])


def _mask_url(url: str | None) -> str | None:
    """Return ``url`` with any user, password and query replaced by ``***``."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparseable URL)"

    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


@contextmanager
def _library_logging(enabled: bool, verbose: bool) -> Iterator[None]:
    """Show the library's warnings (or debug messages) on standard error.

    The command is an application, so it may add a handler, and takes it
    away again so that calling :func:`main` in-process leaves no trace.
    """
    if not enabled:
        yield
        return

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{_PROG}: %(levelname)s: %(message)s"))
    library = logging.getLogger(_LIBRARY_LOGGER)
    level = library.level
    library.addHandler(handler)
    if verbose:
        library.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        library.removeHandler(handler)
        library.setLevel(level)
