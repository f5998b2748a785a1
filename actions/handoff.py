"""Talking to a person: open a ticket that staff answer from the console."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.base import BureauAction
from actions.core import FALLBACK_HANDOFF_SLOT, leave_form_events
from bureau.services import handoff

# Staff read the ticket without the chat history: the last few things the user said come with it.
_CONTEXT_MESSAGES = 5


def recent_user_texts(tracker: Tracker, limit: int = _CONTEXT_MESSAGES) -> list[str]:
    """The user's latest typed messages, oldest first (button payloads left out)."""
    texts: list[str] = []
    for event in reversed(tracker.events or []):
        if event.get("event") == "user":
            text = str(event.get("text") or "").strip()
            if text and not text.startswith("/"):
                texts.append(text)
            if len(texts) >= limit:
                break
    latest = str((tracker.latest_message or {}).get("text") or "").strip()
    if latest and not latest.startswith("/") and latest not in texts:
        texts.insert(0, latest)
    return list(reversed(texts))


class ActionHandoff(BureauAction):
    """Open (or add to) the user's handoff ticket and say what happens next."""

    def name(self) -> str:
        return "action_handoff"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        reason = "fallback" if tracker.get_slot(FALLBACK_HANDOFF_SLOT) else "user_request"
        ticket = handoff.open_ticket(
            session, tracker.sender_id, "\n".join(recent_user_texts(tracker)), reason
        )
        dispatcher.utter_message(response="utter_handoff_opened", ticket_id=ticket.id)
        return leave_form_events(tracker, clear_slots=False)
