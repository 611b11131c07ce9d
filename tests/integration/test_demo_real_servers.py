"""`chatpersona demo --store postgresql://… --state redis://…` runs the same flow on real
servers: profiles land in PostgreSQL and the replayed history's real-time state in Redis,
every key with a TTL."""

from __future__ import annotations

from pathlib import Path

import redis
from typer.testing import CliRunner

from chatpersona.cli.main import app
from chatpersona.profiles import open_store


def test_demo_on_postgres_and_redis(
    tmp_path: Path, postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    out = tmp_path / "demo"
    state_url = f"{redis_url}?prefix={redis_prefix}"
    result = CliRunner().invoke(
        app,
        ["demo", "--users", "200", "--seed", "5", "-o", str(out), "--no-serve",
         "--store", postgres_url, "--state", state_url],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "history replayed through the pipeline" in result.output
    assert f"loaded into {postgres_url}" in result.output

    truth = (out / "data" / "truth.csv").read_text().splitlines()[1:]
    store = open_store(postgres_url)
    try:
        profiles = store.scan("default", limit=1000).items
    finally:
        store.close()
    assert len(profiles) == len(truth)
    assert all(p.segment is not None and p.interaction_count > 0 for p in profiles)

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=redis_prefix + "*", count=1000))
    assert keys, "the replay left no real-time state in Redis"
    assert all(client.ttl(k) > 0 for k in keys[:500]), "a state key has no TTL"
    client.close()
