"""The typed client (sync and async) against a live API server."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from chatpersona.client import ApiClientError, AsyncClient, Client, new_event

from .conftest import LiveApi


def test_sync_client_profiles_events_personalize_reward(live_api: LiveApi) -> None:
    with Client(live_api.url, live_api.key) as c:
        assert c.find_profile("u-client") is None
        p = c.update_profile(
            "u-client", preferences={"language": "es", "name": "Lu"}, interaction_history=["c1"]
        )
        assert (p.language, p.interaction_count, p.preferences["name"]) == ("es", 1, "Lu")
        assert c.get_profile("u-client").version == p.version
        decision = c.personalize("u-client", "tone", {"channel": "web"})
        assert decision.action in ("concise", "empathetic", "formal")
        rewarded = c.reward(decision.decision_id, outcomes={"csat": 5, "resolved": True})
        assert rewarded.decision_id == decision.decision_id and 0.0 <= rewarded.reward <= 1.0
        with pytest.raises(ApiClientError) as err:
            c.reward(decision.decision_id, 1.0)  # a decision is rewarded once
        assert err.value.status == 409
        # No bus configured on this server: the events endpoint says so, clearly.
        with pytest.raises(ApiClientError) as err:
            c.send_events([new_event("u-client", "feedback", {"chat_id": "c1", "csat": 4})])
        assert (err.value.status, err.value.code) == (503, "no_transport")
        c.delete_profile("u-client")
        assert c.find_profile("u-client") is None


def test_bad_key_and_unreachable(live_api: LiveApi) -> None:
    with (
        Client(live_api.url, "cp_0000000000000000_" + "x" * 43) as c,
        pytest.raises(ApiClientError) as err,
    ):
        c.get_profile("u1")
    assert err.value.status == 401
    with (
        Client("http://127.0.0.1:9", live_api.key, timeout=1) as c,
        pytest.raises(ApiClientError) as err,
    ):
        c.get_profile("u1")
    assert (err.value.status, err.value.code) == (0, "unreachable")
    with pytest.raises(ValueError, match="exactly one"):
        Client(live_api.url, live_api.key).reward("d1", 0.5, outcomes={"csat": 5})


def test_async_client(live_api: LiveApi) -> None:
    async def run() -> tuple[str | None, str]:
        async with AsyncClient(live_api.url, live_api.key) as c:
            await c.update_profile("u-async", preferences={"language": "en"})
            p = await c.get_profile("u-async")
            d = await c.personalize("u-async", "routing", {"intent": "get_refund"})
            await c.reward(d.decision_id, 0.5)
            return p.language, d.decision_point

    assert asyncio.run(run()) == ("en", "routing")


def test_events_with_a_mock_transport() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"accepted": 1, "rejected": 0, "results": []})

    with Client("http://x", "cp_k", transport=httpx.MockTransport(handler)) as c:
        out = c.send_events([new_event("u1", "message", {"chat_id": "c", "text": "hi"})])
    assert out.accepted == 1
    assert seen[0].headers["authorization"] == "Bearer cp_k"
    assert seen[0].url.path == "/api/events"
