"""Security: API keys (401), scopes (403), tenant isolation (404 identical to unknown),
body/depth limits (413/400) and the per-key rate limit (429)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from chatpersona.api.limits import BodyLimitMiddleware
from chatpersona.config import Settings
from chatpersona.profiles import ProfilePatch, ProfileStore
from chatpersona.profiles.keys import KeyStore

TENANTS = ("acme", "globex")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


SEED_BODY = {"preferences": {"language": "en"}, "interaction_history": ["c1"]}

# (method, path template, scope it needs)
USER_ROUTES = [
    ("GET", "/api/user/{}/profile", "profile:read"),
    ("POST", "/api/user/{}/profile", "profile:write"),
    ("DELETE", "/api/user/{}/profile", "profile:write"),
    ("GET", "/api/user/{}/export", "profile:read"),
]
SCOPE_SETS = [
    frozenset({"profile:read"}),
    frozenset({"profile:write"}),
    frozenset({"events:write"}),
    frozenset({"admin"}),
    frozenset({"profile:read", "profile:write"}),
]
_ids = itertools.count()


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    body = SEED_BODY if method == "POST" else None
    return client.request(method, path, headers=headers, json=body)


def _comparable(response: Any) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in response.headers.items() if k.lower() != "date")
    return response.status_code, response.content, headers


@pytest.mark.parametrize(
    "method,template,needed", USER_ROUTES, ids=[f"{m} {t}" for m, t, _ in USER_ROUTES]
)
def test_tenant_scope_matrix(
    client: TestClient, store: ProfileStore, method: str, template: str, needed: str
) -> None:
    """Every tenant x scope set x target (own user, other tenant's user, unknown id)."""
    assert isinstance(store, KeyStore)
    for tenant, scopes in itertools.product(TENANTS, SCOPE_SETS):
        other = next(t for t in TENANTS if t != tenant)
        _, secret = store.create_key(tenant, scopes)
        headers = bearer(secret)
        n = next(_ids)
        own, foreign, unknown = f"own{n}", f"foreign{n}", f"unknown{n}"
        store.merge(tenant, own, ProfilePatch(preferences={"who": "own"}))
        store.merge(other, foreign, ProfilePatch(preferences={"who": "foreign"}))
        allowed = needed in scopes or "admin" in scopes
        where = f"{tenant} {sorted(scopes)} {method} {template}"

        r_own = _call(client, method, template.format(own), headers)
        r_foreign = _call(client, method, template.format(foreign), headers)
        r_unknown = _call(client, method, template.format(unknown), headers)
        if not allowed:
            for r in (r_own, r_foreign, r_unknown):
                assert r.status_code == 403, where
                assert r.json()["code"] == "missing_scope"
        elif method == "POST":
            # Writing creates/updates the user *in the caller's tenant*, never the other one.
            assert r_own.status_code == r_foreign.status_code == r_unknown.status_code == 200
            assert r_foreign.json()["preferences"] == SEED_BODY["preferences"], where
        else:
            assert r_own.status_code == 200, where
            assert r_foreign.status_code == 404, where
            # Byte-for-byte the same answer as an id that exists nowhere (OWASP API1).
            foreign_cmp = _comparable(r_foreign)
            unknown_cmp = _comparable(r_unknown)
            assert foreign_cmp[0] == unknown_cmp[0] and foreign_cmp[1] == unknown_cmp[1], where
            assert foreign_cmp[2] == unknown_cmp[2], where
        # The other tenant's user is never touched.
        kept = store.get(other, foreign)
        assert kept is not None and kept.preferences == {"who": "foreign"}, where
        assert kept.version == 1, where


@pytest.mark.parametrize("method,template,needed", USER_ROUTES)
def test_missing_or_bad_key_is_401_on_every_route(
    client: TestClient, method: str, template: str, needed: str
) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-API-Key": "cp_0123456789abcdef_" + "A" * 43},  # well-formed, unknown
    ):
        response = _call(client, method, template.format("u1"), headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["code"] in ("missing_api_key", "invalid_api_key")


@pytest.mark.parametrize(
    "path,needed",
    [
        ("/api/users", "profile:read"),
        ("/api/segments", "profile:read"),
        ("/api/admin/keys", "admin"),
    ],
)
def test_scope_checks_on_collection_routes(
    client: TestClient, new_key: Callable[..., dict[str, str]], path: str, needed: str
) -> None:
    assert client.get(path).status_code == 401
    for scopes in SCOPE_SETS:
        response = client.get(path, headers=new_key("acme", *scopes))
        allowed = needed in scopes or "admin" in scopes
        assert response.status_code == (200 if allowed else 403), (path, scopes)


def test_x_api_key_header_is_accepted(client: TestClient, store: ProfileStore) -> None:
    assert isinstance(store, KeyStore)
    _, secret = store.create_key("acme", {"profile:write"})
    response = client.post("/api/user/u1/profile", json=SEED_BODY, headers={"X-API-Key": secret})
    assert response.status_code == 200


def test_revoked_key_is_401(
    client: TestClient, store: ProfileStore, new_key: Callable[..., dict[str, str]]
) -> None:
    admin = new_key("acme", "admin")
    assert isinstance(store, KeyStore)
    key, secret = store.create_key("acme", {"profile:read"})
    assert client.get("/api/users", headers=bearer(secret)).status_code == 200
    revoked = client.delete(f"/api/admin/keys/{key.key_id}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert client.get("/api/users", headers=bearer(secret)).status_code == 401


def test_admin_sees_and_revokes_only_its_own_tenant(
    client: TestClient, store: ProfileStore, new_key: Callable[..., dict[str, str]]
) -> None:
    assert isinstance(store, KeyStore)
    admin_a = new_key("acme", "admin")
    theirs, their_secret = store.create_key("globex", {"profile:read"})
    listed = client.get("/api/admin/keys", headers=admin_a).json()
    assert {k["tenant"] for k in listed} == {"acme"}
    assert theirs.key_id not in {k["key_id"] for k in listed}

    foreign = client.delete(f"/api/admin/keys/{theirs.key_id}", headers=admin_a)
    unknown = client.delete("/api/admin/keys/0123456789abcdef", headers=admin_a)
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.content == unknown.content
    assert client.get("/api/users", headers=bearer(their_secret)).status_code == 200

    created = client.post(
        "/api/admin/keys", json={"scopes": ["profile:read"], "name": "bot"}, headers=admin_a
    )
    assert created.status_code == 201
    body = created.json()
    assert body["key"]["tenant"] == "acme" and body["key"]["scopes"] == ["profile:read"]
    assert client.get("/api/users", headers=bearer(body["secret"])).status_code == 200
    bad_scope = client.post("/api/admin/keys", json={"scopes": ["root"]}, headers=admin_a)
    assert bad_scope.status_code == 422


def test_rate_limit_is_per_key_with_retry_after(
    make_client: Callable[..., TestClient], new_key: Callable[..., dict[str, str]]
) -> None:
    client = make_client(settings_=Settings(store_url="memory://", rate_limit_per_minute=3))
    first, second = new_key("acme", "profile:read"), new_key("acme", "profile:read")
    statuses = [client.get("/api/users", headers=first).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get("/api/users", headers=first)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "20"  # one token per 60/3 seconds
    assert limited.json()["code"] == "rate_limited"
    assert client.get("/api/users", headers=second).status_code == 200


def test_body_over_64_kib_is_413(client: TestClient, rw: dict[str, str]) -> None:
    big = json.dumps({"preferences": {"k": "x" * (64 * 1024)}}).encode()
    response = client.post(
        "/api/user/u1/profile",
        content=big,
        headers={**rw, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    assert client.get("/api/user/u1/profile", headers=rw).status_code == 404


def test_chunked_body_over_limit_is_413(client: TestClient, rw: dict[str, str]) -> None:
    def chunks() -> Any:
        yield b'{"preferences": {"k": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}}'

    response = client.post(
        "/api/user/u1/profile",
        content=chunks(),
        headers={**rw, "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_body_just_under_the_limit_passes_the_size_check(
    client: TestClient, rw: dict[str, str]
) -> None:
    body = {"interaction_history": [f"chat-{i:06d}-" + "x" * 112 for i in range(500)]}
    raw = json.dumps(body).encode()
    assert 60 * 1024 < len(raw) <= 64 * 1024
    response = client.post(
        "/api/user/u1/profile", content=raw, headers={**rw, "Content-Type": "application/json"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("depth,expected", [(32, 422), (33, 400), (5000, 400)])
def test_json_nesting_deeper_than_32_is_400(
    client: TestClient, rw: dict[str, str], depth: int, expected: int
) -> None:
    # Brackets inside strings do not count; the body is rejected before parsing.
    content = ('{"preferences": {"k": "[[[[[[["}, "x": ' if depth == 32 else "") + (
        "[" * depth + "]" * depth
    )
    if depth == 32:
        content = "[" * 31 + '"[[[[{{{{"' + "]" * 31
    response = client.post(
        "/api/user/u1/profile",
        content=content.encode(),
        headers={**rw, "Content-Type": "application/json"},
    )
    # 32 levels is within the limit: the request reaches the schema, which rejects it.
    assert response.status_code == expected
    if expected == 400:
        assert response.json()["code"] == "json_too_deep"


async def _run_middleware(
    chunks: list[bytes], headers: list[tuple[bytes, bytes]]
) -> tuple[list[dict[str, Any]], int, bool]:
    received = 0
    called = False

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        nonlocal called
        called = True
        message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": message["body"]})

    queue = list(chunks)

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        chunk = queue.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(queue)}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    mw = BodyLimitMiddleware(inner, max_bytes=1000, max_depth=4)
    scope = {"type": "http", "method": "POST", "headers": headers, "path": "/"}
    await mw(scope, receive, send)
    return sent, received, called


def test_middleware_stops_reading_a_chunked_stream_at_the_limit() -> None:
    import asyncio

    chunks = [b"x" * 300] * 100  # 30 kB announced by nobody (chunked)
    sent, received, called = asyncio.run(
        _run_middleware(chunks, [(b"transfer-encoding", b"chunked")])
    )
    assert sent[0]["status"] == 413
    assert not called
    assert received == 4  # 1200 bytes > 1000: stopped at the 4th chunk, not the 100th

    sent, received, called = asyncio.run(
        _run_middleware([b'{"a":', b" [1]}"], [(b"transfer-encoding", b"chunked")])
    )
    assert called and sent[0]["status"] == 200 and sent[1]["body"] == b'{"a": [1]}'
