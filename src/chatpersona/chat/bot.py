"""The reference support chatbot: the three moments of a conversation.

- pre-chat: :meth:`Bot.greet` greets from the profile and a decision (name, language,
  "welcome back", an offer to continue the last open issue);
- during: :meth:`Bot.reply` detects the intent, answers from the template of its category
  in the decided tone, asks to clarify when unsure, and escalates to a human per routing;
- post-chat: :meth:`Bot.end_chat` asks for CSAT (1-5) and an optional NPS (0-10), and
  :meth:`Bot.post_chat` turns the answers into events, a profile patch and a reward.

Every turn returns event dicts shaped like the generator's ``events.jsonl`` lines, so the
chat feeds the same pipeline as any other source. The bot holds no state of its own: the
:class:`Conversation` is a plain, JSON-serialisable object that the caller keeps.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from chatpersona.chat.intents import IntentPrediction
from chatpersona.chat.responses import (
    TONES,
    Language,
    Rendered,
    ResponseRenderer,
    Tone,
    canonical_category,
    category_label,
    normalize_language,
)
from chatpersona.exceptions import ConflictError, InputError, ParameterError
from chatpersona.profiles.schema import Profile, ProfilePatch

__all__ = [
    "OPEN_ISSUE_KEYS",
    "Bot",
    "BotTurn",
    "ChatDecision",
    "Conversation",
    "ProfileContext",
    "default_decision",
    "make_event",
    "open_issues_from_events",
]

OPEN_ISSUE_KEYS = ("open_issue_category", "open_issue_intent", "open_issue_at", "open_issue_chat")
"""Profile ``preferences`` keys that describe the user's last unresolved issue."""

ESCALATE_INTENTS = frozenset({"contact_human_agent"})
NOT_ISSUES = frozenset({"CONTACT", "FEEDBACK"})
"""Categories that are not an issue to follow up (asking for a person, giving feedback)."""

TurnKind = Literal["greeting", "answer", "clarify", "escalate", "ask", "thanks", "csat", "goodbye"]

_YES = {
    "yes", "y", "yeah", "yep", "yup", "sure", "correct", "right", "exactly", "that's it",
    "it is", "si", "sí", "claro", "correcto", "eso es", "exacto", "así es",
}  # fmt: skip
_NO = {
    "no", "n", "nope", "nah", "not really", "something else", "no, something else",
    "otra cosa", "no, otra cosa", "para nada",
}  # fmt: skip
_THANKS = re.compile(r"^\s*(thanks?( you)?|thank you( so much| very much)?|thx|ty|cheers|"
                     r"(muchas )?gracias|mil gracias)[\s!.]*$", re.IGNORECASE)  # fmt: skip


class IntentPredictor(Protocol):
    """What the bot needs of an intent model (:class:`~chatpersona.chat.IntentModel`)."""

    def predict_one(self, text: str, *, top: int = 3) -> IntentPrediction: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_event(
    type_: str,
    *,
    user_id: str,
    chat_id: str,
    channel: str,
    device: str,
    ts: datetime,
    payload: Mapping[str, Any] | None = None,
    event_id: str | None = None,
    tenant: str = "default",
) -> dict[str, Any]:
    """One event dict in the shape of the generator's ``events.jsonl`` (see CONTRACTS),
    plus the ``tenant`` that :class:`chatpersona.stream.events.Event` carries."""
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "tenant": tenant,
        "user_id": user_id,
        "type": type_,
        "ts": _iso(ts),
        "channel": channel,
        "device": device,
        "payload": {"chat_id": chat_id, **(payload or {})},
    }


