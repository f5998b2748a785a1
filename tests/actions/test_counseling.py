"""Counseling actions with real Trackers: the form's answers, the booking race, cancel and access."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from actions import base as actions_base
from actions.counseling import (
    ActionAskCounselSlotId,
    ActionCounselCancel,
    ActionCounselSubmit,
    ValidateCounselForm,
)
from bureau.models import Booking, BookingStatus, CounselingSlot, Counselor, Veteran, WechatUser
from bureau.timeutil import from_local, local_today
from tests.actions.helpers import (
    buttons,
    make_tracker,
    responses,
    run_action,
    run_form_validation,
    slot_events,
    texts,
)

USER = "o-user-a"
OTHER = "o-user-b"


def _at(days: int, hour: int) -> dt.datetime:
    """A stored (UTC) time `days` from today at `hour` China time."""
    return from_local(dt.datetime.combine(local_today() + dt.timedelta(days=days), dt.time(hour)))


@pytest.fixture
def slots(session_factory) -> dict[str, int]:
    with session_factory.begin() as session:
        wang = Counselor(name="王建国", specialties=["谈心", "心理疏导"], active=True)
        session.add(wang)
        session.flush()
        rows = {
            "d1_am": CounselingSlot(
                counselor_id=wang.id, starts_at=_at(1, 9), ends_at=_at(1, 10), location="县服务中心"
            ),
            "d1_pm": CounselingSlot(
                counselor_id=wang.id, starts_at=_at(1, 15), ends_at=_at(1, 16), location="县服务中心"
            ),
            "d1_pm2": CounselingSlot(counselor_id=wang.id, starts_at=_at(1, 16), ends_at=_at(1, 17)),
            "d2_am": CounselingSlot(counselor_id=wang.id, starts_at=_at(2, 9), ends_at=_at(2, 10)),
            "d3_am": CounselingSlot(counselor_id=wang.id, starts_at=_at(3, 9), ends_at=_at(3, 10)),
        }
        session.add_all(rows.values())
        session.flush()
        return {key: slot.id for key, slot in rows.items()}


# As in bot/domain/counseling.yml: the validator's order is the domain's, so Rasa picks the next question.
DOMAIN = {
    "forms": {
        "counsel_form": {
            "required_slots": ["counsel_topic", "counsel_slot_id", "counsel_phone", "counsel_confirm"]
        }
    }
}


def _validate(**kwargs):
    kwargs.setdefault("sender_id", USER)
    kwargs.setdefault("active_loop", "counsel_form")
    return run_form_validation(ValidateCounselForm(), make_tracker(**kwargs), DOMAIN)


def test_activation_takes_topic_and_time_from_the_first_message(slots) -> None:
    events, dispatcher = _validate(
        text="我想约明天下午谈心",
        intent="counseling_book",
        entities=[{"entity": "counseling_topic", "value": "谈心"}, {"entity": "date", "value": "明天下午"}],
    )
    assert slot_events(events) == {
        "counsel_topic": "谈心",
        "counsel_slot_id": None,
        "counsel_slot_label": None,
        "counsel_confirm": None,
        "counsel_when": "明天下午",
        "counsel_exclude": None,
    }
    assert dispatcher.messages == []


def test_the_offered_slots_follow_the_time_the_user_gave(slots) -> None:
    tracker = make_tracker(sender_id=USER, slots={"counsel_topic": "谈心", "counsel_when": "明天下午"})
    events, dispatcher = run_action(ActionAskCounselSlotId(), tracker)
    offered = buttons(dispatcher)
    assert [b["payload"] for b in offered] == [
        f'/inform{{"choice":"slot:{slots["d1_pm"]}"}}',
        f'/inform{{"choice":"slot:{slots["d1_pm2"]}"}}',
        '/inform{"choice":"slot:more"}',
    ]
    assert offered[0]["title"].endswith("15:00 王建国（县服务中心）")
    assert slot_events(events) == {"counsel_offered": [slots["d1_pm"], slots["d1_pm2"]]}
    # without a time: the earliest three, and "more" shows the rest
    events, dispatcher = run_action(
        ActionAskCounselSlotId(), make_tracker(sender_id=USER, slots={"counsel_topic": "谈心"})
    )
    assert slot_events(events)["counsel_offered"] == [slots["d1_am"], slots["d1_pm"], slots["d1_pm2"]]
    events, _ = _validate(
        text="/inform",
        intent="inform",
        entities=[{"entity": "choice", "value": "slot:more"}],
        requested_slot="counsel_slot_id",
        slots={"counsel_topic": "谈心", "counsel_offered": [slots["d1_am"], slots["d1_pm"], slots["d1_pm2"]]},
    )
    exclude = slot_events(events)["counsel_exclude"]
    events, _ = run_action(
        ActionAskCounselSlotId(),
        make_tracker(sender_id=USER, slots={"counsel_topic": "谈心", "counsel_exclude": exclude}),
    )
    assert slot_events(events)["counsel_offered"] == [slots["d2_am"], slots["d3_am"]]


def test_a_past_date_gets_a_reason(slots) -> None:
    events, dispatcher = _validate(
        text="2020年1月1日",
        intent="inform",
        requested_slot="counsel_slot_id",
        slots={"counsel_topic": "谈心"},
    )
    assert "已经过去了" in texts(dispatcher)[0]
    assert slot_events(events)["counsel_slot_id"] is None
    assert "counsel_when" not in slot_events(events)


def test_full_booking_through_the_form_records_the_booking(session_factory, slots) -> None:
    chosen = slots["d1_pm"]
    events, _ = _validate(
        text="/inform",
        intent="inform",
        entities=[{"entity": "choice", "value": f"slot:{chosen}"}],
        requested_slot="counsel_slot_id",
        slots={"counsel_topic": "谈心"},
    )
    label = slot_events(events)["counsel_slot_label"]
    assert slot_events(events)["counsel_slot_id"] == str(chosen)
    assert "15:00 王建国" in label
    assert "counsel_phone" not in slot_events(events)  # nothing known: the form will ask
    filled = {"counsel_topic": "谈心", "counsel_slot_id": str(chosen), "counsel_slot_label": label}
    # a wrong phone gets a reason, a right one is kept
    events, dispatcher = _validate(
        text="12345", intent="inform", requested_slot="counsel_phone", slots=filled
    )
    assert responses(dispatcher) == ["utter_phone_invalid"]
    assert slot_events(events) == {"counsel_phone": None}
    events, _ = _validate(
        text="我的电话是 139 0593 1234", intent="inform", requested_slot="counsel_phone", slots=filled
    )
    assert slot_events(events) == {"counsel_phone": "13905931234"}
    filled["counsel_phone"] = "13905931234"
    events, dispatcher = _validate(text="1", intent="affirm", requested_slot="counsel_confirm", slots=filled)
    booked = slot_events(events)
    assert booked["counsel_confirm"] == "yes"
    with session_factory() as session:
        booking = session.scalars(select(Booking)).one()
        assert (booking.id, booking.openid, booking.slot_id, booking.topic) == (
            booked["counsel_booking_id"],
            USER,
            chosen,
            "谈心",
        )
        assert booking.note == "联系电话 13905931234"
    events, dispatcher = run_action(
        ActionCounselSubmit(), make_tracker(sender_id=USER, slots={**filled, **booked})
    )
    assert responses(dispatcher) == ["utter_counsel_booked"]
    assert "15:00 王建国（谈心），地点：县服务中心" in dispatcher.messages[0]["booking"]
    assert all(value is None for value in slot_events(events).values())


def test_a_bound_veterans_phone_is_not_asked_again(session_factory, slots) -> None:
    with session_factory.begin() as session:
        veteran = Veteran(
            name="张建国",
            id_number_encrypted="x",
            id_number_hash="h",
            id_number_masked="m",
            phone="13800000001",
        )
        session.add(veteran)
        session.flush()
        session.add(WechatUser(openid=USER, veteran_id=veteran.id))
    events, _ = _validate(
        text="/inform",
        intent="inform",
        entities=[{"entity": "choice", "value": f"slot:{slots['d1_am']}"}],
        requested_slot="counsel_slot_id",
        slots={"counsel_topic": "谈心"},
    )
    assert slot_events(events)["counsel_phone"] == "13800000001"


def test_a_slot_taken_meanwhile_offers_the_next_ones(session_factory, slots) -> None:
    chosen = slots["d1_am"]
    filled = {
        "counsel_topic": "谈心",
        "counsel_slot_id": str(chosen),
        "counsel_slot_label": "x",
        "counsel_phone": "13905931234",
    }
    with session_factory.begin() as session:
        session.add(Booking(slot_id=chosen, openid=OTHER, status=BookingStatus.BOOKED))
    events, dispatcher = _validate(
        text="确认", intent="affirm", requested_slot="counsel_confirm", slots=filled
    )
    assert texts(dispatcher) == ["真不巧，这个时间刚被别人约走了。下面是接下来能约的时间："]
    assert slot_events(events) == {
        "counsel_confirm": None,
        "counsel_slot_id": None,
        "counsel_slot_label": None,
    }
    # the form asks for the time again: the taken slot is no longer offered
    events, dispatcher = run_action(
        ActionAskCounselSlotId(), make_tracker(sender_id=USER, slots={"counsel_topic": "谈心"})
    )
    assert slot_events(events)["counsel_offered"] == [slots["d1_pm"], slots["d1_pm2"], slots["d2_am"]]
    with session_factory() as session:
        assert [b.openid for b in session.scalars(select(Booking))] == [OTHER]


def test_interruptions_leave_the_form_to_the_rules(slots) -> None:
    for intent in ("crisis", "greet", "thank", "bot_challenge", "main_menu", "stop", "human_handoff"):
        events, dispatcher = _validate(text="不想活了", intent=intent, requested_slot="counsel_topic")
        assert events == [] and dispatcher.messages == [], intent


def test_an_unmapped_topic_entity_is_understood(slots) -> None:
    events, _ = _validate(
        text="想找人聊聊天",
        intent="counseling_book",
        entities=[{"entity": "counseling_topic", "value": "聊聊天"}],
    )
    assert slot_events(events)["counsel_topic"] == "谈心"


def test_an_unclear_topic_answer_is_asked_again_with_a_hint(slots) -> None:
    events, dispatcher = _validate(text="嗯嗯啊", intent="nlu_fallback", requested_slot="counsel_topic")
    assert responses(dispatcher) == ["utter_counsel_topic_hint"]
    assert slot_events(events) == {"counsel_topic": None}
    events, _ = _validate(text="最近老是失眠，心里堵得慌", intent="inform", requested_slot="counsel_topic")
    assert slot_events(events) == {"counsel_topic": "心理疏导"}


def test_deny_at_confirmation_goes_back_to_the_times(slots) -> None:
    filled = {"counsel_topic": "谈心", "counsel_slot_id": str(slots["d1_am"]), "counsel_phone": "13905931234"}
    events, dispatcher = _validate(
        text="换一个", intent="deny", requested_slot="counsel_confirm", slots=filled
    )
    assert responses(dispatcher) == ["utter_counsel_pick_again"]
    assert slot_events(events) == {
        "counsel_confirm": None,
        "counsel_slot_id": None,
        "counsel_slot_label": None,
    }


def test_user_a_cannot_see_or_cancel_user_bs_booking(session_factory, slots) -> None:
    with session_factory.begin() as session:
        mine = Booking(slot_id=slots["d1_am"], openid=USER, topic="谈心", status=BookingStatus.BOOKED)
        theirs = Booking(slot_id=slots["d2_am"], openid=OTHER, topic="谈心", status=BookingStatus.BOOKED)
        session.add_all([mine, theirs])
        session.flush()
        mine_id, theirs_id = mine.id, theirs.id
    events, dispatcher = run_action(
        ActionCounselCancel(), make_tracker(sender_id=USER, text="取消预约", intent="counseling_cancel")
    )
    listing = texts(dispatcher)[0]
    assert listing.startswith("您约好的老战友：\n1. ") and "09:00 王建国（谈心）" in listing
    assert len(listing.splitlines()) == 3  # header, one booking, question: B's booking is not shown
    assert [b["payload"] for b in buttons(dispatcher)] == [
        f'/counseling_cancel{{"choice":"cancel:{mine_id}"}}',
        "/deny",
    ]
    # a forged payload with B's booking id
    _, dispatcher = run_action(
        ActionCounselCancel(),
        make_tracker(
            sender_id=USER,
            intent="counseling_cancel",
            entities=[{"entity": "choice", "value": f"cancel:{theirs_id}"}],
        ),
    )
    assert texts(dispatcher) == ["没有找到您的这个预约。"]
    _, dispatcher = run_action(
        ActionCounselCancel(),
        make_tracker(
            sender_id=USER,
            intent="counseling_cancel",
            entities=[{"entity": "choice", "value": f"cancel:{mine_id}"}],
        ),
    )
    assert responses(dispatcher) == ["utter_counsel_cancelled"]
    with session_factory() as session:
        assert session.get(Booking, theirs_id).status == BookingStatus.BOOKED  # type: ignore[union-attr]
        assert session.get(Booking, mine_id).status == BookingStatus.CANCELLED  # type: ignore[union-attr]
    _, dispatcher = run_action(
        ActionCounselCancel(), make_tracker(sender_id=USER, intent="counseling_cancel")
    )
    assert responses(dispatcher) == ["utter_counsel_none"]


def test_a_database_error_gets_a_short_apology(slots, monkeypatch) -> None:
    class Broken:
        def begin(self):
            raise OperationalError("SELECT 1", {}, Exception("database is down"))

        def __call__(self):  # run_transaction opens its session by calling the factory
            raise OperationalError("SELECT 1", {}, Exception("database is down"))

    monkeypatch.setattr(actions_base, "get_session_factory", lambda: Broken())
    _, dispatcher = run_action(
        ActionCounselCancel(), make_tracker(sender_id=USER, intent="counseling_cancel")
    )
    assert responses(dispatcher) == ["utter_system_error"]
    monkeypatch.setattr("actions.core.get_session_factory", lambda: Broken())
    events, dispatcher = _validate(
        text="/inform",
        intent="inform",
        entities=[{"entity": "choice", "value": f"slot:{slots['d1_am']}"}],
        requested_slot="counsel_slot_id",
        slots={"counsel_topic": "谈心"},
    )
    assert responses(dispatcher) == ["utter_system_error"]
    assert slot_events(events)["counsel_slot_id"] is None
