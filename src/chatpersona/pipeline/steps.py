"""The named steps of the stream pipeline and the small protocols of their collaborators.

validate → dedupe → clean → window → features → assign → profile → commit → metrics

Steps work on a :class:`Batch` (the events of one receive, in order) so that state and
store round trips are per batch, not per event; ``Pipeline.run_one`` is a batch of one.
Every collaborator is reached through a Protocol, so tests can pass simple stand-ins.

Crash safety: profile effects are written before the state commit that marks the events
processed, and each profile effect is idempotent (history ids are set-like, features and
segment are replaced, a CSAT is applied only when the profile's count shows it missing).
A crash between the two therefore re-runs the batch without doubling anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import pydantic

from chatpersona.exceptions import ChatpersonaError
from chatpersona.profiles.schema import Profile, ProfilePatch, SegmentRef
from chatpersona.stream.events import MAX_EVENT_BYTES, Event, EventRejected, parse_event
from chatpersona.stream.state import StateStore
from chatpersona.stream.windows import (
    WindowConfig,
    apply_event,
    is_late,
    new_window_state,
    prune_state,
    window_features,
)

__all__ = [
    "STEP_NAMES",
    "Assigner",
    "Batch",
    "Cleaner",
    "EventResult",
    "FeatureTransformer",
    "ModelSource",
    "ProfileSink",
    "Step",
    "StepError",
]

STEP_NAMES = (
    "validate",
    "dedupe",
    "clean",
    "window",
    "features",
    "assign",
    "profile",
    "commit",
    "metrics",
)


class StepError(ChatpersonaError):
    """A pipeline step failed (not the event's fault: a backend, a bug); ``step`` names it.
    The worker gives the event back to the transport for another attempt."""

    default_code = "step_failed"


@runtime_checkable
class Cleaner(Protocol):
    """What the clean step needs: ``FittedPlan.transform_record``."""

    def transform_record(self, row: dict[str, Any]) -> Any:
        """A result with ``.ok``, ``.record``, ``.reason`` and ``.column``."""
        ...


@runtime_checkable
class FeatureTransformer(Protocol):
    """What the features step needs: ``FittedFeatureSpec.transform_one``."""

    def transform_one(
        self, user_row: Mapping[str, Any], aggregates: Mapping[str, Any] | None, as_of: datetime
    ) -> dict[str, float]:
        """One user's feature row."""
        ...


@runtime_checkable
class Assigner(Protocol):
    """What the assign step needs: ``SegmentModel.assign_one``."""

    def assign_one(self, features: dict[str, float]) -> Any:
        """An assignment with ``.segment_id``, ``.segment_name`` and ``.model_version``."""
        ...


@runtime_checkable
class ModelSource(Protocol):
    """Where the active segment model comes from (asked once per batch: hot switch)."""

    def current(self) -> Assigner | None:
        """The model to use now, or ``None`` when no model is active."""
        ...


@runtime_checkable
class ProfileSink(Protocol):
    """What the profile step needs of a profile store."""

    def get(self, tenant: str, user_id: str) -> Profile | None:
        """The stored profile."""
        ...

    def merge(self, tenant: str, user_id: str, patch: ProfilePatch) -> Profile:
        """Apply a patch atomically."""
        ...


@dataclass
class EventResult:
    """What happened to one event: ``status`` is ``processed``, ``duplicate`` or
    ``rejected`` (then ``reason`` is a code and the worker dead-letters the event)."""

    status: str
    event_id: str | None = None
    tenant: str | None = None
    user_id: str | None = None
    reason: str | None = None
    detail: str | None = None
    segment: str | None = None
    segment_changed: bool = False
    features: dict[str, float] | None = None


@dataclass
class _Item:
    raw: Any
    published_at: float | None = None
    event: Event | None = None
    result: EventResult | None = None
    record: dict[str, Any] | None = None

    @property
    def live(self) -> bool:
        return self.result is None

    def reject(self, reason: str, detail: str) -> None:
        ev = self.event
        self.result = EventResult(
            "rejected",
            ev.event_id if ev else None,
            ev.tenant if ev else None,
            ev.user_id if ev else None,
            reason,
            detail,
        )


@dataclass
class _UserOps:
    chat_ids: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    feedback: list[tuple[int | None, int | None, int]] = field(default_factory=list)
    """``(csat, nps, csat_count_after)`` of each feedback event, in order."""


@dataclass
class Batch:
    """The events of one pipeline call and what the steps learned about them."""

    items: list[_Item]
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    new_users: set[str] = field(default_factory=set)
    touched: list[str] = field(default_factory=list)
    ops: dict[str, _UserOps] = field(default_factory=dict)
    features: dict[str, dict[str, float]] = field(default_factory=dict)
    assignments: dict[str, Any] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    model: Any = None
    emitted: list[dict[str, Any]] = field(default_factory=list)
    fenced: set[str] = field(default_factory=set)
    fences: list[str] = field(default_factory=list)

    def live(self) -> list[_Item]:
        return [i for i in self.items if i.live]


_EVENT_JSON = Event.__pydantic_validator__.validate_json
"""``Event.model_validate_json`` without the classmethod's per-call overhead."""

FENCE = "fb!"
"""State key prefix of the feedback write-ahead marker of a user (see ``UpdateProfile``)."""


def user_key(tenant: str, user_id: str) -> str:
    """The state-store key of a user."""
    return f"{tenant}:{user_id}"


class Step:
    """A named stage; ``run`` mutates the batch. Subclasses set ``name``."""

    name: str = "step"

    def run(self, batch: Batch, ctx: StepContext) -> None:
        """Process the live items of ``batch``."""
        raise NotImplementedError


@dataclass
class StepContext:
    """The collaborators a pipeline gives its steps."""

    state: StateStore
    store: ProfileSink | None
    cleaner: Cleaner | None
    features: FeatureTransformer | None
    aggregates: tuple[Callable[[], dict[str, Any]], Callable[[dict[str, Any], Any], None]] | None
    models: ModelSource | None
    windows: WindowConfig
    emit: Callable[[dict[str, Any]], None] | None
    metrics: Any
    clock: Callable[[], float] = time.time


class Validate(Step):
    """Parse raw bytes / dicts into :class:`Event`; invalid ones are rejected with a code."""

    name = "validate"

    def run(self, batch: Batch, ctx: StepContext) -> None:
        fast = _EVENT_JSON
        for item in batch.live():
            raw = item.raw
            # The common case inlined (bytes within the size limit that validate as they
            # are); anything else takes parse_event, which names the precise reason.
            if type(raw) is bytes and len(raw) <= MAX_EVENT_BYTES:
                try:
                    item.event = fast(raw)
                    continue
                except (pydantic.ValidationError, ValueError):
                    pass
            try:
                item.event = parse_event(raw)
            except EventRejected as exc:
                item.reject(exc.code, exc.message)


class Dedupe(Step):
    """Drop events whose id was committed before or appears earlier in the batch."""

    name = "dedupe"

    def run(self, batch: Batch, ctx: StepContext) -> None:
        live = batch.live()
        ids = [f"{i.event.tenant}:{i.event.event_id}" for i in live if i.event]
        owned = getattr(ctx.state, "seen_owned", None)
        if owned is not None:  # Redis Cluster: a marker lives in its user's hash slot
            owner = {
                f"{i.event.tenant}:{i.event.event_id}": user_key(i.event.tenant, i.event.user_id)
                for i in live
                if i.event
            }
            seen = owned(list(owner), list(owner.values()))
        else:
            seen = ctx.state.seen(list(dict.fromkeys(ids)))
        for item, eid in zip(live, ids, strict=True):
            ev = item.event
            assert ev is not None
            if eid in seen:
                item.result = EventResult("duplicate", ev.event_id, ev.tenant, ev.user_id)
            seen.add(eid)


class Clean(Step):
    """Run ``profile_update`` payloads through the fitted cleaning plan's one-record path."""

    name = "clean"

    def run(self, batch: Batch, ctx: StepContext) -> None:
        for item in batch.live():
            ev = item.event
            if ev is None or ev.type != "profile_update":
                continue
            row = {**ev.payload, "user_id": ev.user_id}
            if ctx.cleaner is None:
                item.record = row
                continue
            res = ctx.cleaner.transform_record(row)
            if not res.ok or res.record is None:
                col = f" in column {res.column!r}" if res.column else ""
                item.reject(f"clean:{res.reason or 'rejected'}", f"cleaning rejected the row{col}")
            else:
                item.record = dict(res.record)


class Window(Step):
    """Load users' state, fold each event in (event time, bounded lateness), collect the
    profile effects."""

    name = "window"

    def run(self, batch: Batch, ctx: StepContext) -> None:
        live = batch.live()
        keys = list(
            dict.fromkeys(user_key(i.event.tenant, i.event.user_id) for i in live if i.event)
        )
        # The feedback write-ahead markers come with the same round trip.
        loaded = ctx.state.load(keys + [FENCE + k for k in keys])
        batch.fenced = {k for k in keys if loaded.get(FENCE + k)}
        for key in keys:
            if key in loaded:
                batch.states[key] = loaded[key]
            else:
                batch.new_users.add(key)
                batch.states[key] = {
                    "w": new_window_state(),
                    "agg": ctx.aggregates[0]() if ctx.aggregates else None,
                    "user": None,
                    "segment": None,
                }
        touched: dict[str, None] = {}
        states, all_ops, windows = batch.states, batch.ops, ctx.windows
        update_agg = ctx.aggregates[1] if ctx.aggregates is not None else None
        for item in live:
            ev = item.event
            assert ev is not None
            key = f"{ev.tenant}:{ev.user_id}"  # user_key(), inlined: this loop is per event
            st = states[key]
            ts = ev.epoch
            if is_late(st["w"], ts, windows):
                lag = st["w"]["max_ts"] - ts
                item.reject("too_late", f"event is {lag:.0f}s behind the user's newest event")
                continue
            apply_event(
                st["w"],
                event_id=ev.event_id,
                type=ev.type,
                ts=ts,
                channel=ev.channel,
                device=ev.device,
                payload=ev.payload,
                config=ctx.windows,
                prune=False,
            )
            agg = st.get("agg")
            if update_agg is not None and agg is not None:
                update_agg(agg, ev)
            ops = all_ops.get(key)
            if ops is None:
                ops = all_ops[key] = _UserOps()
            chat_id = ev.payload.get("chat_id")
            if isinstance(chat_id, str) and chat_id not in ops.chat_ids:
                ops.chat_ids.append(chat_id)
            if ev.type == "feedback":
                csat, nps = ev.payload.get("csat"), ev.payload.get("nps")
                ops.feedback.append((csat, nps, st["w"]["csat"][1]))
            if ev.type == "profile_update" and item.record is not None:
                record = {k: v for k, v in item.record.items() if k != "user_id"}
                ops.attributes.update(record)
                st["user"] = {**(st.get("user") or {}), **item.record}
            item.result = EventResult("processed", ev.event_id, ev.tenant, ev.user_id)
            touched[key] = None
        batch.touched = list(touched)
        for key in batch.touched:
            prune_state(batch.states[key]["w"], ctx.windows)


class Features(Step):
    """Compute each touched user's feature row as of their newest event, with the fitted
    feature spec given to the pipeline, else the active model's own spec, else window
    features. The model is read once per batch here (the hot-switch point)."""

    name = "features"

    def run(self, batch: Batch, ctx: StepContext) -> None:
        batch.model = ctx.models.current() if ctx.models is not None else None
        spec: Any = ctx.features or getattr(batch.model, "feature_spec", None)
        if spec is not None and ctx.store is not None:
            self._load_users(batch, ctx.store)
        for key in batch.touched:
            st = batch.states[key]
            if spec is None or st.get("agg") is None:
                batch.features[key] = window_features(st["w"])
                continue
            as_of = datetime.fromtimestamp(st["w"]["max_ts"], UTC)
            batch.features[key] = spec.transform_one(st.get("user") or {}, st.get("agg"), as_of)

    @staticmethod
    def _load_users(batch: Batch, store: ProfileSink) -> None:
        """The stored attributes of users new to the stream state (the batch path may
        have written their profile): one ``get_many`` per tenant when the store has it."""
        wanted: dict[str, list[str]] = {}
        for key in batch.touched:
            st = batch.states[key]
            if st.get("user") is None and key in batch.new_users and st.get("agg") is not None:
                tenant, user_id = key.split(":", 1)
                wanted.setdefault(tenant, []).append(user_id)
        many = getattr(store, "get_many", None)
        for tenant, user_ids in wanted.items():
            if many is not None:
                found: Mapping[str, Profile | None] = many(tenant, user_ids)
            else:
                found = {uid: store.get(tenant, uid) for uid in user_ids}
            for uid in user_ids:
                profile = found.get(uid)
                st = batch.states[user_key(tenant, uid)]
                st["user"] = dict(profile.attributes) if profile else {}


class Assign(Step):
    """Assign each touched user with the model active now; note segment changes."""

    name = "assign"

    def run(self, batch: Batch, ctx: StepContext) -> None:
        model = batch.model
        if model is None:
            return
        for key in batch.touched:
            a = model.assign_one(batch.features[key])
            batch.assignments[key] = a
            st = batch.states[key]
            if st.get("segment") != str(a.segment_id):
                batch.changed.add(key)
                st["segment_from"] = st.get("segment")
                st["segment"] = str(a.segment_id)


class UpdateProfile(Step):
    """Write each touched user's effects to the profile store (idempotent effects), one
    ``merge_many`` per tenant when the store has it (SQL stores: one transaction per chunk).

    History ids, attributes, features and segment are idempotent by nature; a CSAT is not
    (it feeds a running mean). Before writing CSATs the step stores a marker per user in
    the state store (one batched write); the state commit clears it. A marker found at
    load time means an earlier attempt may have written the profile and died before the
    commit: only then is the profile read, and CSATs its count already covers are skipped.
    """

    name = "profile"

    def run(self, batch: Batch, ctx: StepContext) -> None:
        store = ctx.store
        now = datetime.fromtimestamp(ctx.clock(), UTC)
        items: dict[str, list[tuple[str, ProfilePatch]]] = {}
        if store is not None:
            batch.fences = [k for k in batch.touched if batch.ops.get(k) and batch.ops[k].feedback]
            if batch.fences:
                ctx.state.commit({FENCE + k: {"inflight": True} for k in batch.fences}, [])
        # One SegmentRef per segment of the batch, shared by its users' patches (all
        # assigned now by the same model; nothing mutates a SegmentRef).
        refs: dict[tuple[str, str, str], SegmentRef] = {}
        for key in batch.touched:
            tenant, user_id = key.split(":", 1)
            ops = batch.ops.get(key, _UserOps())
            a = batch.assignments.get(key)
            segment = None
            if a is not None:
                ref_key = (str(a.segment_id), str(a.segment_name), str(a.model_version))
                segment = refs.get(ref_key)
                if segment is None:
                    segment = refs[ref_key] = SegmentRef(
                        id=ref_key[0], name=ref_key[1], model_version=ref_key[2], assigned_at=now
                    )
            if store is not None:
                feedback = ops.feedback
                if feedback and key in batch.fenced:
                    current = store.get(tenant, user_id)
                    have = current.feedback.csat_count if current else 0
                    # A CSAT whose running count the profile already reached was applied
                    # before a crash: skip it (NPS only sets the last value: idempotent).
                    feedback = [f for f in feedback if f[0] is None or f[2] > have]
                # Coalesced: one patch per user, plus one more per extra CSAT of the batch
                # (a CSAT feeds a running mean, so each needs its own patch, in order).
                # NPS only sets the last value: the batch's last NPS rides on the last
                # patch. Same final profile as one patch per feedback event.
                csats = [f[0] for f in feedback if f[0] is not None]
                npss = [f[1] for f in feedback if f[1] is not None]
                last_nps = npss[-1] if npss else None
                todo = items.setdefault(tenant, [])
                todo.append(
                    (
                        user_id,
                        ProfilePatch(
                            interaction_history=ops.chat_ids or None,
                            attributes=ops.attributes or None,
                            features=batch.features.get(key),
                            segment=segment,
                            csat=csats[0] if csats else None,
                            nps=last_nps if len(csats) <= 1 else None,
                        ),
                    )
                )
                for i in range(1, len(csats)):
                    last = i == len(csats) - 1
                    todo.append(
                        (user_id, ProfilePatch(csat=csats[i], nps=last_nps if last else None))
                    )
            if key in batch.changed:
                st = batch.states[key]
                batch.emitted.append(
                    {
                        "type": "segment_changed",
                        "tenant": tenant,
                        "user_id": user_id,
                        "from": st.pop("segment_from", None),
                        "to": st["segment"],
                        "segment_name": segment.name if segment else None,
                        "model_version": segment.model_version if segment else None,
                    }
                )
            else:
                batch.states[key].pop("segment_from", None)
        if store is not None:
            many = getattr(store, "merge_many", None)
            for tenant, todo in items.items():
                if many is not None:
                    many(tenant, todo)
                else:
                    for user_id, patch in todo:
                        store.merge(tenant, user_id, patch)
        # Emitted after the profiles are written (at least once: a crash before the state
        # commit emits again on redelivery).
        for change in batch.emitted:
            if ctx.metrics is not None:
                ctx.metrics.count_segment_change()
            if ctx.emit is not None:
                ctx.emit(change)


class Commit(Step):
    """Store the new state and mark the processed events, atomically."""

    name = "commit"

    def run(self, batch: Batch, ctx: StepContext) -> None:
        done = [
            i.event
            for i in batch.items
            if i.result is not None and i.result.status == "processed" and i.event
        ]
        ids = [f"{e.tenant}:{e.event_id}" for e in done]
        docs: dict[str, dict[str, Any]] = {k: batch.states[k] for k in batch.touched}
        docs.update({FENCE + k: {} for k in batch.fences})  # the CSATs are now accounted for
        owned = getattr(ctx.state, "commit_owned", None)
        if owned is not None:  # Redis Cluster: one atomic commit per user
            owned(docs, ids, [user_key(e.tenant, e.user_id) for e in done])
        else:
            ctx.state.commit(docs, ids)


class Metrics(Step):
    """Count outcomes and event-to-profile latency; fill the per-event results."""

    name = "metrics"

    def run(self, batch: Batch, ctx: StepContext) -> None:
        now = ctx.clock()
        metrics = ctx.metrics
        counts: dict[str, int] = {}
        segments: dict[str, str | None] = {}  # per user: str() once, not once per event
        assignments, changed, features = batch.assignments, batch.changed, batch.features
        for item in batch.items:
            r = item.result
            if r is None:
                continue
            counts[r.status] = counts.get(r.status, 0) + 1
            if r.status == "processed" and r.tenant and r.user_id:
                key = f"{r.tenant}:{r.user_id}"  # user_key(), inlined: per event
                if key in segments:
                    r.segment = segments[key]
                else:
                    a = assignments.get(key)
                    r.segment = segments[key] = str(a.segment_id) if a is not None else None
                r.segment_changed = key in changed
                r.features = features.get(key)
                if metrics is not None and item.published_at is not None:
                    metrics.observe_latency(max(0.0, now - item.published_at))
        if metrics is not None:
            for status, n in counts.items():
                metrics.count_event(status, n)


DEFAULT_STEPS: tuple[type[Step], ...] = (
    Validate,
    Dedupe,
    Clean,
    Window,
    Features,
    Assign,
    UpdateProfile,
    Commit,
    Metrics,
)


def make_batch(raws: Sequence[Any], published_at: Sequence[float | None] | None) -> Batch:
    """A batch of raw events (bytes, dicts or :class:`Event`)."""
    at = list(published_at) if published_at is not None else [None] * len(raws)
    return Batch([_Item(r, p) for r, p in zip(raws, at, strict=True)])
