"""`flask seed`: the demo data of Zherong County, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter, defaultdict

import pytest
from sqlalchemy import func, select

from bureau import idcard, secrets_box
from bureau.models import (
    COUNSELOR_SPECIALTIES,
    MERCHANT_CATEGORIES,
    TOWNSHIPS,
    VETERAN_CATEGORIES,
    BenefitPolicy,
    CounselingSlot,
    Counselor,
    JobPosting,
    JobStatus,
    Merchant,
    MerchantOffer,
    ServiceStation,
    StaffUser,
    Veteran,
)
from bureau.seed import demo_people, seed_demo_data, slot_days
from bureau.timeutil import from_local, local_today, to_local, utcnow

EXPECTED = {
    ServiceStation: 31,  # the county center, 9 township stations, 21 village stations
    Counselor: 12,
    CounselingSlot: 144,  # 12 counselors x 2 half-days a week x 2 weeks x 3 slots, on ordinary weeks
    JobPosting: 33,
    Merchant: 33,
    MerchantOffer: 44,
    BenefitPolicy: 17,
    Veteran: 300,
}
COUNTY_SEAT = (27.235, 119.900)
JOB_CATEGORIES = (
    "保安", "司机", "普工", "电工", "焊工", "厨师", "销售", "文员", "物流", "保洁", "维修工", "护林员", "仓管", "技术员",
)  # fmt: skip
# A Monday in an ordinary fortnight (no fixed-date holiday in the next 14 days), 10:00 China time.
ORDINARY_MONDAY = from_local(dt.datetime(2026, 11, 16, 10, 0))


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    dlat = math.radians(lat2 - lat1)
    dlon = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    return 6371 * math.hypot(dlat, dlon)


def _counts(session) -> dict[type, int]:
    return {model: session.scalar(select(func.count()).select_from(model)) for model in EXPECTED}


@pytest.fixture
def seeded(session_factory):
    with session_factory.begin() as session:
        summary = seed_demo_data(session, now=ORDINARY_MONDAY)
    return summary


def test_an_empty_database_gets_every_kind_of_demo_data(session_factory, seeded):
    assert "退役军人300人" in seeded and "服务站31个" in seeded and "300 veterans" in seeded
    assert "\n" not in seeded
    with session_factory() as session:
        assert _counts(session) == EXPECTED
        assert session.scalar(select(func.count()).select_from(StaffUser)) == 0


def test_a_second_run_says_it_skipped_and_adds_nothing(session_factory, seeded):
    with session_factory.begin() as session:
        summary = seed_demo_data(session)
    assert "已跳过" in summary and "skipped" in summary
    with session_factory() as session:
        assert _counts(session) == EXPECTED


def test_nothing_is_seeded_into_a_database_that_already_has_a_station(session_factory):
    with session_factory.begin() as session:
        session.add(
            ServiceStation(name="某真实服务站", level="township", township="富溪镇", address="富溪镇")
        )
    with session_factory.begin() as session:
        assert "已跳过" in seed_demo_data(session)
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Veteran)) == 0
        assert session.scalar(select(func.count()).select_from(ServiceStation)) == 1


def test_force_never_duplicates_keeps_staff_edits_and_adds_fresh_slots(session_factory, seeded):
    with session_factory.begin() as session:
        policy = session.scalars(select(BenefitPolicy).where(BenefitPolicy.slug == "fuxu_jin")).one()
        policy.answer = "工作人员改过的答案"
    a_week_later = ORDINARY_MONDAY + dt.timedelta(days=7)
    with session_factory.begin() as session:
        summary = seed_demo_data(session, force=True, now=a_week_later)
    # Only the slots of the week that was not covered yet: 12 counselors x 2 half-days x 3 slots.
    assert "咨询时段72个" in summary and "退役军人0人" in summary
    with session_factory() as session:
        counts = _counts(session)
        assert counts == {**EXPECTED, CounselingSlot: EXPECTED[CounselingSlot] + 72}
        policy = session.scalars(select(BenefitPolicy).where(BenefitPolicy.slug == "fuxu_jin")).one()
        assert policy.answer == "工作人员改过的答案"
    with session_factory.begin() as session:
        assert "没有新增" in seed_demo_data(session, force=True, now=a_week_later)


def test_force_beside_real_data_leaves_the_real_rows_alone(session_factory):
    twin = demo_people()[0]
    with session_factory.begin() as session:
        session.add(
            ServiceStation(
                name="富溪镇退役军人服务站", level="township", township="富溪镇", address="真实地址"
            )
        )
        session.add(Counselor(name="袁国平", specialties=["谈心"], is_demo=False))
        real = Veteran(name="真实的人", category="退役士兵")
        real.set_id_number(twin.id_number)
        session.add(real)
    with session_factory.begin() as session:
        seed_demo_data(session, force=True, now=ORDINARY_MONDAY)
    with session_factory() as session:
        stations = session.scalars(
            select(ServiceStation).where(ServiceStation.name == "富溪镇退役军人服务站")
        ).all()
        assert [s.address for s in stations] == ["真实地址"]
        real_counselor = session.scalars(select(Counselor).where(Counselor.is_demo.is_(False))).one()
        assert (
            session.scalars(
                select(CounselingSlot).where(CounselingSlot.counselor_id == real_counselor.id)
            ).all()
            == []
        )
        assert session.scalar(select(func.count()).select_from(Counselor)) == 13
        assert session.scalar(select(func.count()).select_from(Veteran)) == 300
        stored = session.scalars(
            select(Veteran).where(Veteran.id_number_hash == secrets_box.lookup_hash(twin.id_number))
        ).one()
        assert stored.name == "真实的人" and not stored.is_demo


def test_the_roster_is_reproducible(session_factory, seeded):
    people = demo_people()
    assert people == demo_people()
    with session_factory() as session:
        stored = set(session.scalars(select(Veteran.id_number_hash)))
    assert stored == {secrets_box.lookup_hash(person.id_number) for person in people}


def test_veteran_id_numbers_are_valid_encrypted_and_masked(session_factory, seeded):
    with session_factory() as session:
        veterans = session.scalars(select(Veteran)).all()
    assert len({v.id_number_hash for v in veterans}) == 300
    today = local_today()
    for veteran in veterans:
        clear = veteran.reveal_id_number()
        assert idcard.validate(clear) == clear
        assert clear.startswith("350926")
        birth = dt.date(int(clear[6:10]), int(clear[10:12]), int(clear[12:14]))
        assert 1950 <= birth.year <= 2004
        assert clear not in veteran.id_number_encrypted
        assert veteran.id_number_masked == idcard.mask(clear) == "350" + "*" * 11 + clear[-4:]
        assert veteran.id_number_hash == secrets_box.lookup_hash(clear)
        assert clear not in repr(veteran)
        assert veteran.is_demo
        assert re.fullmatch(r"1[358]\d{9}", veteran.phone or "")
        assert veteran.township in TOWNSHIPS and veteran.village
        assert veteran.category in VETERAN_CATEGORIES
        if veteran.category in ("烈属", "军属"):
            assert veteran.discharge_date is None
        else:
            # Enlisted at 18 or later, served at least two years, left before today.
            assert veteran.discharge_date is not None
            assert veteran.discharge_date.year >= birth.year + 20
            assert veteran.discharge_date <= today


def test_veteran_categories_are_mostly_discharged_soldiers_with_every_category_present(
    session_factory, seeded
):
    with session_factory() as session:
        categories = Counter(session.scalars(select(Veteran.category)))
        townships = set(session.scalars(select(Veteran.township)))
    assert set(categories) == set(VETERAN_CATEGORIES)
    assert categories["退役士兵"] > 150
    assert townships == set(TOWNSHIPS)


def test_every_township_has_a_station_near_the_county_seat(session_factory, seeded):
    with session_factory() as session:
        stations = session.scalars(select(ServiceStation)).all()
    by_level = Counter(s.level for s in stations)
    assert by_level == {"county": 1, "township": 9, "village": 21}
    county = next(s for s in stations if s.level == "county")
    assert county.name == "柘荣县退役军人服务中心" and county.township == "双城镇"
    assert {s.township for s in stations if s.level == "township"} == set(TOWNSHIPS)
    assert {s.township for s in stations if s.level == "village"} == set(TOWNSHIPS)
    for station in stations:
        assert re.fullmatch(r"0593-\d{7}", station.phone or "")
        assert station.hours and "8:" in station.hours
        assert "示例数据" in station.address
        assert station.latitude is not None and station.longitude is not None
        assert _km(*COUNTY_SEAT, station.latitude, station.longitude) < 16
        if station.level == "village":
            assert "示例" in station.name and station.village
    assert len({s.name for s in stations}) == len(stations)


def test_every_specialty_has_at_least_two_demo_counselors(session_factory, seeded):
    with session_factory() as session:
        counselors = session.scalars(select(Counselor)).all()
    covered: Counter[str] = Counter()
    for counselor in counselors:
        assert counselor.is_demo and counselor.active
        assert 1 <= len(counselor.specialties) <= 3
        assert set(counselor.specialties) <= set(COUNSELOR_SPECIALTIES)
        assert "示例数据" in (counselor.bio or "")
        covered.update(counselor.specialties)
    assert set(covered) == set(COUNSELOR_SPECIALTIES)
    assert min(covered.values()) >= 2


def test_slots_are_future_workday_office_hours_and_never_double_booked(session_factory):
    # Seeded at the real current time: whatever day the test runs, every slot lies ahead.
    before = utcnow()
    with session_factory.begin() as session:
        seed_demo_data(session)
    with session_factory() as session:
        slots = session.scalars(select(CounselingSlot)).all()
        counselor_ids = set(session.scalars(select(Counselor.id)))
    assert slots
    per_counselor = defaultdict(list)
    per_room: dict[tuple[str | None, dt.datetime], int] = {}
    for slot in slots:
        assert slot.starts_at > before
        assert slot.starts_at < before + dt.timedelta(days=15)
        assert slot.ends_at - slot.starts_at == dt.timedelta(hours=1)
        local_start, local_end = to_local(slot.starts_at), to_local(slot.ends_at)
        assert local_start.weekday() < 5
        morning = dt.time(8) <= local_start.time() and local_end.time() <= dt.time(12)
        afternoon = dt.time(14, 30) <= local_start.time() and local_end.time() <= dt.time(17, 30)
        assert morning or afternoon, local_start
        assert slot.location and ("工作室" in slot.location or "室" in slot.location or "站" in slot.location)
        per_counselor[slot.counselor_id].append(slot)
        key = (slot.location, slot.starts_at)
        assert key not in per_room, f"two counselors in {slot.location} at {local_start}"
        per_room[key] = slot.counselor_id
    assert set(per_counselor) == counselor_ids
    for own in per_counselor.values():
        own.sort(key=lambda s: s.starts_at)
        for earlier, later in zip(own, own[1:], strict=False):
            assert earlier.ends_at <= later.starts_at


def test_slot_days_skip_weekends_and_national_day():
    days = slot_days(dt.date(2026, 9, 28), 14)  # a Monday; National Day week follows
    assert all(day.weekday() < 5 for day in days)
    assert not any(day.month == 10 and day.day <= 7 for day in days)
    assert days[0] == dt.date(2026, 9, 29) and days[-1] == dt.date(2026, 10, 12)


def test_jobs_are_open_current_realistic_and_marked_demo(session_factory, seeded):
    today = to_local(ORDINARY_MONDAY).date()
    with session_factory() as session:
        jobs = session.scalars(select(JobPosting)).all()
    assert {job.category for job in jobs} == set(JOB_CATEGORIES)
    assert len({job.township for job in jobs}) >= 8
    for job in jobs:
        assert job.status == JobStatus.OPEN and job.is_demo
        assert job.valid_until is not None and job.valid_until > today
        assert job.salary_min is not None and job.salary_max is not None
        assert 3000 <= job.salary_min <= job.salary_max <= 8000
        assert "示例" in job.employer and "示例数据" in (job.contact or "")
        assert re.search(r"0593-\d{7}", job.contact or "")
        assert job.township in TOWNSHIPS and job.requirements and job.address
        assert job.latitude is not None and job.longitude is not None
        assert _km(*COUNTY_SEAT, job.latitude, job.longitude) < 16
        assert job.published_at is not None and job.published_at <= ORDINARY_MONDAY


def test_every_merchant_category_has_merchants_with_offers(session_factory, seeded):
    today = to_local(ORDINARY_MONDAY).date()
    with session_factory() as session:
        merchants = session.scalars(select(Merchant)).all()
        offers = {m.id: m.offers for m in merchants}
    assert Counter(m.category for m in merchants).keys() == MERCHANT_CATEGORIES.keys()
    for merchant in merchants:
        assert "示例" in merchant.name and merchant.active
        assert merchant.township in TOWNSHIPS
        assert offers[merchant.id]
        for offer in offers[merchant.id]:
            assert offer.description
            assert offer.valid_until is None or offer.valid_until > today
    all_offers = [o.description for group in offers.values() for o in group]
    assert any("九折" in text for text in all_offers)
    assert any("现役军人家属" in text and "免" in text for text in all_offers)


REQUIRED_POLICIES = (
    "dingqi_buzhu", "yiwubing_youdaijin", "daxuesheng_jiangli", "youfu_yiliao", "kunnan_bangfu",
    "loan_yongjundai", "junchuangyuan", "return_registration", "certificate_eligibility",
    "certificate_materials", "fuxu_jin", "canzhan_butie",
)  # fmt: skip
# The canonical benefit_topic values of the NLU synonyms: each must find a policy by keyword.
BENEFIT_TOPICS = (
    "定期补助金",
    "义务兵优待金",
    "大学生奖励金",
    "医疗报销",
    "困难帮扶",
    "拥军贷",
    "抚恤金",
    "参战补贴",
)


def test_policies_answer_every_named_benefit_shortly(session_factory, seeded):
    with session_factory() as session:
        policies = {p.slug: p for p in session.scalars(select(BenefitPolicy))}
    assert set(REQUIRED_POLICIES) <= set(policies)
    for policy in policies.values():
        assert policy.title and policy.question and policy.source
        assert isinstance(policy.keywords, list) and policy.keywords
        assert len(policy.answer) <= 300, policy.slug
    for slug in ("dingqi_buzhu", "yiwubing_youdaijin", "daxuesheng_jiangli", "fuxu_jin", "canzhan_butie"):
        assert "核定为准" in policies[slug].answer, slug
    for topic in BENEFIT_TOPICS:
        assert any(topic in p.keywords for p in policies.values()), topic
    checklist = policies["return_registration"].answer
    for step in ("30天", "县退役军人事务局", "落户", "身份证", "社保", "医保", "档案"):
        assert step in checklist, step


def test_flask_seed_command_seeds_once_then_skips(app, runner, session_factory):
    # The `flask` executable pushes the app context before running a command; the test runner does not.
    with app.app_context():
        first = runner.invoke(args=["seed"])
        assert first.exit_code == 0, first.output
        assert "退役军人300人" in first.output
        second = runner.invoke(args=["seed"])
        assert second.exit_code == 0, second.output
        assert "已跳过" in second.output
        forced = runner.invoke(args=["seed", "--force"])
        assert forced.exit_code == 0, forced.output
        assert "没有新增" in forced.output
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Veteran)) == 300
