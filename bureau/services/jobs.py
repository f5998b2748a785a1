"""Job postings for veterans: search, details, nearby jobs, and job-notice subscriptions."""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import re
from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from bureau.geo import distance_km, valid_point
from bureau.models import TOWNSHIPS, JobPosting, JobStatus, JobSubscription, WechatUser
from bureau.services.identity import get_or_create_user
from bureau.timeutil import local_today

_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


def is_open(today: dt.date) -> ColumnElement[bool]:
    """Open postings: published as open and not past their last day (no last day = until closed)."""
    return and_(
        JobPosting.status == JobStatus.OPEN,
        or_(JobPosting.valid_until.is_(None), JobPosting.valid_until >= today),
    )


def _newest_first() -> tuple[ColumnElement, ...]:
    return (func.coalesce(JobPosting.published_at, JobPosting.created_at).desc(), JobPosting.id.desc())


def search_jobs(
    session: Session,
    *,
    category: str | None = None,
    township: str | None = None,
    min_salary: int | None = None,
    text: str | None = None,
    limit: int = 5,
    near: tuple[float, float] | None = None,
    today: dt.date | None = None,
) -> list[JobPosting]:
    """Open postings matching every given filter, newest first.

    `min_salary` keeps jobs whose top of range reaches it; `text` matches title, employer or
    description. With `near` (lat, lng), postings of the same day are ordered nearest first.
    """
    today = today or local_today()
    query = select(JobPosting).where(is_open(today))
    if category:
        # A category the list does not know ("开叉车") may still be a word of a title.
        query = query.where(or_(JobPosting.category == category, JobPosting.title.contains(category)))
    if township:
        query = query.where(JobPosting.township == township)
    if min_salary:
        query = query.where(func.coalesce(JobPosting.salary_max, JobPosting.salary_min) >= min_salary)
    if text and text.strip():
        word = text.strip()
        query = query.where(
            or_(
                JobPosting.title.contains(word),
                JobPosting.employer.contains(word),
                JobPosting.description.contains(word),
                JobPosting.requirements.contains(word),
            )
        )
    if near is None or not valid_point(*near):
        return list(session.scalars(query.order_by(*_newest_first()).limit(limit)))
    # Rank in Python: a county has hundreds of open postings at most.
    candidates = list(session.scalars(query.order_by(*_newest_first()).limit(200)))
    lat, lng = near

    def key(job: JobPosting) -> tuple[int, float]:
        published = (job.published_at or job.created_at).date()
        km = distance_km(lat, lng, job.latitude, job.longitude)
        distance = km if km is not None else float("inf")
        return (-published.toordinal(), distance)

    return sorted(candidates, key=key)[:limit]


def jobs_near(
    session: Session, lat: float, lng: float, limit: int = 3, today: dt.date | None = None
) -> list[tuple[JobPosting, float]]:
    """The open postings nearest to a point, with their distance in km."""
    if not valid_point(lat, lng):
        return []
    today = today or local_today()
    # Rank on the coordinates alone, then load only the nearest postings: building an ORM object for
    # every open posting cost far more than the query (benchmarks/growth/REPORT.md).
    points = session.execute(
        select(JobPosting.id, JobPosting.latitude, JobPosting.longitude).where(
            is_open(today), JobPosting.latitude.is_not(None), JobPosting.longitude.is_not(None)
        )
    ).tuples()
    nearest = heapq.nsmallest(
        limit,
        (
            (km, job_id)
            for job_id, job_lat, job_lng in points
            if (km := distance_km(lat, lng, job_lat, job_lng)) is not None
        ),
        key=lambda pair: (pair[0], -pair[1]),
    )
    if not nearest:
        return []
    by_id = {
        job.id: job
        for job in session.scalars(
            select(JobPosting).where(JobPosting.id.in_([job_id for _, job_id in nearest]))
        )
    }
    return [(by_id[job_id], km) for km, job_id in nearest if job_id in by_id]


def open_job(session: Session, job_id: int, today: dt.date | None = None) -> JobPosting | None:
    """The posting if it is still open; None for unknown, draft, closed or expired postings."""
    today = today or local_today()
    return session.scalars(select(JobPosting).where(JobPosting.id == job_id, is_open(today))).one_or_none()


