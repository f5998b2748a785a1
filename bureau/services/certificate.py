"""The preferential-treatment certificate (优待证): eligibility, applications, status, staff changes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bureau import secrets_box
from bureau.models import (
    CertificateApplication,
    CertificateEvent,
    CertificateStatus,
    Veteran,
)
from bureau.notifications import notify_user
from bureau.services import benefits
from bureau.services.identity import bound_veteran, find_veteran_by_id_number
from bureau.timeutil import format_local, utcnow

ELIGIBILITY_SLUG = "certificate_eligibility"
MATERIALS_SLUG = "certificate_materials"

# Who may hold which certificate: veterans get the 退役军人优待证, families of martyrs the 遗属优待证;
# serving soldiers' families are not issued one by this bureau. Staff keep the details in the
# certificate_eligibility policy row, shown after this line.
CATEGORY_ELIGIBILITY: dict[str, tuple[bool, str]] = {
    "退役士兵": (True, "退役士兵可以申领《退役军人优待证》。"),
    "军队离退休干部": (True, "军队离退休干部可以申领《退役军人优待证》。"),
    "伤残军人": (True, "退役的伤残军人可以申领《退役军人优待证》，和残疾军人证一起使用。"),
    "优抚对象": (True, "优抚对象中已退役的，可以申领《退役军人优待证》；遗属可申领《烈士遗属优待证》等。"),
    "烈属": (True, "烈士遗属可以申领《烈士遗属优待证》。"),
    "军属": (False, "现役军人家属暂不在本局办理优待证，可凭军属身份享受当地拥军优属服务。"),
}


def may_apply(category: str | None) -> bool:
    """False for a category this bureau issues no certificate to (unknown categories go to staff)."""
    return CATEGORY_ELIGIBILITY.get(category or "", (True, ""))[0]


class InvalidTransition(ValueError):
    """A status change that CertificateStatus.TRANSITIONS does not allow."""


def eligibility_answer(session: Session, category: str | None) -> str:
    """What a person of `category` can get, followed by the bureau's current policy text."""
    parts = []
    if category in CATEGORY_ELIGIBILITY:
        parts.append(CATEGORY_ELIGIBILITY[category][1])
    policy = benefits.policy_by_slug(session, ELIGIBILITY_SLUG)
    if policy is not None:
        parts.append(policy.answer)
    return "\n".join(parts)


def materials_answer(session: Session) -> str | None:
    """The staff-maintained list of materials to bring, if there is one."""
    policy = benefits.policy_by_slug(session, MATERIALS_SLUG)
    return policy.answer if policy is not None else None


def open_application(session: Session, veteran_id: int) -> CertificateApplication | None:
    """The veteran's application still in progress (at most one, by the partial unique index)."""
    return session.scalars(
        select(CertificateApplication).where(
            CertificateApplication.veteran_id == veteran_id,
            CertificateApplication.status.in_(CertificateStatus.OPEN),
        )
    ).one_or_none()


@dataclass(frozen=True)
class ApplyResult:
    """created: a new application; existing: one is already open (returned instead)."""

    outcome: str
    application: CertificateApplication


def actor_for(openid: str) -> str:
    """How an applicant appears in the audit trail (a pseudonym, never the raw OpenID)."""
    return "wechat:" + secrets_box.openid_tag(openid)


