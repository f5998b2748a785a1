"""Benefit policies, hardship applications, merchant offers and service stations from the database."""

from __future__ import annotations

import datetime as dt

import pytest

from bureau.geo import haversine_km
from bureau.models import HardshipApplication
from bureau.services import benefits, hardship, merchants, stations
from tests.services.veteran_records import make_merchant, make_policy, make_station, make_user, make_veteran


def test_haversine_known_distance():
    # One degree of latitude is 111.19 km on the mean-radius sphere; a degree of longitude shrinks by cos(lat).
    assert haversine_km(27.0, 119.0, 28.0, 119.0) == pytest.approx(111.19, abs=0.01)
    assert haversine_km(60.0, 10.0, 60.0, 11.0) == pytest.approx(55.60, abs=0.01)
    assert haversine_km(27.0, 119.0, 27.0, 119.0) == 0.0


def _policies(session):
    make_policy(
        session,
        "dingqi_buzhu",
        "定期补助金",
        "符合条件的老兵每月发放定期补助。",
        ["定期补助金", "定补", "补助"],
    )
    make_policy(
        session,
        "loan_yongjundai",
        "拥军贷",
        "退役军人创业可申请最高30万元贷款。",
        ["拥军贷", "贷款", "创业贷款"],
    )
    make_policy(
        session, "junchuangyuan", "军创园", "县军创园为退役军人创业提供场地。", ["军创园", "创业园", "创业"]
    )
    make_policy(session, "certificate_materials", "优待证所需材料", "身份证、退役证。", ["材料"])


def test_find_policies_by_topic_and_by_text(session_factory):
    with session_factory.begin() as session:
        _policies(session)
    with session_factory() as session:
        assert [p.slug for p in benefits.find_policies(session, topic="定期补助金")] == ["dingqi_buzhu"]
        assert [p.slug for p in benefits.find_policies(session, text="我想问问拥军贷怎么申请")] == [
            "loan_yongjundai"
        ]
        assert benefits.find_policies(session, text="想创业")[0].slug == "junchuangyuan"
        assert benefits.find_policies(session, text="今天天气") == []
        assert "certificate_materials" not in [p.slug for p in benefits.menu_policies(session)]
        assert benefits.policy_by_slug(session, "nope") is None
        assert benefits.answer_text(benefits.policy_by_slug(session, "loan_yongjundai")) == (
            "【拥军贷】\n退役军人创业可申请最高30万元贷款。"
        )


def test_staff_edits_apply_at_once(session_factory):
    with session_factory.begin() as session:
        _policies(session)
    with session_factory.begin() as session:
        policy = benefits.policy_by_slug(session, "dingqi_buzhu")
        policy.answer = "自2030年起每月提高100元。"
        policy.keywords = ["老兵补助"]
    with session_factory() as session:
        assert benefits.find_policies(session, text="老兵补助多少钱")[0].answer == "自2030年起每月提高100元。"


def test_hardship_application_one_open_per_user(session_factory):
    with session_factory.begin() as session:
        veteran = make_veteran(session)
        make_user(session, "o-a", veteran)
        first = hardship.apply(
            session,
            "o-a",
            veteran=veteran,
            applicant_name="张建国",
            phone="13905931234",
            township="双城镇",
            reason="  老伴住院，  医药费负担重 ",
        )
        assert first.outcome == "created"
        again = hardship.apply(
            session,
            "o-a",
            veteran=veteran,
            applicant_name="张建国",
            phone="13905931234",
            township="双城镇",
            reason="再申请一次",
        )
        assert (again.outcome, again.application.id) == ("existing", first.application.id)
        other = hardship.apply(
            session,
            "o-b",
            veteran=None,
            applicant_name="李秀英",
            phone="13799876543",
            township=None,
            reason="家里房子漏雨需要修",
        )
        assert other.outcome == "created"
    with session_factory() as session:
        stored = session.get(HardshipApplication, first.application.id)
        assert (stored.reason, stored.status, stored.veteran_id) == (
            "老伴住院， 医药费负担重",
            "open",
            veteran.id,
        )


@pytest.mark.parametrize(
    ("text", "reason"), [("难", "多说几句"), ("", "多说几句"), ("困" * 1001, "1000字以内")]
)
def test_hardship_reason_is_validated(text, reason):
    with pytest.raises(hardship.InvalidReason) as excinfo:
        hardship.validate_reason(text)
    assert reason in excinfo.value.reason


def test_merchant_offers_by_category_and_township(session_factory):
    today = dt.date(2030, 6, 1)
    with session_factory.begin() as session:
        make_merchant(
            session, "老兵饭店", "食", "双城镇", [("凭优待证9折", None), ("过期活动", dt.date(2030, 5, 31))]
        )
        make_merchant(session, "富溪小吃", "食", "富溪镇", [("凭证送饮料", dt.date(2030, 6, 1))])
        make_merchant(session, "只有过期", "食", "双城镇", [("过期", dt.date(2030, 1, 1))])
        make_merchant(session, "停用饭店", "食", "双城镇", [("8折", None)], active=False)
        make_merchant(session, "宾馆", "住", "双城镇", [("房费8折", None)])
    with session_factory() as session:
        found = merchants.offers(session, "食", today=today)
        assert [(m.name, [o.description for o in offers]) for m, offers in found] == [
            ("老兵饭店", ["凭优待证9折"]),
            ("富溪小吃", ["凭证送饮料"]),
        ]
        assert [m.name for m, _ in merchants.offers(session, "食", "富溪镇", today=today)] == ["富溪小吃"]
        assert merchants.offers(session, "康", today=today) == []
        assert merchants.categories_with_offers(session, today=today) == ["食", "住"]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("食", "食"),
        ("餐饮", "食"),
        ("想去吃饭", "食"),
        ("医疗康养", "康"),
        ("婚宴", "庆"),
        ("火箭", None),
        (None, None),
    ],
)
def test_merchant_category_words(text, key):
    assert merchants.normalize_category(text) == key


def test_stations_by_township_and_by_distance(session_factory):
    with session_factory.begin() as session:
        make_station(session, "柘荣县退役军人服务中心", "county", None, 27.2360, 119.9000)
        make_station(session, "双城镇退役军人服务站", "township", "双城镇", 27.2380, 119.9010)
        make_station(session, "溪坪村服务站", "village", "双城镇", None, None)
        make_station(session, "东门村服务站", "village", "双城镇", 27.2400, 119.9050)
        make_station(session, "英山乡退役军人服务站", "township", "英山乡", 27.1600, 119.8200)
        make_user(session, "o-located", last_latitude=27.161, last_longitude=119.821)
        make_user(session, "o-unknown")
    with session_factory() as session:
        assert [s.name for s in stations.stations_in_township(session, "双城镇")] == [
            "双城镇退役军人服务站",
            "东门村服务站",
            "溪坪村服务站",
        ]
        assert stations.stations_in_township(session, "乍洋乡") == []
        assert stations.county_center(session).name == "柘荣县退役军人服务中心"
        location = stations.last_location(session, "o-located")
        assert stations.last_location(session, "o-unknown") is None
        nearest = stations.nearest_stations(session, *location, limit=2)
        assert [s.name for s, _ in nearest] == ["英山乡退役军人服务站", "柘荣县退役军人服务中心"]
        assert nearest[0][1] == pytest.approx(0.15, abs=0.05)
        assert nearest[1][1] == pytest.approx(11.4, abs=0.5)
        assert (
            stations.describe(nearest[0][0], nearest[0][1]).splitlines()[0]
            == "英山乡退役军人服务站（约0.1公里）"
        )
