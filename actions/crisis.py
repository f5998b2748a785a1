"""Crisis: the hotlines at once, whatever else is going on, and a person alerted."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from actions.core import latest_text, leave_form_events
from bureau import safety
from bureau.db import get_session_factory, run_transaction

logger = logging.getLogger(__name__)


def answer_crisis(dispatcher: CollectingDispatcher, openid: str, text: str, source: str) -> None:
    """Send CRISIS_REPLY first, then raise the staff alert; a database failure never blocks the reply."""
    dispatcher.utter_message(text=safety.CRISIS_REPLY)
    try:
        run_transaction(
            get_session_factory(),
            lambda session: safety.raise_crisis_alert(session, openid, text, source),
            what="crisis_alert",
        )
    except SQLAlchemyError:
        # The user already has the hotlines; staff still see the message in the message log.
        logger.exception("could not store the crisis alert")


class ActionCrisis(Action):
    """Answer with CRISIS_REPLY first, then raise the staff alert.

    Not a BureauAction: the reply must go out even when the database is down. The running form (if
    any) is put aside, its answers kept, so the user can pick it up later.
    """

    def name(self) -> str:
        return "action_crisis"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        answer_crisis(dispatcher, tracker.sender_id, latest_text(tracker) or "（用户点选了求助）", "nlu")
        if tracker.active_loop_name:
            dispatcher.utter_message(response="utter_crisis_form_paused")
        return leave_form_events(tracker, clear_slots=False)
