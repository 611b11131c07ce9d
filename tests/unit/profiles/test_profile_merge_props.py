"""Hypothesis: merge invariants hold for any sequence of patches, on every embedded store."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chatpersona.profiles import HISTORY_LIMIT, ProfilePatch, apply_patch
from chatpersona.profiles.memory import MemoryStore
from chatpersona.profiles.sqlite import SQLiteStore

chat_ids = st.text(alphabet="abcdef0123", min_size=1, max_size=3)
pref_keys = st.sampled_from(["language", "tone", "product_interest", "channel"])
pref_values = st.one_of(st.none(), st.text(max_size=5), st.integers(-5, 5), st.booleans())
patches = st.builds(
    ProfilePatch,
    preferences=st.one_of(st.none(), st.dictionaries(pref_keys, pref_values, max_size=4)),
    interaction_history=st.one_of(st.none(), st.lists(chat_ids, max_size=8)),
)


def _model(ops: list[ProfilePatch]) -> tuple[dict[str, object], list[str]]:
    """The obvious reference: a dict updated key by key, and every chat id ever added."""
    prefs: dict[str, object] = {}
    distinct: list[str] = []
    for op in ops:
        for k, v in (op.preferences or {}).items():
            if v is None:
                prefs.pop(k, None)
            else:
                prefs[k] = v
        for c in op.interaction_history or []:
            if c not in distinct:
                distinct.append(c)
    return prefs, distinct


@settings(max_examples=150, deadline=None)
@given(st.lists(patches, max_size=12))
def test_merge_matches_reference_model(ops: list[ProfilePatch]) -> None:
    p = None
    for op in ops:
        p = apply_patch(p, op, tenant="t", user_id="u")
    prefs, distinct = _model(ops)
    if p is None:
        assert ops == []
        return
    assert p.version == len(ops)
    assert p.preferences == prefs  # null deleted, last write wins per key
    assert len(set(p.interaction_history)) == len(p.interaction_history)  # no duplicates
    assert p.interaction_count == len(distinct)  # under the limit: every distinct id counted
    assert p.interaction_history == list(reversed(distinct))[:HISTORY_LIMIT]  # newest first


@settings(max_examples=40, deadline=None)
@given(st.lists(patches, min_size=1, max_size=8))
def test_every_store_agrees_with_apply_patch(ops: list[ProfilePatch]) -> None:
    stores = [MemoryStore(), SQLiteStore(":memory:")]
    expected = None
    for op in ops:
        expected = apply_patch(expected, op, tenant="t", user_id="u")
        for s in stores:
            s.merge("t", "u", op)
    assert expected is not None
    for s in stores:
        got = s.get("t", "u")
        assert got is not None
        assert got.model_dump(exclude={"created_at", "updated_at"}) == expected.model_dump(
            exclude={"created_at", "updated_at"}
        )
        s.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(chat_ids, max_size=30), st.lists(chat_ids, max_size=30))
def test_replaying_history_is_idempotent(first: list[str], again: list[str]) -> None:
    p = apply_patch(None, ProfilePatch(interaction_history=first), tenant="t", user_id="u")
    q = apply_patch(p, ProfilePatch(interaction_history=first), tenant="t", user_id="u")
    assert q.interaction_history == p.interaction_history
    assert q.interaction_count == p.interaction_count
    r = apply_patch(q, ProfilePatch(interaction_history=again), tenant="t", user_id="u")
    assert set(r.interaction_history) == set(first) | set(again)
