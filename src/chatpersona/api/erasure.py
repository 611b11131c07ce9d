"""Erasure and export of a user's real-time state, for ``DELETE /api/user/{id}/profile``
and ``GET /api/user/{id}/export``.

The API calls ``delete_user`` / ``export_user`` on every service that has them; this
adapter gives the stream worker's state store (windows, sessions, running feedback and the
in-flight fence) those two methods, with the same key layout the pipeline uses.
"""

from __future__ import annotations

from typing import Any

from chatpersona.pipeline.steps import FENCE, user_key
from chatpersona.stream.state import StateStore

__all__ = ["StateEraser"]


class StateEraser:
    """Wraps a :class:`~chatpersona.stream.state.StateStore` for erasure and export.

    Examples
    --------
    >>> from chatpersona.stream.state import open_state
    >>> st = open_state("memory://")
    >>> st.commit({"t:u1": {"n": 1}}, [])
    >>> eraser = StateEraser(st)
    >>> eraser.export_user("t", "u1")
    {'realtime_state': {'n': 1}}
    >>> eraser.delete_user("t", "u1"), eraser.export_user("t", "u1")
    (1, {})
    """

    def __init__(self, state: StateStore) -> None:
        self.state = state

    def delete_user(self, tenant: str, user_id: str) -> int:
        """Delete the user's state documents; returns how many existed."""
        key = user_key(tenant, user_id)
        keys = [key, FENCE + key]
        existing = self.state.load(keys)
        self.state.delete(keys)
        return len(existing)

    def export_user(self, tenant: str, user_id: str) -> dict[str, Any]:
        """The user's real-time state document, if any."""
        doc = self.state.load([user_key(tenant, user_id)]).get(user_key(tenant, user_id))
        return {"realtime_state": doc} if doc else {}
