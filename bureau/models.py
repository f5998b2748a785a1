"""The bureau's tables (SQLAlchemy 2 typed declarative models).

Times are naive UTC (see `bureau.timeutil`). Status columns are short strings whose allowed values
live in the `*Status` classes below, so the schema stays portable between SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bureau import idcard, secrets_box
from bureau.db import Base
from bureau.timeutil import utcnow

TOWNSHIPS: tuple[str, ...] = (
    "双城镇",
    "富溪镇",
    "城郊乡",
    "乍洋乡",
    "东源乡",
    "黄柏乡",
    "宅中乡",
    "楮坪乡",
    "英山乡",
)
VETERAN_CATEGORIES: tuple[str, ...] = (
    "退役士兵",
    "优抚对象",
    "伤残军人",
    "烈属",
    "军属",
    "军队离退休干部",
)
COUNSELOR_SPECIALTIES: tuple[str, ...] = ("权益维护", "矛盾调解", "法律援助", "谈心", "心理疏导")
MERCHANT_CATEGORIES: dict[str, str] = {
    "食": "餐饮",
    "住": "住宿",
    "行": "出行",
    "购": "购物",
    "游": "旅游",
    "娱": "娱乐",
    "康": "医疗康养",
    "联": "通信",
    "商": "生活服务",
    "贷": "金融",
    "庆": "婚庆喜宴",
}


class CertificateStatus:
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    APPROVED = "approved"
    READY = "ready_for_pickup"
    REJECTED = "rejected"
    OPEN = (SUBMITTED, UNDER_REVIEW, APPROVED)
    LABELS = {
        SUBMITTED: "已提交",
        UNDER_REVIEW: "审核中",
        APPROVED: "已通过",
        READY: "可领取",
        REJECTED: "未通过",
    }
    TRANSITIONS = {
        SUBMITTED: (UNDER_REVIEW, REJECTED),
        UNDER_REVIEW: (APPROVED, REJECTED),
        APPROVED: (READY,),
        READY: (),
        REJECTED: (),
    }


class JobStatus:
    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"


class BookingStatus:
    BOOKED = "booked"
    CANCELLED = "cancelled"
    DONE = "done"


class CaseStatus:
    OPEN = "open"
    ASSIGNED = "assigned"
    ANSWERED = "answered"
    CLOSED = "closed"


class CampaignStatus:
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"


class DeliveryStatus:
    PENDING = "pending"
    SENDING = "sending"  # claimed by a worker; outcome unknown until recorded
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class Veteran(Base):
    """A person on the bureau's roster. The ID-card number is stored encrypted, found by keyed hash."""

    __tablename__ = "veterans"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), index=True)
    id_number_encrypted: Mapped[str] = mapped_column(Text)
    id_number_hash: Mapped[str] = mapped_column(String(64), unique=True)
    id_number_masked: Mapped[str] = mapped_column(String(18), index=True)
    phone: Mapped[str | None] = mapped_column(String(20))
    township: Mapped[str | None] = mapped_column(String(20), index=True)
    village: Mapped[str | None] = mapped_column(String(40))
    category: Mapped[str] = mapped_column(String(20), default="退役士兵")
    discharge_date: Mapped[dt.date | None] = mapped_column(Date)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    def set_id_number(self, number: str) -> None:
        """Validate, encrypt and index an ID-card number (raises idcard.InvalidIdNumber)."""
        normalized = idcard.validate(number)
        self.id_number_encrypted = secrets_box.encrypt(normalized)
        self.id_number_hash = secrets_box.lookup_hash(normalized)
        self.id_number_masked = idcard.mask(normalized)

    def reveal_id_number(self) -> str:
        """The clear ID-card number; callers must audit who asked for it."""
        return secrets_box.decrypt(self.id_number_encrypted)

    def __repr__(self) -> str:  # never the clear number, even in a debugger or a log
        return f"<Veteran {self.id} {self.name} {self.id_number_masked}>"


class WechatUser(Base):
    """A follower of the official account, known by OpenID."""

    __tablename__ = "wechat_users"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    veteran_id: Mapped[int | None] = mapped_column(ForeignKey("veterans.id", ondelete="SET NULL"), index=True)
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    subscribe_scene: Mapped[str | None] = mapped_column(String(64))
    last_interaction_at: Mapped[dt.datetime | None] = mapped_column(DateTime, index=True)
    last_latitude: Mapped[float | None] = mapped_column(Float)
    last_longitude: Mapped[float | None] = mapped_column(Float)
    last_location_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    bind_failures: Mapped[int] = mapped_column(Integer, default=0)
    bind_locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    unsubscribed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    veteran: Mapped[Veteran | None] = relationship()


