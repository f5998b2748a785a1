"""The crisis safety net: what counts as a crisis, the reply, and the staff alert."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from bureau import idcard, safety
from bureau.models import Campaign, CaseStatus, CrisisAlert, Delivery, StaffUser
from bureau.timeutil import utcnow

CRISIS_TEXTS = [
    "不想活了",
    "我真的不想活了",
    "不 想 活 了",
    "不太想活了",
    "不想再活下去了",
    "想死",
    "我好想死啊",
    "自杀",
    "有自杀的念头",
    "想过轻生",
    "想跳楼",
    "工资要不回来我去跳楼",
    "在河边，想跳河",
    "想喝农药",
    "我老公说要喝农药",
    "割腕",
    "我爸在家说要上吊怎么办",
    "一了百了",
    "活着没意思",
    "活着真没意思",
    "活着还有啥意思",
    "结束生命",
    "我想结束自己的生命",
    "撑不下去了",
    "实在熬不下去了",
    "遗书写好了",
    "我战友在群里发了遗言",
    "死了算了",
    "一死了之",
    "生不如死",
    "活够了",
    "寻短见",
    "想不开",
    "想自我了断",
    "烧炭",
    "卧轨",
    "攒了一瓶安眠药",
    "敌敌畏就在手边",
    "绳子已经准备好了",
    "我死了家里人就轻松了",
    "想去找牺牲的战友了",
    "再见了这个世界",
    "我要走了 对不起家人",
    "跟大家说声再见 以后不会再麻烦你们了",
    "人活着到底为了啥 没意思透了",
    # typos, dialect, traditional characters, pinyin
    "不相活了",
    "不向活了",
    "不想或了",
    "不想活le",
    "冇想活了",
    "毋想活咯",
    "唔想生存",
    "自殺",
    "想輕生",
    "跳搂",
    "自sha",
    "zisha",
    "bu xiang huo le",
    "想si",
    "Ｚｉｓｈａ",
    "食农药",
    "吊颈",
]

NOT_CRISIS_TEXTS = [
    "气死我了",
    "笑死",
    "笑死我了哈哈",
    "累死了",
    "热死了，今天",
    "饿死了",
    "烦死了这个系统",
    "想死你了老战友",
    "想死我了",
    "我想四号下午去预约",
    "我想预约明天下午谈心",
    "不想活动了，腿疼",
    "我想找工作",
    "优待证什么时候能办好",
    "工资被拖欠了半年",
    "跟老婆吵架了想找人调解",
    "去找牺牲战友的墓在哪里",
    "谢谢你",
    "以后不会再麻烦你们了，谢谢",
    "对不起，我走错了",
    "",
]


@pytest.mark.parametrize("text", CRISIS_TEXTS)
def test_crisis_expressions_are_caught(text: str) -> None:
    assert safety.looks_like_crisis(text) is True


@pytest.mark.parametrize("text", NOT_CRISIS_TEXTS)
def test_everyday_hyperbole_is_not_a_crisis(text: str) -> None:
    assert safety.looks_like_crisis(text) is False


def test_hyperbole_does_not_hide_a_real_crisis() -> None:
    assert safety.looks_like_crisis("气死我了，真不想活了")
    assert safety.looks_like_crisis("笑死，反正我也活够了")


def test_crisis_reply_gives_hotlines_and_a_person() -> None:
    reply = safety.CRISIS_REPLY
    for number in ("12356", "120", "110"):
        assert number in reply
    assert "不是一个人" in reply
    assert "老战友" in reply
    assert "安全" in reply
    assert len(reply) < 300  # read at once on a phone


def _staff(session, username: str, openid: str | None, on_duty: bool) -> StaffUser:
    staff = StaffUser(
        username=username,
        display_name=username,
        password_hash="x",
        role="clerk",
        openid=openid,
        on_duty=on_duty,
        active=True,
    )
    session.add(staff)
    return staff


def test_alert_is_stored_redacted_and_pushed_to_the_on_duty_staff(session_factory) -> None:
    number = idcard.make_number("350926", dt.date(1970, 1, 2), 17)
    with session_factory.begin() as session:
        _staff(session, "duty", "o-staff-duty", True)
        _staff(session, "offduty", "o-staff-off", False)
        _staff(session, "noopenid", None, True)
    with session_factory.begin() as session:
        alert = safety.raise_crisis_alert(session, "o-user-1", f"我不想活了 身份证{number}", "keyword")
        alert_id = alert.id
    with session_factory() as session:
        stored = session.get(CrisisAlert, alert_id)
        assert stored is not None
        assert stored.status == CaseStatus.OPEN
        assert stored.source == "keyword"
        assert number not in stored.message
        assert idcard.mask(number) in stored.message
        assert stored.staff_notified_at is not None
        deliveries = session.scalars(select(Delivery)).all()
        assert [d.openid for d in deliveries] == ["o-staff-duty"]
        campaign = session.get(Campaign, deliveries[0].campaign_id)
        assert campaign is not None
        assert campaign.kind == "crisis_duty"
        assert f"#{alert_id}" in campaign.payload["text"]
        assert "o-user-1" not in campaign.payload["text"]  # a pseudonym, not the OpenID
        assert number not in campaign.payload["text"]


def test_a_second_message_within_ten_minutes_extends_the_same_alert(session_factory) -> None:
    with session_factory.begin() as session:
        _staff(session, "duty", "o-staff-duty", True)
    with session_factory.begin() as session:
        first = safety.raise_crisis_alert(session, "o-user-1", "不想活了", "nlu").id
    with session_factory.begin() as session:
        second = safety.raise_crisis_alert(session, "o-user-1", "药都准备好了", "keyword").id
        # the same text again (a WeChat retry) is not appended twice
        safety.raise_crisis_alert(session, "o-user-1", "药都准备好了", "keyword")
    with session_factory.begin() as session:
        other_user = safety.raise_crisis_alert(session, "o-user-2", "想死", "nlu").id
    assert second == first
    assert other_user != first
    with session_factory() as session:
        alerts = session.scalars(select(CrisisAlert).order_by(CrisisAlert.id)).all()
        assert [a.openid for a in alerts] == ["o-user-1", "o-user-2"]
        assert alerts[0].message == "不想活了\n药都准备好了"
        # staff are pushed once per alert, not once per message
        assert len(session.scalars(select(Delivery)).all()) == 2


def test_an_old_or_closed_alert_is_not_reused(session_factory) -> None:
    with session_factory.begin() as session:
        old = CrisisAlert(
            openid="o-user-1",
            message="想死",
            source="nlu",
            status=CaseStatus.OPEN,
            created_at=utcnow() - dt.timedelta(minutes=11),
        )
        closed = CrisisAlert(openid="o-user-2", message="想死", source="nlu", status=CaseStatus.CLOSED)
        session.add_all([old, closed])
    with session_factory.begin() as session:
        a = safety.raise_crisis_alert(session, "o-user-1", "还是不想活", "nlu")
        b = safety.raise_crisis_alert(session, "o-user-2", "还是不想活", "nlu")
        new_ids = {a.id, b.id}
    with session_factory() as session:
        assert len(session.scalars(select(CrisisAlert)).all()) == 4
        assert old.id not in new_ids and closed.id not in new_ids


def test_without_anyone_on_duty_the_alert_is_still_stored(session_factory) -> None:
    with session_factory.begin() as session:
        alert_id = safety.raise_crisis_alert(session, "o-user-1", "想死", "nlu").id
    with session_factory() as session:
        alert = session.get(CrisisAlert, alert_id)
        assert alert is not None and alert.staff_notified_at is None
        assert session.scalars(select(Delivery)).all() == []
