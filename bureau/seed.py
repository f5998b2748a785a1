"""Demo data of Zherong County (柘荣县) for `flask seed`: stations, counselors and their slots, jobs,
拥军优属联盟 merchants, benefit policies and a roster of synthetic veterans.

Everything is fictional and marked: `is_demo` where the table has it, otherwise 示例 in a name or
address. The random parts use fixed seeds so every database gets the same people and places; counseling
slots, job deadlines and offer end dates are computed from the time of seeding so a fresh demo always
has bookable slots and open jobs.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bureau import idcard, secrets_box
from bureau.models import (
    BenefitPolicy,
    CounselingSlot,
    Counselor,
    JobPosting,
    JobStatus,
    Merchant,
    MerchantOffer,
    ServiceStation,
    Veteran,
)
from bureau.timeutil import from_local, to_local, utcnow

DEMO_MARK = "（示例数据）"
REGION_CODE = "350926"  # 柘荣县
RANDOM_SEED = 350926
VETERAN_COUNT = 300
# Discharge dates are generated against a fixed date (then clamped to today) so the roster is the
# same whichever day it is seeded.
ROSTER_AS_OF = dt.date(2026, 9, 1)
PHONE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139",
    "150", "151", "152", "153", "155", "156", "158", "159",
    "180", "181", "185", "186", "187", "188", "189",
)  # fmt: skip
# Fixed-date public holidays: no counseling slots on these (lunar holidays move and are left to staff).
FIXED_HOLIDAYS = {(1, 1), (5, 1), (5, 2), (5, 3), *((10, day) for day in range(1, 8))}


@dataclass
class SeedResult:
    """How many rows of each kind one run added."""

    counts: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        c = self.counts
        if not sum(c.values()):
            return "示例数据都已在库中，没有新增 | demo data already present, nothing added"
        return (
            f"示例数据已载入：服务站{c['stations']}个、老战友{c['counselors']}位、咨询时段{c['slots']}个、"
            f"岗位{c['jobs']}个、拥军商家{c['merchants']}家（优惠{c['offers']}条）、政策问答{c['policies']}条、"
            f"退役军人{c['veterans']}人 | demo data loaded: {c['stations']} stations, {c['counselors']} counselors, "
            f"{c['slots']} slots, {c['jobs']} jobs, {c['merchants']} merchants / {c['offers']} offers, "
            f"{c['policies']} policies, {c['veterans']} veterans"
        )


def load_data(name: str) -> dict[str, Any]:
    """One JSON file of bureau/seed_data."""
    text = resources.files("bureau.seed_data").joinpath(name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def seed_demo_data(session: Session, force: bool = False, now: dt.datetime | None = None) -> str:
    """Load the demo data unless the database already has veterans or stations (or `force`).

    With `force`, rows that already exist (same station name, demo counselor name, job title and employer,
    merchant name, policy slug, veteran ID number, counselor and start time of a slot) are left as they
    are, so a forced run never duplicates and never overwrites staff edits; it does add fresh slots.
    Returns a one-line Chinese + English summary.
    """
    veterans = session.scalar(select(func.count()).select_from(Veteran)) or 0
    stations = session.scalar(select(func.count()).select_from(ServiceStation)) or 0
    if (veterans or stations) and not force:
        return (
            f"数据库里已有数据（退役军人{veterans}人、服务站{stations}个），已跳过，未重复载入示例数据；"
            f"确需载入请加 --force | skipped: the database already has {veterans} veterans and "
            f"{stations} stations (use --force to add the demo data anyway)"
        )
    now = now or utcnow()
    today = to_local(now).date()
    result = SeedResult()
    station_data = load_data("stations.json")
    _seed_stations(session, station_data, result)
    _seed_counselors(session, load_data("counselors.json"), today, result)
    centers = {row["township"]: (row["latitude"], row["longitude"]) for row in station_data["townships"]}
    _seed_jobs(session, load_data("jobs.json"), centers, now, result)
    _seed_merchants(session, load_data("merchants.json"), today, result)
    _seed_policies(session, load_data("policies.json"), result)
    _seed_veterans(session, load_data("people.json"), min(today, ROSTER_AS_OF), result)
    session.flush()
    return result.summary()


def _seed_stations(session: Session, data: dict[str, Any], result: SeedResult) -> None:
    existing = set(session.scalars(select(ServiceStation.name)))
    county = data["county"]
    rows = [
        ServiceStation(
            name=county["name"],
            level="county",
            township=county["township"],
            address=county["address"],
            phone=county["phone"],
            hours=data["default_hours"],
            latitude=county["latitude"],
            longitude=county["longitude"],
        )
    ]
    for row in data["townships"]:
        rows.append(
            ServiceStation(
                name=f"{row['township']}退役军人服务站",
                level="township",
                township=row["township"],
                address=row["address"],
                phone=row["phone"],
                hours=data["default_hours"],
                latitude=row["latitude"],
                longitude=row["longitude"],
            )
        )
    for row in data["villages"]:
        village = row["village"]
        office = "居委会" if village.endswith("社区") else "村委会"
        rows.append(
            ServiceStation(
                name=f"{row['township']}{village}退役军人服务站（示例）",
                level="village",
                township=row["township"],
                village=village,
                address=f"{row['township']}{village}{office}{DEMO_MARK}",
                phone=row["phone"],
                hours=data["village_hours"],
                latitude=row["latitude"],
                longitude=row["longitude"],
            )
        )
    new = [station for station in rows if station.name not in existing]
    session.add_all(new)
    result.counts["stations"] += len(new)


def slot_days(today: dt.date, days_ahead: int) -> list[dt.date]:
    """The workdays from tomorrow through `days_ahead` days on (China dates), fixed holidays excluded."""
    days = (today + dt.timedelta(days=offset) for offset in range(1, days_ahead + 1))
    return [day for day in days if day.weekday() < 5 and (day.month, day.day) not in FIXED_HOLIDAYS]


def _seed_counselors(session: Session, data: dict[str, Any], today: dt.date, result: SeedResult) -> None:
    # Only demo counselors are reused: a real counselor who shares a name must not get demo slots.
    existing = {c.name: c for c in session.scalars(select(Counselor).where(Counselor.is_demo.is_(True)))}
    days = slot_days(today, data["days_ahead"])
    length = dt.timedelta(minutes=data["slot_minutes"])
    planned: list[tuple[Counselor, dict[str, Any]]] = []
    for row in data["counselors"]:
        counselor = existing.get(row["name"])
        if counselor is None:
            counselor = Counselor(
                name=row["name"],
                phone=row["phone"],
                specialties=list(row["specialties"]),
                bio=row["bio"],
                township=row["township"],
                active=True,
                is_demo=True,
            )
            session.add(counselor)
            result.counts["counselors"] += 1
        planned.append((counselor, row))
    session.flush()  # counselor ids for the slots
    taken = set(
        session.execute(
            select(CounselingSlot.counselor_id, CounselingSlot.starts_at).where(
                CounselingSlot.counselor_id.in_([c.id for c, _ in planned])
            )
        ).tuples()
    )
    slots = []
    for counselor, row in planned:
        duty = {(weekday, half) for weekday, half in row["duty"]}
        for day in days:
            for half, starts in data["slot_starts"].items():
                if (day.weekday(), half) not in duty:
                    continue
                for start in starts:
                    local = dt.datetime.combine(day, dt.time.fromisoformat(start))
                    starts_at = from_local(local)
                    if (counselor.id, starts_at) in taken:
                        continue
                    slots.append(
                        CounselingSlot(
                            counselor_id=counselor.id,
                            starts_at=starts_at,
                            ends_at=starts_at + length,
                            location=row["location"],
                        )
                    )
    session.add_all(slots)
    result.counts["slots"] += len(slots)


def _seed_jobs(
    session: Session,
    data: dict[str, Any],
    centers: dict[str, tuple[float, float]],
    now: dt.datetime,
    result: SeedResult,
) -> None:
    rng = random.Random(f"{RANDOM_SEED}:jobs")
    existing = set(session.execute(select(JobPosting.employer, JobPosting.title)).tuples())
    today = to_local(now).date()
    jobs = []
    for row in data["jobs"]:
        # Draw for every row, even a skipped one, so positions do not depend on what already exists.
        lat, lon = centers[row["township"]]
        latitude = round(lat + rng.uniform(-0.012, 0.012), 5)
        longitude = round(lon + rng.uniform(-0.012, 0.012), 5)
        published = now - dt.timedelta(hours=rng.randint(6, 240))
        if (row["employer"], row["title"]) in existing:
            continue
        salary_min, salary_max = row["salary"]
        jobs.append(
            JobPosting(
                title=row["title"],
                employer=row["employer"],
                township=row["township"],
                category=row["category"],
                salary_min=salary_min,
                salary_max=salary_max,
                requirements=row["requirements"],
                description=row["description"],
                contact=row["contact"] + DEMO_MARK,  # the employer name already says 示例
                address=row["address"],
                latitude=latitude,
                longitude=longitude,
                valid_until=today + dt.timedelta(days=row["valid_days"]),
                status=JobStatus.OPEN,
                is_demo=True,
                created_at=published,
                published_at=published,
            )
        )
    session.add_all(jobs)
    result.counts["jobs"] += len(jobs)


def _seed_merchants(session: Session, data: dict[str, Any], today: dt.date, result: SeedResult) -> None:
    existing = set(session.scalars(select(Merchant.name)))
    for row in data["merchants"]:
        if row["name"] in existing:
            continue
        merchant = Merchant(
            name=row["name"],
            category=row["category"],
            township=row["township"],
            address=row["address"],
            phone=row["phone"],
            active=True,
        )
        for offer in row["offers"]:
            days = offer["valid_days"]
            merchant.offers.append(
                MerchantOffer(
                    description=offer["text"],
                    valid_until=None if days is None else today + dt.timedelta(days=days),
                )
            )
        session.add(merchant)
        result.counts["merchants"] += 1
        result.counts["offers"] += len(row["offers"])


def _seed_policies(session: Session, data: dict[str, Any], result: SeedResult) -> None:
    existing = set(session.scalars(select(BenefitPolicy.slug)))
    policies = [
        BenefitPolicy(
            slug=row["slug"],
            title=row["title"],
            keywords=list(row["keywords"]),
            question=row["question"],
            answer=row["answer"],
            source=row["source"],
        )
        for row in data["policies"]
        if row["slug"] not in existing
    ]
    session.add_all(policies)
    result.counts["policies"] += len(policies)


@dataclass(frozen=True)
class DemoPerson:
    """One synthetic veteran before encryption (also used by tests to know the clear numbers)."""

    name: str
    id_number: str
    phone: str
    township: str
    village: str
    category: str
    discharge_date: dt.date | None


def demo_people(data: dict[str, Any] | None = None, as_of: dt.date = ROSTER_AS_OF) -> list[DemoPerson]:
    """The synthetic roster: the same people every time (fixed seed)."""
    data = data or load_data("people.json")
    rng = random.Random(f"{RANDOM_SEED}:veterans")
    surnames, surname_weights = zip(*data["surnames"].items(), strict=True)
    townships, township_weights = zip(*data["township_weights"].items(), strict=True)
    categories, category_weights = zip(*data["category_weights"].items(), strict=True)
    used: set[str] = set()
    people: list[DemoPerson] = []
    while len(people) < VETERAN_COUNT:
        category = rng.choices(categories, category_weights)[0]
        birth_from, birth_to, male_share = _BIRTH_AND_SEX[category]
        birth = dt.date(rng.randint(birth_from, birth_to), rng.randint(1, 12), rng.randint(1, 28))
        male = rng.random() < male_share
        # The 17th digit is odd for men and even for women (GB 11643).
        number = idcard.make_number(REGION_CODE, birth, rng.randrange(0, 500) * 2 + (1 if male else 0))
        if number in used:
            continue
        used.add(number)
        era = data["given_names_born_before_1980" if birth.year < 1980 else "given_names_born_1980_on"]
        given = rng.choice(era["male" if male else "female"])
        township = rng.choices(townships, township_weights)[0]
        people.append(
            DemoPerson(
                name=rng.choices(surnames, surname_weights)[0] + given,
                id_number=number,
                phone=rng.choice(PHONE_PREFIXES) + f"{rng.randrange(10**8):08d}",
                township=township,
                village=rng.choice(data["villages"][township]),
                category=category,
                discharge_date=_discharge_date(rng, category, birth, as_of),
            )
        )
    return people


# category: (earliest birth year, latest birth year, share of men)
_BIRTH_AND_SEX: dict[str, tuple[int, int, float]] = {
    "退役士兵": (1950, 2004, 0.95),
    "优抚对象": (1950, 1972, 0.95),
    "伤残军人": (1950, 2000, 0.97),
    "烈属": (1950, 1985, 0.5),
    "军属": (1958, 2002, 0.45),
    "军队离退休干部": (1950, 1968, 0.92),
}


def _discharge_date(rng: random.Random, category: str, birth: dt.date, as_of: dt.date) -> dt.date | None:
    """When the person left the army: enlisted at 18-22, served 2-12 years (cadres 20-32); None for
    family members, who never served."""
    if category in ("烈属", "军属"):
        return None
    age = as_of.year - birth.year - 1  # whole years reached by as_of at the least
    enlist_age = rng.randint(18, max(18, min(22, age - 2)))
    if category == "军队离退休干部":
        years = rng.randint(20, 32)
    else:
        years = 2 if rng.random() < 0.6 else rng.randint(3, 12)
    years = max(2, min(years, age - enlist_age))
    # Soldiers leave in spring or autumn; a date after `as_of` moves back a year.
    day = dt.date(birth.year + enlist_age + years, rng.choice((3, 9)), rng.randint(1, 15))
    while day > as_of:
        day = day.replace(year=day.year - 1)
    return day


def _seed_veterans(session: Session, data: dict[str, Any], as_of: dt.date, result: SeedResult) -> None:
    existing = set(session.scalars(select(Veteran.id_number_hash)))
    veterans = []
    for person in demo_people(data, as_of):
        if secrets_box.lookup_hash(person.id_number) in existing:
            continue
        veteran = Veteran(
            name=person.name,
            phone=person.phone,
            township=person.township,
            village=person.village,
            category=person.category,
            discharge_date=person.discharge_date,
            is_demo=True,
        )
        veteran.set_id_number(person.id_number)
        veterans.append(veteran)
    session.add_all(veterans)
    result.counts["veterans"] += len(veterans)