def apply(
    session: Session,
    openid: str,
    veteran: Veteran,
    *,
    phone: str | None,
    township: str | None,
    category: str | None,
    by_family: bool = False,
    now: dt.datetime | None = None,
) -> ApplyResult:
    """File an application for `veteran`, or return the one already open.

    The check-then-insert runs in a savepoint: when two requests race, the partial unique index
    uq_certificate_open_per_veteran rejects the second and it reports the first.
    """
    now = now or utcnow()
    existing = open_application(session, veteran.id)
    if existing is not None:
        return ApplyResult("existing", existing)
    application = CertificateApplication(
        veteran_id=veteran.id,
        openid=openid,
        phone=phone,
        township=township,
        category=category or veteran.category,
        status=CertificateStatus.SUBMITTED,
        submitted_by_family=by_family,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(application)
            session.flush()
            session.add(
                CertificateEvent(
                    application_id=application.id,
                    from_status=None,
                    to_status=CertificateStatus.SUBMITTED,
                    note="家属代办" if by_family else None,
                    actor=actor_for(openid),
                    at=now,
                )
            )
            session.flush()
    except IntegrityError:
        existing = open_application(session, veteran.id)
        if existing is None:
            raise
        return ApplyResult("existing", existing)
    return ApplyResult("created", application)


def find_veteran_for_family(session: Session, name: str, id_number: str) -> Veteran | None:
    """The roster entry a family member describes: ID number and name must both match."""
    veteran = find_veteran_by_id_number(session, id_number)
    if veteran is None or veteran.name.strip() != name.strip():
        return None
    return veteran


def applications_of(session: Session, openid: str) -> list[CertificateApplication]:
    """Applications this user may see: those they filed and those of the veteran they are bound to."""
    veteran = bound_veteran(session, openid)
    condition = CertificateApplication.openid == openid
    if veteran is not None:
        condition = or_(condition, CertificateApplication.veteran_id == veteran.id)
    return list(
        session.scalars(
            select(CertificateApplication)
            .where(condition)
            .order_by(CertificateApplication.created_at.desc(), CertificateApplication.id.desc())
        )
    )


def timeline(application: CertificateApplication) -> list[tuple[str, str]]:
    """(status label, China-time date) for every step so far, oldest first."""
    return [
        (CertificateStatus.LABELS.get(event.to_status, event.to_status), format_local(event.at, False))
        for event in application.events
    ]


def status_text(application: CertificateApplication) -> str:
    """A few lines a user reads on a phone: the current status and the date of each step."""
    label = CertificateStatus.LABELS.get(application.status, application.status)
    lines = [f"优待证申请（编号{application.id}）：{label}"]
    lines += [f"· {step_date} {step}" for step, step_date in timeline(application)]
    if application.status == CertificateStatus.REJECTED and application.reject_reason:
        lines.append(f"原因：{application.reject_reason}")
    if application.status == CertificateStatus.READY:
        lines.append("请带身份证到乡镇退役军人服务站领取。")
    return "\n".join(lines)


def change_status(
    session: Session,
    application_id: int,
    to_status: str,
    actor: str,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> CertificateApplication:
    """Staff move an application to `to_status`; records the event and notifies the applicant.

    Raises LookupError for an unknown application and InvalidTransition for a move that
    CertificateStatus.TRANSITIONS forbids. The notification is delivered after commit.
    """
    now = now or utcnow()
    application = session.get(CertificateApplication, application_id, with_for_update=True)
    if application is None:
        raise LookupError(f"certificate application {application_id} not found")
    allowed = CertificateStatus.TRANSITIONS.get(application.status, ())
    if to_status not in allowed:
        raise InvalidTransition(
            f"cannot move application {application_id} from {application.status} to {to_status}"
        )
    from_status = application.status
    application.status = to_status
    application.updated_at = now
    if to_status == CertificateStatus.REJECTED:
        application.reject_reason = reason
    session.add(
        CertificateEvent(
            application_id=application.id,
            from_status=from_status,
            to_status=to_status,
            note=reason,
            actor=actor,
            at=now,
        )
    )
    session.flush()
    if application.openid:
        label = CertificateStatus.LABELS[to_status]
        text = f"您的优待证申请（编号{application.id}）有新进展：{label}。"
        if to_status == CertificateStatus.READY:
            text += "请带身份证到乡镇退役军人服务站领取。"
        elif to_status == CertificateStatus.REJECTED and reason:
            text += f"原因：{reason}。如有疑问可回复“人工”。"
        notify_user(
            session,
            application.openid,
            "certificate",
            text,
            {
                "first": "优待证申请进度",
                "keyword1": f"编号{application.id}",
                "keyword2": label,
                "keyword3": format_local(now, False),
                "remark": reason or "",
            },
            created_by=actor,
        )
    return application
