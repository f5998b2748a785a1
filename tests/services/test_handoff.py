"""Handoff tickets and staff answers through the customer-service window."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from bureau import idcard
from bureau.models import AuditLog, Campaign, CaseStatus, Delivery, HandoffTicket, WechatUser
from bureau.services import handoff
from bureau.timeutil import utcnow


def test_one_open_ticket_per_user_collects_the_messages(session_factory) -> None:
    number = idcard.make_number("350926", dt.date(1980, 2, 3), 5)
    with session_factory.begin() as session:
        first = handoff.open_ticket(session, "o-1", "我要找人工").id
        second = handoff.open_ticket(session, "o-1", f"身份证{number}的补贴怎么没到").id
        handoff.open_ticket(session, "o-1", "我要找人工")  # a retry adds nothing
        other = handoff.open_ticket(session, "o-2", None, reason="fallback").id
        with pytest.raises(ValueError):
            handoff.open_ticket(session, "o-3", "x", reason="nonsense")
    assert first == second != other
    with session_factory() as session:
        ticket = session.get(HandoffTicket, first)
        assert ticket is not None
        assert ticket.message == f"我要找人工\n身份证{idcard.mask(number)}的补贴怎么没到"
        assert [t.id for t in handoff.open_tickets(session)] == [first, other]
        fallback = session.get(HandoffTicket, other)
        assert fallback is not None and fallback.reason == "fallback" and fallback.message is None


def test_answer_inside_the_window_is_sent_outside_it_needs_a_call(session_factory) -> None:
    now = utcnow()
    with session_factory.begin() as session:
        session.add_all(
            [
                WechatUser(openid="o-recent", last_interaction_at=now - dt.timedelta(hours=2)),
                WechatUser(openid="o-old", last_interaction_at=now - dt.timedelta(days=3)),
            ]
        )
        session.flush()
        recent = handoff.open_ticket(session, "o-recent", "补贴没到").id
        old = handoff.open_ticket(session, "o-old", "补贴没到").id
        unknown = handoff.open_ticket(session, "o-never-seen", "补贴没到").id
    with session_factory.begin() as session:
        sent = handoff.answer_ticket(session, recent, "已经查了，下周到账。", "clerk1", now)
        late = handoff.answer_ticket(session, old, "已经查了，下周到账。", "clerk1", now)
        nobody = handoff.answer_ticket(session, unknown, "已经查了。", "clerk2", now)
        assert (sent.delivered, late.delivered, nobody.delivered) == (True, False, False)
        for bad_id, text in ((999999, "x"), (recent, "")):
            with pytest.raises(handoff.CaseError):
                handoff.answer_ticket(session, bad_id, text, "clerk1", now)
    with session_factory() as session:
        by_id = {t.id: t for t in session.scalars(select(HandoffTicket))}
        assert by_id[recent].status == CaseStatus.ANSWERED and by_id[recent].needs_phone_call is False
        assert by_id[recent].assigned_to == "clerk1" and by_id[recent].answer == "已经查了，下周到账。"
        assert by_id[old].needs_phone_call is True and by_id[unknown].needs_phone_call is True
        delivery = session.scalars(select(Delivery)).one()
        assert delivery.openid == "o-recent"
        campaign = session.get(Campaign, delivery.campaign_id)
        assert campaign is not None and campaign.kind == "handoff_answer"
        assert campaign.payload["text"] == "【工作人员回复】已经查了，下周到账。"
        assert len(session.scalars(select(AuditLog).where(AuditLog.entity == "handoff_ticket")).all()) == 3


def test_a_closed_ticket_cannot_be_answered(session_factory) -> None:
    with session_factory.begin() as session:
        ticket = handoff.open_ticket(session, "o-1", "你好")
        ticket.status = CaseStatus.CLOSED
        ticket_id = ticket.id
    with session_factory.begin() as session:
        with pytest.raises(handoff.CaseError) as err:
            handoff.answer_ticket(session, ticket_id, "晚了", "clerk1")
        assert err.value.code == "closed"


def test_answer_case_is_available_from_the_handoff_module() -> None:
    from bureau.services import legal

    assert handoff.answer_case is legal.answer_case


def test_a_ticket_taken_by_staff_still_collects_the_users_messages(session_factory) -> None:
    with session_factory.begin() as session:
        ticket = handoff.open_ticket(session, "o-1", "补贴没到")
        ticket.status = CaseStatus.ASSIGNED
        first = ticket.id
    with session_factory.begin() as session:
        assert handoff.open_ticket(session, "o-1", "还在吗").id == first
    with session_factory.begin() as session:
        handoff.answer_ticket(session, first, "在的", "clerk1")
    with session_factory.begin() as session:
        assert handoff.open_ticket(session, "o-1", "又有个问题").id != first  # answered: a new request
