"""Rows the identity/jobs/certificate/info tests create for themselves (never the seed data)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from bureau import idcard
from bureau.models import (
    BenefitPolicy,
    JobPosting,
    JobStatus,
    Merchant,
    MerchantOffer,
    ServiceStation,
    Veteran,
    WechatUser,
)

ID_ZHANG = idcard.make_number("350926", dt.date(1975, 3, 8), 123)
ID_LI = idcard.make_number("350926", dt.date(1980, 7, 1), 456)


def make_veteran(
    session: Session,
    name: str = "张建国",
    id_number: str = ID_ZHANG,
    phone: str | None = "13905931234",
    township: str | None = "双城镇",
    category: str = "退役士兵",
) -> Veteran:
    veteran = Veteran(name=name, phone=phone, township=township, category=category)
    veteran.set_id_number(id_number)
    session.add(veteran)
    session.flush()
    return veteran


def make_user(session: Session, openid: str, veteran: Veteran | None = None, **kwargs: Any) -> WechatUser:
    user = WechatUser(openid=openid, veteran_id=veteran.id if veteran else None, bind_failures=0, **kwargs)
    session.add(user)
    session.flush()
    return user


def make_job(session: Session, title: str = "物业保安", **kwargs: Any) -> JobPosting:
    values: dict[str, Any] = {
        "employer": "柘荣县某物业公司",
        "township": "双城镇",
        "category": "保安",
        "salary_min": 3000,
        "salary_max": 4000,
        "status": JobStatus.OPEN,
        "valid_until": dt.date(2099, 12, 31),
        "published_at": dt.datetime(2030, 1, 1, 8, 0),
        "contact": "林经理 13800000000",
    }
    values.update(kwargs)
    job = JobPosting(title=title, **values)
    session.add(job)
    session.flush()
    return job


def make_policy(
    session: Session, slug: str, title: str, answer: str, keywords: list[str] | None = None
) -> BenefitPolicy:
    policy = BenefitPolicy(
        slug=slug, title=title, answer=answer, question=title, keywords=keywords or [title]
    )
    session.add(policy)
    session.flush()
    return policy


def make_station(
    session: Session, name: str, level: str, township: str | None, lat: float | None, lng: float | None
) -> ServiceStation:
    station = ServiceStation(
        name=name,
        level=level,
        township=township,
        address=f"{township or '柘荣县'}某路1号",
        phone="0593-8350000",
        hours="周一至周五 8:00-17:30",
        latitude=lat,
        longitude=lng,
    )
    session.add(station)
    session.flush()
    return station


def make_merchant(
    session: Session,
    name: str,
    category: str,
    township: str | None,
    offers: list[tuple[str, dt.date | None]],
    active: bool = True,
) -> Merchant:
    merchant = Merchant(
        name=name,
        category=category,
        township=township,
        address="某街1号",
        phone="0593-8000000",
        active=active,
    )
    session.add(merchant)
    session.flush()
    for description, valid_until in offers:
        session.add(MerchantOffer(merchant_id=merchant.id, description=description, valid_until=valid_until))
    session.flush()
    return merchant
