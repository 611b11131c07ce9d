"""Chat resource: the reference chatbot over HTTP, and the web UI (widget + dashboard).

- ``GET /`` and ``/ui/*``: the static web UI (no CDN, no external fonts or images).
- ``POST /api/chat/{user_id}/start|message|end|feedback``: the three moments of a chat.
  Every turn's events go to ``services["pipeline"].run_one(event)`` when a pipeline is
  wired, else to ``services["transport"]`` (the same path as ``POST /api/events``);
  with neither, the chat applies the feedback to the profile itself. Ratings reward the chat's decisions
  (``services["decisions"]``, a :class:`~chatpersona.decide.DecisionEngine`).
- ``GET /api/chat/feed``, ``/map``, ``/performance``, ``/demo-users``: what the dashboard
  shows (live events and segment changes, a 2-D map of users, reward over time per
  policy, a few users to try).

Services used (all optional): ``"bot"`` (a :class:`~chatpersona.chat.Bot`; otherwise one is
built on first use from the intent model cached in ``settings.extra["cache_dir"]``),
``"decisions"``, ``"pipeline"``, ``"transport"``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from chatpersona.api.deps import (
    Principal,
    ProfileReaderDep,
    ServicesDep,
    StoreDep,
    require_scope,
)
from chatpersona.api.errors import BODY_RESPONSES, ERROR_RESPONSES, ApiError, error_doc
from chatpersona.api.schemas import USER_ID_PATTERN, ProfilePublic
from chatpersona.chat.bot import Bot, BotTurn, Conversation
from chatpersona.chat.demo import pick_demo_users
from chatpersona.config import Settings
from chatpersona.exceptions import BackendError, ChatpersonaError
from chatpersona.profiles.base import ProfileStore
from chatpersona.profiles.schema import Profile

__all__ = ["ChatService", "router", "setup"]

log = logging.getLogger("chatpersona.api.chat")

WEB_DIR = Path(__file__).resolve().parents[2] / "chat" / "web"
DECISION_POINTS = ("tone", "routing")
"""Decision points the chat asks the engine about, when the engine defines them."""

router = APIRouter(tags=["chat"], responses=ERROR_RESPONSES)

UserIdPath = Annotated[
    str, PathParam(min_length=1, max_length=128, pattern=USER_ID_PATTERN, description="User id.")
]
ChatWriterDep = Annotated[Principal, Depends(require_scope("events:write"))]


# -- schemas -----------------------------------------------------------------------------
class ChatStart(BaseModel):
    """Body of ``POST /api/chat/{user_id}/start``."""

    model_config = ConfigDict(extra="forbid")
    channel: Literal["web", "mobile_app", "email", "whatsapp", "phone"] = "web"
    device: Literal["desktop", "mobile", "tablet"] = "desktop"


class ChatMessageCreate(BaseModel):
    """Body of ``POST /api/chat/{user_id}/message``."""

    model_config = ConfigDict(extra="forbid")
    chat_id: str = Field(min_length=1, max_length=128)
    text: str = Field(min_length=1, max_length=2000)


class ChatEnd(BaseModel):
    """Body of ``POST /api/chat/{user_id}/end``; ``resolved`` defaults to the bot's view."""

    model_config = ConfigDict(extra="forbid")
    chat_id: str = Field(min_length=1, max_length=128)
    resolved: bool | None = None


class ChatFeedbackCreate(BaseModel):
    """Body of ``POST /api/chat/{user_id}/feedback``: CSAT 1-5 and an optional NPS 0-10."""

    model_config = ConfigDict(extra="forbid")
    chat_id: str = Field(min_length=1, max_length=128)
    csat: int = Field(ge=1, le=5)
    nps: int | None = Field(default=None, ge=0, le=10)


class ProfileChange(BaseModel):
    """One field of the profile that a chat changed."""

    field: str
    before: Any = None
    after: Any = None


