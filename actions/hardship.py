"""Hardship aid (困难帮扶): the policy in brief, then an application form for staff review."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.base import BureauAction
from actions.identity import (
    RetryingFormValidation,
    entity_value,
    intent_payload,
    prefill,
    validate_id_text,
    validate_name_text,
)
from bureau.services import benefits, hardship, identity
from bureau.services.certificate import find_veteran_for_family

HARDSHIP_SLOTS = (
    "hardship_name",
    "hardship_id_number",
    "hardship_phone",
    "hardship_township",
    "hardship_reason",
)
BOUND_SLOTS = ["hardship_phone", "hardship_township", "hardship_reason"]
FAMILY_PAYLOAD = intent_payload("hardship_aid", choice="family")


def _clear_hardship_slots() -> list[dict[str, Any]]:
    return [SlotSet(slot, None) for slot in HARDSHIP_SLOTS] + [
        SlotSet("hardship_family", None),
        SlotSet("hardship_failures", 0),
        SlotSet("hardship_gave_up", None),
    ]


def _valid_or_none(value: str | None, validate: Any) -> str | None:
    try:
        return str(validate(value)) if value else None
    except identity.InvalidInput:
        return None


class ActionHardshipStart(BureauAction):
    """Tell the policy briefly, report an open application, or start the form (bound or family)."""

    def name(self) -> str:
        return "action_hardship_start"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        not_now = [SlotSet("choice", None), SlotSet("hardship_ready", False)]
        openid = tracker.sender_id
        existing = hardship.open_application_of(session, openid)
        if existing is not None:
            dispatcher.utter_message(response="utter_hardship_existing", number=existing.id)
            return not_now
        choice = entity_value(tracker, "choice")
        veteran = identity.bound_veteran(session, openid)
        if veteran is None and choice != "family":
            policy = benefits.policy_by_slug(session, benefits.HARDSHIP_SLUG)
            if policy is not None:
                dispatcher.utter_message(text=benefits.answer_text(policy))
            dispatcher.utter_message(response="utter_ask_bind_first", family_payload=FAMILY_PAYLOAD)
            return not_now
        dispatcher.utter_message(response="utter_hardship_intro")
        family = veteran is None
        known: dict[str, str | None] = {}
        if veteran is not None:
            known = {
                "hardship_name": veteran.name,
                "hardship_phone": _valid_or_none(veteran.phone, identity.validate_phone),
                "hardship_township": _valid_or_none(veteran.township, identity.validate_township),
            }
        given = prefill(
            tracker,
            {
                "hardship_name": ("person_name", validate_name_text),
                "hardship_id_number": ("id_number", validate_id_text),
                "hardship_phone": ("phone", identity.validate_phone),
                "hardship_township": ("township", identity.validate_township),
            },
        )
        if not family:
            given.pop("hardship_name", None)
            given.pop("hardship_id_number", None)
        values = {**{k: v for k, v in known.items() if v}, **given}
        return [
            SlotSet("choice", None),
            *_clear_hardship_slots(),
            SlotSet("hardship_family", family),
            *[SlotSet(slot, value) for slot, value in values.items()],
            SlotSet("hardship_ready", True),
        ]


class ValidateHardshipForm(RetryingFormValidation):
    """Name, ID number (family route), phone, township and a description of the hardship."""

    failures_slot = "hardship_failures"
    gave_up_slot = "hardship_gave_up"

    def name(self) -> str:
        return "validate_hardship_form"

    def slots_for(self, domain_slots: list[str], tracker: Tracker) -> list[str]:
        if tracker.get_slot("hardship_family"):
            return domain_slots
        return [slot for slot in domain_slots if slot in BOUND_SLOTS]

    def validate_hardship_name(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self.check(dispatcher, tracker, "hardship_name", value, validate_name_text)

    def validate_hardship_id_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self.check(dispatcher, tracker, "hardship_id_number", value, validate_id_text)

    def validate_hardship_phone(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self.check(dispatcher, tracker, "hardship_phone", value, identity.validate_phone)

    def validate_hardship_township(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self.check(dispatcher, tracker, "hardship_township", value, identity.validate_township)

    def validate_hardship_reason(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        try:
            return self.accept("hardship_reason", hardship.validate_reason(str(value or "")))
        except hardship.InvalidReason as exc:
            return self.reject(dispatcher, tracker, "hardship_reason", exc.reason)


class ActionHardshipSubmit(BureauAction):
    """Record the application for staff; family applications are linked to the roster when they match."""

    def name(self) -> str:
        return "action_hardship_submit"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        cleared = [*_clear_hardship_slots(), SlotSet("hardship_ready", None)]
        if tracker.get_slot("hardship_gave_up"):
            return cleared
        openid = tracker.sender_id
        name = tracker.get_slot("hardship_name") or ""
        if tracker.get_slot("hardship_family"):
            veteran = find_veteran_for_family(session, name, tracker.get_slot("hardship_id_number") or "")
        else:
            veteran = identity.bound_veteran(session, openid)
        reason = tracker.get_slot("hardship_reason") or ""
        phone = tracker.get_slot("hardship_phone") or ""
        if not (name and phone and reason):
            dispatcher.utter_message(response="utter_hardship_incomplete")
            return cleared
        result = hardship.apply(
            session,
            openid,
            veteran=veteran,
            applicant_name=name,
            phone=phone,
            township=tracker.get_slot("hardship_township"),
            reason=reason,
        )
        if result.outcome == "existing":
            dispatcher.utter_message(response="utter_hardship_existing", number=result.application.id)
        else:
            dispatcher.utter_message(
                response="utter_hardship_submitted",
                number=result.application.id,
                phone=identity.mask_phone(phone),
            )
        return cleared
