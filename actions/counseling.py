"""Booking a talk with a 老战友 counselor: the form's validator, its slot question, submit, cancel.

The form asks topic → time (numbered free slots) → phone (only when none is known) → confirmation.
The booking itself happens when the user confirms, so a slot taken meanwhile by someone else sends the
form straight back to the time question with the next free slots.
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.base import BureauAction
from actions.core import (
    is_interruption,
    latest_choice,
    latest_entity,
    latest_intent,
    latest_text,
    run_unit,
)
from bureau.services import counseling, legal
from bureau.services.dates import parse_date_expression, past_reason

FORM_SLOTS = (
    "counsel_topic",
    "counsel_slot_id",
    "counsel_slot_label",
    "counsel_when",
    "counsel_offered",
    "counsel_exclude",
    "counsel_phone",
    "counsel_confirm",
    "counsel_booking_id",
)
# Words people use for each topic when they type instead of tapping.
TOPIC_WORDS: list[tuple[str, str]] = [
    ("心理疏导", r"心理|疏导|抑郁|焦虑|失眠|睡不着|压力|情绪|心里(难受|不舒服|堵)"),
    ("矛盾调解", r"调解|矛盾|纠纷|吵架|闹翻|邻居|家庭"),
    ("法律援助", r"法律|律师|打官司|起诉|欠薪|工资|工伤|合同"),
    ("权益维护", r"权益|维权|待遇|补贴|安置|不公"),
    ("谈心", r"谈心|聊聊|聊天|说说话|唠|谈谈|都(行|可以)|随便|无所谓"),
]
_YES = re.compile(r"^(确认|确定|是|是的|对|对的|好|好的|可以|行|嗯|没问题|约吧|就这个)")
_NO = re.compile(r"^(不|否|换|重选|改|算了)")
_PHONE_IN_TEXT = re.compile(r"(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})")
OFFERS_SHOWN = counseling.DEFAULT_OFFERS


def topic_from_text(text: str) -> str | None:
    """The counseling topic a typed answer names, or None."""
    for topic, words in TOPIC_WORDS:
        if re.search(words, text):
            return topic
    return None


def phone_from_message(tracker: Tracker) -> str | None:
    """A phone number in the latest message (entity first, then the text)."""
    value = latest_entity(tracker, "phone")
    if value is None:
        match = _PHONE_IN_TEXT.search(latest_text(tracker).replace(" ", ""))
        value = match.group(1) if match else None
    return counseling.normalize_phone(value) if value else None


def known_phone(dispatcher: CollectingDispatcher, tracker: Tracker) -> str | None:
    """A phone the bureau already has for this user (bound veteran, earlier request)."""
    ok, phone = run_unit(dispatcher, lambda s: legal.known_phone(s, tracker.sender_id), "known_phone")
    return phone if ok else None


def date_expression(tracker: Tracker) -> str | None:
    """A date/time the user gave in the latest message: the `date` entity, else what the parser finds."""
    value = latest_entity(tracker, "date")
    if value:
        return value
    text = latest_text(tracker)
    if text and parse_date_expression(text) is not None:
        return text
    return None


class ValidateCounselForm(FormValidationAction):
    """Extract and check what the user answers inside counsel_form."""

    def name(self) -> str:
        return "validate_counsel_form"

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[str]:
        return ["counsel_topic", "counsel_slot_id", "counsel_phone", "counsel_confirm"]

    # --- topic -------------------------------------------------------------------------------------
    def extract_counsel_topic(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if is_interruption(tracker):
            return {}
        entity = latest_entity(tracker, "counseling_topic")
        if entity:
            return {"counsel_topic": entity}
        if tracker.get_slot("requested_slot") != "counsel_topic":
            return {}
        topic = topic_from_text(latest_text(tracker))
        if topic is None and latest_intent(tracker) == "affirm":
            topic = "谈心"
        if topic is None:
            if date_expression(tracker):
                return {}  # a time given early: kept by the slot extractor, the topic asked again
            dispatcher.utter_message(response="utter_counsel_topic_hint")
        return {"counsel_topic": topic}

    def validate_counsel_topic(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        # An entity value the synonym table did not map ("聊聊天") still names a topic.
        topic = counseling.normalize_topic(value) or (topic_from_text(str(value)) if value else None)
        return {"counsel_topic": topic}

    # --- time --------------------------------------------------------------------------------------
    def extract_counsel_slot_id(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if is_interruption(tracker):
            return {}
        choice = latest_choice(tracker, "slot")
        if choice:
            return {"counsel_slot_id": choice}
        when = date_expression(tracker)
        if when:
            return {"counsel_slot_id": f"when:{when}"}
        if tracker.get_slot("requested_slot") != "counsel_slot_id":
            return {}
        if latest_intent(tracker) == "deny" or re.search(
            r"换|别的|其他|更多|都不(行|合适)", latest_text(tracker)
        ):
            return {"counsel_slot_id": "more"}
        dispatcher.utter_message(response="utter_counsel_slot_hint")
        return {"counsel_slot_id": None}

    def validate_counsel_slot_id(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        reset = {"counsel_slot_id": None, "counsel_slot_label": None, "counsel_confirm": None}
        if value is None:
            return reset
        value = str(value)
        if value.startswith("when:"):
            expression = value[5:]
            window = parse_date_expression(expression)
            if window is None:
                return reset
            reason = past_reason(window)
            if reason:
                dispatcher.utter_message(text=reason)
                return reset
            return {**reset, "counsel_when": expression, "counsel_exclude": None}
        if value == "more":
            seen = list(tracker.get_slot("counsel_exclude") or []) + list(
                tracker.get_slot("counsel_offered") or []
            )
            return {**reset, "counsel_exclude": seen}
        if not value.isdigit():
            dispatcher.utter_message(response="utter_counsel_slot_hint")
            return reset
        ok, result = run_unit(dispatcher, lambda s: _check(s, int(value), tracker.sender_id), "check_slot")
        if not ok:
            return reset
        if isinstance(result, str):
            dispatcher.utter_message(text=result)
            return reset
        assert isinstance(result, counseling.SlotOffer)
        return {
            "counsel_slot_id": str(result.slot_id),
            "counsel_slot_label": result.label,
            "counsel_confirm": None,
        }

    # --- phone -------------------------------------------------------------------------------------
    def extract_counsel_phone(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if is_interruption(tracker):
            return {}
        phone = phone_from_message(tracker)
        if phone:
            return {"counsel_phone": phone}
        if tracker.get_slot("counsel_phone"):
            return {}
        if tracker.get_slot("requested_slot") == "counsel_phone":
            if latest_text(tracker) or latest_entity(tracker, "phone"):
                dispatcher.utter_message(response="utter_phone_invalid")
            return {"counsel_phone": None}
        if str(tracker.get_slot("counsel_slot_id") or "").isdigit():
            known = known_phone(dispatcher, tracker)
            if known:
                return {"counsel_phone": known}
        return {}

    def validate_counsel_phone(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return {"counsel_phone": counseling.normalize_phone(value) if value else None}

    # --- confirmation (the booking happens here) ---------------------------------------------------
    def extract_counsel_confirm(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if is_interruption(tracker) or tracker.get_slot("requested_slot") != "counsel_confirm":
            return {}
        if latest_choice(tracker, "slot") or date_expression(tracker):
            return {}  # a new time: handled by the time slot
        intent, text = latest_intent(tracker), latest_text(tracker)
        if intent == "deny" or (text and _NO.match(text)):
            return {"counsel_confirm": "no"}
        if intent == "affirm" or (text and _YES.match(text)):
            return {"counsel_confirm": "yes"}
        dispatcher.utter_message(response="utter_counsel_confirm_hint")
        return {"counsel_confirm": None}

    def validate_counsel_confirm(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if value == "no":
            dispatcher.utter_message(response="utter_counsel_pick_again")
            return {"counsel_confirm": None, "counsel_slot_id": None, "counsel_slot_label": None}
        if value != "yes":
            return {"counsel_confirm": None}
        chosen = str(tracker.get_slot("counsel_slot_id") or "")
        if not chosen.isdigit():
            return {"counsel_confirm": None, "counsel_slot_id": None}
        slot_id = int(chosen)
        ok, result = run_unit(
            dispatcher,
            lambda s: _book(
                s,
                tracker.sender_id,
                slot_id,
                tracker.get_slot("counsel_topic"),
                tracker.get_slot("counsel_phone"),
            ),
            "book_slot",
        )
        if not ok:
            return {"counsel_confirm": None}
        if isinstance(result, str):
            dispatcher.utter_message(text=result)
            return {"counsel_confirm": None, "counsel_slot_id": None, "counsel_slot_label": None}
        return {"counsel_confirm": "yes", "counsel_booking_id": result}


def _check(session: Session, slot_id: int, openid: str) -> counseling.SlotOffer | str:
    try:
        return counseling.check_slot(session, slot_id, openid=openid)
    except counseling.SlotTaken:
        return "这个时间刚被别人约走了，请再选一个。"
    except counseling.BookingError as err:
        return err.reason


def _book(session: Session, openid: str, slot_id: int, topic: str | None, phone: str | None) -> int | str:
    try:
        return counseling.book_slot(session, openid, slot_id, topic=topic, phone=phone).id
    except counseling.SlotTaken:
        return "真不巧，这个时间刚被别人约走了。下面是接下来能约的时间："
    except counseling.BookingError as err:
        return err.reason


class ActionAskCounselSlotId(Action):
    """Offer the next free slots as numbered choices (narrowed by the time the user gave)."""

    def name(self) -> str:
        return "action_ask_counsel_slot_id"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        when = tracker.get_slot("counsel_when")
        window = parse_date_expression(when) if when else None
        if window is not None and past_reason(window):
            window = None
        topic = tracker.get_slot("counsel_topic")
        exclude = [int(i) for i in tracker.get_slot("counsel_exclude") or [] if str(i).isdigit()]
        ok, result = run_unit(
            dispatcher,
            lambda s: counseling.find_offers(
                s, topic=topic, window=window, limit=OFFERS_SHOWN, exclude=exclude
            ),
            "find_offers",
        )
        if not ok or result is None:
            return []
        events: list[EventType] = []
        if not result.offers and exclude:
            # Shown them all: start again from the earliest.
            ok, result = run_unit(
                dispatcher,
                lambda s: counseling.find_offers(s, topic=topic, window=window, limit=OFFERS_SHOWN),
                "find_offers",
            )
            if not ok or result is None:
                return []
            events.append(SlotSet("counsel_exclude", None))
            if result.offers:
                dispatcher.utter_message(response="utter_counsel_no_more_slots")
        if not result.offers:
            dispatcher.utter_message(response="utter_counsel_no_slots")
            return [*events, SlotSet("counsel_offered", None)]
        buttons = [
            {"title": offer.label, "payload": f'/inform{{"choice":"slot:{offer.slot_id}"}}'}
            for offer in result.offers
        ]
        buttons.append({"title": "换别的时间", "payload": '/inform{"choice":"slot:more"}'})
        intro = (result.note + "\n") if result.note else ""
        dispatcher.utter_message(
            text=intro + "请选一个时间（回复数字），也可以直接说“明天下午”“下周三上午”：", buttons=buttons
        )
        return [*events, SlotSet("counsel_offered", [offer.slot_id for offer in result.offers])]


class ActionCounselSubmit(BureauAction):
    """After the form: say what was booked and what happens next; forget the form's answers."""

    def name(self) -> str:
        return "action_counsel_submit"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        clear: list[EventType] = [SlotSet(name, None) for name in FORM_SLOTS]
        booking_id = tracker.get_slot("counsel_booking_id")
        booking = (
            counseling.get_own_booking(session, tracker.sender_id, int(booking_id)) if booking_id else None
        )
        if booking is None:
            dispatcher.utter_message(response="utter_counsel_not_booked")
            return clear
        dispatcher.utter_message(
            response="utter_counsel_booked", booking=counseling.describe_booking(booking)
        )
        return clear


