"""The dashboard: messages per day, top intents, unanswered rate, open queues, bookings, job notices."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from flask import redirect, render_template, url_for
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bureau.models import (
    Booking,
    BookingStatus,
    Campaign,
    CaseStatus,
    CounselingSlot,
    CrisisAlert,
    Delivery,
    DeliveryStatus,
    MessageLog,
)
from bureau.timeutil import from_local, local_today, to_local, utcnow
from webhook.admin import bp, charts
from webhook.admin.views_queues import open_counts
from webhook.database import get_db

DAYS = 14
FALLBACK_INTENTS = ("nlu_fallback", "out_of_scope")
INTENT_LABELS = {
    "greet": "问候",
    "goodbye": "再见",
    "thank": "感谢",
    "affirm": "肯定",
    "deny": "否定",
    "bot_challenge": "问是不是机器人",
    "job_search": "找工作",
    "job_subscribe": "订阅招聘",
    "job_unsubscribe": "退订招聘",
    "certificate_apply": "申请优待证",
    "certificate_status": "查优待证进度",
    "legal_help": "法律援助",
    "counseling_book": "预约老战友",
    "counseling_cancel": "取消预约",
    "benefits_query": "问优待政策",
    "hardship_aid": "困难帮扶",
    "merchant_discounts": "优待商家",
    "service_station": "找服务站",
    "return_registration": "返乡报到",
    "loan_info": "创业贷款",
    "bind_identity": "绑定身份",
    "human_handoff": "转人工",
    "crisis": "危机求助",
    "out_of_scope": "超出范围",
    "inform": "补充信息",
    "nlu_fallback": "没听懂",
}


def message_stats(db: Session, today: dt.date) -> dict[str, Any]:
    """Incoming messages per China-time day for the last DAYS days, with the unanswered ones."""
    first_day = today - dt.timedelta(days=DAYS - 1)
    since = from_local(dt.datetime.combine(first_day, dt.time()))
    per_day: Counter[dt.date] = Counter()
    unanswered_per_day: Counter[dt.date] = Counter()
    rows = db.execute(
        select(MessageLog.created_at, MessageLog.unanswered, MessageLog.intent)
        .where(MessageLog.direction == "in", MessageLog.created_at >= since)
        .execution_options(yield_per=2000)
    )
    for created_at, unanswered, intent in rows:
        day = to_local(created_at).date()
        per_day[day] += 1
        if unanswered or intent in FALLBACK_INTENTS:
            unanswered_per_day[day] += 1
    days = [first_day + dt.timedelta(days=i) for i in range(DAYS)]
    total = sum(per_day.values())
    missed = sum(unanswered_per_day.values())
    return {
        "labels": [f"{d.month}/{d.day}" for d in days],
        "values": [per_day[d] for d in days],
        "unanswered": [unanswered_per_day[d] for d in days],
        "total": total,
        "missed": missed,
        "rate": (100.0 * missed / total) if total else 0.0,
    }


def top_intents(db: Session, since: dt.datetime, limit: int = 8) -> list[tuple[str, int]]:
    rows = db.execute(
        select(MessageLog.intent, func.count())
        .where(MessageLog.direction == "in", MessageLog.created_at >= since, MessageLog.intent.is_not(None))
        .group_by(MessageLog.intent)
        .order_by(func.count().desc(), MessageLog.intent)
        .limit(limit)
    ).all()
    return [(INTENT_LABELS.get(intent, intent), int(count)) for intent, count in rows]


def bookings_this_week(db: Session, today: dt.date) -> int:
    monday = today - dt.timedelta(days=today.weekday())
    start = from_local(dt.datetime.combine(monday, dt.time()))
    return int(
        db.scalar(
            select(func.count(Booking.id))
            .join(CounselingSlot, CounselingSlot.id == Booking.slot_id)
            .where(
                Booking.status.in_((BookingStatus.BOOKED, BookingStatus.DONE)),
                CounselingSlot.starts_at >= start,
                CounselingSlot.starts_at < start + dt.timedelta(days=7),
            )
        )
        or 0
    )


def job_notices_sent(db: Session, since: dt.datetime) -> int:
    return int(
        db.scalar(
            select(func.count(Delivery.id))
            .join(Campaign, Campaign.id == Delivery.campaign_id)
            .where(
                Campaign.kind == "job",
                Delivery.status == DeliveryStatus.SENT,
                or_(Delivery.updated_at >= since, Campaign.created_at >= since),
            )
        )
        or 0
    )


@bp.get("/")
def index() -> Any:
    return redirect(url_for("admin.dashboard"))


@bp.get("/dashboard")
def dashboard() -> Any:
    db = get_db()
    today = local_today()
    month_ago = utcnow() - dt.timedelta(days=30)
    stats = message_stats(db, today)
    intents = top_intents(db, month_ago)
    counts = open_counts(db)
    alerts = db.scalars(
        select(CrisisAlert)
        .where(CrisisAlert.status != CaseStatus.CLOSED)
        .order_by(CrisisAlert.created_at.desc())
        .limit(5)
    ).all()
    recent_campaigns = db.scalars(
        select(Campaign).where(Campaign.kind == "job").order_by(Campaign.created_at.desc()).limit(5)
    ).all()
    messages_chart = charts.column_chart(
        stats["labels"],
        stats["values"],
        f"近{DAYS}天每天收到的消息",
        second=stats["unanswered"],
        legend=("收到的消息", "没能回答的"),
    )
    intents_chart = charts.bar_chart(
        [label for label, _ in intents], [n for _, n in intents], "近30天战友最常问的事"
    )
    queue_labels = {
        "crisis": "危机预警",
        "applications": "优待证待审",
        "cases": "法律援助",
        "tickets": "人工咨询",
        "hardship": "困难帮扶",
    }
    queue_chart = charts.bar_chart(
        [queue_labels[k] for k in queue_labels], [counts[k] for k in queue_labels], "各队列待办数"
    )
    return render_template(
        "admin/dashboard.html",
        stats=stats,
        counts=counts,
        alerts=alerts,
        bookings_week=bookings_this_week(db, today),
        job_sent=job_notices_sent(db, month_ago),
        recent_campaigns=recent_campaigns,
        messages_chart=messages_chart,
        intents_chart=intents_chart,
        queue_chart=queue_chart,
    )
