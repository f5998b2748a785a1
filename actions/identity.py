"""Identity binding (name + ID number + phone), the masked "my information" view, unbinding.

Also what every form of this slice shares: reading entities of the latest message, and
`RetryingFormValidation` — a wrong answer is re-asked with its reason at most twice, then a human
is offered (a `/human_handoff` button) and the form ends.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.base import BureauAction
from bureau.services import identity
from bureau.timeutil import format_local

MAX_TRIES = 3  # the first answer and two re-asks; the third wrong answer offers a person

HUMAN_BUTTONS = [
    {"title": "转人工", "payload": "/human_handoff"},
    {"title": "返回菜单", "payload": "/main_menu"},
]


def intent_payload(intent: str, **entities: str) -> str:
    """A button payload `/intent{"entity":"value"}` that Rasa reads without NLU."""
    if not entities:
        return f"/{intent}"
    return f"/{intent}" + json.dumps(entities, ensure_ascii=False, separators=(",", ":"))


def entity_values(tracker: Tracker, name: str) -> list[str]:
    """Values of entity `name` in the latest user message (not stale slot values from earlier turns)."""
    values = []
    for entity in tracker.latest_message.get("entities") or []:
        if entity.get("entity") == name and entity.get("value") not in (None, ""):
            value = str(entity["value"])
            if value not in values:
                values.append(value)
    return values


def entity_value(tracker: Tracker, name: str) -> str | None:
    """The first value of entity `name` in the latest user message."""
    values = entity_values(tracker, name)
    return values[0] if values else None


def latest_text(tracker: Tracker) -> str:
    """What the user typed last (the button payload for a tapped choice)."""
    return str(tracker.latest_message.get("text") or "")


def prefill(tracker: Tracker, pairs: dict[str, tuple[str, Callable[[str], str]]]) -> dict[str, str]:
    """Form slots taken from entities of the message that started the form, when they are valid.

    `pairs` maps a form slot to (entity name, validator); invalid values are left for the form to ask.
    """
    values: dict[str, str] = {}
    for slot, (entity, validate) in pairs.items():
        raw = entity_value(tracker, entity)
        if raw is None:
            continue
        try:
            values[slot] = validate(raw)
        except ValueError:
            continue
    return values


class RetryingFormValidation(FormValidationAction):
    """Form validation with the slice's retry policy; subclasses set the two counter slots."""

    failures_slot = ""
    gave_up_slot = ""

    @abc.abstractmethod
    def name(self) -> str:
        """Abstract, so the action server does not register this base class as an action."""

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        # Nothing left to ask once the user was offered a person: the form ends, the submit
        # action sees the gave-up flag and files nothing.
        if tracker.get_slot(self.gave_up_slot):
            return []
        return self.slots_for(domain_slots, tracker)

    def slots_for(self, domain_slots: list[str], tracker: Tracker) -> list[str]:
        """The slots this user must fill (override to skip what is already known)."""
        return domain_slots

    def accept(self, slot: str, value: Any) -> dict[str, Any]:
        """A valid answer: keep it and reset the failure count."""
        return {slot: value, self.failures_slot: 0}

    def reject(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, slot: str, reason: str
    ) -> dict[str, Any]:
        """A wrong answer: say why and re-ask, or after the third one offer a person."""
        failures = int(tracker.get_slot(self.failures_slot) or 0) + 1
        if failures >= MAX_TRIES:
            dispatcher.utter_message(response="utter_form_offer_human", reason=reason, buttons=HUMAN_BUTTONS)
            return {slot: None, self.failures_slot: 0, self.gave_up_slot: True}
        dispatcher.utter_message(response="utter_form_invalid", reason=reason)
        return {slot: None, self.failures_slot: failures}

    def check(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        slot: str,
        value: Any,
        validate: Callable[[str], str],
    ) -> dict[str, Any]:
        """Validate `value` with a bureau validator raising InvalidInput(reason)."""
        if value is None:
            # A slot cleared by a start action (SlotSet None) is "to validate" in rasa-sdk's eyes, but
            # nobody answered anything: judging it would scold the user for a question not yet asked.
            return {}
        try:
            return self.accept(slot, validate(str(value or "")))
        except identity.InvalidInput as exc:
            return self.reject(dispatcher, tracker, slot, exc.reason)


