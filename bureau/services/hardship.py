"""Hardship aid (困难帮扶) applications, reviewed by staff."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bureau.models import CaseStatus, HardshipApplication, Veteran
from bureau.timeutil import utcnow

MIN_REASON_CHARS = 4
MAX_REASON_CHARS = 1000
OPEN_STATUSES = (CaseStatus.OPEN, CaseStatus.ASSIGNED)


class InvalidReason(ValueError):
    """The description is too short or too long to act on; `reason` says so in Chinese."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def validate_reason(text: str | None) -> str:
    """A description staff can act on: at least a few characters, at most 1000."""
    cleaned = " ".join((text or "").split())
    if len(cleaned) < MIN_REASON_CHARS:
        raise InvalidReason("请多说几句，比如家里遇到了什么困难、需要哪方面的帮助")
    if len(cleaned) > MAX_REASON_CHARS:
        raise InvalidReason(f"内容有点长，请控制在{MAX_REASON_CHARS}字以内，细节可以等工作人员联系时再说")
    return cleaned


@dataclass(frozen=True)
class HardshipResult:
    """created: a new application; existing: one of this user's is still being handled."""

    outcome: str
    application: HardshipApplication


def open_application_of(session: Session, openid: str) -> HardshipApplication | None:
    """This user's hardship application still being handled, if any."""
    return session.scalars(
        select(HardshipApplication)
        .where(HardshipApplication.openid == openid, HardshipApplication.status.in_(OPEN_STATUSES))
        .order_by(HardshipApplication.id.desc())
        .limit(1)
    ).one_or_none()


def apply(
    session: Session,
    openid: str,
    *,
    veteran: Veteran | None,
    applicant_name: str,
    phone: str,
    township: str | None,
    reason: str,
    now: dt.datetime | None = None,
) -> HardshipResult:
    """Record an application for staff review (one open application per user at a time)."""
    existing = open_application_of(session, openid)
    if existing is not None:
        return HardshipResult("existing", existing)
    now = now or utcnow()
    application = HardshipApplication(
        openid=openid,
        veteran_id=veteran.id if veteran is not None else None,
        applicant_name=applicant_name,
        phone=phone,
        township=township,
        reason=validate_reason(reason),
        status=CaseStatus.OPEN,
        created_at=now,
        updated_at=now,
    )
    session.add(application)
    session.flush()
    return HardshipResult("created", application)
