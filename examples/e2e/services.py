"""The processes of the end-to-end run: a private Redis and three gunicorn services.

Everything listens on 127.0.0.1, on ports picked free at start, and keeps
its files in one temporary directory. Every process is started in a session
of its own and remembered, so that it can be stopped by its id (the group of
a gunicorn master is the master and its workers) on success, on failure, on
Ctrl-C and at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import redis
import requests

EXAMPLES = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

START_TIMEOUT = 30.0
_PR_SET_PDEATHSIG = 1
STOP_TIMEOUT = 10.0

# Variables of the calling shell that would change what the services do.
_INHERITED_PREFIXES = ("RBAC_ABAC_", "DJANGO_", "IDP_")
_INHERITED_NAMES = ("REDIS_URL", "IDENTITY_PROVIDER_URL")


class StartError(RuntimeError):
    """A process did not start, or did not become ready in time."""


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def port_refuses(port: int) -> bool:
    """Whether a connection to ``port`` on 127.0.0.1 is refused."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return False
    except OSError:
        return True


class Process:
    """One started process, its log file, and how to stop it by its id."""

    _started: list[Process] = []

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        self._popen = subprocess.Popen(  # noqa: S603 - argv is built here, not from input
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_stop_with_parent if sys.platform == "linux" else None,
        )
        Process._started.append(self)

    @property
    def pid(self) -> int:
        """The process id (also its process group's id)."""
        return self._popen.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self._popen.poll() is None

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the process itself, by its id."""
        if self.alive():
            os.kill(self.pid, signum)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the process to end; whether it did."""
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> None:
        """Ask the process to stop; kill its group if it has not within ``timeout``."""
        self.send_signal(signum)
        if not self.wait(timeout):
            # The group is the process and the workers it forked.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.wait(STOP_TIMEOUT)
        self._log.close()

    def log_tail(self, lines: int = 25) -> str:
        """The last ``lines`` lines of the process's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    @classmethod
    def stop_all(cls) -> None:
        """Stop every process started by this run that is still running."""
        while cls._started:
            process = cls._started.pop()
            if process.alive():
                process.stop(timeout=5.0)


atexit.register(Process.stop_all)


def _stop_with_parent() -> None:
    """In the child, before exec: receive SIGTERM when the run itself dies.

    atexit does not run when the run is killed with SIGKILL; the kernel
    still tells its children.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without our settings, plus ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_INHERITED_PREFIXES) and name not in _INHERITED_NAMES
    }
    env.update(
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    env.update(extra)
    return env


class RedisServer:
    """A private ``redis-server`` without persistence, restartable on its port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://{HOST}:{self.port}/0"
        self.process: Process | None = None

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        if shutil.which("redis-server") is None:
            raise StartError(
                "redis-server is not on the PATH: apt-get install redis-server"
            )
        argv = [
            "redis-server",
            "--port", str(self.port),
            "--bind", HOST,
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip
        self.process = Process(
            "redis",
            argv,
            clean_environment({}),
            self.workdir,
            self.workdir / "redis.log",
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise StartError(f"redis-server exited:\n{self.process.log_tail()}")
            with contextlib.suppress(redis.RedisError), self.client() as client:
                if client.ping():
                    return
            time.sleep(0.05)
        raise StartError("redis-server did not answer PING in time")

    def kill(self) -> None:
        """SIGKILL the server by its pid, as a crash would."""
        if self.process is not None:
            self.process.stop(signal.SIGKILL)

    def client(self) -> redis.Redis:
        """A short-lived client of this server."""
        return redis.Redis.from_url(
            self.url, socket_timeout=2, socket_connect_timeout=2
        )


@dataclass
class ServiceSpec:
    """How one service is served by gunicorn."""

    name: str
    directory: str
    app: str
    workers: int = 2
    threads: int = 1
    preload: bool = False


class Service:
    """One service behind gunicorn on a free port of 127.0.0.1."""

    def __init__(
        self, spec: ServiceSpec, workdir: Path, env: Mapping[str, str]
    ) -> None:
        self.spec = spec
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.workdir = workdir
        self.env = dict(env)
        self.process: Process | None = None

    @property
    def name(self) -> str:
        """The service's name, as in docker-compose."""
        return self.spec.name

    def command(self) -> list[str]:
        """The gunicorn command line."""
        spec = self.spec
        argv = [
            sys.executable, "-m", "gunicorn",
            "--bind", f"{HOST}:{self.port}",
            "--workers", str(spec.workers),
            "--threads", str(spec.threads),
            "--graceful-timeout", "5",
            "--access-logfile", str(self.workdir / f"{self.name}.access.log"),
            "--error-logfile", "-",
        ]  # fmt: skip
        if spec.preload:
            argv.append("--preload")
        argv.extend(_gunicorn_options())
        argv.append(spec.app)
        return argv

    def start(self, env_overrides: Mapping[str, str] | None = None) -> None:
        """Start gunicorn, without waiting for it; see :meth:`wait_ready`."""
        env = clean_environment({**self.env, **(env_overrides or {})})
        self.process = Process(
            self.name,
            self.command(),
            env,
            EXAMPLES / self.spec.directory,
            self.workdir / f"{self.name}.log",
        )

    def restart(self, env_overrides: Mapping[str, str] | None = None) -> None:
        """Start gunicorn again on the same port and wait until it answers."""
        self.start(env_overrides)
        self.wait_ready()

    def wait_ready(self) -> None:
        """Wait until the service answers ``/healthz``.

        Raises:
            StartError: It exited, or did not answer within ``START_TIMEOUT``.
        """
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise StartError(f"{self.name} exited:\n{self.process.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                answer = requests.get(f"{self.url}/healthz", timeout=1)
                if answer.status_code == 200:
                    return
            time.sleep(0.05)
        raise StartError(
            f"{self.name} was not ready in time:\n{self.process.log_tail()}"
        )

    def stop(self, signum: int = signal.SIGTERM) -> float:
        """Stop gunicorn by its master's pid; return the seconds it took."""
        started = time.monotonic()
        if self.process is not None:
            self.process.stop(signum)
        return time.monotonic() - started

    def manage(self, *args: str) -> None:
        """Run ``manage.py`` with this service's environment (Django services)."""
        completed = subprocess.run(  # noqa: S603 - argv is built here
            [sys.executable, "manage.py", *args],
            cwd=EXAMPLES / self.spec.directory,
            env=clean_environment(self.env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if completed.returncode != 0:
            output = completed.stdout + completed.stderr
            raise StartError(f"manage.py {' '.join(args)} failed:\n{output}")


def _gunicorn_options() -> list[str]:
    """Options that keep gunicorns of one machine from sharing files."""
    from gunicorn.config import Config

    # Recent gunicorns open a control socket at one path per user by default;
    # three of them would fight over it.
    if "control_socket" in Config().settings:
        return ["--no-control-socket"]
    return []


SPECS = {
    "identity-provider": ServiceSpec(
        "identity-provider", "identity_provider", "idp.wsgi:application"
    ),
    "billing-api": ServiceSpec(
        "billing-api", "billing_api", "billing:app", threads=4, preload=True
    ),
    "inventory-api": ServiceSpec(
        "inventory-api", "inventory_api", "inventory.wsgi:application"
    ),
}


@dataclass(frozen=True)
class Secrets:
    """The tokens and keys of one run, made fresh each time."""

    idp_token: str
    admin_token: str
    refresh_token: str
    django_secret: str

    @classmethod
    def generate(cls) -> Secrets:
        """Random values, so no run can reach another's services."""
        return cls(*(secrets.token_urlsafe(24) for _ in range(4)))


class Cluster:
    """Redis, the identity provider, billing and inventory, wired as in docker-compose.

    Args:
        workdir: Directory for Redis, the SQLite database and the logs.
        ttl: ``RBAC_ABAC_CACHE_TTL`` of every service.
    """

    def __init__(self, workdir: Path, ttl: float) -> None:
        self.workdir = workdir
        self.ttl = ttl
        self.secrets = Secrets.generate()
        self.redis = RedisServer(workdir)
        self.services: dict[str, Service] = {}
        idp_url = ""
        for name, spec in SPECS.items():
            service = Service(spec, workdir, {})
            if name == "identity-provider":
                idp_url = service.url
            self.services[name] = service
        for name, service in self.services.items():
            service.env = self.environment(name, idp_url)

    @property
    def idp(self) -> Service:
        """The identity provider."""
        return self.services["identity-provider"]

    @property
    def billing(self) -> Service:
        """The billing API (Flask)."""
        return self.services["billing-api"]

    @property
    def inventory(self) -> Service:
        """The inventory API (Django)."""
        return self.services["inventory-api"]

    def environment(self, name: str, idp_url: str) -> dict[str, str]:
        """The variables a service gets; docker-compose sets the same names."""
        common = {
            "RBAC_ABAC_REDIS_URL": self.redis.url,
            "RBAC_ABAC_CACHE_TTL": f"{self.ttl:g}",
        }
        django = {
            "DJANGO_SECRET_KEY": self.secrets.django_secret,
            "DJANGO_ALLOWED_HOSTS": f"{HOST},localhost",
        }
        if name == "identity-provider":
            return {
                **common,
                **django,
                "IDP_VAR_DIR": str(self.workdir / "identity-provider"),
                "RBAC_ABAC_IDP_TOKEN": self.secrets.idp_token,
                "RBAC_ABAC_REFRESH_TOKEN": self.secrets.refresh_token,
                "IDP_ADMIN_TOKEN": self.secrets.admin_token,
            }

        service = {
            **common,
            "IDENTITY_PROVIDER_URL": idp_url,
            "RBAC_ABAC_IDP_TOKEN": self.secrets.idp_token,
        }
        if name == "billing-api":
            # Billing keeps an in-process tier too, so a refresh must reach
            # each worker's memory through Redis pub/sub.
            return {
                **service,
                "RBAC_ABAC_SERVICE_NAME": "billing_api",
                "RBAC_ABAC_CACHE_LOCAL_TTL": "60",
            }
        return {**service, **django, "RBAC_ABAC_SERVICE_NAME": "inventory_api"}

    def start(self) -> None:
        """Start Redis, prepare the provider's database, then start the services."""
        self.redis.start()
        self.idp.manage("migrate", "--noinput", "-v", "0")
        self.idp.manage("seed_directory")
        for service in self.services.values():
            service.start()
        for service in self.services.values():
            service.wait_ready()

    def stop(self) -> None:
        """Stop everything this cluster started."""
        for service in self.services.values():
            service.stop()
        self.redis.kill()

    def logs(self) -> Iterator[tuple[str, str]]:
        """The tail of each process's log, for a failure report."""
        processes = [self.redis.process] + [s.process for s in self.services.values()]
        for process in processes:
            if process is not None:
                yield process.name, process.log_tail()
