"""Counseling: each counselor's weekly availability, and the booking calendar everyone sees."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bureau import audit
from bureau.models import Booking, BookingStatus, CounselingSlot, Counselor, Veteran
from bureau.timeutil import WEEKDAYS, from_local, local_today, to_local
from webhook.admin import bp
from webhook.admin.security import actor_name, roles_required
from webhook.database import get_db

SLOT_FIELDS = ("counselor_id", "starts_at", "ends_at", "location")


def _week_start(raw: str | None) -> dt.date:
    try:
        day = dt.date.fromisoformat(raw) if raw else local_today()
    except ValueError:
        day = local_today()
    return day - dt.timedelta(days=day.weekday())


def _counselor_in_scope(counselor_id: int | None) -> Counselor:
    """A counselor manages only their own slots; admin may manage anyone's."""
    db = get_db()
    staff = g.staff
    if staff.role == "counselor":
        counselor_id = staff.counselor_id
    counselor = db.get(Counselor, counselor_id) if counselor_id else None
    if counselor is None:
        abort(404)
    return counselor


@bp.get("/calendar")
def calendar() -> Any:
    """The week's slots and bookings of every counselor (China time)."""
    db = get_db()
    monday = _week_start(request.args.get("week"))
    start = from_local(dt.datetime.combine(monday, dt.time()))
    end = start + dt.timedelta(days=7)
    slots = db.scalars(
        select(CounselingSlot)
        .where(CounselingSlot.starts_at >= start, CounselingSlot.starts_at < end)
        .order_by(CounselingSlot.starts_at, CounselingSlot.counselor_id)
    ).all()
    bookings: dict[int, Booking] = {}
    if slots:
        for booking in db.scalars(
            select(Booking).where(
                Booking.slot_id.in_([s.id for s in slots]), Booking.status != BookingStatus.CANCELLED
            )
        ):
            bookings[booking.slot_id] = booking
    veterans = {}
    vet_ids = [b.veteran_id for b in bookings.values() if b.veteran_id]
    if vet_ids:
        veterans = {v.id: v for v in db.scalars(select(Veteran).where(Veteran.id.in_(vet_ids)))}
    days = []
    for offset in range(7):
        day = monday + dt.timedelta(days=offset)
        day_slots = [s for s in slots if to_local(s.starts_at).date() == day]
        days.append((day, WEEKDAYS[offset], day_slots))
    booked = sum(1 for b in bookings.values() if b.status == BookingStatus.BOOKED)
    return render_template(
        "admin/calendar.html",
        days=days,
        bookings=bookings,
        veterans=veterans,
        monday=monday,
        prev_week=monday - dt.timedelta(days=7),
        next_week=monday + dt.timedelta(days=7),
        booked=booked,
        to_local=to_local,
    )


@bp.get("/availability")
@roles_required("counselor")
def availability() -> Any:
    """The signed-in counselor's upcoming slots (admin: pick a counselor)."""
    db = get_db()
    counselors = db.scalars(
        select(Counselor).where(Counselor.active.is_(True)).order_by(Counselor.name)
    ).all()
    chosen = request.args.get("counselor_id", type=int)
    if g.staff.role != "counselor" and chosen is None:
        chosen = counselors[0].id if counselors else None
    if chosen is None and g.staff.role != "counselor":
        return render_template(
            "admin/availability.html", counselor=None, counselors=counselors, slots=[], bookings={}
        )
    counselor = _counselor_in_scope(chosen)
    now_utc = from_local(dt.datetime.combine(local_today(), dt.time()))
    slots = db.scalars(
        select(CounselingSlot)
        .where(CounselingSlot.counselor_id == counselor.id, CounselingSlot.starts_at >= now_utc)
        .order_by(CounselingSlot.starts_at)
        .limit(200)
    ).all()
    bookings = {
        b.slot_id: b
        for b in db.scalars(
            select(Booking).where(
                Booking.slot_id.in_([s.id for s in slots] or [-1]), Booking.status == BookingStatus.BOOKED
            )
        )
    }
    return render_template(
        "admin/availability.html",
        counselor=counselor,
        counselors=counselors,
        slots=slots,
        bookings=bookings,
        to_local=to_local,
        today=local_today(),
    )


@bp.post("/availability/add")
@roles_required("counselor")
def availability_add() -> Any:
    """Add a time on a day, optionally repeated weekly for a few weeks (their "weekly availability")."""
    db = get_db()
    counselor = _counselor_in_scope(request.form.get("counselor_id", type=int))
    back = redirect(url_for("admin.availability", counselor_id=counselor.id))
    try:
        day = dt.date.fromisoformat(request.form.get("day", ""))
        start_time = dt.time.fromisoformat(request.form.get("start", ""))
        minutes = int(request.form.get("minutes", "60"))
        weeks = int(request.form.get("weeks", "1"))
    except ValueError:
        flash("请填写日期和开始时间。", "error")
        return back
    if not 15 <= minutes <= 240 or not 1 <= weeks <= 12:
        flash("每次时长 15–240 分钟，最多重复 12 周。", "error")
        return back
    if day < local_today():
        flash("不能添加已经过去的日期。", "error")
        return back
    location = request.form.get("location", "").strip()[:100] or None
    added = skipped = 0
    for week in range(weeks):
        starts_local = dt.datetime.combine(day + dt.timedelta(weeks=week), start_time)
        starts = from_local(starts_local)
        exists = db.scalars(
            select(CounselingSlot).where(
                CounselingSlot.counselor_id == counselor.id, CounselingSlot.starts_at == starts
            )
        ).first()
        if exists is not None:
            skipped += 1
            continue
        slot = CounselingSlot(
            counselor_id=counselor.id,
            starts_at=starts,
            ends_at=starts + dt.timedelta(minutes=minutes),
            location=location,
        )
        db.add(slot)
        db.flush()
        audit.record(
            db, actor_name(), "create", "counseling_slot", slot.id, None, audit.snapshot(slot, SLOT_FIELDS)
        )
        added += 1
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        flash("有时间段和已有的重复了，请刷新后再试。", "error")
        return back
    message = f"已添加 {added} 个时间段。"
    if skipped:
        message += f"（{skipped} 个已存在，跳过）"
    flash(message, "ok")
    return back


@bp.post("/availability/<int:slot_id>/delete")
@roles_required("counselor")
def availability_delete(slot_id: int) -> Any:
    db = get_db()
    slot = db.get(CounselingSlot, slot_id) or abort(404)
    counselor = _counselor_in_scope(slot.counselor_id)
    if slot.counselor_id != counselor.id:
        abort(404)
    back = redirect(url_for("admin.availability", counselor_id=counselor.id))
    has_bookings = db.scalars(select(Booking.id).where(Booking.slot_id == slot.id)).first()
    if has_bookings is not None:
        flash("这个时间段已经有人预约过，不能删除。如需取消，请先电话联系预约人。", "error")
        return back
    audit.record(
        db, actor_name(), "delete", "counseling_slot", slot.id, audit.snapshot(slot, SLOT_FIELDS), None
    )
    db.delete(slot)
    db.commit()
    flash("已删除这个时间段。", "ok")
    return back
