"""优待证: eligibility and materials answers, the application form, the status with dated steps."""

from __future__ import annotations

import re
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
    latest_text,
    prefill,
    validate_id_text,
    validate_name_text,
)
from bureau.services import certificate, identity

CERT_SLOTS = ("cert_name", "cert_id_number", "cert_phone", "cert_township", "cert_category")
BOUND_SLOTS = ["cert_phone", "cert_township", "cert_category"]
APPLY_BUTTON = {"title": "我要申请", "payload": intent_payload("certificate_apply", choice="apply")}
FAMILY_PAYLOAD = intent_payload("certificate_apply", choice="family")

_MATERIALS = re.compile(r"材料|带什么|准备什么|要带|需要什么|要什么|资料|照片")
_ELIGIBILITY = re.compile(r"条件|能不能|能办吗|可以办吗|能申请吗|资格|符合|谁能|哪些人|够不够|有没有份")


def _clear_cert_slots() -> list[dict[str, Any]]:
    return [SlotSet(slot, None) for slot in CERT_SLOTS] + [
        SlotSet("cert_family", None),
        SlotSet("cert_failures", 0),
        SlotSet("cert_gave_up", None),
    ]


def _valid_or_none(value: str | None, validate: Any) -> str | None:
    if not value:
        return None
    try:
        return str(validate(value))
    except identity.InvalidInput:
        return None


class ActionCertStart(BureauAction):
    """Answer a question about the certificate, report an open application, or start the form."""

    def name(self) -> str:
        return "action_cert_start"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        not_now = [SlotSet("choice", None), SlotSet("cert_ready", False)]
        choice = entity_value(tracker, "choice")
        text = latest_text(tracker)
        if choice not in ("apply", "family"):
            if _MATERIALS.search(text):
                answer = certificate.materials_answer(session)
                if answer:
                    dispatcher.utter_message(text=answer, buttons=[APPLY_BUTTON])
                else:
                    dispatcher.utter_message(response="utter_info_missing", buttons=[APPLY_BUTTON])
                return not_now
            category = entity_value(tracker, "veteran_category")
            if _ELIGIBILITY.search(text) or (category and not certificate.may_apply(category)):
                answer = certificate.eligibility_answer(session, category)
                dispatcher.utter_message(
                    text=answer or "优待证面向退役军人和烈士遗属等，具体可咨询乡镇退役军人服务站。",
                    buttons=[APPLY_BUTTON],
                )
                return not_now

        openid = tracker.sender_id
        veteran = identity.bound_veteran(session, openid)
        if veteran is not None:
            existing = certificate.open_application(session, veteran.id)
            if existing is not None:
                dispatcher.utter_message(
                    response="utter_cert_existing", status=certificate.status_text(existing)
                )
                return not_now
            known = {
                "cert_phone": _valid_or_none(veteran.phone, identity.validate_phone),
                "cert_township": _valid_or_none(veteran.township, identity.validate_township),
                "cert_category": _valid_or_none(veteran.category, identity.validate_veteran_category),
            }
            family = False
        elif choice == "family":
            known = {}
            family = True
            dispatcher.utter_message(response="utter_cert_family_intro")
        else:
            dispatcher.utter_message(response="utter_ask_bind_first", family_payload=FAMILY_PAYLOAD)
            return not_now

        # What the first message already says wins over the record ("申请优待证，电话换成…").
        given = prefill(
            tracker,
            {
                "cert_name": ("person_name", validate_name_text),
                "cert_id_number": ("id_number", validate_id_text),
                "cert_phone": ("phone", identity.validate_phone),
                "cert_township": ("township", identity.validate_township),
                "cert_category": ("veteran_category", identity.validate_veteran_category),
            },
        )
        if not family:
            given.pop("cert_name", None)
            given.pop("cert_id_number", None)
        values = {**{k: v for k, v in known.items() if v}, **given}
        return [
            SlotSet("choice", None),
            *_clear_cert_slots(),
            SlotSet("cert_family", family),
            *[SlotSet(slot, value) for slot, value in values.items()],
            SlotSet("cert_ready", True),
        ]


