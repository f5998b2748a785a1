"""The follower row's last interaction (the 48-hour window) is updated at most once a minute per user."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bureau.models import MessageLog, WechatUser
from tests.gateway.conftest import Pusher
from webhook.gateway import core


def _user(session_factory: Any, openid: str) -> tuple[bool, dt.datetime | None]:
    with session_factory.begin() as session:
        user = session.get(WechatUser, openid)
        assert user is not None
        return user.subscribed, user.last_interaction_at


def _age_the_row(session_factory: Any, openid: str) -> dt.datetime:
    old = dt.datetime(2026, 1, 1, 8, 0)
    with session_factory.begin() as session:
        session.execute(update(WechatUser).where(WechatUser.openid == openid).values(last_interaction_at=old))
    return old


def test_a_conversation_updates_the_row_once_a_minute_and_keeps_every_message(
    push: Pusher, session_factory: Any
) -> None:
    push.text("oTouch", "你好")
    assert _user(session_factory, "oTouch")[1] is not None
    old = _age_the_row(session_factory, "oTouch")
    push.text("oTouch", "我想找工作")  # seconds later: the row is not written again
    assert _user(session_factory, "oTouch") == (True, old)
    with session_factory.begin() as session:
        assert session.scalar(select(func.count()).select_from(MessageLog)) == 2


def test_after_a_minute_the_next_message_moves_the_window(
    push: Pusher, session_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    push.text("oTouchLater", "你好")
    old = _age_the_row(session_factory, "oTouchLater")
    monkeypatch.setattr(core, "TOUCH_EVERY_SECONDS", 0.0)
    push.text("oTouchLater", "还在吗")
    subscribed, last = _user(session_factory, "oTouchLater")
    assert subscribed and last is not None and last > old


def test_a_message_after_an_unfollow_marks_the_user_following_again(
    push: Pusher, session_factory: Any
) -> None:
    push.text("oTouchAgain", "你好")
    push.event("oTouchAgain", "unsubscribe")
    # WeChat delivers messages only from followers: the re-follow event was lost, the message proves it.
    push.text("oTouchAgain", "我回来了")
    subscribed, last = _user(session_factory, "oTouchAgain")
    assert subscribed and last is not None
