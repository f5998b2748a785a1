"""Crisis and handoff actions: the reply at once, the alert, the form put aside."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from actions import crisis as crisis_module
from actions.crisis import ActionCrisis
from actions.handoff import ActionHandoff
from bureau.models import CrisisAlert, Delivery, HandoffTicket, StaffUser
from bureau.safety import CRISIS_REPLY
from tests.actions.helpers import make_tracker, responses, run_action, texts

USER = "o-crisis-user"


def test_crisis_inside_a_form_answers_alerts_and_pauses_the_form(session_factory) -> None:
    with session_factory.begin() as session:
        session.add(
            StaffUser(
                username="duty",
                display_name="值班",
                password_hash="x",
                role="clerk",
                openid="o-duty",
                on_duty=True,
            )
        )
    tracker = make_tracker(
        sender_id=USER,
        text="我真的不想活了",
        intent="crisis",
        active_loop="counsel_form",
        requested_slot="counsel_slot_id",
        slots={"counsel_topic": "谈心"},
    )
    events, dispatcher = run_action(ActionCrisis(), tracker)
    assert texts(dispatcher) == [CRISIS_REPLY, "response:utter_crisis_form_paused"]
    assert events == [
        {"event": "active_loop", "timestamp": None, "name": None},
        {"event": "slot", "timestamp": None, "name": "requested_slot", "value": None},
    ]  # counsel_topic is kept: the booking can go on later
    with session_factory() as session:
        alert = session.scalars(select(CrisisAlert)).one()
        assert (alert.openid, alert.message, alert.source) == (USER, "我真的不想活了", "nlu")
        assert [d.openid for d in session.scalars(select(Delivery))] == ["o-duty"]


def test_crisis_reply_goes_out_even_when_the_database_is_down(session_factory, monkeypatch) -> None:
    class Broken:
        def begin(self):
            raise OperationalError("INSERT", {}, Exception("down"))

        def __call__(self):  # run_transaction opens its session by calling the factory
            raise OperationalError("INSERT", {}, Exception("down"))

    monkeypatch.setattr(crisis_module, "get_session_factory", lambda: Broken())
    events, dispatcher = run_action(
        ActionCrisis(), make_tracker(sender_id=USER, text="想死", intent="crisis")
    )
    assert texts(dispatcher) == [CRISIS_REPLY]
    assert events == []


def test_handoff_opens_a_ticket_with_what_the_user_said(session_factory) -> None:
    history = [
        {"event": "user", "text": "我的补贴怎么还没到", "parse_data": {"intent": {"name": "benefits_query"}}},
        {"event": "bot", "text": "…"},
        {"event": "user", "text": "/human_handoff", "parse_data": {"intent": {"name": "human_handoff"}}},
    ]
    tracker = make_tracker(
        sender_id=USER,
        text="/human_handoff",
        intent="human_handoff",
        events=history,
        active_loop="legal_form",
    )
    events, dispatcher = run_action(ActionHandoff(), tracker)
    with session_factory() as session:
        ticket = session.scalars(select(HandoffTicket)).one()
        assert (ticket.openid, ticket.message, ticket.reason, ticket.status) == (
            USER,
            "我的补贴怎么还没到",
            "user_request",
            "open",
        )
    assert responses(dispatcher) == ["utter_handoff_opened"]
    assert dispatcher.messages[0]["ticket_id"] == ticket.id
    assert {"event": "active_loop", "timestamp": None, "name": None} in events
    # after two misses the ticket says why
    tracker = make_tracker(
        sender_id="o-other", text="好的", intent="affirm", slots={"core_offer_handoff": True}
    )
    events, _ = run_action(ActionHandoff(), tracker)
    with session_factory() as session:
        other = session.scalars(select(HandoffTicket).where(HandoffTicket.openid == "o-other")).one()
        assert other.reason == "fallback" and other.message == "好的"
    assert {"event": "slot", "timestamp": None, "name": "core_offer_handoff", "value": False} in events
