"""Legal-aid cases for the 老战友 workroom: create, assign to the right counselor, answer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from bureau import idcard
from bureau.models import AuditLog, CaseStatus, Counselor, LegalCase, WechatUser
from bureau.notifications import notify_user
from bureau.timeutil import utcnow

LEGAL_TOPICS: tuple[str, ...] = (
    "劳动纠纷",
    "欠薪",
    "工伤",
    "婚姻家庭",
    "土地纠纷",
    "合同纠纷",
    "交通事故",
    "其他",
)
# Which counselor specialty handles a topic, best first: quarrels between neighbours or in a family
# are mediated before they are litigated.
TOPIC_SPECIALTIES: dict[str, tuple[str, ...]] = {
    "婚姻家庭": ("矛盾调解", "法律援助"),
    "土地纠纷": ("矛盾调解", "法律援助"),
}
DEFAULT_SPECIALTIES: tuple[str, ...] = ("法律援助", "权益维护")
OPEN_STATUSES = (CaseStatus.OPEN, CaseStatus.ASSIGNED)
MIN_DESCRIPTION = 4
MAX_DESCRIPTION = 1000
# Within the 48-hour window a customer-service message reaches the user; after it, only a phone call.
SERVICE_WINDOW = dt.timedelta(hours=48)


class CaseError(Exception):
    """A request that cannot be done; `reason` is a short Chinese explanation."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class AnswerResult:
    """What happened to a staff answer: sent as a message, or a phone call is needed."""

    delivered: bool
    needs_phone_call: bool


def normalize_topic(topic: str | None) -> str:
    """A canonical legal topic; anything unknown is "其他"."""
    return topic if topic in LEGAL_TOPICS else "其他"


def check_description(text: str | None) -> str:
    """The cleaned description, or raise CaseError saying what is wrong."""
    cleaned = " ".join((text or "").split())
    if len(cleaned) < MIN_DESCRIPTION:
        raise CaseError("请用一两句话说说是什么事，比如“工地老板欠我三个月工资”。", "too_short")
    if len(cleaned) > MAX_DESCRIPTION:
        raise CaseError(
            f"内容有点长，请简单说一下（{MAX_DESCRIPTION}字以内），细节老战友会电话里问您。", "too_long"
        )
    return idcard.redact(cleaned)


def open_case_load(session: Session) -> dict[int, int]:
    """Open cases per counselor."""
    rows = session.execute(
        select(LegalCase.counselor_id, func.count(LegalCase.id))
        .where(LegalCase.status.in_(OPEN_STATUSES), LegalCase.counselor_id.is_not(None))
        .group_by(LegalCase.counselor_id)
    ).all()
    return {counselor_id: count for counselor_id, count in rows if counselor_id is not None}


def pick_counselor(session: Session, topic: str) -> Counselor | None:
    """The active counselor with the matching specialty and the fewest open cases (lowest id on ties)."""
    counselors = session.scalars(
        select(Counselor).where(Counselor.active.is_(True)).order_by(Counselor.id)
    ).all()
    load = open_case_load(session)
    for specialty in TOPIC_SPECIALTIES.get(topic, DEFAULT_SPECIALTIES):
        matching = [c for c in counselors if specialty in (c.specialties or [])]
        if matching:
            return min(matching, key=lambda c: (load.get(c.id, 0), c.id))
    return None


