"""End-to-end run of the three example services: ``make e2e``.

Starts a private Redis and the identity provider, billing and inventory
behind gunicorn on free ports of 127.0.0.1, drives the six scenarios of
``examples/README.md`` over HTTP, prints one line per scenario and a total,
stops everything it started, and exits non-zero if anything failed.

    python examples/e2e [--ttl SECONDS] [--keep] [--only N ...]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from client import Http
from compose import compose_mismatches
from scenarios import SCENARIOS, Run, ScenarioError
from services import Cluster, Process, StartError


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios; return the exit status."""
    options = _parse(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="rbac-abac-e2e-"))
    started = time.monotonic()
    passed = failed = 0
    interrupted = False
    cluster = Cluster(workdir, ttl=options.ttl)

    try:
        mismatches = compose_mismatches(cluster)
        if mismatches:
            print(f"FAIL docker-compose.yml: {'; '.join(mismatches)}")
            failed += 1

        cluster.start()
        print(
            f"started redis and 3 services in {time.monotonic() - started:.1f}s "
            f"(TTL {options.ttl:g}s, logs in {workdir})"
        )
        run = Run(cluster, Http(cluster))
        for number, (title, scenario) in enumerate(SCENARIOS, start=1):
            if options.only and number not in options.only:
                continue
            if _run_one(run, number, title, scenario):
                passed += 1
            else:
                failed += 1
    except StartError as exc:
        print(f"FAIL start: {exc}")
        failed += 1
    except KeyboardInterrupt:
        print("interrupted")
        interrupted = True
        failed += 1
    finally:
        if failed and not interrupted:
            _print_logs(cluster)
        cluster.stop()
        Process.stop_all()
        if options.keep or failed:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"{passed} passed, {failed} failed in {time.monotonic() - started:.1f}s")
    return 1 if failed else 0


def _run_one(run: Run, number: int, title: str, scenario: Callable[[Run], str]) -> bool:
    started = time.monotonic()
    name = f"scenario {number}: {title}"
    try:
        detail = scenario(run)
    except ScenarioError as exc:
        print(f"FAIL {name}: {exc} ({time.monotonic() - started:.1f}s)")
        return False
    except Exception:
        # A crash is a failure too; its trace says where.
        print(f"FAIL {name}: crashed")
        traceback.print_exc(file=sys.stdout)
        return False
    print(f"PASS {name}: {detail} ({time.monotonic() - started:.1f}s)")
    return True


def _print_logs(cluster: Cluster) -> None:
    for name, tail in cluster.logs():
        print(f"--- last lines of {name} ---\n{tail}")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python examples/e2e", description=__doc__)
    parser.add_argument(
        "--ttl", type=float, default=3.0, help="RBAC_ABAC_CACHE_TTL of the services"
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs directory")
    parser.add_argument(
        "--only", type=int, nargs="+", metavar="N", help="run only these scenarios"
    )
    return parser.parse_args(argv)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Turned into SystemExit so that the finally clause stops the services.
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
