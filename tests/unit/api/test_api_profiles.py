"""The profiles resource: the seed's GET/POST contract, merge rules, erasure, export, paging."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from chatpersona.profiles import ProfilePatch, ProfileStore, SegmentRef
from chatpersona.profiles.schema import utcnow

SEED_BODY = {
    "preferences": {"language": "en", "product_interest": "laptops"},
    "interaction_history": ["chat_id_1234", "chat_id_5678"],
}


def test_seed_post_then_get_round_trips(client: TestClient, rw: dict[str, str]) -> None:
    posted = client.post("/api/user/u-1/profile", json=SEED_BODY, headers=rw)
    assert posted.status_code == 200, posted.text
    got = client.get("/api/user/u-1/profile", headers=rw)
    assert got.status_code == 200
    body = got.json()
    assert body == posted.json()
    assert body["user_id"] == "u-1"
    assert body["preferences"] == SEED_BODY["preferences"]
    # Most recent first: the later id of the batch leads.
    assert body["interaction_history"] == ["chat_id_5678", "chat_id_1234"]
    assert body["interaction_count"] == 2
    assert body["version"] == 1
    assert "tenant" not in body


def test_post_merges_preferences_key_by_key_and_null_deletes(
    client: TestClient, rw: dict[str, str]
) -> None:
    client.post("/api/user/u1/profile", json=SEED_BODY, headers=rw)
    second = client.post(
        "/api/user/u1/profile",
        json={"preferences": {"language": "es", "product_interest": None, "tone": "formal"}},
        headers=rw,
    ).json()
    assert second["preferences"] == {"language": "es", "tone": "formal"}
    assert second["interaction_history"] == ["chat_id_5678", "chat_id_1234"]
    assert second["version"] == 2


def test_post_appends_history_without_duplicates(client: TestClient, rw: dict[str, str]) -> None:
    client.post("/api/user/u1/profile", json=SEED_BODY, headers=rw)
    body = client.post(
        "/api/user/u1/profile",
        json={"interaction_history": ["chat_id_1234", "chat_id_9"]},
        headers=rw,
    ).json()
    assert body["interaction_history"] == ["chat_id_9", "chat_id_5678", "chat_id_1234"]
    assert body["interaction_count"] == 3


@pytest.mark.parametrize(
    "field,value",
    [
        ("segment", {"id": "s1", "name": "x", "model_version": "v", "assigned_at": "2026-01-01"}),
        ("version", 99),
        ("tenant", "globex"),
        ("user_id", "someone-else"),
        ("features", {"f": 1.0}),
        ("interaction_count", 5),
        ("unexpected", 1),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_post_rejects_unknown_and_system_fields(
    client: TestClient, rw: dict[str, str], field: str, value: Any
) -> None:
    response = client.post("/api/user/u1/profile", json={field: value}, headers=rw)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    # Nothing was created by the rejected request.
    assert client.get("/api/user/u1/profile", headers=rw).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"preferences": {f"k{i}": i for i in range(101)}},
        {"preferences": {"k": "x" * 1025}},
        {"preferences": {"k" * 65: 1}},
        {"preferences": {"nested": {"a": 1}}},
        {"interaction_history": [f"c{i}" for i in range(501)]},
        {"interaction_history": ["c" * 129]},
        {"consent": {"email": "yes please"}},
    ],
    ids=[
        "too-many-prefs",
        "long-value",
        "long-key",
        "nested-value",
        "long-history",
        "long-chat-id",
        "non-bool-consent",
    ],
)
def test_post_bounds_sizes_in_the_schema(
    client: TestClient, rw: dict[str, str], body: dict[str, Any]
) -> None:
    assert client.post("/api/user/u1/profile", json=body, headers=rw).status_code == 422


@pytest.mark.parametrize("user_id", ["a b", "x" * 129, "é", "a/b%2F"])
def test_malformed_user_ids_are_rejected(
    client: TestClient, rw: dict[str, str], user_id: str
) -> None:
    response = client.get(f"/api/user/{user_id}/profile", headers=rw)
    assert response.status_code in (404, 422)
    assert response.status_code != 200


def test_unknown_user_is_404(client: TestClient, rw: dict[str, str]) -> None:
    response = client.get("/api/user/nobody/profile", headers=rw)
    assert response.status_code == 404
    assert response.json() == {"error": "NotFound", "code": "not_found", "message": "No such user."}


class FakeService:
    """An optional component holding per-user data (like real-time state or the event log)."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], list[str]] = {}
        self.deleted: list[tuple[str, str]] = []

    def delete_user(self, tenant: str, user_id: str) -> int:
        self.deleted.append((tenant, user_id))
        return len(self.data.pop((tenant, user_id), []))

    def export_user(self, tenant: str, user_id: str) -> list[str]:
        return list(self.data.get((tenant, user_id), []))


