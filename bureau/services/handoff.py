"""Talking to a person: handoff tickets, and staff answers that reach the user.

An answer goes out as a customer-service message while the user is inside WeChat's 48-hour window
(WechatUser.last_interaction_at); after that only a phone call reaches them, so the ticket is flagged
`needs_phone_call`. Legal cases are answered the same way (`answer_case`, re-exported here).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from bureau import idcard
from bureau.models import AuditLog, CaseStatus, HandoffTicket
from bureau.notifications import notify_user
from bureau.services.legal import AnswerResult, CaseError, answer_case, in_service_window
from bureau.timeutil import utcnow

__all__ = ["AnswerResult", "CaseError", "answer_case", "answer_ticket", "open_ticket", "open_tickets"]

REASONS = ("user_request", "fallback", "bot_unavailable")
_MAX_MESSAGE = 4000
# Tickets still waiting for a person (assigned: a staff member took it from the console).
_WAITING = (CaseStatus.OPEN, CaseStatus.ASSIGNED)


def open_ticket(
    session: Session,
    openid: str,
    message: str | None,
    reason: str = "user_request",
    now: dt.datetime | None = None,
) -> HandoffTicket:
    """Open a ticket for the user, or add the message to the one still waiting (one per user)."""
    now = now or utcnow()
    if reason not in REASONS:
        raise ValueError(f"unknown handoff reason {reason!r}")
    clean = idcard.redact((message or "").strip())
    ticket = session.scalars(
        select(HandoffTicket)
        .where(HandoffTicket.openid == openid, HandoffTicket.status.in_(_WAITING))
        .order_by(HandoffTicket.created_at.desc(), HandoffTicket.id.desc())
        .limit(1)
        .with_for_update()
    ).first()
    if ticket is not None:
        if clean and clean not in (ticket.message or "").split("\n"):
            ticket.message = ((ticket.message + "\n") if ticket.message else "") + clean
            ticket.message = ticket.message[-_MAX_MESSAGE:]
        ticket.updated_at = now
    else:
        ticket = HandoffTicket(
            openid=openid,
            message=clean[:_MAX_MESSAGE] or None,
            reason=reason,
            status=CaseStatus.OPEN,
            created_at=now,
            updated_at=now,
        )
        session.add(ticket)
    session.flush()
    return ticket


def open_tickets(session: Session) -> Sequence[HandoffTicket]:
    """Tickets waiting for staff, oldest first (the console's queue)."""
    return session.scalars(
        select(HandoffTicket)
        .where(HandoffTicket.status.in_(_WAITING))
        .order_by(HandoffTicket.created_at, HandoffTicket.id)
    ).all()


def answer_ticket(
    session: Session, ticket_id: int, text: str, staff_username: str, now: dt.datetime | None = None
) -> AnswerResult:
    """Record a staff answer; send it through the customer-service API inside the 48-hour window,
    otherwise flag the ticket `needs_phone_call`. Raises CaseError with a Chinese reason."""
    now = now or utcnow()
    answer = (text or "").strip()
    if not answer:
        raise CaseError("回复内容不能为空。", "empty")
    ticket = session.get(HandoffTicket, ticket_id)
    if ticket is None:
        raise CaseError("没有这个工单。", "not_found")
    if ticket.status == CaseStatus.CLOSED:
        raise CaseError("这个工单已经关闭了。", "closed")
    before = {"status": ticket.status, "answer": ticket.answer, "needs_phone_call": ticket.needs_phone_call}
    delivered = in_service_window(session, ticket.openid, now)
    ticket.answer = answer
    ticket.status = CaseStatus.ANSWERED
    ticket.assigned_to = staff_username
    ticket.needs_phone_call = not delivered
    ticket.updated_at = now
    if delivered:
        notify_user(
            session,
            ticket.openid,
            "handoff_answer",
            f"【工作人员回复】{answer}",
            template_fields={"ticket": str(ticket.id)},
            created_by=staff_username,
        )
    session.add(
        AuditLog(
            actor=staff_username,
            action="answer",
            entity="handoff_ticket",
            entity_id=str(ticket.id),
            before=before,
            after={
                "status": ticket.status,
                "answer": idcard.redact(answer),
                "needs_phone_call": not delivered,
            },
            at=now,
        )
    )
    session.flush()
    return AnswerResult(delivered=delivered, needs_phone_call=not delivered)
