"""Legal-aid cases: validation, assignment by specialty and load, answers to the user."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from bureau import idcard
from bureau.models import AuditLog, Campaign, CaseStatus, Counselor, Delivery, LegalCase, Veteran, WechatUser
from bureau.services import legal
from bureau.timeutil import utcnow

ID = idcard.make_number("350926", dt.date(1968, 5, 1), 42)


@pytest.fixture
def counselors(session_factory) -> dict[str, int]:
    with session_factory.begin() as session:
        people = {
            "li": Counselor(name="李法援", specialties=["法律援助"], active=True),
            "chen": Counselor(name="陈法援", specialties=["法律援助", "权益维护"], active=True),
            "zhou": Counselor(name="周调解", specialties=["矛盾调解"], active=True),
            "off": Counselor(name="吴退休", specialties=["法律援助"], active=False),
        }
        session.add_all(people.values())
        session.flush()
        return {key: c.id for key, c in people.items()}


def test_case_goes_to_the_matching_specialty_with_the_lightest_load(session_factory, counselors) -> None:
    with session_factory.begin() as session:
        first = legal.create_case(session, "o-1", "欠薪", "工地老板欠我三个月工资", phone="13905931234")
        second = legal.create_case(session, "o-2", "工伤", "干活摔伤了腿，老板不管")
        third = legal.create_case(session, "o-3", "劳动纠纷", "单位不给签合同")
        family = legal.create_case(session, "o-4", "婚姻家庭", "和儿子吵架，房子的事说不清")
        assert [first.counselor_id, second.counselor_id, third.counselor_id] == [
            counselors["li"],
            counselors["chen"],
            counselors["li"],
        ]
        assert family.counselor_id == counselors["zhou"]
        assert first.status == CaseStatus.ASSIGNED
        text = legal.next_step_text(first)
        assert "李法援同志" in text and "13905931234" in text and f"F{first.id:05d}" in text


def test_closed_cases_do_not_count_as_load(session_factory, counselors) -> None:
    with session_factory.begin() as session:
        session.add(
            LegalCase(
                openid="o-x", topic="欠薪", description="旧案", counselor_id=counselors["li"], status="closed"
            )
        )
        session.flush()
        case = legal.create_case(session, "o-1", "欠薪", "老板欠工资不给")
        assert case.counselor_id == counselors["li"]


def test_without_a_matching_counselor_the_case_stays_open_for_staff(session_factory) -> None:
    with session_factory.begin() as session:
        case = legal.create_case(session, "o-1", "土地纠纷", "邻居占了我家的地")
        assert case.counselor_id is None and case.status == CaseStatus.OPEN
        assert "老战友工作室会在2个工作日内安排人" in legal.next_step_text(case)


def test_description_is_validated_and_redacted(session_factory, counselors) -> None:
    with session_factory.begin() as session:
        for bad in ("", "  ", "欠钱"):
            with pytest.raises(legal.CaseError) as err:
                legal.create_case(session, "o-1", "欠薪", bad)
            assert err.value.code == "too_short"
        with pytest.raises(legal.CaseError) as err:
            legal.create_case(session, "o-1", "欠薪", "字" * 1001)
        assert err.value.code == "too_long"
        case = legal.create_case(session, "o-1", "不存在的类别", f"我的身份证{ID}，老板欠工资")
        assert case.topic == "其他"
        assert ID not in case.description and idcard.mask(ID) in case.description


def test_bound_veteran_is_recorded_and_a_repeat_returns_the_same_case(session_factory, counselors) -> None:
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
        session.add(WechatUser(openid="o-1", veteran_id=veteran.id))
        session.flush()
        assert legal.known_phone(session, "o-1") == "13800000001"
        assert legal.known_phone(session, "o-2") is None
        case = legal.create_case(session, "o-1", "欠薪", "老板欠工资不给")
        again = legal.create_case(session, "o-1", "欠薪", "老板欠工资不给")
        assert again.id == case.id
        assert case.veteran_id == veteran.id and case.contact_phone == "13800000001"
        legal.create_case(session, "o-2", "欠薪", "老板欠工资不给", phone="13900000002")
        assert legal.known_phone(session, "o-2") == "13900000002"
        assert [c.openid for c in legal.my_cases(session, "o-1")] == ["o-1"]


def test_answer_reaches_the_user_inside_the_48_hour_window(session_factory, counselors) -> None:
    now = utcnow()
    with session_factory.begin() as session:
        session.add_all(
            [
                WechatUser(openid="o-recent", last_interaction_at=now - dt.timedelta(hours=47)),
                WechatUser(openid="o-old", last_interaction_at=now - dt.timedelta(hours=49)),
            ]
        )
        session.flush()
        recent = legal.create_case(session, "o-recent", "欠薪", "老板欠工资不给").id
        old = legal.create_case(session, "o-old", "欠薪", "老板欠工资三个月").id
    with session_factory.begin() as session:
        assert legal.answer_case(
            session, recent, "请带上工资条来服务中心。", "clerk1", now
        ) == legal.AnswerResult(delivered=True, needs_phone_call=False)
        assert legal.answer_case(session, old, "请来一趟。", "clerk1", now).needs_phone_call is True
        with pytest.raises(legal.CaseError):
            legal.answer_case(session, recent, "  ", "clerk1", now)
        with pytest.raises(legal.CaseError):
            legal.answer_case(session, 999999, "x", "clerk1", now)
    with session_factory() as session:
        delivery = session.scalars(select(Delivery)).one()
        assert delivery.openid == "o-recent"
        campaign = session.get(Campaign, delivery.campaign_id)
        assert campaign is not None and campaign.kind == "case_answer"
        assert "请带上工资条来服务中心。" in campaign.payload["text"]
        stored = session.get(LegalCase, recent)
        assert stored is not None and stored.status == CaseStatus.ANSWERED
        assert stored.answer == "请带上工资条来服务中心。"
        audits = session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
        assert [(a.actor, a.entity, a.after["delivered"]) for a in audits] == [  # type: ignore[index]
            ("clerk1", "legal_case", True),
            ("clerk1", "legal_case", False),
        ]
