"""Real Redis Cluster, Sentinel and TLS deployments on loopback, for tests.

Every process runs in its own temporary directory on a free loopback port
and is stopped by PID; nothing here touches a shared server. The functions
at the bottom run in child processes started with ``spawn``, so they must
stay importable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
import redis
from redis.cluster import RedisCluster

from rbac_abac_cache import AttributeCache, AttributesUnavailableError

from .redis_server import RedisServer, RedisServerUnavailableError, free_port
from .workers import RedisBackedFetcher

SENTINEL_SERVICE = "rbac-abac-test"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-secret"
CACHE_USER = "cache"
CACHE_PASSWORD = "cache-secret"
DATA_PASSWORD = "data-secret"
SENTINEL_PASSWORD = "sentinel-secret"

# The least a cache needs, as documented in docs/scaling.md.
CACHE_ACL_RULES = (
    "resetkeys",
    "~rbac_abac:*",
    "resetchannels",
    "&rbac_abac:*",
    "-@all",
    "+get",
    "+set",
    "+mget",
    "+del",
    "+exists",
    "+incr",
    "+pexpire",
    "+pttl",
    "+eval",
    "+evalsha",
    "+script|load",
    "+publish",
    "+subscribe",
    "+unsubscribe",
    "+ping",
)

# A cluster client also learns the slot map and how to find keys in commands.
CLUSTER_ACL_RULES = ("+cluster|slots", "+command")

T = TypeVar("T")


def in_ci() -> bool:
    """Whether the suite runs in CI, where a missing binary is a failure."""
    return os.environ.get("CI") == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test because a deployment cannot start, or fail it under CI."""
    if in_ci():
        pytest.fail(f"CI needs this deployment: {reason}")
    pytest.skip(f"cannot start the deployment: {reason}")


def start_or_skip(start: Callable[[], T]) -> T:
    """Call ``start``; if a binary or server is missing, skip, or fail under CI."""
    try:
        return start()
    except RedisServerUnavailableError as exc:
        unavailable(str(exc))


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RedisServerUnavailableError(f"{name} is not on PATH")
    return path


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.02
) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(interval)
    raise RedisServerUnavailableError(
        f"timed out after {timeout:g}s waiting for {what}"
    )


# Redis Cluster


