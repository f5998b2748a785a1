"""The whole stack answers as a veteran would see it: signed WeChat XML in, a Chinese answer out."""

from __future__ import annotations

import re

import requests
from sqlalchemy import select

from bureau.models import MessageLog

APOLOGY_MARK = "暂时无法回答"
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_part_is_ready(stack):
    reply = requests.get(stack.url("webhook") + "/readyz", timeout=5)
    assert reply.status_code == 200, reply.text
    assert reply.json()["checks"] == {"database": True, "rasa": True, "action_server": True}


def test_hello_gets_a_chinese_answer_from_the_trained_model(wechat, openid, stack_db):
    result = wechat.send_text(openid, "你好")
    assert result.status == 200 and result.tries == 1
    answer = result.user_sees
    assert answer, "the user saw nothing"
    assert CJK.search(answer), answer
    assert APOLOGY_MARK not in answer and "无法提供服务" not in answer
    with stack_db() as session:
        logged = session.scalars(select(MessageLog).where(MessageLog.openid == openid)).all()
    assert any(row.direction == "in" and row.content == "你好" for row in logged)