class ChatTurnPublic(BaseModel):
    """The bot's side of one turn."""

    chat_id: str
    kind: str
    text: str
    html: str = Field(description="The same words as HTML, every variable escaped.")
    tone: str
    lang: str
    escalated: bool
    quick_replies: list[str] = Field(default_factory=list)
    prompts: dict[str, str] = Field(default_factory=dict)
    prediction: dict[str, Any] | None = None
    events: list[dict[str, Any]] = Field(default_factory=list)
    decisions: dict[str, dict[str, Any]] = Field(default_factory=dict)
    reward: float | None = None
    profile: ProfilePublic | None = None
    changes: list[ProfileChange] = Field(default_factory=list)


# -- the service behind the routes ---------------------------------------------------------
def _item_user(item: dict[str, Any]) -> Any:
    """The user a feed item is about (top level, or inside its event)."""
    event = item.get("event")
    return item.get("user_id") or (event.get("user_id") if isinstance(event, dict) else None)


class ChatService:
    """Conversations in progress, the live feed and the reward history of one app.

    Parameters
    ----------
    bot:
        The bot, or ``None`` to build one on first use from ``cache_dir``.
    cache_dir:
        Where the intent model is cached (trained there on first use).
    max_conversations:
        Open conversations kept in memory (oldest dropped first).
    feed_size:
        Items kept in the live feed.
    """

    def __init__(
        self,
        bot: Bot | None,
        cache_dir: Path,
        *,
        max_conversations: int = 10_000,
        feed_size: int = 500,
    ) -> None:
        self._bot = bot
        self.cache_dir = cache_dir
        self.max_conversations = max_conversations
        self.conversations: OrderedDict[str, Conversation] = OrderedDict()
        self.started_from: dict[str, Profile] = {}
        self.feed: deque[dict[str, Any]] = deque(maxlen=feed_size)
        self.rewards: deque[dict[str, Any]] = deque(maxlen=5000)
        self._seq = 0
        self._lock = threading.RLock()

    @property
    def bot(self) -> Bot:
        """The bot; built on first use (training the intent model if not cached)."""
        with self._lock:
            if self._bot is None:
                from chatpersona.chat.intents import load_or_train

                self._bot = Bot(load_or_train(self.cache_dir))
            return self._bot

    def keep(self, conv: Conversation, profile: Profile | None = None) -> None:
        """Remember a conversation (and the profile it started from, to show what the
        chat changed)."""
        with self._lock:
            self.conversations[conv.chat_id] = conv
            self.conversations.move_to_end(conv.chat_id)
            if profile is not None:
                self.started_from[conv.chat_id] = profile
            while len(self.conversations) > self.max_conversations:
                old, _ = self.conversations.popitem(last=False)
                self.started_from.pop(old, None)

    def find(self, tenant: str, user_id: str, chat_id: str) -> Conversation:
        """The open conversation ``chat_id`` of this user (404 ``chat_not_found`` otherwise)."""
        with self._lock:
            conv = self.conversations.get(chat_id)
        if conv is None or conv.tenant != tenant or conv.user_id != user_id:
            raise ApiError(404, "chat_not_found", "No such chat for this user.")
        return conv

    def publish(self, kind: str, tenant: str, item: dict[str, Any]) -> None:
        """Add an item to the live feed (other components may publish too, e.g. a worker
        reporting ``segment_changed``)."""
        with self._lock:
            self._seq += 1
            self.feed.append({"seq": self._seq, "kind": kind, "tenant": tenant, **item})

    def delete_user(self, tenant: str, user_id: str) -> int:
        """Erasure: forget the user's conversations, feed items and reward entries."""
        with self._lock:
            n = 0
            for chat_id in [
                c for c, conv in self.conversations.items()
                if conv.tenant == tenant and conv.user_id == user_id
            ]:  # fmt: skip
                self.conversations.pop(chat_id, None)
                self.started_from.pop(chat_id, None)
                n += 1
            for queue in (self.feed, self.rewards):
                keep = [
                    i for i in queue
                    if not (i.get("tenant", tenant) == tenant and _item_user(i) == user_id)
                ]  # fmt: skip
                n += len(queue) - len(keep)
                queue.clear()
                queue.extend(keep)
            return n

    def export_user(self, tenant: str, user_id: str) -> dict[str, Any]:
        """Export: the user's open conversations and live-feed items."""
        with self._lock:
            chats = [
                c for c, conv in self.conversations.items()
                if conv.tenant == tenant and conv.user_id == user_id
            ]  # fmt: skip
            feed = [
                dict(i) for i in self.feed
                if i.get("tenant") == tenant and _item_user(i) == user_id
            ]  # fmt: skip
        return {"open_chats": chats, "feed": feed} if chats or feed else {}

    def since(self, tenant: str, after: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Feed items of ``tenant`` after ``after`` (at most ``limit``) and the last seq."""
        with self._lock:
            items = [i for i in self.feed if i["seq"] > after and i["tenant"] == tenant]
            return items[-limit:], self._seq


def setup(app: FastAPI, settings: Settings) -> None:
    """Attach the :class:`ChatService` and serve the static UI under ``/ui``."""
    cache = settings.extra.get("cache_dir") if settings.extra else None
    cache_dir = Path(cache) if cache else Path.home() / ".cache" / "chatpersona"
    app.state.chat = ChatService(app.state.services.get("bot"), cache_dir)
    # Registered as a service so erasure and export reach the chats and the live feed.
    app.state.services.setdefault("chat", app.state.chat)
    app.mount("/ui", StaticFiles(directory=str(WEB_DIR)), name="ui")


def _service(request: Request) -> ChatService:
    service: ChatService = request.app.state.chat
    return service


def _profile(store: ProfileStore, tenant: str, user_id: str) -> Profile:
    # An unknown user chats as a new customer; the chat's events create the profile.
    return store.get(tenant, user_id) or Profile(tenant=tenant, user_id=user_id)


def _decide(
    services: dict[str, Any], profile: Profile, body: ChatStart
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    engine = services.get("decisions")
    if engine is None:
        return {}, {}
    declared = getattr(engine, "decision_points", DECISION_POINTS)
    points = set(declared() if callable(declared) else declared)
    context = {"channel": body.channel, "device": body.device}
    raw: dict[str, Any] = {}
    shown: dict[str, dict[str, Any]] = {}
    for point in DECISION_POINTS:
        if point not in points:
            continue
        try:
            decision = engine.decide(
                profile.user_id, point, context, profile, tenant=profile.tenant
            )
        except ChatpersonaError as exc:  # a broken policy must not break the chat
            log.warning("decision %s failed for %s: %s", point, profile.user_id, exc)
            continue
        raw[point] = decision
        shown[point] = {
            "decision_id": getattr(decision, "decision_id", None),
            "action": getattr(decision, "action", None),
            "policy": getattr(decision, "policy", None),
            "exploration": getattr(decision, "exploration", None),
        }
    return raw, shown


def _dispatch(
    service: ChatService, services: dict[str, Any], tenant: str, events: list[dict[str, Any]]
) -> bool:
    """Send the turn's events where every other event goes, and to the live feed.

    ``services["pipeline"].run_one(event)`` when a pipeline is wired (synchronous: the
    profile is updated before the answer), else ``services["transport"].publish`` (the
    same path as ``POST /api/events``; a worker updates the profile shortly after).
    Returns ``False`` when neither exists, so the caller applies the feedback itself.
    """
    from chatpersona.stream.events import parse_event

    parsed = [parse_event(event) for event in events]
    for event in events:
        service.publish("event", tenant, {"event": event})
    pipeline = services.get("pipeline")
    if pipeline is not None:
        for one in parsed:
            pipeline.run_one(one)
        return True
    transport = services.get("transport")
    if transport is not None:
        try:
            transport.publish(parsed)
        except BackendError as exc:
            raise ApiError(503, "transport_unavailable", f"Publishing failed: {exc}") from exc
        return True
    return False


def _public(
    turn: BotTurn, service: ChatService, decisions: dict[str, dict[str, Any]] | None = None
) -> ChatTurnPublic:
    data = turn.to_dict()
    return ChatTurnPublic(
        chat_id=data["chat_id"],
        kind=data["kind"],
        text=data["text"],
        html=data["html"],
        tone=data["tone"],
        lang=data["lang"],
        escalated=data["escalated"],
        quick_replies=data["quick_replies"],
        prompts=data["prompts"],
        prediction=data["prediction"],
        events=data["events"],
        decisions=decisions or {},
        reward=data["reward"],
    )


def _changes(before: Profile, after: Profile) -> list[ProfileChange]:
    out: list[ProfileChange] = []
    for name in ("preferences", "attributes"):
        old, new = getattr(before, name), getattr(after, name)
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                out.append(
                    ProfileChange(field=f"{name}.{key}", before=old.get(key), after=new.get(key))
                )
    fb_old, fb_new = before.feedback.model_dump(), after.feedback.model_dump()
    for key in fb_old:
        if fb_old[key] != fb_new[key]:
            out.append(
                ProfileChange(field=f"feedback.{key}", before=fb_old[key], after=fb_new[key])
            )
    if before.interaction_count != after.interaction_count:
        out.append(ProfileChange(field="interaction_count", before=before.interaction_count,
                                 after=after.interaction_count))  # fmt: skip
    seg_old = before.segment.name if before.segment else None
    seg_new = after.segment.name if after.segment else None
    if seg_old != seg_new:
        out.append(ProfileChange(field="segment", before=seg_old, after=seg_new))
    return out


# -- the web UI ----------------------------------------------------------------------------
@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    """The web UI: chat widget and dashboard."""
    return FileResponse(WEB_DIR / "index.html", media_type="text/html")


# -- the chat ------------------------------------------------------------------------------
@router.post(
    "/api/chat/{user_id}/start",
    response_model=ChatTurnPublic,
    responses=BODY_RESPONSES,
    summary="Open a chat: the personalized greeting",
)
def start_chat(
    user_id: UserIdPath,
    request: Request,
    store: StoreDep,
    services: ServicesDep,
    principal: ChatWriterDep,
    body: ChatStart | None = None,
) -> Any:
    """Greet the user from their profile and this chat's decisions (scope ``events:write``)."""
    body = body or ChatStart()
    service = _service(request)
    profile = _profile(store, principal.tenant, user_id)
    raw, shown = _decide(services, profile, body)
    turn = service.bot.greet(profile, raw or None, channel=body.channel, device=body.device)
    service.keep(turn.conversation, profile)
    _dispatch(service, services, principal.tenant, turn.events)
    out = _public(turn, service, shown)
    out.profile = ProfilePublic.of(profile)
    return out


@router.post(
    "/api/chat/{user_id}/message",
    response_model=ChatTurnPublic,
    responses={**BODY_RESPONSES, 404: error_doc("Unknown chat."), 409: error_doc("Chat ended.")},
    summary="Send a customer message; get the bot's answer",
)
def send_message(
    user_id: UserIdPath,
    body: ChatMessageCreate,
    request: Request,
    store: StoreDep,
    services: ServicesDep,
    principal: ChatWriterDep,
) -> Any:
    """Detect the intent and answer in the chat's tone (scope ``events:write``)."""
    service = _service(request)
    conv = service.find(principal.tenant, user_id, body.chat_id)
    profile = _profile(store, principal.tenant, user_id)
    turn = service.bot.reply(profile, body.text, conversation=conv)
    _dispatch(service, services, principal.tenant, turn.events)
    return _public(turn, service)


@router.post(
    "/api/chat/{user_id}/end",
    response_model=ChatTurnPublic,
    responses={**BODY_RESPONSES, 404: error_doc("Unknown chat."), 409: error_doc("Chat ended.")},
    summary="Close a chat; get the CSAT / NPS prompts",
)
def end_chat(
    user_id: UserIdPath,
    body: ChatEnd,
    request: Request,
    store: StoreDep,
    services: ServicesDep,
    principal: ChatWriterDep,
) -> Any:
    """End the chat (``chat_ended`` event) and ask for ratings (scope ``events:write``)."""
    service = _service(request)
    conv = service.find(principal.tenant, user_id, body.chat_id)
    profile = _profile(store, principal.tenant, user_id)
    turn = service.bot.end_chat(profile, conv, resolved=body.resolved)
    _dispatch(service, services, principal.tenant, turn.events)
    return _public(turn, service)


@router.post(
    "/api/chat/{user_id}/feedback",
    response_model=ChatTurnPublic,
    responses={**BODY_RESPONSES, 404: error_doc("Unknown chat."), 409: error_doc("Not ended.")},
    summary="Rate a chat: CSAT and optional NPS update the profile and reward decisions",
)
def send_feedback(
    user_id: UserIdPath,
    body: ChatFeedbackCreate,
    request: Request,
    store: StoreDep,
    services: ServicesDep,
    principal: ChatWriterDep,
) -> Any:
    """Record the ratings (``feedback`` event), update the profile, reward the chat's
    decisions, and return the profile with what changed (scope ``events:write``)."""
    service = _service(request)
    conv = service.find(principal.tenant, user_id, body.chat_id)
    before = _profile(store, principal.tenant, user_id)
    turn = service.bot.post_chat(before, conv, csat=body.csat, nps=body.nps)
    piped = _dispatch(service, services, principal.tenant, turn.events)
    if turn.patch is not None:
        store.merge(principal.tenant, user_id, turn.patch)
    if not piped and turn.fallback_patch is not None:
        store.merge(principal.tenant, user_id, turn.fallback_patch)
    after = store.get(principal.tenant, user_id) or before

    engine = services.get("decisions")
    outcomes: dict[str, Any] = {"csat": body.csat, "resolved": bool(conv.resolved)}
    if body.nps is not None:
        outcomes["nps"] = body.nps
    now = time.time()
    for point, decision_id in (conv.decision.get("decision_ids") or {}).items():
        value = turn.reward
        if engine is not None:
            try:
                result = engine.reward(decision_id, outcomes=outcomes)
                value = getattr(result, "reward", value)
            except ChatpersonaError as exc:
                log.warning("reward for decision %s failed: %s", decision_id, exc)
        policy = (conv.decision.get("policies") or {}).get(point, "default")
        service.rewards.append({"ts": now, "point": point, "policy": policy, "reward": value})
    if not conv.decision.get("decision_ids"):
        policy = (conv.decision.get("policies") or {}).get("tone", "default-rules")
        service.rewards.append(
            {"ts": now, "point": "tone", "policy": policy, "reward": turn.reward}
        )

    # What the whole chat changed: from the profile the chat started with.
    with service._lock:
        started = service.started_from.pop(conv.chat_id, before)
    changes = _changes(started, after)
    if any(c.field == "segment" for c in changes):
        seg = next(c for c in changes if c.field == "segment")
        service.publish(
            "segment_changed",
            principal.tenant,
            {"user_id": user_id, "before": seg.before, "after": seg.after},
        )
    service.publish(
        "profile_updated",
        principal.tenant,
        {"user_id": user_id, "changes": [c.model_dump() for c in changes]},
    )
    out = _public(turn, service)
    out.profile = ProfilePublic.of(after)
    out.changes = changes
    return out


# -- the dashboard -------------------------------------------------------------------------
@router.get("/api/chat/feed", summary="Live feed: chat events, profile and segment changes")
def feed(
    request: Request,
    principal: ProfileReaderDep,
    after: Annotated[int, Query(ge=0, description="Last `seq` already seen.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Items with ``seq`` > ``after`` (poll with the returned ``last``; scope ``profile:read``)."""
    items, last = _service(request).since(principal.tenant, after, limit)
    return {"items": items, "last": last}


@router.get("/api/chat/performance", summary="Decision performance: reward over time per policy")
def performance(request: Request, principal: ProfileReaderDep) -> dict[str, Any]:
    """Each (decision point, policy): its rewards in time order and the running mean."""
    series: dict[str, list[dict[str, float]]] = {}
    for item in list(_service(request).rewards):
        key = f"{item['point']}:{item['policy']}"
        points = series.setdefault(key, [])
        total = (points[-1]["mean"] * len(points) if points else 0.0) + float(item["reward"] or 0)
        points.append(
            {"ts": item["ts"], "reward": item["reward"], "mean": total / (len(points) + 1)}
        )
    return {"series": series}


def _scan(store: ProfileStore, tenant: str, limit: int) -> list[Profile]:
    out: list[Profile] = []
    cursor: str | None = None
    while len(out) < limit:
        page = store.scan(tenant, cursor=cursor, limit=min(500, limit - len(out)))
        out.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    return out


@router.get("/api/chat/map", summary="A 2-D map of users coloured by segment")
def segment_map(
    store: StoreDep,
    principal: ProfileReaderDep,
    limit: Annotated[int, Query(ge=1, le=5000)] = 2000,
) -> dict[str, Any]:
    """The users' feature vectors projected on their first two principal components, and
    per-segment counts and mean CSAT (scope ``profile:read``)."""
    profiles = _scan(store, principal.tenant, limit)
    names = sorted({k for p in profiles for k in p.features})
    segments: dict[str, dict[str, Any]] = {}
    for p in profiles:
        sid = p.segment.id if p.segment else "none"
        seg = segments.setdefault(
            sid,
            {"id": sid, "name": p.segment.name if p.segment else "unassigned", "count": 0,
             "csat_sum": 0.0, "csat_n": 0},
        )  # fmt: skip
        seg["count"] += 1
        if p.feedback.csat_mean is not None:
            seg["csat_sum"] += p.feedback.csat_mean
            seg["csat_n"] += 1
    points: list[dict[str, Any]] = []
    with_features = [p for p in profiles if p.features]
    if with_features and names:
        x = np.array([[float(p.features.get(n, 0.0)) for n in names] for p in with_features])
        x = np.nan_to_num(x)
        x = x - x.mean(axis=0)
        std = x.std(axis=0)
        x = x / np.where(std > 0, std, 1.0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        comps = vt[:2] if vt.shape[0] >= 2 else np.vstack([vt, np.zeros_like(vt)])[:2]
        xy = x @ comps.T
        for p, (px, py) in zip(with_features, xy, strict=True):
            points.append({
                "user_id": p.user_id,
                "x": round(float(px), 4),
                "y": round(float(py), 4),
                "segment": p.segment.id if p.segment else "none",
            })  # fmt: skip
    seg_list = [
        {"id": s["id"], "name": s["name"], "count": s["count"],
         "csat_mean": round(s["csat_sum"] / s["csat_n"], 3) if s["csat_n"] else None}
        for s in sorted(segments.values(), key=lambda s: str(s["id"]))
    ]  # fmt: skip
    return {"points": points, "segments": seg_list, "features": names, "users": len(profiles)}


@router.get("/api/chat/demo-users", summary="A few users to try, from different segments")
def demo_users(
    store: StoreDep,
    principal: ProfileReaderDep,
    n: Annotated[int, Query(ge=1, le=50)] = 6,
) -> dict[str, Any]:
    """Up to ``n`` users, one per segment first, preferring users with an open issue."""
    return {"users": pick_demo_users(store, principal.tenant, n)}
