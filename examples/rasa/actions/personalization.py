"""The personalization logic of the Rasa example, without any Rasa import (so it can be
tested and reused): read the profile from chatpersona, ask for the tone and routing, and
turn it all into slot values."""

from __future__ import annotations

from typing import Any

from chatpersona.client import ApiClientError, Client

SLOTS = (
    "cp_user_name",
    "cp_language",
    "cp_segment",
    "cp_returning",
    "cp_open_issue",
    "cp_open_issue_date",
    "cp_tone",
    "cp_route",
    "cp_decision_ids",
)
"""The slots this example fills (declare them in domain.yml)."""


def profile_slots(client: Client, user_id: str, channel: str = "web") -> dict[str, Any]:
    """Slot values for ``user_id`` at session start.

    An unknown user gets defaults (English, no segment); an unreachable API raises
    :class:`~chatpersona.client.ApiClientError` so the action can log it and go on.
    """
    profile = client.find_profile(user_id)
    slots: dict[str, Any] = dict.fromkeys(SLOTS)
    slots["cp_language"] = "en"
    slots["cp_returning"] = False
    decision_ids: dict[str, str] = {}
    if profile is not None:
        prefs = profile.preferences
        slots["cp_user_name"] = prefs.get("name") or profile.attributes.get("name")
        language = (profile.language or "en").strip().lower()
        slots["cp_language"] = "es" if language.startswith(("es", "spa")) else "en"
        slots["cp_segment"] = profile.segment_name
        slots["cp_returning"] = profile.interaction_count > 0
        slots["cp_open_issue"] = prefs.get("open_issue_category")
        at = prefs.get("open_issue_at")
        slots["cp_open_issue_date"] = str(at)[:10] if at else None
    for point, slot in (("tone", "cp_tone"), ("routing", "cp_route")):
        try:
            decision = client.personalize(user_id, point, {"channel": channel})
        except ApiClientError as exc:
            if exc.status in (0, 401, 403):
                raise
            continue  # a missing decision point keeps the bot's default
        slots[slot] = decision.action
        decision_ids[point] = decision.decision_id
    slots["cp_decision_ids"] = decision_ids or None
    return slots
