"""Operations and wiring: health, readiness, metrics, segments, optional routers, factory."""

from __future__ import annotations

import json
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

import chatpersona.api.app as app_module
from chatpersona.api import create_app
from chatpersona.config import Settings
from chatpersona.profiles import MemoryStore

REPORT = {
    "model_version": "v3",
    "segments": [
        {
            "id": "s0",
            "name": "Bargain hunters",
            "size": 600,
            "share": 0.6,
            "description": "Price-sensitive, mobile.",
            "top_features": ["monthly_spend", "device_mobile"],
        },
        {"id": "s1", "name": "VIPs", "size": 400, "share": 0.4, "description": "High spend."},
    ],
}


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok", "store": "ok"}


class DownStore(MemoryStore):
    def ping(self) -> bool:
        raise ConnectionError("db host 10.0.0.1 refused")


def test_readyz_is_503_when_the_store_does_not_answer() -> None:
    client = TestClient(create_app(Settings(), store=DownStore()))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "store": "down"}
    assert "10.0.0.1" not in response.text


def test_metrics_count_requests_per_route_template(client: TestClient, rw: dict[str, str]) -> None:
    for uid in ("a", "b", "c"):
        client.post(f"/api/user/{uid}/profile", json={"preferences": {"x": 1}}, headers=rw)
        client.get(f"/api/user/{uid}/profile", headers=rw)
    client.get("/api/user/zzz/profile", headers=rw)
    client.get("/no/such/path")
    text = client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    body = text.text
    route = 'route="/api/user/{user_id}/profile"'
    assert f'chatpersona_http_requests_total{{method="GET",{route},status="200"}} 3' in body
    assert f'chatpersona_http_requests_total{{method="GET",{route},status="404"}} 1' in body
    assert f'chatpersona_http_requests_total{{method="POST",{route},status="200"}} 3' in body
    assert 'route="<unmatched>",status="404"} 1' in body
    count = re.search(
        rf'chatpersona_http_request_duration_seconds_count{{method="GET",{re.escape(route)}}} (\d+)',
        body,
    )
    assert count is not None and int(count.group(1)) == 4
    inf = re.search(rf'_bucket{{method="GET",{re.escape(route)},le="\+Inf"}} (\d+)', body)
    assert inf is not None and int(inf.group(1)) == 4
    # Concrete ids never become labels.
    assert "/api/user/a/" not in body and "zzz" not in body


def test_metrics_label_rejected_bodies_with_their_route(
    client: TestClient, rw: dict[str, str]
) -> None:
    client.post(
        "/api/user/u1/profile",
        content=b"[" * 100 + b"]" * 100,
        headers={**rw, "Content-Type": "application/json"},
    )
    body = client.get("/metrics").text
    assert (
        'chatpersona_http_requests_total{method="POST",route="/api/user/{user_id}/profile",'
        'status="400"} 1'
    ) in body


def test_segments_from_a_model_directory(
    make_client: Callable[..., TestClient], rw: dict[str, str], tmp_path: Path
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "report.json").write_text(json.dumps(REPORT))
    client = make_client(settings_=Settings(model_dir=str(model), rate_limit_per_minute=0))
    listed = client.get("/api/segments", headers=rw).json()
    assert listed["model_version"] == "v3"
    assert [s["id"] for s in listed["segments"]] == ["s0", "s1"]
    one = client.get("/api/segments/s0", headers=rw).json()
    assert one["name"] == "Bargain hunters" and one["size"] == 600
    assert one["top_features"] == ["monthly_spend", "device_mobile"]
    assert client.get("/api/segments/s9", headers=rw).status_code == 404

    # A new report (a model switch) is picked up without a restart.
    changed = {"model_version": "v4", "segments": [{"id": "n0", "name": "New", "size": 1}]}
    (model / "report.json").write_text(json.dumps(changed))
    import os

    os.utime(model / "report.json", (1e9, 2e9))
    assert client.get("/api/segments", headers=rw).json()["model_version"] == "v4"


def test_segments_follow_the_registry_s_active_version(
    make_client: Callable[..., TestClient], rw: dict[str, str], tmp_path: Path
) -> None:
    root = tmp_path / "registry"
    for version, name in (("v1", "Old"), ("v2", "New")):
        (root / "versions" / version).mkdir(parents=True)
        report = {"model": {"version": version}, "segments": [{"id": "s0", "name": name}]}
        (root / "versions" / version / "report.json").write_text(json.dumps(report))
    (root / "ACTIVE").write_text(json.dumps({"version": "v1"}))
    client = make_client(settings_=Settings(model_dir=str(root), rate_limit_per_minute=0))
    first = client.get("/api/segments", headers=rw).json()
    assert first["model_version"] == "v1" and first["segments"][0]["name"] == "Old"
    (root / "ACTIVE").write_text(json.dumps({"version": "v2"}))  # activation switch
    second = client.get("/api/segments/s0", headers=rw).json()
    assert second["name"] == "New"


