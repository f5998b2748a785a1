"""Identity binding rules: all three values must match, lockout after 5 failures, masked profile."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from bureau.models import WechatUser
from bureau.services import identity
from tests.services.veteran_records import ID_LI, ID_ZHANG, make_veteran

NOW = dt.datetime(2030, 5, 1, 2, 0)


def test_bind_succeeds_when_name_id_and_phone_match(session_factory):
    with session_factory.begin() as session:
        veteran_id = make_veteran(session).id
    with session_factory.begin() as session:
        result = identity.bind(session, "o-a", "张建国", ID_ZHANG.lower(), "139 0593 1234", now=NOW)
        assert result.outcome == "bound"
    with session_factory() as session:
        assert session.get(WechatUser, "o-a").veteran_id == veteran_id
        assert identity.bound_veteran(session, "o-a").id == veteran_id


@pytest.mark.parametrize(
    ("name", "number", "phone"),
    [
        ("张建民", ID_ZHANG, "13905931234"),
        ("张建国", ID_LI, "13905931234"),
        ("张建国", ID_ZHANG, "13905930000"),
    ],
)
def test_any_mismatch_fails_without_saying_which(session_factory, name, number, phone):
    with session_factory.begin() as session:
        make_veteran(session)
        make_veteran(session, name="李秀英", id_number=ID_LI, phone="13799876543")
    with session_factory.begin() as session:
        result = identity.bind(session, "o-a", name, number, phone, now=NOW)
    assert result.outcome == "mismatch"
    assert result.attempts_left == 4
    with session_factory() as session:
        assert session.get(WechatUser, "o-a").veteran_id is None


def test_five_failures_lock_for_a_day_then_unlock(session_factory):
    with session_factory.begin() as session:
        make_veteran(session)
    outcomes = []
    for attempt in range(5):
        with session_factory.begin() as session:
            result = identity.bind(
                session, "o-a", "张建国", ID_ZHANG, "13900000000", now=NOW + dt.timedelta(minutes=attempt)
            )
            outcomes.append((result.outcome, result.attempts_left))
    assert outcomes == [("mismatch", 4), ("mismatch", 3), ("mismatch", 2), ("mismatch", 1), ("locked", 0)]
    locked_at = NOW + dt.timedelta(minutes=4)
    # Locked: even the right answer is refused until the day has passed.
    with session_factory.begin() as session:
        result = identity.bind(
            session, "o-a", "张建国", ID_ZHANG, "13905931234", now=locked_at + dt.timedelta(hours=23)
        )
        assert result.outcome == "locked"
        assert result.locked_until == locked_at + dt.timedelta(days=1)
        assert (
            identity.lock_state(session, "o-a", now=locked_at + dt.timedelta(hours=23)) == result.locked_until
        )
    with session_factory.begin() as session:
        assert identity.lock_state(session, "o-a", now=locked_at + dt.timedelta(days=1, seconds=1)) is None
        result = identity.bind(
            session, "o-a", "张建国", ID_ZHANG, "13905931234", now=locked_at + dt.timedelta(days=1, seconds=1)
        )
        assert result.outcome == "bound"
    with session_factory() as session:
        user = session.get(WechatUser, "o-a")
        assert (user.bind_failures, user.bind_locked_until) == (0, None)


def test_after_unlock_the_counter_starts_again(session_factory):
    with session_factory.begin() as session:
        make_veteran(session)
    for attempt in range(5):
        with session_factory.begin() as session:
            identity.bind(
                session, "o-a", "张建国", ID_ZHANG, "13900000000", now=NOW + dt.timedelta(minutes=attempt)
            )
    later = NOW + dt.timedelta(days=2)
    with session_factory.begin() as session:
        assert identity.bind(session, "o-a", "x", ID_ZHANG, "13900000000", now=later).attempts_left == 4


def test_lock_is_per_openid(session_factory):
    with session_factory.begin() as session:
        make_veteran(session)
    for _ in range(5):
        with session_factory.begin() as session:
            identity.bind(session, "o-attacker", "张建国", ID_ZHANG, "13900000000", now=NOW)
    with session_factory.begin() as session:
        assert (
            identity.bind(session, "o-owner", "张建国", ID_ZHANG, "13905931234", now=NOW).outcome == "bound"
        )


def test_unbind_and_masked_profile(session_factory):
    with session_factory.begin() as session:
        make_veteran(session)
        identity.bind(session, "o-a", "张建国", ID_ZHANG, "13905931234")
    with session_factory() as session:
        profile = identity.profile(session, "o-a")
        assert profile == identity.Profile(
            name="张*国",
            id_number_masked="350***********" + ID_ZHANG[-4:],
            phone_masked="139****1234",
            township="双城镇",
            category="退役士兵",
        )
        assert identity.profile(session, "o-other") is None
    with session_factory.begin() as session:
        assert identity.unbind(session, "o-a") is True
        assert identity.unbind(session, "o-a") is False
    with session_factory() as session:
        assert identity.profile(session, "o-a") is None
        assert session.scalars(select(WechatUser.veteran_id)).all() == [None]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("13905931234", "13905931234"),
        ("139-0593-1234", "13905931234"),
        ("+8613905931234", "13905931234"),
        ("０５９３－８３５２２３３", "0593-8352233"),
        ("05938352233", "05938352233"),
    ],
)
def test_valid_phones_are_normalised(text, expected):
    assert identity.validate_phone(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [("1390593123", "11位"), ("12905931234", "格式不对"), ("没有电话", "数字"), ("8352233", "区号")],
)
def test_invalid_phones_have_a_reason(text, reason):
    with pytest.raises(identity.InvalidInput) as excinfo:
        identity.validate_phone(text)
    assert reason in excinfo.value.reason


def test_townships_names_and_categories():
    assert identity.validate_township("双城") == "双城镇"
    assert identity.validate_township("柘荣县富溪镇") == "富溪镇"
    assert identity.validate_township("我住英山") == "英山乡"
    with pytest.raises(identity.InvalidInput, match="没找到这个乡镇"):
        identity.validate_township("福州")
    assert identity.validate_name("我叫 张建国") == "张建国"
    with pytest.raises(identity.InvalidInput, match="中文姓名"):
        identity.validate_name("zhang123")
    assert identity.validate_veteran_category("我是烈属") == "烈属"
    with pytest.raises(identity.InvalidInput, match="退役士兵"):
        identity.validate_veteran_category("学生")


def test_a_name_step_takes_any_real_name_and_refuses_chat():
    # The NLU reads some names as chat (蔡光荣 → "affirm"), so the name step takes any text and the
    # validator decides.
    from bureau.services.identity import InvalidInput, validate_name

    for name in ("蔡光荣", "欧阳建国", "买买提·艾力"):
        assert validate_name(name) == name
    assert validate_name("我叫李国庆") == "李国庆"
    for chat in ("好的", "你好", "我要查工作", "优待证", "是吗", "张三丰先生的儿子"):
        with pytest.raises(InvalidInput):
            validate_name(chat)
