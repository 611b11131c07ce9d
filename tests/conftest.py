"""Shared fixtures: real Redis and PostgreSQL with per-test isolation.

A test that needs a server fails (never skips) when the server is unreachable: `make test`
starts the servers, so an unreachable one is a real failure of the environment.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
PG_HOST, PG_PORT = "127.0.0.1", 5432
ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
ARTIFACTS = ROOT / "test-artifacts"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    if not _reachable(host, port):
        pytest.fail(
            f"{name} is not reachable on {host}:{port}; `make services` starts it "
            f"(CI={os.environ.get('CI', '')!r}).",
            pytrace=False,
        )


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` — the real public data sets (read-only)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}", pytrace=False)
    return SHARED_DATA


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL on a real server; tests must namespace keys with ``redis_prefix``."""
    require_server("Redis", REDIS_HOST, REDIS_PORT)
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix for this test; every key under it is deleted afterwards."""
    import redis

    prefix = f"cptest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


REDIS_CLUSTER_PORTS = (7301, 7302, 7303)


@pytest.fixture(scope="session")
def redis_cluster_nodes() -> str:
    """``host:port,...`` of a local three-primary Redis Cluster (started by
    ``scripts/redis-cluster.sh``, run here when the nodes are down — under a lock, since
    pytest-xdist workers may ask at once)."""
    import fcntl
    import subprocess

    if not all(_reachable(REDIS_HOST, p) for p in REDIS_CLUSTER_PORTS):
        with open("/tmp/chatpersona-redis-cluster.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "redis-cluster.sh")],
                check=False,
                capture_output=True,
                timeout=120,
            )
    for port in REDIS_CLUSTER_PORTS:
        require_server("Redis Cluster node", REDIS_HOST, port)
    return ",".join(f"{REDIS_HOST}:{p}" for p in REDIS_CLUSTER_PORTS)


@pytest.fixture
def redis_cluster_prefix(redis_cluster_nodes: str) -> Iterator[str]:
    """A unique key prefix on the cluster; every key under it is deleted afterwards."""
    import redis

    prefix = f"cptest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    for port in REDIS_CLUSTER_PORTS:
        client = redis.Redis(host=REDIS_HOST, port=port)
        for key in list(client.scan_iter(match=prefix + "*", count=1000)):
            client.delete(key)
        client.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    require_server("PostgreSQL", PG_HOST, PG_PORT)
    import psycopg

    name = f"cptest_{uuid.uuid4().hex[:12]}"
    admin = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