class ActionCounselCancel(BureauAction):
    """List one's own upcoming bookings with a cancel choice each; cancel the one chosen."""

    def name(self) -> str:
        return "action_counsel_cancel"

    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        chosen = latest_choice(tracker, "cancel")
        if chosen is not None:
            if not chosen.isdigit():
                dispatcher.utter_message(text="没有找到您的这个预约。")
                return []
            try:
                booking = counseling.cancel_booking(session, tracker.sender_id, int(chosen))
            except counseling.BookingError as err:
                dispatcher.utter_message(text=err.reason)
                return []
            dispatcher.utter_message(
                response="utter_counsel_cancelled", booking=counseling.describe_booking(booking)
            )
            return []
        bookings = counseling.my_bookings(session, tracker.sender_id)
        if not bookings:
            dispatcher.utter_message(response="utter_counsel_none")
            return []
        lines = [f"{i}. {counseling.describe_booking(b)}" for i, b in enumerate(bookings, start=1)]
        buttons = [
            {
                "title": f"取消 {counseling.describe_booking(b).split('，')[0]}",
                "payload": f'/counseling_cancel{{"choice":"cancel:{b.id}"}}',
            }
            for b in bookings
        ]
        buttons.append({"title": "都不取消", "payload": "/deny"})
        dispatcher.utter_message(
            text="您约好的老战友：\n" + "\n".join(lines) + "\n要取消哪一个？", buttons=buttons
        )
        return []
