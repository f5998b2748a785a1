"""Parts of the real stack fail; the veteran still gets a short answer in time and nothing is lost.

Each test stops one real process, checks what the user sees and what staff get, then brings the part
back and checks the conversation goes on.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from bureau.models import HandoffTicket, MessageLog

SERVICE_PHONE = "0593-8352233"


@pytest.fixture
def restore(stack):
    """Restart whatever a test stopped, so later tests find the whole stack."""
    yield
    if "actions" not in stack.parts:
        stack.start_actions()
    if "rasa" not in stack.parts:
        stack.start_rasa()


def _kept_for_staff(stack_db, openid: str, text: str) -> None:
    with stack_db() as session:
        logged = session.scalars(
            select(MessageLog).where(MessageLog.openid == openid, MessageLog.direction == "in")
        ).all()
        assert any(row.content == text and row.unanswered for row in logged)
        tickets = session.scalars(select(HandoffTicket).where(HandoffTicket.openid == openid)).all()
        assert [t.reason for t in tickets] == ["bot_unavailable"]
        assert text in (tickets[0].message or "")


def test_rasa_down_apologises_within_the_deadline_and_keeps_the_message(
    stack, wechat, openid, stack_db, restore
):
    stack.stop_part("rasa")
    started = time.monotonic()
    result = wechat.send_text(openid, "我想问问定期补助金怎么领")
    assert time.monotonic() - started < 5 and result.tries == 1
    assert SERVICE_PHONE in (result.user_sees or "")
    _kept_for_staff(stack_db, openid, "我想问问定期补助金怎么领")

    stack.start_rasa()
    back = wechat.send_text(openid, "你好")
    assert back.user_sees and SERVICE_PHONE not in back.user_sees


def test_action_server_down_apologises_and_keeps_the_message(stack, wechat, openid, stack_db, restore):
    stack.stop_part("actions")
    result = wechat.send_text(openid, "双城镇有保安的工作吗")
    assert result.tries == 1
    assert SERVICE_PHONE in (result.user_sees or "")
    _kept_for_staff(stack_db, openid, "双城镇有保安的工作吗")

    stack.start_actions()
    back = wechat.send_text(openid, "双城镇有保安的工作吗")
    assert "保安" in (back.user_sees or "") and SERVICE_PHONE not in (back.user_sees or "")


def test_a_crisis_message_is_answered_even_with_rasa_down(stack, wechat, openid, restore):
    stack.stop_part("rasa")
    result = wechat.send_text(openid, "我真的不想活了")
    seen = result.user_sees or ""
    assert "12356" in seen and "110" in seen
