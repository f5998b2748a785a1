"""Legal aid for the 老战友 workroom: the form's validator and the action that registers the case."""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.base import BureauAction
from actions.core import is_interruption, latest_entity, latest_intent, latest_text
from actions.counseling import known_phone, phone_from_message
from actions.crisis import answer_crisis
from bureau import safety
from bureau.services import counseling, legal

FORM_SLOTS = ("legal_case_topic", "legal_description", "legal_phone")
# An opening message at least this long that names a specific problem is taken as the description.
OPENING_STORY_LENGTH = 12
TOPIC_WORDS: list[tuple[str, str]] = [
    ("欠薪", r"欠薪|欠.{0,4}工资|工资.{0,4}(不给|没给|拖欠|要不回|没发)|工钱|讨薪"),
    ("工伤", r"工伤|受伤|摔伤|砸伤|伤残"),
    ("劳动纠纷", r"劳动|辞退|开除|社保|加班|劳动合同|单位"),
    ("婚姻家庭", r"离婚|婚姻|家暴|抚养|赡养|遗产|继承|老婆|老公|子女"),
    ("土地纠纷", r"土地|宅基地|承包地|山林|征地|拆迁"),
    ("交通事故", r"车祸|交通|撞|事故"),
    ("合同纠纷", r"合同|借钱|借款|欠钱|欠款|买卖|装修"),
    ("其他", r"其他|别的|其它"),
]


def topic_from_text(text: str) -> str | None:
    """The legal topic a typed answer names, or None."""
    for topic, words in TOPIC_WORDS:
        if re.search(words, text):
            return topic
    return None


class ValidateLegalForm(FormValidationAction):
    """Extract and check what the user answers inside legal_form."""

    def name(self) -> str:
        return "validate_legal_form"

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[str]:
        return ["legal_case_topic", "legal_description", "legal_phone"]

    def extract_legal_case_topic(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if is_interruption(tracker):
            return {}
        entity = latest_entity(tracker, "legal_topic")
        if entity:
            return {"legal_case_topic": entity}
        if tracker.get_slot("requested_slot") != "legal_case_topic":
            return {}
        topic = topic_from_text(latest_text(tracker))
        if topic is None:
            dispatcher.utter_message(response="utter_legal_topic_hint")
        return {"legal_case_topic": topic}

    def validate_legal_case_topic(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if not value:
            return {"legal_case_topic": None}
        if value in legal.LEGAL_TOPICS:
            return {"legal_case_topic": value}
        # An entity value the synonym table did not map ("工钱") still names a topic.
        return {"legal_case_topic": topic_from_text(str(value)) or "其他"}

    def extract_legal_description(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if is_interruption(tracker):
            return {}
        requested = tracker.get_slot("requested_slot")
        text = latest_text(tracker)
        if requested is None and not tracker.get_slot("legal_description"):
            # "老板欠我三个月工资不给，怎么办" already tells the story: not asked again.
            if (
                latest_intent(tracker) == "legal_help"
                and len(text) >= OPENING_STORY_LENGTH
                and topic_from_text(text)
            ):
                return {"legal_description": text}
            return {}
        # Whatever NLU thought the story was (legal_help, out_of_scope, nlu_fallback…), it is the answer.
        if requested != "legal_description":
            return {}
        if latest_intent(tracker) == "deny":
            dispatcher.utter_message(response="utter_legal_description_hint")
            return {"legal_description": None}
        if safety.looks_like_crisis(text):
            # NLU read it as the legal story, but it also speaks of self-harm: the hotlines first.
            answer_crisis(dispatcher, tracker.sender_id, text, "keyword")
        return {"legal_description": text}

    def validate_legal_description(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if not value:
            return {"legal_description": None}
        try:
            return {"legal_description": legal.check_description(str(value))}
        except legal.CaseError as err:
            dispatcher.utter_message(text=err.reason)
            return {"legal_description": None}

    def extract_legal_phone(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if is_interruption(tracker):
            return {}
        requested = tracker.get_slot("requested_slot")
        phone = phone_from_message(tracker)
        if phone and requested != "legal_description":
            return {"legal_phone": phone}
        if tracker.get_slot("legal_phone"):
            return {}
        if requested == "legal_phone":
            if latest_text(tracker) or latest_entity(tracker, "phone"):
                dispatcher.utter_message(response="utter_phone_invalid")
            return {"legal_phone": None}
        if tracker.get_slot("legal_description"):
            known = known_phone(dispatcher, tracker)
            if known:
                return {"legal_phone": known}
        return {}

    def validate_legal_phone(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return {"legal_phone": counseling.normalize_phone(value) if value else None}


class ActionLegalSubmit(BureauAction):
    """Register the case, assign a counselor, tell the user who will call."""

    def name(self) -> str:
        return "action_legal_submit"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        clear: list[EventType] = [SlotSet(name, None) for name in FORM_SLOTS]
        description = tracker.get_slot("legal_description")
        if not description:
            dispatcher.utter_message(response="utter_legal_not_registered")
            return clear
        try:
            case = legal.create_case(
                session,
                tracker.sender_id,
                tracker.get_slot("legal_case_topic"),
                description,
                phone=tracker.get_slot("legal_phone"),
            )
        except legal.CaseError as err:
            dispatcher.utter_message(text=err.reason)
            return clear
        dispatcher.utter_message(text=legal.next_step_text(case))
        return [*clear, SlotSet("legal_case_id", case.id)]
