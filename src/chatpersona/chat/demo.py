"""Helpers that prepare a profile store for the chatbot demo: seed each user's open issue
from their event history, and pick a few users worth chatting as."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from chatpersona.chat.bot import ProfileContext, open_issues_from_events
from chatpersona.exceptions import InputError
from chatpersona.profiles.base import ProfileStore
from chatpersona.profiles.schema import Profile, ProfilePatch

__all__ = ["apply_open_issues", "pick_demo_users", "read_events_jsonl"]


def read_events_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The events of an ``events.jsonl`` file, one dict per line (blank lines skipped)."""
    src = Path(path)
    with src.open("r", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise InputError(
                    f"Line {line_no} of {src} is not JSON: {exc}", file=str(src), row=line_no
                ) from exc


def apply_open_issues(
    store: ProfileStore, tenant: str, events: Iterable[dict[str, Any]], *, only_known: bool = True
) -> int:
    """Write each user's open issue (see :func:`open_issues_from_events`) into their
    ``preferences``; with ``only_known``, users without a profile are skipped. Returns how
    many profiles were updated.

    Examples
    --------
    >>> from chatpersona.profiles import MemoryStore
    >>> store = MemoryStore()
    >>> _ = store.merge("t", "u1", ProfilePatch(preferences={"language": "en"}))
    >>> apply_open_issues(store, "t", [
    ...     {"user_id": "u1", "type": "message", "ts": "2026-03-12T09:01:00Z",
    ...      "payload": {"chat_id": "c1", "intent": "get_refund", "category": "REFUND"}},
    ...     {"user_id": "u1", "type": "chat_ended", "ts": "2026-03-12T09:05:00Z",
    ...      "payload": {"chat_id": "c1", "resolved": False}}])
    1
    >>> store.get("t", "u1").preferences["open_issue_category"]
    'REFUND'
    """
    updated = 0
    for user_id, prefs in sorted(open_issues_from_events(events).items()):
        if only_known and store.get(tenant, user_id) is None:
            continue
        store.merge(tenant, user_id, ProfilePatch(preferences=dict(prefs)))
        updated += 1
    return updated


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


def pick_demo_users(
    store: ProfileStore, tenant: str, n: int = 6, *, scan_limit: int = 3000
) -> list[dict[str, Any]]:
    """Up to ``n`` users to chat as: one per segment first, users with an open issue first
    (then by user id, so the choice is stable), from the first ``scan_limit`` profiles."""
    profiles = _scan(store, tenant, scan_limit)
    profiles.sort(key=lambda p: (not p.preferences.get("open_issue_category"), p.user_id))
    chosen: list[Profile] = []
    seen: set[str] = set()
    for p in profiles:
        sid = p.segment.id if p.segment else "none"
        if sid not in seen:
            seen.add(sid)
            chosen.append(p)
    ids = {p.user_id for p in chosen}
    for p in profiles:
        if len(chosen) >= n:
            break
        if p.user_id not in ids:
            chosen.append(p)
            ids.add(p.user_id)
    users = []
    for p in chosen[:n]:
        ctx = ProfileContext.of(p)
        users.append(
            {
                "user_id": p.user_id,
                "name": ctx.name,
                "segment": p.segment.name if p.segment else None,
                "language": ctx.lang,
                "open_issue": p.preferences.get("open_issue_category"),
                "open_issue_at": p.preferences.get("open_issue_at"),
            }
        )
    return users