@dataclass(frozen=True)
class ChatDecision:
    """What the decision engine chose for this conversation.

    ``tone`` picks the templates; ``route="human"`` hands the chat to a person after the
    bot's first answer; categories in ``escalate_categories`` always go to a person;
    ``offer_continue`` lets the greeting offer to continue the last open issue.
    ``decision_ids`` / ``policies`` map each decision point (``tone``, ``routing``) to the
    engine's decision id and policy, so the chat's outcome can reward each of them.
    """

    tone: Tone = "concise"
    route: Literal["bot", "human"] = "bot"
    escalate_categories: tuple[str, ...] = ()
    offer_continue: bool = True
    decision_ids: dict[str, str] = field(default_factory=dict)
    policies: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_any(cls, obj: Any, fallback: ChatDecision | None = None) -> ChatDecision:
        """Read a decision leniently from the decision engine's answer(s).

        ``obj`` may be a :class:`ChatDecision`, one decision (an object or dict with
        ``decision_id``, ``decision_point``, ``action``, ``params``, ``policy``), or a
        mapping ``{decision_point: decision}`` such as ``{"tone": d1, "routing": d2}``.
        An action ``concise``/``empathetic``/``formal`` sets the tone; ``human*`` /
        ``agent`` routes to a person; ``bot``/``self_service`` keeps the bot. Anything
        missing comes from ``fallback``.

        Examples
        --------
        >>> d = ChatDecision.from_any({"tone": {"decision_id": "d1", "action": "formal"},
        ...                            "routing": {"decision_id": "d2", "action": "human_normal"}})
        >>> d.tone, d.route, d.decision_ids
        ('formal', 'human', {'tone': 'd1', 'routing': 'd2'})
        """
        base = fallback or cls()
        if obj is None:
            return base
        if isinstance(obj, ChatDecision):
            return obj
        if (
            isinstance(obj, Mapping)
            and obj
            and all(isinstance(v, Mapping) or hasattr(v, "action") for v in obj.values())
        ):
            out = base
            for point, one in obj.items():
                out = cls._merge_one(one, out, str(point))
            return out
        return cls._merge_one(obj, base, None)

    @classmethod
    def _merge_one(cls, obj: Any, base: ChatDecision, point: str | None) -> ChatDecision:
        if obj is None:
            return base

        def get(name: str) -> Any:
            if isinstance(obj, Mapping):
                return obj.get(name)
            return getattr(obj, name, None)

        values: dict[str, Any] = {}
        for key in ("tone", "route", "escalate_categories", "offer_continue"):
            if get(key) is not None:
                values[key] = get(key)
        params = get("params")
        if isinstance(params, Mapping):
            for key in ("tone", "route", "escalate_categories", "offer_continue"):
                if params.get(key) is not None:
                    values.setdefault(key, params[key])
            if params.get("queue"):
                values.setdefault("route", "human")
        action = get("action")
        if isinstance(action, str):
            word = action.split(":")[-1].strip().lower()
            if word in TONES:
                values.setdefault("tone", word)
            elif word.startswith("human") or word in ("agent", "escalate"):
                values.setdefault("route", "human")
            elif word in ("bot", "self_service", "self-service"):
                values.setdefault("route", "bot")
        point = str(get("decision_point") or point or ("tone" if "tone" in values else "routing"))
        ids = dict(base.decision_ids)
        policies = dict(base.policies)
        if get("decision_id") is not None:
            ids[point] = str(get("decision_id"))
        if get("policy") is not None:
            policies[point] = str(get("policy"))
        tone = values.get("tone", base.tone)
        route = values.get("route", base.route)
        cats = values.get("escalate_categories", base.escalate_categories)
        return cls(
            tone=tone if tone in TONES else base.tone,
            route="human" if route in ("human", "agent") else "bot",
            escalate_categories=tuple(str(c).upper() for c in cats or ()),
            offer_continue=bool(values.get("offer_continue", base.offer_continue)),
            decision_ids=ids,
            policies=policies,
        )