class ValidateCertificateForm(RetryingFormValidation):
    """Each answer checked with its reason; a bound user is asked only what the record lacks."""

    failures_slot = "cert_failures"
    gave_up_slot = "cert_gave_up"

    def name(self) -> str:
        return "validate_certificate_form"

    def slots_for(self, domain_slots: list[str], tracker: Tracker) -> list[str]:
        if tracker.get_slot("cert_family"):
            return domain_slots
        return [slot for slot in domain_slots if slot in BOUND_SLOTS]

    def validate_cert_name(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self.check(dispatcher, tracker, "cert_name", value, validate_name_text)

    def validate_cert_id_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self.check(dispatcher, tracker, "cert_id_number", value, validate_id_text)

    def validate_cert_phone(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self.check(dispatcher, tracker, "cert_phone", value, identity.validate_phone)

    def validate_cert_township(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self.check(dispatcher, tracker, "cert_township", value, identity.validate_township)

    def validate_cert_category(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self.check(dispatcher, tracker, "cert_category", value, identity.validate_veteran_category)


class ActionCertSubmit(BureauAction):
    """File the application (or report the open one); the family route needs a roster match."""

    def name(self) -> str:
        return "action_cert_submit"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        cleared = [*_clear_cert_slots(), SlotSet("cert_ready", None)]
        if tracker.get_slot("cert_gave_up"):
            return cleared
        openid = tracker.sender_id
        family = bool(tracker.get_slot("cert_family"))
        if family:
            veteran = certificate.find_veteran_for_family(
                session, tracker.get_slot("cert_name") or "", tracker.get_slot("cert_id_number") or ""
            )
            if veteran is None:
                dispatcher.utter_message(
                    response="utter_cert_family_not_found",
                    buttons=[
                        {"title": "转人工", "payload": "/human_handoff"},
                        {"title": "返回菜单", "payload": "/main_menu"},
                    ],
                )
                return cleared
        else:
            veteran = identity.bound_veteran(session, openid)
            if veteran is None:  # unbound since the form started
                dispatcher.utter_message(response="utter_ask_bind_first", family_payload=FAMILY_PAYLOAD)
                return cleared
        category = tracker.get_slot("cert_category")
        if not certificate.may_apply(category):
            dispatcher.utter_message(
                text=certificate.eligibility_answer(session, category),
                buttons=[
                    {"title": "转人工", "payload": "/human_handoff"},
                    {"title": "返回菜单", "payload": "/main_menu"},
                ],
            )
            return cleared
        result = certificate.apply(
            session,
            openid,
            veteran,
            phone=tracker.get_slot("cert_phone"),
            township=tracker.get_slot("cert_township"),
            category=category,
            by_family=family,
        )
        if result.outcome == "existing":
            if family and result.application.openid != openid:
                # Knowing a name and an ID number is not enough to read someone's application.
                dispatcher.utter_message(response="utter_cert_family_existing")
            else:
                dispatcher.utter_message(
                    response="utter_cert_existing", status=certificate.status_text(result.application)
                )
            return cleared
        dispatcher.utter_message(
            response="utter_cert_submitted",
            number=result.application.id,
            phone=identity.mask_phone(result.application.phone),
            township=result.application.township or "",
        )
        return cleared


class ActionCertStatus(BureauAction):
    """The user's own latest application with the date of each step."""

    def name(self) -> str:
        return "action_cert_status"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        applications = certificate.applications_of(session, tracker.sender_id)
        if not applications:
            bound = identity.bound_veteran(session, tracker.sender_id) is not None
            buttons = [APPLY_BUTTON]
            if not bound:
                buttons.insert(0, {"title": "绑定身份", "payload": "/bind_identity"})
            dispatcher.utter_message(
                response="utter_cert_none" if bound else "utter_cert_none_unbound", buttons=buttons
            )
            return []
        text = certificate.status_text(applications[0])
        if len(applications) > 1:
            text += f"\n（另有{len(applications) - 1}份以前的申请）"
        dispatcher.utter_message(text=text)
        return []