def create_case(
    session: Session,
    openid: str,
    topic: str | None,
    description: str,
    phone: str | None = None,
    now: dt.datetime | None = None,
) -> LegalCase:
    """Register a legal-aid request and assign it; a repeat of the same open request returns it."""
    now = now or utcnow()
    topic = normalize_topic(topic)
    cleaned = check_description(description)
    existing = session.scalars(
        select(LegalCase)
        .options(joinedload(LegalCase.counselor))
        .where(
            LegalCase.openid == openid,
            LegalCase.status.in_(OPEN_STATUSES),
            LegalCase.topic == topic,
            LegalCase.description == cleaned,
        )
    ).first()
    if existing is not None:
        return existing
    user = session.get(WechatUser, openid)
    veteran = user.veteran if user else None
    counselor = pick_counselor(session, topic)
    case = LegalCase(
        openid=openid,
        veteran_id=veteran.id if veteran else None,
        topic=topic,
        description=cleaned,
        contact_phone=phone or (veteran.phone if veteran else None),
        counselor_id=counselor.id if counselor else None,
        status=CaseStatus.ASSIGNED if counselor else CaseStatus.OPEN,
        created_at=now,
        updated_at=now,
    )
    session.add(case)
    session.flush()
    case.counselor = counselor
    return case


def known_phone(session: Session, openid: str) -> str | None:
    """A contact phone the bureau already has for this user (bound veteran's, or a recent case's)."""
    user = session.get(WechatUser, openid)
    if user is not None and user.veteran is not None and user.veteran.phone:
        return user.veteran.phone
    return session.scalars(
        select(LegalCase.contact_phone)
        .where(LegalCase.openid == openid, LegalCase.contact_phone.is_not(None))
        .order_by(LegalCase.created_at.desc(), LegalCase.id.desc())
        .limit(1)
    ).first()


def my_cases(session: Session, openid: str) -> Sequence[LegalCase]:
    """The user's own cases, newest first."""
    return session.scalars(
        select(LegalCase)
        .options(joinedload(LegalCase.counselor))
        .where(LegalCase.openid == openid)
        .order_by(LegalCase.created_at.desc(), LegalCase.id.desc())
    ).all()


def next_step_text(case: LegalCase) -> str:
    """What the user is told after the case is registered."""
    number = f"编号 F{case.id:05d}"
    phone = f"（{case.contact_phone}）" if case.contact_phone else ""
    if case.counselor is not None:
        return (
            f"已为您登记法律援助：{case.topic}，{number}。\n"
            f"老战友工作室的{case.counselor.name}同志会在2个工作日内给您打电话{phone}，请留意接听。"
        )
    return (
        f"已为您登记法律援助：{case.topic}，{number}。\n"
        f"老战友工作室会在2个工作日内安排人给您打电话{phone}，请留意接听。"
    )


def in_service_window(session: Session, openid: str | None, now: dt.datetime) -> bool:
    """True when a customer-service message can still reach the user (48 hours after their last message)."""
    if not openid:
        return False
    user = session.get(WechatUser, openid)
    return bool(user and user.last_interaction_at and user.last_interaction_at >= now - SERVICE_WINDOW)


def answer_case(
    session: Session, case_id: int, text: str, staff_username: str, now: dt.datetime | None = None
) -> AnswerResult:
    """Record a staff answer to a legal case and send it to the user when the 48-hour window allows."""
    now = now or utcnow()
    answer = (text or "").strip()
    if not answer:
        raise CaseError("回复内容不能为空。", "empty")
    case = session.get(LegalCase, case_id)
    if case is None:
        raise CaseError("没有这个案件。", "not_found")
    if case.status == CaseStatus.CLOSED:
        raise CaseError("这个案件已经结案了。", "closed")
    before = {"status": case.status, "answer": case.answer}
    case.answer = answer
    case.status = CaseStatus.ANSWERED
    case.updated_at = now
    delivered = in_service_window(session, case.openid, now)
    if delivered and case.openid:
        notify_user(
            session,
            case.openid,
            "case_answer",
            f"【法律援助回复 F{case.id:05d}】{answer}",
            template_fields={"case": f"F{case.id:05d}", "topic": case.topic},
            created_by=staff_username,
        )
    session.add(
        AuditLog(
            actor=staff_username,
            action="answer",
            entity="legal_case",
            entity_id=str(case.id),
            before=before,
            after={"status": case.status, "answer": idcard.redact(answer), "delivered": delivered},
            at=now,
        )
    )
    session.flush()
    return AnswerResult(delivered=delivered, needs_phone_call=not delivered)
