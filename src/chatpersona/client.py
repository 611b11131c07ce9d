"""A typed Python client for the chatpersona REST API, sync (:class:`Client`) and async
(:class:`AsyncClient`), for chatbot frameworks that personalize their conversations.

It covers profiles (``GET``/``POST``/``DELETE /api/user/{id}/profile``), events
(``POST /api/events``), personalization decisions (``POST /api/personalize``) and rewards
(``POST /api/decisions/{id}/reward``). Errors from the API raise :class:`ApiClientError`
with its ``status``, ``code`` and ``message``.

Examples
--------
>>> import httpx
>>> def handler(request: httpx.Request) -> httpx.Response:
...     return httpx.Response(200, json={"user_id": "u1", "preferences": {"language": "es"}})
>>> with Client("http://test", api_key="cp_x", transport=httpx.MockTransport(handler)) as c:
...     c.get_profile("u1").preferences
{'language': 'es'}
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from chatpersona.exceptions import ChatpersonaError

__all__ = [
    "ApiClientError",
    "AsyncClient",
    "Client",
    "Decision",
    "EventResult",
    "Profile",
    "RewardResult",
    "new_event",
]

T = TypeVar("T", bound=BaseModel)


class ApiClientError(ChatpersonaError):
    """The API answered with an error status (or could not be reached: ``status`` 0)."""

    default_code = "api_error"

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} [{code}]: {message}", code=code, status=status)
        self.status = status


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Profile(_Model):
    """A user's profile as the API returns it (unknown fields are kept)."""

    user_id: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    preferences: dict[str, Any] = Field(default_factory=dict)
    interaction_history: list[str] = Field(default_factory=list)
    interaction_count: int = 0
    segment: dict[str, Any] | None = None
    features: dict[str, float] = Field(default_factory=dict)
    feedback: dict[str, Any] = Field(default_factory=dict)
    version: int = 0

    @property
    def segment_name(self) -> str | None:
        """The segment's name, or ``None`` when unassigned."""
        return str(self.segment["name"]) if self.segment else None

    @property
    def language(self) -> str | None:
        """The preferred language (preferences first, then attributes)."""
        value = self.preferences.get("language") or self.attributes.get("language")
        return str(value) if value else None


class Decision(_Model):
    """A personalization decision: the action to take and the id to reward it by."""

    decision_id: str
    decision_point: str
    user_id: str
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    segment: str | None = None
    policy: str = ""
    propensity: float = 1.0
    exploration: bool = False


class EventResult(_Model):
    """The answer to a batch of events: how many were accepted, and why others were not."""

    accepted: int
    rejected: int
    results: list[dict[str, Any]] = Field(default_factory=list)


class RewardResult(_Model):
    """The reward a decision received."""

    decision_id: str
    reward: float
    decision_point: str = ""
    source: str = ""


def new_event(
    user_id: str,
    type_: str,
    payload: Mapping[str, Any],
    *,
    channel: str = "web",
    device: str = "desktop",
    ts: datetime | None = None,
) -> dict[str, Any]:
    """An event dict for :meth:`Client.send_events` with a fresh id and the current time.

    Examples
    --------
    >>> e = new_event("u1", "feedback", {"chat_id": "c1", "csat": 5})
    >>> e["type"], e["payload"]["csat"], e["ts"].endswith("Z")
    ('feedback', 5, True)
    """
    when = (ts or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "event_id": str(uuid.uuid4()),
        "user_id": user_id,
        "type": type_,
        "ts": when,
        "channel": channel,
        "device": device,
        "payload": dict(payload),
    }


def _path(user_id: str) -> str:
    return quote(user_id, safe="")


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        code, message = str(body.get("code", "error")), str(body.get("message", body))
    except ValueError:
        code, message = "error", response.text[:200]
    raise ApiClientError(response.status_code, code, message)


def _reward_body(reward: float | None, outcomes: Mapping[str, Any] | None) -> dict[str, Any]:
    if (reward is None) == (outcomes is None):
        raise ValueError("Give exactly one of 'reward' (0..1) or 'outcomes'.")
    return {"reward": reward} if reward is not None else {"outcomes": dict(outcomes or {})}


class _Base:
    def __init__(self, base_url: str, api_key: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}