@dataclass(frozen=True)
class ProfileContext:
    """What the bot reads from a profile."""

    user_id: str
    name: str | None
    lang: Language
    welcome_back: bool
    open_issue: dict[str, str] | None
    vip: bool
    plan: str | None
    segment: str | None
    csat_last: int | None
    preferred_tone: str | None

    @classmethod
    def of(cls, profile: Profile) -> ProfileContext:
        """Read the context from a profile (preferences first, then attributes)."""
        prefs, attrs = profile.preferences, profile.attributes

        def first(*keys: str) -> Any:
            for src in (prefs, attrs):
                for key in keys:
                    value = src.get(key)
                    if value not in (None, ""):
                        return value
            return None

        name = first("name", "first_name", "display_name")
        if name is None:
            name = _name_from_email(first("email"))
        issue = None
        if prefs.get("open_issue_category") and prefs.get("open_issue_at"):
            issue = {
                "category": canonical_category(str(prefs["open_issue_category"])),
                "intent": str(prefs.get("open_issue_intent") or ""),
                "at": str(prefs["open_issue_at"]),
                "chat_id": str(prefs.get("open_issue_chat") or ""),
            }
        vip = first("is_vip", "vip")
        tone = prefs.get("tone")
        return cls(
            user_id=profile.user_id,
            name=str(name).strip() if name is not None else None,
            lang=normalize_language(first("language", "lang")),
            welcome_back=profile.interaction_count > 0 or bool(profile.interaction_history),
            open_issue=issue,
            vip=vip in (True, 1, "1", "true", "True", "Y", "Yes", "yes", "y"),
            plan=str(first("plan")) if first("plan") is not None else None,
            segment=profile.segment.name if profile.segment else None,
            csat_last=profile.feedback.csat_last,
            preferred_tone=str(tone) if tone in TONES else None,
        )


def _name_from_email(email: Any) -> str | None:
    """``"maria.garcia42@example.com"`` -> ``"Maria"``: a first name for the greeting when
    the profile has none (the generator's emails are ``first.last<n>@domain``)."""
    if not isinstance(email, str) or "@" not in email:
        return None
    token = re.split(r"[._+-]", email.strip().split("@", 1)[0])[0]
    token = re.sub(r"\d+$", "", token)
    return token.capitalize() if len(token) >= 2 and token.isalpha() else None


def default_decision(profile: Profile) -> ChatDecision:
    """The rule used when no decision engine is wired: a stated tone preference wins; a
    last CSAT of 1-2 gets the empathetic tone; VIPs get the formal tone; else concise."""
    ctx = ProfileContext.of(profile)
    tone: Tone = "concise"
    if ctx.preferred_tone is not None:
        tone = ctx.preferred_tone  # type: ignore[assignment]
    elif ctx.csat_last is not None and ctx.csat_last <= 2:
        tone = "empathetic"
    elif ctx.vip:
        tone = "formal"
    return ChatDecision(tone=tone, policies={"tone": "default-rules"})


@dataclass
class Conversation:
    """The state of one chat, kept by the caller between turns (JSON-serialisable)."""

    chat_id: str
    user_id: str
    tenant: str
    lang: str
    tone: str
    channel: str
    device: str
    started_at: str
    decision: dict[str, Any]
    offered_issue: dict[str, str] | None = None
    awaiting: str | None = None
    issue: dict[str, str] | None = None
    intents: list[str] = field(default_factory=list)
    clarify_options: dict[str, str] = field(default_factory=dict)
    clarifications: int = 0
    escalated: bool = False
    ended: bool = False
    resolved: bool | None = None
    rated: bool = False
    turns: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The state as plain JSON-serialisable data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Conversation:
        """Rebuild a conversation saved with :meth:`to_dict`."""
        return cls(**dict(data))


