"""The core conversation: main menu, stop, two-stage fallback; helpers the feature actions share."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from actions.base import SYSTEM_ERROR_RESPONSE
from bureau.db import get_session_factory, run_transaction

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Messages that are about something else than the question a form asked: the form lets go (rejects)
# and the rules answer them (crisis, handoff, menu, stop, chitchat), then the form asks again.
INTERRUPTING_INTENTS = frozenset(
    {"crisis", "human_handoff", "main_menu", "stop", "greet", "thank", "bot_challenge", "goodbye"}
)
# Starting another service in the middle of a form.
FEATURE_INTENTS = frozenset(
    {
        "job_search",
        "job_subscribe",
        "job_unsubscribe",
        "certificate_apply",
        "certificate_status",
        "legal_help",
        "counseling_book",
        "counseling_cancel",
        "benefits_query",
        "hardship_aid",
        "merchant_discounts",
        "service_station",
        "return_registration",
        "loan_info",
        "bind_identity",
    }
)
# Slots of the forms of this slice, cleared when the user stops or goes back to the menu.
FORM_SLOT_PREFIXES = ("counsel_", "legal_")
FALLBACK_HANDOFF_SLOT = "core_offer_handoff"

MAIN_MENU = [
    ("找工作", "/job_search"),
    ("优待证办理/查询", "/certificate_apply"),
    ("法律援助", "/legal_help"),
    ("预约老战友", "/counseling_book"),
    ("政策待遇", "/benefits_query"),
    ("服务站", "/service_station"),
    ("转人工", "/human_handoff"),
]


def menu_buttons() -> list[dict[str, str]]:
    """The main menu as Rasa buttons (the gateway numbers them 1…7)."""
    return [{"title": title, "payload": payload} for title, payload in MAIN_MENU]


def latest_intent(tracker: Tracker) -> str | None:
    """The intent NLU gave the latest message (nlu_fallback included, unlike get_intent_of_latest_message)."""
    intent = (tracker.latest_message or {}).get("intent") or {}
    name = intent.get("name")
    return str(name) if name else None


def latest_text(tracker: Tracker) -> str:
    """The latest user text; a button payload ("/inform{…}") counts as no text."""
    text = str((tracker.latest_message or {}).get("text") or "").strip()
    return "" if text.startswith("/") else text


def latest_entity(tracker: Tracker, entity: str) -> str | None:
    """The first value of an entity in the latest message."""
    for item in (tracker.latest_message or {}).get("entities") or []:
        if item.get("entity") == entity and item.get("value") not in (None, ""):
            return str(item["value"])
    return None


def latest_choice(tracker: Tracker, prefix: str) -> str | None:
    """The part after `prefix:` of a numbered choice in the latest message ("slot:42" → "42")."""
    for item in (tracker.latest_message or {}).get("entities") or []:
        value = str(item.get("value") or "")
        if item.get("entity") == "choice" and value.startswith(prefix + ":"):
            return value[len(prefix) + 1 :]
    return None


def is_interruption(tracker: Tracker) -> bool:
    """True when the latest message should be answered by a rule, not taken as the form's answer."""
    return latest_intent(tracker) in INTERRUPTING_INTENTS


def run_unit(
    dispatcher: CollectingDispatcher, work: Callable[[Session], T], what: str
) -> tuple[bool, T | None]:
    """Run `work` in one database transaction (run again after a brief outage, see
    `bureau.db.run_transaction`); on a database error apologise and return (False, None).

    For validators and actions that cannot be a BureauAction (forms, crisis).
    """
    already_said = len(dispatcher.messages)

    def forget_attempt() -> None:  # a retried unit must not say its answer twice
        del dispatcher.messages[already_said:]

    try:
        return True, run_transaction(get_session_factory(), work, what=what, on_retry=forget_attempt)
    except SQLAlchemyError:
        logger.exception("database error in %s", what)
        del dispatcher.messages[already_said:]
        if not any(m.get("response") == SYSTEM_ERROR_RESPONSE for m in dispatcher.messages):
            dispatcher.utter_message(response=SYSTEM_ERROR_RESPONSE)  # one apology per turn is enough
        return False, None


def leave_form_events(tracker: Tracker, clear_slots: bool) -> list[EventType]:
    """Deactivate the active form (if any); optionally forget what this slice's forms had collected."""
    events: list[EventType] = []
    if tracker.active_loop_name:
        events += [ActiveLoop(None), SlotSet("requested_slot", None)]
    if clear_slots:
        events += [
            SlotSet(name, None)
            for name, value in (tracker.slots or {}).items()
            if name.startswith(FORM_SLOT_PREFIXES) and value is not None
        ]
    if tracker.get_slot(FALLBACK_HANDOFF_SLOT):
        events.append(SlotSet(FALLBACK_HANDOFF_SLOT, False))
    return events


class ActionMainMenu(Action):
    """ "0"/"菜单": leave whatever form is running and show the main menu."""

    def name(self) -> str:
        return "action_main_menu"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        dispatcher.utter_message(response="utter_main_menu")
        return leave_form_events(tracker, clear_slots=True)


class ActionStop(Action):
    """ "不办了"/"算了": cancel the current form politely."""

    def name(self) -> str:
        return "action_stop"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if tracker.active_loop_name:
            dispatcher.utter_message(response="utter_stopped_form")
        else:
            dispatcher.utter_message(response="utter_stopped_nothing")
        return leave_form_events(tracker, clear_slots=True)


def consecutive_misses(tracker: Tracker) -> int:
    """How many of the latest user messages in a row NLU did not understand."""
    count = 0
    for event in reversed(tracker.events or []):
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent != "nlu_fallback":
            break
        count += 1
    if count == 0 and latest_intent(tracker) == "nlu_fallback":
        count = 1  # the latest message is not always among the events a test or a server passes
    return count


class ActionFallback(Action):
    """Two-stage fallback: first miss shows the main menu; a second miss in a row offers a person."""

    def name(self) -> str:
        return "action_fallback"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if consecutive_misses(tracker) >= 2:
            dispatcher.utter_message(response="utter_fallback_offer_handoff")
            return [SlotSet(FALLBACK_HANDOFF_SLOT, True)]
        dispatcher.utter_message(response="utter_fallback_menu")
        return [SlotSet(FALLBACK_HANDOFF_SLOT, False)] if tracker.get_slot(FALLBACK_HANDOFF_SLOT) else []
