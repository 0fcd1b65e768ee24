"""Check that ``docker-compose.yml`` describes the services this run starts.

The end-to-end run is the Docker-free twin of the compose file: the same
services, served by gunicorn the same way, reading the same environment
variable names (the values differ: ports, tokens, a short TTL). This check
keeps the two from drifting apart.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from services import EXAMPLES, Cluster, ServiceSpec

COMPOSE_FILE = EXAMPLES / "docker-compose.yml"

# Set in docker-compose.yml only: the run never logs into the Django admin.
COMPOSE_ONLY = {"identity-provider": {"IDP_ADMIN_PASSWORD"}}


def compose_mismatches(cluster: Cluster, path: Path = COMPOSE_FILE) -> list[str]:
    """Describe every way ``path`` differs from what ``cluster`` starts."""
    try:
        import yaml
    except ImportError:
        return ["cannot read it: pip install -r examples/requirements.txt (PyYAML)"]

    services: dict[str, Any] = yaml.safe_load(path.read_text())["services"]
    problems = []
    for name, service in cluster.services.items():
        declared = services.get(name)
        if declared is None:
            problems.append(f"service {name} is missing")
            continue
        problems += _environment(
            name, set(declared.get("environment", {})), service.env
        )
        problems += _command(name, declared, service.spec)
    return problems


def _environment(name: str, declared: set[str], used: dict[str, str]) -> list[str]:
    expected = set(used) | COMPOSE_ONLY.get(name, set())
    problems = []
    if declared - expected:
        problems.append(f"{name} sets {sorted(declared - expected)}, the run does not")
    if expected - declared:
        problems.append(f"{name} lacks {sorted(expected - declared)}")
    return problems


def _command(name: str, declared: dict[str, Any], spec: ServiceSpec) -> list[str]:
    command = declared.get("command", "")
    text = command if isinstance(command, str) else shlex.join(command)
    tokens = text.replace('"', " ").split()
    if "gunicorn" not in tokens:
        return [f"{name} is not served by gunicorn"]

    tokens = tokens[tokens.index("gunicorn") + 1 :]
    found = {
        "workers": _option(tokens, "--workers", "1"),
        "threads": _option(tokens, "--threads", "1"),
        "preload": "--preload" in tokens,
        "app": tokens[-1],
        "directory": Path(declared.get("working_dir", "")).name,
    }
    wanted = {
        "workers": str(spec.workers),
        "threads": str(spec.threads),
        "preload": spec.preload,
        "app": spec.app,
        "directory": spec.directory,
    }
    return [
        f"{name} {key} is {found[key]!r}, the run uses {wanted[key]!r}"
        for key in wanted
        if found[key] != wanted[key]
    ]


def _option(tokens: list[str], name: str, default: str) -> str:
    if name in tokens and tokens.index(name) + 1 < len(tokens):
        return tokens[tokens.index(name) + 1]
    return default
