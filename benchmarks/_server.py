"""A private redis-server for one benchmark run, stopped by PID at the end.

Benchmarks never touch a shared server: each script starts its own on a free
loopback port, in a temporary directory, with persistence off. It is the
test suite's server helper, used as a context manager.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.redis_server import RedisServer, free_port

__all__ = ["PrivateRedis", "free_port"]

PrivateRedis = RedisServer