class ServiceStation(Base):
    """The county center, township stations and village stations."""

    __tablename__ = "service_stations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    level: Mapped[str] = mapped_column(String(10))  # county / township / village
    township: Mapped[str | None] = mapped_column(String(20), index=True)
    village: Mapped[str | None] = mapped_column(String(40))
    address: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(30))
    hours: Mapped[str | None] = mapped_column(String(100))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)


class JobPosting(Base):
    __tablename__ = "job_postings"
    __table_args__ = (Index("ix_job_postings_open", "status", "valid_until"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    employer: Mapped[str] = mapped_column(String(100))
    township: Mapped[str | None] = mapped_column(String(20), index=True)
    category: Mapped[str] = mapped_column(String(20), index=True)
    salary_min: Mapped[int | None] = mapped_column(Integer)
    salary_max: Mapped[int | None] = mapped_column(Integer)
    requirements: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    contact: Mapped[str | None] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(200))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    valid_until: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default=JobStatus.DRAFT)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class JobSubscription(Base):
    """One preference row of a subscriber; NULL category or township means "any"."""

    __tablename__ = "job_subscriptions"
    __table_args__ = (
        UniqueConstraint("openid", "category", "township", name="uq_job_subscription"),
        Index("ix_job_subscriptions_match", "category", "township"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str] = mapped_column(ForeignKey("wechat_users.openid", ondelete="CASCADE"), index=True)
    category: Mapped[str | None] = mapped_column(String(20))
    township: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class CertificateApplication(Base):
    """An application for the preferential-treatment certificate (优待证)."""

    __tablename__ = "certificate_applications"
    __table_args__ = (
        # One open application per veteran, decided by the database even under races.
        Index(
            "uq_certificate_open_per_veteran",
            "veteran_id",
            unique=True,
            sqlite_where=text("status IN ('submitted', 'under_review', 'approved')"),
            postgresql_where=text("status IN ('submitted', 'under_review', 'approved')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    veteran_id: Mapped[int] = mapped_column(ForeignKey("veterans.id"), index=True)
    openid: Mapped[str | None] = mapped_column(String(64), index=True)
    phone: Mapped[str | None] = mapped_column(String(20))
    township: Mapped[str | None] = mapped_column(String(20), index=True)
    category: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=CertificateStatus.SUBMITTED, index=True)
    reject_reason: Mapped[str | None] = mapped_column(Text)
    submitted_by_family: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    veteran: Mapped[Veteran] = relationship()
    events: Mapped[list[CertificateEvent]] = relationship(
        back_populates="application", order_by="CertificateEvent.at, CertificateEvent.id"
    )


class CertificateEvent(Base):
    """The audit trail of an application: every status change, who made it and when."""

    __tablename__ = "certificate_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("certificate_applications.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    application: Mapped[CertificateApplication] = relationship(back_populates="events")


class Counselor(Base):
    """An "Old Comrade" (老战友) counselor."""

    __tablename__ = "counselors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    phone: Mapped[str | None] = mapped_column(String(20))
    specialties: Mapped[list[str]] = mapped_column(JSON, default=list)
    bio: Mapped[str | None] = mapped_column(Text)
    township: Mapped[str | None] = mapped_column(String(20))
    openid: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)


class CounselingSlot(Base):
    __tablename__ = "counseling_slots"
    __table_args__ = (UniqueConstraint("counselor_id", "starts_at", name="uq_slot_counselor_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    counselor_id: Mapped[int] = mapped_column(ForeignKey("counselors.id"), index=True)
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    ends_at: Mapped[dt.datetime] = mapped_column(DateTime)
    location: Mapped[str | None] = mapped_column(String(100))

    counselor: Mapped[Counselor] = relationship()


class Booking(Base):
    """A booked counseling slot. At most one live booking per slot: a partial unique index decides."""

    __tablename__ = "bookings"
    __table_args__ = (
        Index(
            "uq_booking_live_per_slot",
            "slot_id",
            unique=True,
            sqlite_where=text("status = 'booked'"),
            postgresql_where=text("status = 'booked'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("counseling_slots.id"), index=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    veteran_id: Mapped[int | None] = mapped_column(ForeignKey("veterans.id"))
    topic: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default=BookingStatus.BOOKED)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    slot: Mapped[CounselingSlot] = relationship()


class LegalCase(Base):
    """A legal-aid request for the 老战友 workroom."""

    __tablename__ = "legal_cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str | None] = mapped_column(String(64), index=True)
    veteran_id: Mapped[int | None] = mapped_column(ForeignKey("veterans.id"))
    topic: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text)
    contact_phone: Mapped[str | None] = mapped_column(String(20))
    counselor_id: Mapped[int | None] = mapped_column(ForeignKey("counselors.id"), index=True)
    status: Mapped[str] = mapped_column(String(10), default=CaseStatus.OPEN, index=True)
    answer: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    counselor: Mapped[Counselor | None] = relationship()


class HardshipApplication(Base):
    __tablename__ = "hardship_applications"

    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str | None] = mapped_column(String(64), index=True)
    veteran_id: Mapped[int | None] = mapped_column(ForeignKey("veterans.id"))
    applicant_name: Mapped[str | None] = mapped_column(String(50))
    phone: Mapped[str | None] = mapped_column(String(20))
    township: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default=CaseStatus.OPEN, index=True)
    staff_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class HandoffTicket(Base):
    """A request to talk to a person; staff answer it from the console."""

    __tablename__ = "handoff_tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    message: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(20), default="user_request")  # or bot_unavailable, fallback
    status: Mapped[str] = mapped_column(String(10), default=CaseStatus.OPEN, index=True)
    answer: Mapped[str | None] = mapped_column(Text)
    needs_phone_call: Mapped[bool] = mapped_column(Boolean, default=False)
    assigned_to: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class CrisisAlert(Base):
    """An urgent alert raised by a message about self-harm."""

    __tablename__ = "crisis_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    message: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20), default="nlu")  # nlu / keyword
    status: Mapped[str] = mapped_column(String(10), default=CaseStatus.OPEN, index=True)
    handled_by: Mapped[str | None] = mapped_column(String(64))
    staff_notified_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Merchant(Base):
    """A merchant of the 拥军优属联盟."""

    __tablename__ = "merchants"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(2), index=True)
    township: Mapped[str | None] = mapped_column(String(20), index=True)
    address: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(30))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    offers: Mapped[list[MerchantOffer]] = relationship(back_populates="merchant", order_by="MerchantOffer.id")


class MerchantOffer(Base):
    __tablename__ = "merchant_offers"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    description: Mapped[str] = mapped_column(Text)
    valid_until: Mapped[dt.date | None] = mapped_column(Date)

    merchant: Mapped[Merchant] = relationship(back_populates="offers")


class BenefitPolicy(Base):
    """A benefit or policy answer, editable by staff."""

    __tablename__ = "benefit_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(100))
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(50), unique=True)
    display_name: Mapped[str] = mapped_column(String(50))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10))  # admin / clerk / counselor
    counselor_id: Mapped[int | None] = mapped_column(ForeignKey("counselors.id"))
    openid: Mapped[str | None] = mapped_column(String(64))  # for urgent pushes to the on-duty person
    on_duty: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class AuditLog(Base):
    """Who changed what, when, with the values before and after."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(40))
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)


class Campaign(Base):
    """A broadcast: a job notice or a notification, sent through the delivery ledger."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # job / certificate / booking_reminder / case_answer
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job_postings.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(10), default=CampaignStatus.RUNNING, index=True)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Delivery(Base):
    """One recipient of one campaign: the single source of truth of what was sent."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("campaign_id", "openid", name="uq_delivery_campaign_openid"),
        Index("ix_deliveries_claim", "campaign_id", "status"),
        Index("ix_deliveries_status_claimed", "status", "claimed_at"),  # broadcast: lease sweep
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    openid: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(10), default=DeliveryStatus.PENDING)
    channel: Mapped[str | None] = mapped_column(String(10))  # custom / template
    error_code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    wechat_msgid: Mapped[str | None] = mapped_column(String(40), index=True)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    # Broadcast (migration 0002): who holds the claim, when the request went out (set before the HTTP
    # call, so a row left `sending` with attempt_at set has an unknown outcome), retry backoff, outcome time.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    not_before: Mapped[dt.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class ProcessedMessage(Base):
    """A WeChat push already taken in (dedupe across processes when Redis is absent)."""

    __tablename__ = "processed_messages"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    openid_tag: Mapped[str | None] = mapped_column(String(16))
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    reply: Mapped[str | None] = mapped_column(Text)  # the passive reply, for a retry that arrives later


class MessageLog(Base):
    """What users wrote and how it was understood: the dashboard's source and staff's record.

    Kept for staff when the assistant could not answer (Rasa or the action server down).
    """

    __tablename__ = "message_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    direction: Mapped[str] = mapped_column(String(3))  # in / out
    msg_type: Mapped[str] = mapped_column(String(20))
    content: Mapped[str | None] = mapped_column(Text)  # ID numbers redacted before storage
    # Not indexed (migration 0003): no query looks rows up by them, and the intent is filed by an UPDATE
    # just after the INSERT, which stays a cheap in-place (HOT) update only while no index covers it.
    intent: Mapped[str | None] = mapped_column(String(40))
    confidence: Mapped[float | None] = mapped_column(Float)
    unanswered: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)


class KeyValue(Base):
    """Small shared state when Redis is absent: the access token, pending numbered choices."""

    __tablename__ = "key_values"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