@dataclass
class BotTurn:
    """The bot's side of one turn.

    ``events`` are the event dicts this turn produced (send them through the pipeline);
    ``patch`` holds the preference changes only the chat knows (always apply it);
    ``fallback_patch`` is what the pipeline would derive from ``events`` (feedback,
    interaction history) — apply it only when no pipeline consumes the events;
    ``reward`` (0-1, from CSAT) goes to ``engine.reward(decision_id, reward)``.
    """

    kind: TurnKind
    text: str
    html: str
    conversation: Conversation
    events: list[dict[str, Any]] = field(default_factory=list)
    prediction: IntentPrediction | None = None
    quick_replies: list[str] = field(default_factory=list)
    prompts: dict[str, str] = field(default_factory=dict)
    patch: ProfilePatch | None = None
    fallback_patch: ProfilePatch | None = None
    reward: float | None = None
    template: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The turn as JSON-serialisable data (what the API returns)."""
        return {
            "kind": self.kind,
            "text": self.text,
            "html": self.html,
            "chat_id": self.conversation.chat_id,
            "tone": self.conversation.tone,
            "lang": self.conversation.lang,
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "quick_replies": list(self.quick_replies),
            "prompts": dict(self.prompts),
            "events": list(self.events),
            "reward": self.reward,
            "escalated": self.conversation.escalated,
            "template": self.template,
        }


class Bot:
    """The reference support chatbot.

    Parameters
    ----------
    intents : IntentModel
        A fitted intent model (see :func:`~chatpersona.chat.load_or_train`).
    renderer : ResponseRenderer, optional
        The templates (defaults to the bundled ones).
    max_clarifications : int
        Clarifying questions asked in a row before handing over to a human (>= 0).
    clock : callable, optional
        Returns "now" (a timezone-aware datetime); for tests.
    id_factory : callable, optional
        Returns fresh ids for chats and events; for tests.

    Examples
    --------
    >>> from chatpersona.chat import IntentModel, load_dataset
    >>> from chatpersona.profiles import Profile
    >>> ds = load_dataset("bitext")
    >>> bot = Bot(IntentModel().fit(ds.texts, ds.labels, ds.categories))
    >>> hello = bot.greet(Profile(user_id="u1", preferences={"name": "Ana"}))
    >>> hello.text
    'Hi, Ana! How can I help?'
    """

    def __init__(
        self,
        intents: IntentPredictor,
        renderer: ResponseRenderer | None = None,
        *,
        max_clarifications: int = 2,
        clock: Callable[[], datetime] | None = None,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        if not isinstance(max_clarifications, int) or max_clarifications < 0:
            raise ParameterError("Bot", "max_clarifications", "an int >= 0", max_clarifications)
        self.intents = intents
        self.renderer = renderer or ResponseRenderer()
        self.max_clarifications = max_clarifications
        self.clock = clock or _now
        self.id_factory = id_factory or (lambda: str(uuid.uuid4()))

    # -- helpers ---------------------------------------------------------------------------
    def _event(
        self, conv: Conversation, type_: str, now: datetime, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        return make_event(
            type_,
            user_id=conv.user_id,
            chat_id=conv.chat_id,
            channel=conv.channel,
            device=conv.device,
            ts=now,
            payload=payload,
            event_id=self.id_factory(),
            tenant=conv.tenant,
        )

    def _render(self, conv: Conversation, template: str, **ctx: Any) -> Rendered:
        return self.renderer.render(template, tone=conv.tone, lang=conv.lang, **ctx)

    def _issue_view(self, issue: Mapping[str, str] | None, lang: str) -> dict[str, str] | None:
        if not issue:
            return None
        return {"label": category_label(issue["category"], lang), "date": issue["at"], **issue}

    def _yes_no(self, lang: str) -> list[str]:
        return ["Sí", "No, otra cosa"] if lang == "es" else ["Yes", "No, something else"]

    # -- pre-chat ---------------------------------------------------------------------------
    def greet(
        self,
        profile: Profile,
        decision: Any = None,
        *,
        chat_id: str | None = None,
        channel: str = "web",
        device: str = "desktop",
    ) -> BotTurn:
        """Open a chat: the greeting turn and a ``chat_started`` event.

        ``decision`` is the decision engine's answer for this chat (any object or dict,
        read by :meth:`ChatDecision.from_any`); ``None`` uses :func:`default_decision`.
        """
        now = self.clock()
        ctx = ProfileContext.of(profile)
        dec = ChatDecision.from_any(decision, default_decision(profile))
        conv = Conversation(
            chat_id=chat_id or self.id_factory(),
            user_id=profile.user_id,
            tenant=profile.tenant,
            lang=ctx.lang,
            tone=dec.tone,
            channel=channel,
            device=device,
            started_at=_iso(now),
            decision=asdict(dec),
        )
        offer = ctx.open_issue if dec.offer_continue else None
        conv.offered_issue = offer
        conv.awaiting = "continue" if offer else None
        out = self._render(
            conv,
            "greeting",
            name=ctx.name,
            welcome_back=ctx.welcome_back,
            issue=self._issue_view(offer, conv.lang),
            vip=ctx.vip,
            plan=ctx.plan,
        )
        event = self._event(conv, "chat_started", now, {})
        return BotTurn(
            kind="greeting",
            text=out.text,
            html=out.html,
            conversation=conv,
            events=[event],
            quick_replies=self._yes_no(conv.lang) if offer else [],
            template=out.template,
        )

    # -- during -----------------------------------------------------------------------------
    def reply(self, profile: Profile, message: str, *, conversation: Conversation) -> BotTurn:
        """Answer one customer message; the turn carries its ``message`` event."""
        conv = conversation
        if conv.ended:
            raise ConflictError(
                f"Chat {conv.chat_id} has ended; start a new chat to send messages.",
                chat_id=conv.chat_id,
            )
        if not isinstance(message, str) or not message.strip():
            raise InputError("A chat message must be non-empty text.", field="text", value=message)
        if len(message) > 2000:
            raise InputError(
                "A chat message must be at most 2000 characters.",
                field="text",
                value=len(message),
            )
        now = self.clock()
        ctx = ProfileContext.of(profile)
        conv.turns += 1
        lowered = message.strip().lower().rstrip("!.? ")
        prediction: IntentPrediction | None = None
        intent: str | None = None
        category: str | None = None
        past = None

        awaiting, conv.awaiting = conv.awaiting, None
        clarify_options, conv.clarify_options = conv.clarify_options, {}
        if awaiting == "continue" and conv.offered_issue and lowered in _YES:
            intent = conv.offered_issue.get("intent") or None
            category = conv.offered_issue["category"]
            past = self._issue_view(conv.offered_issue, conv.lang)
        elif awaiting == "continue" and lowered in _NO:
            out = self._render(conv, "ask", name=ctx.name)
            return self._turn(conv, "ask", out, now, message, None, None, None)
        elif message.strip() in clarify_options:
            intent = clarify_options[message.strip()]
            category = intent.split("/", 1)[0]
            intent = intent.split("/", 1)[1] or None
        elif _THANKS.match(message):
            out = self._render(conv, "thanks", name=ctx.name)
            return self._turn(conv, "thanks", out, now, message, None, None, None)

        if category is None:
            prediction = self.intents.predict_one(message)
            if not prediction.confident:
                conv.clarifications += 1
                if conv.clarifications > self.max_clarifications:
                    return self._escalate(conv, ctx, now, message, prediction, None)
                options: dict[str, str] = {}
                for cand, _ in (
                    (prediction.intent, prediction.confidence),
                    *prediction.alternatives,
                ):
                    cat = canonical_category(self._category_of(cand, prediction))
                    label = category_label(cat, conv.lang)
                    options.setdefault(label, f"{cat}/{cand}")
                conv.clarify_options = options
                out = self._render(conv, "clarify", name=ctx.name, options=list(options))
                return self._turn(
                    conv, "clarify", out, now, message, prediction, prediction.intent,
                    canonical_category(prediction.category), quick=list(options),
                )  # fmt: skip
            intent, category = prediction.intent, prediction.category

        category = canonical_category(category)
        conv.clarifications = 0
        if intent:
            conv.intents.append(intent)
        decision = self._decision(conv)
        if intent in ESCALATE_INTENTS or category.upper() in decision.escalate_categories:
            conv.issue = conv.issue or self._new_issue(conv, intent, category, now)
            return self._escalate(conv, ctx, now, message, prediction, category, intent)

        if past is None and ctx.open_issue and ctx.open_issue["category"] == category.upper():
            past = self._issue_view(ctx.open_issue, conv.lang)
        if category not in NOT_ISSUES:
            conv.issue = self._new_issue(conv, intent, category, now, past)
        out = self._render(
            conv,
            category,
            name=ctx.name,
            intent=intent,
            category=category,
            category_label=category_label(category, conv.lang),
            past=past,
            vip=ctx.vip,
            plan=ctx.plan,
        )
        if decision.route == "human" and not conv.escalated:
            # The routing decision hands the chat to a person: answer first, then say so.
            conv.escalated = True
            label = category_label(category, conv.lang)
            handover = self._render(conv, "escalate", name=ctx.name, category_label=label)
            out = Rendered(
                html=f"{out.html} {handover.html}",
                text=f"{out.text} {handover.text}",
                template=f"{out.template}+{handover.template}",
            )
            return self._turn(conv, "escalate", out, now, message, prediction, intent, category)
        return self._turn(conv, "answer", out, now, message, prediction, intent, category)

    def _decision(self, conv: Conversation) -> ChatDecision:
        data = dict(conv.decision)
        data["escalate_categories"] = tuple(data.get("escalate_categories") or ())
        return ChatDecision(**data)

    def _category_of(self, intent: str, prediction: IntentPrediction) -> str:
        cats = getattr(self.intents, "categories_", None)
        if isinstance(cats, Mapping) and intent in cats:
            return str(cats[intent])
        return prediction.category if intent == prediction.intent else intent

    def _new_issue(
        self,
        conv: Conversation,
        intent: str | None,
        category: str,
        now: datetime,
        past: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        if past and past.get("chat_id"):
            # Continuing an open issue keeps its original date and chat.
            return {
                "category": category.upper(),
                "intent": intent or "",
                "at": past["at"],
                "chat_id": past["chat_id"],
            }
        return {
            "category": category.upper(),
            "intent": intent or "",
            "at": _iso(now),
            "chat_id": conv.chat_id,
        }

    def _escalate(
        self,
        conv: Conversation,
        ctx: ProfileContext,
        now: datetime,
        message: str,
        prediction: IntentPrediction | None,
        category: str | None,
        intent: str | None = None,
    ) -> BotTurn:
        conv.escalated = True
        label = category_label(category, conv.lang) if category else None
        if category and category.upper() == "CONTACT":
            label = None
        out = self._render(conv, "escalate", name=ctx.name, category_label=label)
        return self._turn(
            conv,
            "escalate",
            out,
            now,
            message,
            prediction,
            intent or (prediction.intent if prediction else None),
            category or (canonical_category(prediction.category) if prediction else None),
        )

    def _turn(
        self,
        conv: Conversation,
        kind: TurnKind,
        out: Rendered,
        now: datetime,
        message: str,
        prediction: IntentPrediction | None,
        intent: str | None,
        category: str | None,
        *,
        quick: list[str] | None = None,
    ) -> BotTurn:
        payload: dict[str, Any] = {"text": message, "intent": intent, "category": category}
        if prediction is not None:
            payload["confidence"] = round(prediction.confidence, 4)
        event = self._event(conv, "message", now, payload)
        return BotTurn(
            kind=kind,
            text=out.text,
            html=out.html,
            conversation=conv,
            events=[event],
            prediction=prediction,
            quick_replies=quick or [],
            template=out.template,
        )

    # -- post-chat --------------------------------------------------------------------------
    def end_chat(
        self, profile: Profile, conversation: Conversation, *, resolved: bool | None = None
    ) -> BotTurn:
        """Close the chat (``chat_ended`` event) and ask for CSAT, with NPS as an option.

        ``resolved`` defaults to: an issue was answered and nobody had to take over.
        """
        conv = conversation
        if conv.ended:
            raise ConflictError(f"Chat {conv.chat_id} has already ended.", chat_id=conv.chat_id)
        now = self.clock()
        ctx = ProfileContext.of(profile)
        conv.ended = True
        conv.awaiting = "csat"
        conv.resolved = (
            (conv.issue is not None and not conv.escalated) if resolved is None else bool(resolved)
        )
        started = datetime.fromisoformat(conv.started_at.replace("Z", "+00:00"))
        handle = max(0.0, round((now - started).total_seconds(), 3))
        event = self._event(
            conv, "chat_ended", now, {"resolved": conv.resolved, "handle_time_s": handle}
        )
        csat = self._render(conv, "csat", name=ctx.name)
        nps = self._render(conv, "nps", name=ctx.name)
        return BotTurn(
            kind="csat",
            text=csat.text,
            html=csat.html,
            conversation=conv,
            events=[event],
            quick_replies=["1", "2", "3", "4", "5"],
            prompts={"csat": csat.text, "nps": nps.text},
            template=csat.template,
        )

    def post_chat(
        self,
        profile: Profile,
        conversation: Conversation,
        *,
        csat: int,
        nps: int | None = None,
    ) -> BotTurn:
        """Record the customer's ratings: a ``feedback`` event, the profile changes and the
        decision's reward ``(csat - 1) / 4`` in [0, 1]."""
        conv = conversation
        if not conv.ended:
            raise ConflictError(
                f"Chat {conv.chat_id} is still open; end it before rating it.",
                chat_id=conv.chat_id,
            )
        if conv.rated:
            raise ConflictError(f"Chat {conv.chat_id} was already rated.", chat_id=conv.chat_id)
        if isinstance(csat, bool) or not isinstance(csat, int) or not 1 <= csat <= 5:
            raise InputError(f"CSAT must be an integer 1-5. Got {csat!r} instead.",
                             field="csat", value=csat)  # fmt: skip
        if nps is not None and (
            isinstance(nps, bool) or not isinstance(nps, int) or not 0 <= nps <= 10
        ):
            raise InputError(f"NPS must be an integer 0-10. Got {nps!r} instead.",
                             field="nps", value=nps)  # fmt: skip
        now = self.clock()
        ctx = ProfileContext.of(profile)
        conv.rated = True
        conv.awaiting = None
        payload: dict[str, Any] = {"csat": csat}
        if nps is not None:
            payload["nps"] = nps
        event = self._event(conv, "feedback", now, payload)

        prefs: dict[str, Any] = {"language": conv.lang, "last_chat_at": _iso(now)}
        if conv.issue is not None:
            if conv.resolved:
                prefs.update(dict.fromkeys(OPEN_ISSUE_KEYS))
            else:
                prefs.update(
                    {
                        "open_issue_category": conv.issue["category"],
                        "open_issue_intent": conv.issue["intent"],
                        "open_issue_at": conv.issue["at"],
                        "open_issue_chat": conv.issue["chat_id"],
                    }
                )
        bye = self._render(conv, "goodbye", name=ctx.name)
        return BotTurn(
            kind="goodbye",
            text=bye.text,
            html=bye.html,
            conversation=conv,
            events=[event],
            patch=ProfilePatch(preferences=prefs),
            fallback_patch=ProfilePatch(csat=csat, nps=nps, interaction_history=[conv.chat_id]),
            reward=(csat - 1) / 4,
            template=bye.template,
        )