def test_erasure_reaches_profile_and_every_service(
    make_client: Callable[..., TestClient], rw: dict[str, str]
) -> None:
    state, log = FakeService(), FakeService()
    state.data[("acme", "u1")] = ["window"]
    log.data[("acme", "u1")] = ["e1", "e2", "e3"]
    log.data[("globex", "u1")] = ["other-tenant"]
    client = make_client(services={"state": state, "event_log": log, "bot": object()})
    client.post("/api/user/u1/profile", json=SEED_BODY, headers=rw)

    response = client.delete("/api/user/u1/profile", headers=rw)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "user_id": "u1",
        # the chat service (live feed, open chats) always takes part; it held nothing here
        "erased": {"profile": 1, "state": 1, "event_log": 3, "chat": 0},
    }
    assert state.deleted == [("acme", "u1")] and log.deleted == [("acme", "u1")]
    assert log.data == {("globex", "u1"): ["other-tenant"]}
    assert client.get("/api/user/u1/profile", headers=rw).status_code == 404
    assert client.get("/api/user/u1/export", headers=rw).status_code == 404
    # Erasing again: nothing is held any more.
    assert client.delete("/api/user/u1/profile", headers=rw).status_code == 404


def test_export_holds_profile_and_service_data(
    make_client: Callable[..., TestClient], rw: dict[str, str]
) -> None:
    log = FakeService()
    log.data[("acme", "u1")] = ["e1"]
    client = make_client(services={"event_log": log})
    client.post("/api/user/u1/profile", json=SEED_BODY, headers=rw)
    body = client.get("/api/user/u1/export", headers=rw).json()
    assert body["user_id"] == "u1"
    assert body["profile"]["preferences"] == SEED_BODY["preferences"]
    assert body["services"] == {"event_log": ["e1"]}
    assert body["exported_at"]


def test_users_are_paged_and_filtered_by_segment(
    client: TestClient, rw: dict[str, str], store: ProfileStore
) -> None:
    seg = SegmentRef(id="s2", name="Power users", model_version="v1", assigned_at=utcnow())
    for i in range(7):
        patch = ProfilePatch(preferences={"i": i}, segment=seg if i % 2 else None)
        store.merge("acme", f"user{i}", patch)
    store.merge("globex", "user-other", ProfilePatch(segment=seg))

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/users", params=params, headers=rw).json()
        seen += [p["user_id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"user{i}" for i in range(7)]

    only = client.get("/api/users", params={"segment": "s2"}, headers=rw).json()
    assert [p["user_id"] for p in only["items"]] == ["user1", "user3", "user5"]
    assert all(p["segment"]["id"] == "s2" for p in only["items"])


def test_bad_cursor_is_400(client: TestClient, rw: dict[str, str]) -> None:
    response = client.get("/api/users", params={"cursor": "!!!"}, headers=rw)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_cursor"


def test_fifty_concurrent_posts_to_one_user_all_land(
    make_client: Callable[..., TestClient], rw: dict[str, str]
) -> None:
    import threading

    client = make_client()
    app = client.app
    statuses: list[int] = []

    def post(i: int) -> None:
        with TestClient(app) as c:  # one client per thread, one shared app and store
            r = c.post(
                "/api/user/hot/profile",
                json={"interaction_history": [f"chat-{i}"], "preferences": {f"k{i}": i}},
                headers=rw,
            )
            statuses.append(r.status_code)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 50
    final = client.get("/api/user/hot/profile", headers=rw).json()
    assert final["version"] == 50
    assert final["interaction_count"] == 50
    assert len(final["preferences"]) == 50


def test_fast_profile_serialization_equals_profile_public(store: ProfileStore) -> None:
    """GET/POST serialize the stored profile directly; it must be exactly ProfilePublic."""
    from chatpersona.api.routes.profiles import _profile_response
    from chatpersona.profiles import ProfilePublic

    seg = SegmentRef(id="s1", name="VIP", model_version="v1", assigned_at=utcnow())
    profile = store.merge(
        "acme",
        "u1",
        ProfilePatch(
            preferences={"language": "en", "n": 1.5},
            interaction_history=["c1"],
            attributes={"age": 40},
            consent={"email": True},
            segment=seg,
            features={"spend": 0.25},
            csat=4,
            nps=9,
        ),
    )
    assert _profile_response(profile).body == ProfilePublic.of(profile).model_dump_json().encode()
