"""Rasa custom actions backed by chatpersona (run with ``rasa run actions``).

``action_session_start`` fetches the user's profile (the Rasa ``sender_id`` is the
chatpersona user id) and fills the ``cp_*`` slots; ``action_chatpersona_reward`` sends the
CSAT in the ``csat`` slot as the reward of the session's decisions.

Configure with the environment of the action server (this is an application, not the
library, so it reads its configuration from the environment):
``CHATPERSONA_URL`` (default http://127.0.0.1:8000) and ``CHATPERSONA_API_KEY``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from chatpersona.client import ApiClientError, Client

from .personalization import profile_slots

log = logging.getLogger(__name__)


def _client() -> Client:
    return Client(
        os.environ.get("CHATPERSONA_URL", "http://127.0.0.1:8000"),
        os.environ.get("CHATPERSONA_API_KEY", ""),
        timeout=3.0,
    )


class ActionSessionStart(Action):
    """Start the session with the user's chatpersona profile in slots."""

    def name(self) -> str:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = [SessionStarted()]
        try:
            with _client() as client:
                slots = profile_slots(client, tracker.sender_id)
        except ApiClientError as exc:
            log.warning("chatpersona unavailable, starting without a profile: %s", exc)
            slots = {}
        events += [SlotSet(name, value) for name, value in slots.items()]
        events.append(ActionExecuted("action_listen"))
        return events


class ActionChatpersonaReward(Action):
    """Reward the session's decisions with the CSAT the user gave (slot ``csat``)."""

    def name(self) -> str:
        return "action_chatpersona_reward"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        csat = tracker.get_slot("csat")
        ids = tracker.get_slot("cp_decision_ids") or {}
        if csat is None or not ids:
            return []
        try:
            with _client() as client:
                for decision_id in ids.values():
                    client.reward(decision_id, outcomes={"csat": int(csat)})
        except ApiClientError as exc:
            log.warning("could not reward decisions %s: %s", ids, exc)
        return []