def open_issues_from_events(events: Any) -> dict[str, dict[str, str]]:
    """The open issue of each user from an event history (dicts like ``events.jsonl``).

    A chat is an open issue when its ``chat_ended`` event says ``resolved: false``; its
    category is the most frequent message category of the chat (first seen wins ties),
    not counting CONTACT and FEEDBACK messages (a chat with only those has no issue).
    Only each user's latest ended chat counts: a later resolved chat closes the issue.
    Returns ``{user_id: {"open_issue_category", "open_issue_intent", "open_issue_at",
    "open_issue_chat"}}`` — ready to merge into ``preferences``.
    """
    chats: dict[str, dict[str, Any]] = {}
    latest: dict[str, tuple[str, str, bool]] = {}
    for ev in sorted(events, key=lambda e: str(e.get("ts", ""))):
        payload = ev.get("payload") or {}
        chat_id = payload.get("chat_id")
        if not chat_id:
            continue
        chat = chats.setdefault(chat_id, {"cats": {}, "intent": {}, "start": ev.get("ts")})
        if ev.get("type") == "message" and payload.get("category"):
            cat = canonical_category(str(payload["category"]))
            if cat in NOT_ISSUES:
                continue
            chat["cats"][cat] = chat["cats"].get(cat, 0) + 1
            chat["intent"].setdefault(cat, str(payload.get("intent") or ""))
        elif ev.get("type") == "chat_ended":
            latest[str(ev["user_id"])] = (chat_id, str(ev.get("ts")), bool(payload.get("resolved")))
    out: dict[str, dict[str, str]] = {}
    for user, (chat_id, _ts, resolved) in latest.items():
        chat = chats[chat_id]
        if resolved or not chat["cats"]:
            continue
        cat = max(chat["cats"], key=lambda c: chat["cats"][c])
        out[user] = {
            "open_issue_category": cat,
            "open_issue_intent": chat["intent"][cat],
            "open_issue_at": str(chat["start"]),
            "open_issue_chat": chat_id,
        }
    return out