class Client(_Base):
    """Synchronous client.

    Parameters
    ----------
    base_url : str
        Where the API runs, e.g. ``http://127.0.0.1:8000``.
    api_key : str
        An API key (``cp_...``); its scopes decide what the client may do.
    timeout : float
        Seconds per request.
    transport : httpx.BaseTransport, optional
        For tests (``httpx.MockTransport``) or custom networking.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout)
        self._http = httpx.Client(
            base_url=self.base_url, headers=self._headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _call(self, method: str, url: str, model: type[T], **kw: Any) -> T:
        try:
            response = self._http.request(method, url, **kw)
        except httpx.HTTPError as exc:
            raise ApiClientError(0, "unreachable", f"{method} {url}: {exc}") from exc
        _raise_for(response)
        return model.model_validate(response.json())

    def get_profile(self, user_id: str) -> Profile:
        """The user's profile (``ApiClientError`` with status 404 if unknown)."""
        return self._call("GET", f"/api/user/{_path(user_id)}/profile", Profile)

    def find_profile(self, user_id: str) -> Profile | None:
        """The user's profile, or ``None`` when unknown."""
        try:
            return self.get_profile(user_id)
        except ApiClientError as exc:
            if exc.status == 404:
                return None
            raise

    def update_profile(
        self,
        user_id: str,
        *,
        preferences: Mapping[str, Any] | None = None,
        interaction_history: Iterable[str] | None = None,
        attributes: Mapping[str, Any] | None = None,
        consent: Mapping[str, bool] | None = None,
    ) -> Profile:
        """Merge preferences (``None`` deletes a key) and append chat ids to the history."""
        body: dict[str, Any] = {}
        if preferences is not None:
            body["preferences"] = dict(preferences)
        if interaction_history is not None:
            body["interaction_history"] = list(interaction_history)
        if attributes is not None:
            body["attributes"] = dict(attributes)
        if consent is not None:
            body["consent"] = dict(consent)
        return self._call("POST", f"/api/user/{_path(user_id)}/profile", Profile, json=body)

    def delete_profile(self, user_id: str) -> dict[str, Any]:
        """Erase everything held about the user."""
        return self._call("DELETE", f"/api/user/{_path(user_id)}/profile", _Model).model_dump()

    def send_events(self, events: Iterable[Mapping[str, Any]]) -> EventResult:
        """Publish events (at most 500 per call; see :func:`new_event`)."""
        body = {"events": [dict(e) for e in events]}
        return self._call("POST", "/api/events", EventResult, json=body)

    def personalize(
        self, user_id: str, decision_point: str, context: Mapping[str, Any] | None = None
    ) -> Decision:
        """Ask which action to take for this user at ``decision_point`` (``tone``,
        ``routing``, ``greeting``, ``content`` ...)."""
        body = {
            "user_id": user_id,
            "decision_point": decision_point,
            "context": dict(context or {}),
        }
        return self._call("POST", "/api/personalize", Decision, json=body)

    def reward(
        self,
        decision_id: str,
        reward: float | None = None,
        *,
        outcomes: Mapping[str, Any] | None = None,
    ) -> RewardResult:
        """Reward a decision with a value in [0, 1] or raw ``outcomes`` (csat, resolved ...)."""
        body = _reward_body(reward, outcomes)
        return self._call(
            "POST", f"/api/decisions/{_path(decision_id)}/reward", RewardResult, json=body
        )


class AsyncClient(_Base):
    """Asynchronous client with the same methods as :class:`Client` (awaitable)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _call(self, method: str, url: str, model: type[T], **kw: Any) -> T:
        try:
            response = await self._http.request(method, url, **kw)
        except httpx.HTTPError as exc:
            raise ApiClientError(0, "unreachable", f"{method} {url}: {exc}") from exc
        _raise_for(response)
        return model.model_validate(response.json())

    async def get_profile(self, user_id: str) -> Profile:
        """See :meth:`Client.get_profile`."""
        return await self._call("GET", f"/api/user/{_path(user_id)}/profile", Profile)

    async def find_profile(self, user_id: str) -> Profile | None:
        """See :meth:`Client.find_profile`."""
        try:
            return await self.get_profile(user_id)
        except ApiClientError as exc:
            if exc.status == 404:
                return None
            raise

    async def update_profile(
        self,
        user_id: str,
        *,
        preferences: Mapping[str, Any] | None = None,
        interaction_history: Iterable[str] | None = None,
        attributes: Mapping[str, Any] | None = None,
        consent: Mapping[str, bool] | None = None,
    ) -> Profile:
        """See :meth:`Client.update_profile`."""
        body: dict[str, Any] = {}
        if preferences is not None:
            body["preferences"] = dict(preferences)
        if interaction_history is not None:
            body["interaction_history"] = list(interaction_history)
        if attributes is not None:
            body["attributes"] = dict(attributes)
        if consent is not None:
            body["consent"] = dict(consent)
        return await self._call("POST", f"/api/user/{_path(user_id)}/profile", Profile, json=body)

    async def delete_profile(self, user_id: str) -> dict[str, Any]:
        """See :meth:`Client.delete_profile`."""
        out = await self._call("DELETE", f"/api/user/{_path(user_id)}/profile", _Model)
        return out.model_dump()

    async def send_events(self, events: Iterable[Mapping[str, Any]]) -> EventResult:
        """See :meth:`Client.send_events`."""
        body = {"events": [dict(e) for e in events]}
        return await self._call("POST", "/api/events", EventResult, json=body)

    async def personalize(
        self, user_id: str, decision_point: str, context: Mapping[str, Any] | None = None
    ) -> Decision:
        """See :meth:`Client.personalize`."""
        body = {
            "user_id": user_id,
            "decision_point": decision_point,
            "context": dict(context or {}),
        }
        return await self._call("POST", "/api/personalize", Decision, json=body)

    async def reward(
        self,
        decision_id: str,
        reward: float | None = None,
        *,
        outcomes: Mapping[str, Any] | None = None,
    ) -> RewardResult:
        """See :meth:`Client.reward`."""
        body = _reward_body(reward, outcomes)
        return await self._call(
            "POST", f"/api/decisions/{_path(decision_id)}/reward", RewardResult, json=body
        )