def validate_name_text(text: str) -> str:
    """A person's name (identity.validate_name)."""
    return identity.validate_name(text)


def validate_id_text(text: str) -> str:
    """An ID-card number (identity.validate_id_number)."""
    return identity.validate_id_number(text)


BIND_SLOTS = ("bind_name", "bind_id_number", "bind_phone")


def _clear_bind_slots() -> list[dict[str, Any]]:
    return [SlotSet(slot, None) for slot in BIND_SLOTS] + [
        SlotSet("bind_failures", 0),
        SlotSet("bind_gave_up", None),
    ]


class ActionBindStart(BureauAction):
    """Start binding — or show who the user is bound to, unbind on request, or refuse while locked."""

    def name(self) -> str:
        return "action_bind_start"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        openid = tracker.sender_id
        events: list[dict[str, Any]] = [SlotSet("choice", None)]
        if entity_value(tracker, "choice") == "unbind":
            done = identity.unbind(session, openid)
            dispatcher.utter_message(response="utter_bind_unbound" if done else "utter_bind_not_bound")
            return [*events, SlotSet("bind_ready", False)]
        locked_until = identity.lock_state(session, openid)
        if locked_until is not None:
            dispatcher.utter_message(response="utter_bind_locked", until=format_local(locked_until, False))
            return [*events, SlotSet("bind_ready", False)]
        profile = identity.profile(session, openid)
        if profile is not None:
            dispatcher.utter_message(
                response="utter_bind_profile",
                name=profile.name,
                id_masked=profile.id_number_masked,
                phone_masked=profile.phone_masked,
                township=profile.township or "未登记",
                category=profile.category,
            )
            return [*events, SlotSet("bind_ready", False)]
        dispatcher.utter_message(response="utter_bind_intro")
        given = prefill(
            tracker,
            {
                "bind_name": ("person_name", validate_name_text),
                "bind_id_number": ("id_number", validate_id_text),
                "bind_phone": ("phone", identity.validate_phone),
            },
        )
        return [
            *events,
            *_clear_bind_slots(),
            *[SlotSet(slot, value) for slot, value in given.items()],
            SlotSet("bind_ready", True),
        ]


class ValidateBindForm(RetryingFormValidation):
    """Validates the binding form: a Chinese name, a valid ID number, a phone number."""

    failures_slot = "bind_failures"
    gave_up_slot = "bind_gave_up"

    def name(self) -> str:
        return "validate_bind_form"

    def validate_bind_name(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self.check(dispatcher, tracker, "bind_name", value, validate_name_text)

    def validate_bind_id_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self.check(dispatcher, tracker, "bind_id_number", value, validate_id_text)

    def validate_bind_phone(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self.check(dispatcher, tracker, "bind_phone", value, identity.validate_phone)


AFTER_BINDING_CHOICES = [
    {"title": "申请优待证", "payload": "/certificate_apply"},
    {"title": "查优待证办理进度", "payload": "/certificate_status"},
    {"title": "返回主菜单", "payload": "/main_menu"},
]


class ActionBindSubmit(BureauAction):
    """Check the three values against the roster; count failures; lock after five."""

    def name(self) -> str:
        return "action_bind_submit"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        cleared = [*_clear_bind_slots(), SlotSet("bind_ready", None)]
        if tracker.get_slot("bind_gave_up"):
            return cleared
        name, number, phone = (tracker.get_slot(slot) for slot in BIND_SLOTS)
        if not (name and number and phone):
            dispatcher.utter_message(response="utter_bind_incomplete")
            return cleared
        result = identity.bind(session, tracker.sender_id, name, number, phone)
        if result.outcome == "bound" and result.veteran is not None:
            # Most people bind on the way to the certificate: one tap continues where they were going.
            dispatcher.utter_message(
                response="utter_bind_success",
                name=identity.mask_name(result.veteran.name),
                buttons=AFTER_BINDING_CHOICES,
            )
        elif result.outcome == "locked" and result.locked_until is not None:
            dispatcher.utter_message(
                response="utter_bind_locked", until=format_local(result.locked_until, False)
            )
        else:
            dispatcher.utter_message(
                response="utter_bind_mismatch",
                attempts_left=result.attempts_left,
                buttons=[
                    {"title": "重新填写", "payload": "/bind_identity"},
                    {"title": "转人工", "payload": "/human_handoff"},
                ],
            )
        return cleared