class LocalCluster:
    """A Redis Cluster of ``masters`` masters and no replicas.

    Nodes notice a dead peer after ``node_timeout_ms``; with Redis's default
    ``cluster-require-full-coverage yes`` the whole cluster then refuses
    keyed commands until the peer is back, as a production cluster without
    replicas would.
    """

    def __init__(self, masters: int = 3, *, node_timeout_ms: int = 1000) -> None:
        self.redis_cli = _binary("redis-cli")
        self.nodes = [
            RedisServer(
                None,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(node_timeout_ms),
                # An explicit bus port, because the default (port + 10000)
                # may be taken or out of range for a random free port.
                "--cluster-port",
                str(free_port()),
            )
            for _ in range(masters)
        ]

    @property
    def url(self) -> str:
        """The URL of the first node, which is enough to find the others."""
        return self.nodes[0].url

    def client(self, **options: Any) -> RedisCluster:
        """A cluster client with redis-py's defaults, for checking on the cache."""
        return RedisCluster(host="127.0.0.1", port=self.nodes[0].port, **options)

    def start(self, timeout: float = 20.0) -> LocalCluster:
        """Start every node, join them into a cluster and wait until it is ok."""
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            subprocess.run(
                [
                    self.redis_cli,
                    "--cluster",
                    "create",
                    *addresses,
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=timeout,
            )
            self.wait_ok(timeout)
        except (subprocess.SubprocessError, RedisServerUnavailableError) as exc:
            self.stop()
            raise RedisServerUnavailableError(f"cluster did not form: {exc}") from exc
        return self

    def wait_ok(self, timeout: float = 20.0) -> None:
        """Wait until every node reports ``cluster_state:ok``."""

        def all_ok() -> bool:
            return all(cluster_state(node) == "ok" for node in self.nodes)

        wait_until(all_ok, timeout, "cluster_state:ok on every node")

    def node_for(self, key: str) -> RedisServer:
        """Return the node that serves ``key``'s slot."""
        probe = self.nodes[0].client(socket_timeout=1)
        try:
            slot = int(probe.cluster("KEYSLOT", key))
            ranges = probe.cluster("SLOTS")
        finally:
            probe.close()

        for start, end, master, *_ in ranges:
            if start <= slot <= end:
                port = int(master[1])
                return next(node for node in self.nodes if node.port == port)
        raise LookupError(f"no node serves slot {slot}")

    def restart(self, node: RedisServer, timeout: float = 20.0) -> None:
        """Start a killed node again (empty, same identity) and wait until ok."""
        node.start()
        self.wait_ok(timeout)

    def flush(self) -> None:
        """Delete every key on every live node."""
        for node in self.nodes:
            if node.process is not None:
                client = node.client(socket_timeout=1)
                client.flushall()
                client.close()

    def stop(self) -> None:
        """Stop every node by PID and remove their directories."""
        for node in self.nodes:
            node.stop()


def cluster_state(node: RedisServer) -> str:
    """The ``cluster_state`` that ``node`` reports (``ok`` or ``fail``)."""
    client = node.client(socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        info = client.execute_command("CLUSTER INFO")
    finally:
        client.close()
    return str(info.get("cluster_state", "unknown"))


# Sentinel


class PasswordServer(RedisServer):
    """A redis-server whose default user needs :data:`DATA_PASSWORD`."""

    def __init__(self, *extra_args: str) -> None:
        super().__init__(
            None,
            "--requirepass",
            DATA_PASSWORD,
            "--masterauth",
            DATA_PASSWORD,
            # A replica's first sync would otherwise wait five seconds.
            "--repl-diskless-sync-delay",
            "0",
        )
        self.extra_args += extra_args

    def client(self, **options: Any) -> redis.Redis:
        """A client that knows the password."""
        options.setdefault("password", DATA_PASSWORD)
        return super().client(**options)


class SentinelServer(RedisServer):
    """One redis-server in sentinel mode, watching the master on ``master_port``.

    It needs :data:`SENTINEL_PASSWORD` from clients and other sentinels, and
    knows :data:`DATA_PASSWORD` for the master and replicas.
    """

    def __init__(
        self,
        master_port: int,
        *,
        down_after_ms: int = 500,
        failover_timeout_ms: int = 2000,
    ) -> None:
        super().__init__(None)
        self.master_port = master_port
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    def client(self, **options: Any) -> redis.Redis:
        """A client that knows the sentinels' password."""
        options.setdefault("password", SENTINEL_PASSWORD)
        return super().client(**options)

    def start(self, timeout: float = 10.0) -> SentinelServer:
        """Write the sentinel's configuration and start it."""
        name = SENTINEL_SERVICE
        config = self.directory / "sentinel.conf"
        config.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f'dir "{self.directory}"',
                    f'logfile "{self.directory / "sentinel.log"}"',
                    f"requirepass {SENTINEL_PASSWORD}",
                    f"sentinel sentinel-pass {SENTINEL_PASSWORD}",
                    f"sentinel monitor {name} 127.0.0.1 {self.master_port} 2",
                    f"sentinel auth-pass {name} {DATA_PASSWORD}",
                    f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
                    f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
                    f"sentinel parallel-syncs {name} 1",
                    "",
                ]
            )
        )
        self.process = subprocess.Popen(
            [self.binary, str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_until_ready(timeout)
        return self


class SentinelSet:
    """A master, one replica and three sentinels with short failure detection."""

    def __init__(self) -> None:
        self.master = PasswordServer()
        self.replica = PasswordServer("--replicaof", "127.0.0.1", str(self.master.port))
        self.sentinels = [SentinelServer(self.master.port) for _ in range(3)]

    @property
    def url(self) -> str:
        """The ``redis+sentinel://`` URL naming every sentinel, with passwords."""
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return (
            f"redis+sentinel://:{DATA_PASSWORD}@{hosts}/{SENTINEL_SERVICE}/0"
            f"?sentinel_password={SENTINEL_PASSWORD}"
        )

    @property
    def servers(self) -> list[RedisServer]:
        """The master and the replica, whichever role each has now."""
        return [self.master, self.replica]

    def start(self, timeout: float = 20.0) -> SentinelSet:
        """Start the servers, then the sentinels; wait until all know each other."""
        try:
            self.master.start()
            self.replica.start()
            wait_until(self._replica_in_sync, timeout, "the replica to sync")
            for sentinel in self.sentinels:
                sentinel.start()
            wait_until(self._sentinels_ready, timeout, "sentinels to know each other")
        except RedisServerUnavailableError:
            self.stop()
            raise
        return self

    def _replica_in_sync(self) -> bool:
        client = self.replica.client(socket_timeout=0.5)
        try:
            info = client.info("replication")
        finally:
            client.close()
        return bool(info.get("master_link_status") == "up")

    def _sentinels_ready(self) -> bool:
        for sentinel in self.sentinels:
            client = sentinel.client(socket_timeout=0.5)
            try:
                replicas = client.sentinel_slaves(SENTINEL_SERVICE)
                others = client.sentinel_sentinels(SENTINEL_SERVICE)
            finally:
                client.close()
            if len(replicas) < 1 or len(others) < len(self.sentinels) - 1:
                return False
        return True

    def master_port(self) -> int:
        """The port of the master as the first live sentinel reports it."""
        for sentinel in self.sentinels:
            client = sentinel.client(socket_timeout=0.5)
            try:
                _, port = client.sentinel_get_master_addr_by_name(SENTINEL_SERVICE)
                return int(port)
            except redis.RedisError:
                continue
            finally:
                client.close()
        raise RedisServerUnavailableError("no sentinel answered")

    def server_on(self, port: int) -> RedisServer:
        """The master or replica listening on ``port``."""
        return next(server for server in self.servers if server.port == port)

    def stop(self) -> None:
        """Stop the sentinels and servers by PID and remove their directories."""
        for process in [*self.sentinels, self.replica, self.master]:
            process.stop()


# TLS with ACL users


class Certificates:
    """A throwaway CA and a server certificate for 127.0.0.1, made with openssl."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = directory / "ca.crt"
        self.cert = directory / "server.crt"
        self.key = directory / "server.key"

    def create(self) -> Certificates:
        """Run the openssl CLI to make the CA, the key and the signed certificate."""
        openssl = _binary("openssl")
        ca_key = self.directory / "ca.key"
        request = self.directory / "server.csr"
        extensions = self.directory / "server.ext"
        extensions.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
        new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        commands = [
            [
                *(openssl, "req", "-x509", *new_key, "-nodes", "-days", "2"),
                *("-keyout", str(ca_key), "-out", str(self.ca)),
                *("-subj", "/CN=rbac-abac-cache test CA"),
            ],
            [
                *(openssl, "req", *new_key, "-nodes", "-keyout", str(self.key)),
                *("-out", str(request), "-subj", "/CN=127.0.0.1"),
            ],
            [
                *(openssl, "x509", "-req", "-in", str(request), "-days", "2"),
                *("-CA", str(self.ca), "-CAkey", str(ca_key), "-CAcreateserial"),
                *("-out", str(self.cert), "-extfile", str(extensions)),
            ],
        ]
        for command in commands:
            try:
                subprocess.run(command, check=True, capture_output=True, timeout=20)
            except subprocess.CalledProcessError as exc:
                raise RedisServerUnavailableError(
                    f"openssl failed: {exc.stderr.decode(errors='replace')[-500:]}"
                ) from exc
        return self


class TlsUnsupportedError(RedisServerUnavailableError):
    """This redis-server was built without TLS."""


class TlsRedisServer(RedisServer):
    """A redis-server that listens only on a TLS port, with ACL users.

    The ``default`` user is off; ``admin`` may do anything and ``cache`` has
    exactly :data:`CACHE_ACL_RULES`.
    """

    def __init__(self) -> None:
        super().__init__(None)
        self.certificates = Certificates(self.directory)
        acl = self.directory / "users.acl"
        acl.write_text(
            "\n".join(
                [
                    "user default off",
                    f"user {ADMIN_USER} on >{ADMIN_PASSWORD} ~* &* +@all",
                    f"user {CACHE_USER} on >{CACHE_PASSWORD} "
                    + " ".join(CACHE_ACL_RULES),
                    "",
                ]
            )
        )
        # A later "--port" wins, so the plain port RedisServer passes is closed.
        self.extra_args = (
            "--port",
            "0",
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            str(self.certificates.cert),
            "--tls-key-file",
            str(self.certificates.key),
            "--tls-ca-cert-file",
            str(self.certificates.ca),
            "--tls-auth-clients",
            "no",
            "--aclfile",
            str(acl),
        )

    @property
    def url(self) -> str:
        """The ``rediss://`` URL of the cache user, trusting the test CA."""
        return self.url_for(CACHE_USER, CACHE_PASSWORD)

    def url_for(self, user: str, password: str) -> str:
        """The ``rediss://`` URL of ``user``, trusting the test CA."""
        return (
            f"rediss://{user}:{password}@127.0.0.1:{self.port}/0"
            f"?ssl_cert_reqs=required&ssl_ca_certs={self.certificates.ca}"
        )

    def client(self, **options: Any) -> redis.Redis:
        """A TLS client logged in as the admin user."""
        options.setdefault("username", ADMIN_USER)
        options.setdefault("password", ADMIN_PASSWORD)
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            ssl=True,
            ssl_ca_certs=str(self.certificates.ca),
            ssl_cert_reqs="required",
            **options,
        )

    def start(self, timeout: float = 10.0) -> TlsRedisServer:
        """Make the certificates and start; say so first when TLS is not built in."""
        if not tls_built_in(self.binary):
            raise TlsUnsupportedError(
                f"{self.binary} has no OpenSSL symbols: it was built without TLS "
                "(BUILD_TLS=no, or TLS as a module this suite does not load)"
            )
        self.certificates.create()
        super().start(timeout)
        return self


def tls_built_in(binary: str) -> bool:
    """Whether ``binary`` links OpenSSL, as a redis-server built with TLS does."""
    return b"SSL_CTX_new" in Path(binary).resolve().read_bytes()


# Code run in child processes


def cluster_stampede(
    cluster_url: str,
    counter_url: str,
    ready: Event,
    start: Event,
    threads: int,
    delay: float,
    results: Any,
) -> None:
    """Read one cold user through a cluster from ``threads`` threads at ``start``.

    The fetcher counts its calls on the plain server at ``counter_url``;
    ``ready`` is set once the cache is connected.
    """
    cache = AttributeCache.from_env(
        redis=cluster_url,
        redis_cluster=True,
        fetcher=RedisBackedFetcher(counter_url, delay),
        service_name="billing_api",
    )
    cache.get("warm-up-connections", auto_refresh=False)
    ready.set()
    results.put(hammer(cache, "cold", start, threads))
    cache.close()


def hammer(
    cache: AttributeCache, user_id: str, start: Event | threading.Event, threads: int
) -> tuple[int, list[str]]:
    """Read ``user_id`` from ``threads`` threads at once; return answers and errors."""
    answers: list[bool] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        start.wait(30)
        try:
            value = cache.get(user_id)
            ok = value is not None and value.has_role("admin")
            detail = repr(value)
        except AttributesUnavailableError as exc:
            ok, detail = False, repr(exc)
        with lock:
            answers.append(ok)
            if not ok:
                errors.append(detail)

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    return len(answers), errors


def spread_user_ids(count: int, prefix: str = "user-") -> list[str]:
    """``count`` user ids, which the hash tags spread over every slot range."""
    return [f"{prefix}{number}" for number in range(count)]


def join_processes(processes: Sequence[Any], timeout: float) -> Iterator[str]:
    """Join ``processes``; kill and name each one still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.1, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(5)
            yield f"process {process.pid} did not finish in time"