def test_segments_from_a_service_and_without_a_model(
    make_client: Callable[..., TestClient], rw: dict[str, str]
) -> None:
    class Catalog:
        def report(self) -> dict[str, Any]:
            return REPORT

    with_service = make_client(services={"segments": Catalog()})
    assert len(with_service.get("/api/segments", headers=rw).json()["segments"]) == 2
    without = make_client()
    assert without.get("/api/segments", headers=rw).json() == {
        "model_version": None,
        "segments": [],
    }


def test_optional_routers_are_included_and_set_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = types.ModuleType("chatpersona.api.routes.zz_fake")
    fake_router = APIRouter(prefix="/api/zz", tags=["zz"])

    @fake_router.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    seen: list[tuple[FastAPI, Settings]] = []
    fake.router = fake_router  # type: ignore[attr-defined]
    fake.setup = lambda app, settings: seen.append((app, settings))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "chatpersona.api.routes.zz_fake", fake)
    monkeypatch.setattr(app_module, "OPTIONAL_ROUTERS", ("zz_fake", "zz_missing"))
    settings = Settings()
    app = create_app(settings, store=MemoryStore())
    assert TestClient(app).get("/api/zz/ping").json() == {"pong": "yes"}
    assert seen == [(app, settings)]


def test_a_broken_optional_router_is_not_silently_skipped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "zz_broken.py").write_text("import chatpersona_no_such_dependency\n")
    import chatpersona.api.routes as routes_pkg

    monkeypatch.setattr(routes_pkg, "__path__", [*routes_pkg.__path__, str(package)])
    monkeypatch.setattr(app_module, "OPTIONAL_ROUTERS", ("zz_broken",))
    with pytest.raises(ModuleNotFoundError, match="chatpersona_no_such_dependency"):
        create_app(Settings(), store=MemoryStore())
    sys.modules.pop("chatpersona.api.routes.zz_broken", None)


def test_factory_exposes_state_and_reads_no_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATPERSONA_STORE_URL", "postgresql://nowhere/never")
    store = MemoryStore()
    settings = Settings(store_url="memory://")
    app = create_app(settings, store=store, services={"bot": "b"})
    assert app.state.settings is settings
    assert app.state.store is store
    assert app.state.services["bot"] == "b"  # other routers' setup() may add their own
    # Without a store the factory opens settings.store_url (not the environment's).
    owned = create_app(settings)
    assert isinstance(owned.state.store, MemoryStore)


def test_openapi_documents_the_seed_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert set(paths["/api/user/{user_id}/profile"]) == {"get", "post", "delete"}
    for path in (
        "/api/user/{user_id}/export",
        "/api/segments",
        "/api/segments/{segment_id}",
        "/api/users",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert "get" in paths[path], path
    schemes = spec["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key"
    post = paths["/api/user/{user_id}/profile"]["post"]
    assert {"401", "403", "413", "422", "429"} <= set(post["responses"])


def test_store_calls_run_inline_for_local_stores_and_in_threads_for_network_ones() -> None:
    import asyncio
    import threading

    from chatpersona.api.deps import run_store

    class NetworkStore(MemoryStore):
        scheme = "postgresql"

    def where() -> str:
        return threading.current_thread().name

    class FileStore(MemoryStore):
        scheme = "sqlite"

    async def all_kinds() -> tuple[str, list[str]]:
        loop_thread = threading.current_thread().name
        return loop_thread, [
            await run_store(MemoryStore(), where),
            await run_store(MemoryStore(), where, write=True),
            await run_store(FileStore(), where),
            await run_store(FileStore(), where, write=True),
            await run_store(NetworkStore(), where),
        ]

    loop_thread, threads = asyncio.run(all_kinds())
    memory_read, memory_write, sqlite_read, sqlite_write, network = threads
    assert memory_read == memory_write == sqlite_read == loop_thread
    assert sqlite_write != loop_thread and network != loop_thread


def test_framework_errors_have_the_error_shape(client: TestClient) -> None:
    missing = client.get("/no/such/path")
    assert missing.status_code == 404
    assert missing.json() == {"error": "NotFound", "code": "not_found", "message": "Not Found"}
    wrong = client.put("/api/user/u1/profile")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"
    assert set(wrong.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST", "DELETE"}