def parse_min_salary(text: str | None) -> int | None:
    """The monthly salary a user asks for: "3000以上", "4千", "5k" → 3000, 4000, 5000."""
    if not text:
        return None
    match = re.search(r"(\d{3,5})\s*(?:元|块)?\s*(?:以上|起|多|左右|上下)?", text)
    if match and ("元" in text or "块" in text or "以上" in text or "工资" in text or "月薪" in text):
        return int(match.group(1))
    match = re.search(r"(\d{1,2}(?:\.\d)?)\s*[kK千]", text)
    if match:
        return int(float(match.group(1)) * 1000)
    match = re.search(r"([一二两三四五六七八九])\s*千", text)
    if match:
        return _CN_DIGITS[match.group(1)] * 1000
    match = re.search(r"(?:工资|月薪|薪水)\D{0,4}(\d{3,5})", text)
    if match:
        return int(match.group(1))
    return None


_FILLER = re.compile(
    r"有没有|有没|有啥|有什么|什么|哪些|我想|我要|想要|想找|帮我|给我|找个|找份|找一份|找|招聘|招人|招不招|招|"
    r"工作|岗位|活儿|活干|活|上班|事做|事情|的|吗|呢|吧|啊|了|也行|都行|附近|这边|那边|我|请问|一下|最近|现在|"
    r"今天|这里|有|"
    r"工资|月薪|薪水|以上|以下|左右|元|块|\d+|[一二两三四五六七八九十]千|[kK]"
)


def free_text_keyword(text: str | None, known: tuple[str, ...] = ()) -> str | None:
    """The word left in a job question once filler, salary and known entity values are removed.

    "有没有开叉车的活" → "开叉车"; None when nothing specific is left.
    """
    if not text:
        return None
    rest = re.sub(r"[\s，。,.!！?？、~～]", "", text)
    for value in known:
        if value:
            rest = rest.replace(value, "")
    for township in TOWNSHIPS:
        rest = rest.replace(township, "").replace(township[:-1], "")
    rest = _FILLER.sub("", rest)
    # "开叉车" / "做会计": the verb is not in a posting's title.
    if len(rest) >= 3 and rest[0] in "开做当干会学跑看":
        rest = rest[1:]
    return rest if 2 <= len(rest) <= 10 else None


def salary_text(job: JobPosting) -> str:
    """3000-4500元/月, 3000元起, 面议."""
    if job.salary_min and job.salary_max:
        return f"{job.salary_min}-{job.salary_max}元/月"
    if job.salary_min:
        return f"{job.salary_min}元/月起"
    if job.salary_max:
        return f"最高{job.salary_max}元/月"
    return "工资面议"


def subscribe(
    session: Session, openid: str, categories: Iterable[str] | None, townships: Iterable[str] | None
) -> list[JobSubscription]:
    """Replace the user's job-notice preferences; an empty list means "any" (a NULL column)."""
    user = get_or_create_user(session, openid)
    cats: Sequence[str | None] = sorted(set(categories or [])) or [None]
    towns: Sequence[str | None] = sorted(set(townships or [])) or [None]
    session.execute(delete(JobSubscription).where(JobSubscription.openid == user.openid))
    rows = [
        JobSubscription(openid=user.openid, category=category, township=township)
        for category, township in itertools.product(cats, towns)
    ]
    session.add_all(rows)
    session.flush()
    return rows


def unsubscribe(session: Session, openid: str) -> int:
    """Stop job notices for this user; returns how many preference rows were removed."""
    result = session.execute(delete(JobSubscription).where(JobSubscription.openid == openid))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def subscriptions_of(session: Session, openid: str) -> list[JobSubscription]:
    """The user's current preference rows."""
    return list(
        session.scalars(
            select(JobSubscription).where(JobSubscription.openid == openid).order_by(JobSubscription.id)
        )
    )


def matching_subscribers(session: Session, job: JobPosting) -> Select[tuple[str]]:
    """A select of the distinct OpenIDs to notify about `job` (followers only; NULL = any)."""
    del session  # the broadcast runs the select in its own unit of work, in batches
    category_ok = or_(JobSubscription.category.is_(None), JobSubscription.category == job.category)
    township_ok = or_(JobSubscription.township.is_(None), JobSubscription.township == job.township)
    return (
        select(JobSubscription.openid)
        .join(WechatUser, WechatUser.openid == JobSubscription.openid)
        .where(WechatUser.subscribed.is_(True), category_ok, township_ok)
        .distinct()
        .order_by(JobSubscription.openid)
    )
