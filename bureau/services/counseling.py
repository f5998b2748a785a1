"""Counseling bookings with the 老战友 counselors: free slots, booking, cancelling, reminders.

Never double-booked: the partial unique index `uq_booking_live_per_slot` decides between racing users;
the loser gets `SlotTaken` and is offered the next free slots.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from bureau import idcard
from bureau.models import (
    COUNSELOR_SPECIALTIES,
    Booking,
    BookingStatus,
    CounselingSlot,
    Counselor,
    WechatUser,
)
from bureau.notifications import notify_user
from bureau.services.dates import DateWindow
from bureau.timeutil import format_local, local_today, to_local, utcnow

COUNSELING_TOPICS = COUNSELOR_SPECIALTIES
# A slot can be booked until shortly before it starts; the counselor needs a moment to prepare.
MIN_LEAD = dt.timedelta(minutes=30)
MAX_LIVE_BOOKINGS = 3
# Reminders are not pushed at night (China time): many of our users are elderly.
QUIET_HOURS = (21, 8)
DEFAULT_OFFERS = 3
_PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")


class BookingError(Exception):
    """A booking request that cannot be done; `reason` is a short Chinese explanation for the user."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class SlotTaken(BookingError):
    """Someone else booked the slot first."""

    def __init__(self) -> None:
        super().__init__("这个时间刚被别人约走了。", "taken")


@dataclass(frozen=True)
class SlotOffer:
    """A free slot as offered to a user."""

    slot_id: int
    counselor_name: str
    starts_at: dt.datetime  # naive UTC
    location: str | None
    specialties: tuple[str, ...]

    @property
    def label(self) -> str:
        text = f"{format_local(self.starts_at)} {self.counselor_name}"
        return text + (f"（{self.location}）" if self.location else "")


@dataclass(frozen=True)
class OfferResult:
    """The slots to offer and, when the request had to be widened, a short note saying how."""

    offers: list[SlotOffer]
    note: str | None = None


def normalize_phone(text: str | None) -> str | None:
    """A mobile or landline number without spaces, or None when the text is not one."""
    if not text:
        return None
    cleaned = re.sub(r"[\s()（）]", "", text).replace("—", "-").replace("+86", "")
    return cleaned if _PHONE.match(cleaned) else None


def normalize_topic(topic: str | None) -> str | None:
    """A canonical counseling topic, or None."""
    return topic if topic in COUNSELING_TOPICS else None


def _counselor_ids(session: Session, topic: str | None, counselor_id: int | None) -> list[int]:
    counselors = session.scalars(
        select(Counselor).where(Counselor.active.is_(True)).order_by(Counselor.id)
    ).all()
    if counselor_id is not None:
        counselors = [c for c in counselors if c.id == counselor_id]
    if topic:
        # Specialties are a JSON list: filtered here, the same on SQLite and PostgreSQL.
        counselors = [c for c in counselors if topic in (c.specialties or [])]
    return [c.id for c in counselors]


def free_slots(
    session: Session,
    topic: str | None = None,
    counselor_id: int | None = None,
    window: DateWindow | None = None,
    now: dt.datetime | None = None,
    limit: int = DEFAULT_OFFERS,
    exclude: Iterable[int] = (),
) -> list[SlotOffer]:
    """The earliest free future slots matching a topic (counselor specialty), counselor and time window."""
    now = now or utcnow()
    ids = _counselor_ids(session, topic, counselor_id)
    if not ids:
        return []
    live = select(Booking.id).where(
        Booking.slot_id == CounselingSlot.id, Booking.status == BookingStatus.BOOKED
    )
    query = (
        select(CounselingSlot)
        .options(joinedload(CounselingSlot.counselor))
        .where(
            CounselingSlot.counselor_id.in_(ids),
            CounselingSlot.starts_at >= now + MIN_LEAD,
            ~live.exists(),
        )
        .order_by(CounselingSlot.starts_at, CounselingSlot.id)
    )
    excluded = set(exclude)
    if excluded:
        query = query.where(CounselingSlot.id.not_in(excluded))
    if window is not None:
        query = query.where(
            CounselingSlot.starts_at >= window.start_utc, CounselingSlot.starts_at < window.end_utc
        )
    offers: list[SlotOffer] = []
    # Bounded batches: the hour-of-day filter of a multi-day window is applied here.
    for slot in session.scalars(query.limit(200)):
        if window is not None and not window.contains(slot.starts_at):
            continue
        offers.append(
            SlotOffer(
                slot_id=slot.id,
                counselor_name=slot.counselor.name,
                starts_at=slot.starts_at,
                location=slot.location,
                specialties=tuple(slot.counselor.specialties or ()),
            )
        )
        if len(offers) >= limit:
            break
    return offers


def find_offers(
    session: Session,
    topic: str | None = None,
    window: DateWindow | None = None,
    now: dt.datetime | None = None,
    limit: int = DEFAULT_OFFERS,
    exclude: Iterable[int] = (),
) -> OfferResult:
    """Free slots for a request, widened step by step when nothing matches (time first, then topic)."""
    offers = free_slots(session, topic=topic, window=window, now=now, limit=limit, exclude=exclude)
    if offers:
        return OfferResult(offers)
    if window is not None:
        offers = free_slots(session, topic=topic, now=now, limit=limit, exclude=exclude)
        if offers:
            return OfferResult(offers, f"{window.label}没有空的时间了，下面是最近能约的时间：")
    if topic:
        offers = free_slots(session, window=window, now=now, limit=limit, exclude=exclude)
        if offers:
            return OfferResult(offers, f"擅长“{topic}”的老战友最近没有空，下面这些老战友也能和您聊：")
        offers = free_slots(session, now=now, limit=limit, exclude=exclude)
        if offers:
            return OfferResult(offers, "您想要的时间没有空位了，下面是最近能约的时间：")
    return OfferResult([])


def check_slot(
    session: Session, slot_id: int, now: dt.datetime | None = None, openid: str | None = None
) -> SlotOffer:
    """The slot as an offer if it can still be booked; raise BookingError (SlotTaken) otherwise."""
    now = now or utcnow()
    slot = session.get(CounselingSlot, slot_id, options=[joinedload(CounselingSlot.counselor)])
    if slot is None or not slot.counselor.active:
        raise BookingError("没有找到这个时间，请从给您列出的时间里选。", "not_found")
    if slot.starts_at < now + MIN_LEAD:
        raise BookingError("这个时间已经过了（或马上就到），请选一个以后的时间。", "past")
    holder = session.scalars(
        select(Booking.openid).where(Booking.slot_id == slot_id, Booking.status == BookingStatus.BOOKED)
    ).first()
    if holder is not None:
        if openid is not None and holder == openid:
            raise BookingError("这个时间您已经约好了，不用再约。", "already_mine")
        raise SlotTaken()
    return SlotOffer(
        slot_id=slot.id,
        counselor_name=slot.counselor.name,
        starts_at=slot.starts_at,
        location=slot.location,
        specialties=tuple(slot.counselor.specialties or ()),
    )


def book_slot(
    session: Session,
    openid: str,
    slot_id: int,
    topic: str | None = None,
    note: str | None = None,
    phone: str | None = None,
    now: dt.datetime | None = None,
) -> Booking:
    """Book a slot for a user, or raise BookingError (SlotTaken when someone else was faster).

    The insert runs in a savepoint, so a lost race leaves the caller's transaction usable for offering
    the next slots. A repeat of the same request returns the user's existing booking.
    """
    now = now or utcnow()
    slot = session.get(CounselingSlot, slot_id, options=[joinedload(CounselingSlot.counselor)])
    if slot is None or not slot.counselor.active:
        raise BookingError("没有找到这个时间，请从给您列出的时间里选。", "not_found")
    if slot.starts_at < now + MIN_LEAD:
        raise BookingError("这个时间已经过了（或马上就到），请选一个以后的时间。", "past")
    mine = session.scalars(
        select(Booking)
        .options(joinedload(Booking.slot))
        .join(CounselingSlot, Booking.slot_id == CounselingSlot.id)
        .where(
            Booking.openid == openid,
            Booking.status == BookingStatus.BOOKED,
            CounselingSlot.starts_at >= now,
        )
    ).all()
    for booking in mine:
        if booking.slot_id == slot_id:
            return booking
        if booking.slot.starts_at < slot.ends_at and slot.starts_at < booking.slot.ends_at:
            raise BookingError(
                f"您在{format_local(booking.slot.starts_at)}已经约好了，同一时间不能再约。", "overlap"
            )
    if len(mine) >= MAX_LIVE_BOOKINGS:
        raise BookingError(f"您已经有{len(mine)}个还没到的预约了，先去了再约新的吧。", "too_many")
    user = session.get(WechatUser, openid)
    parts = [f"联系电话 {phone}"] if phone else []
    if note:
        parts.append(idcard.redact(note.strip())[:500])
    booking = Booking(
        slot_id=slot_id,
        openid=openid,
        veteran_id=user.veteran_id if user else None,
        topic=normalize_topic(topic),
        note="；".join(parts) or None,
        status=BookingStatus.BOOKED,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(booking)
            session.flush()
    except IntegrityError:
        raise SlotTaken() from None
    return booking


def get_own_booking(session: Session, openid: str, booking_id: int) -> Booking | None:
    """The user's own booking, or None (also for somebody else's: no hint that it exists)."""
    booking = session.get(
        Booking, booking_id, options=[joinedload(Booking.slot).joinedload(CounselingSlot.counselor)]
    )
    if booking is None or booking.openid != openid:
        return None
    return booking


def cancel_booking(session: Session, openid: str, booking_id: int, now: dt.datetime | None = None) -> Booking:
    """Cancel one's own future booking; raise BookingError with the reason otherwise."""
    now = now or utcnow()
    booking = get_own_booking(session, openid, booking_id)
    if booking is None:
        raise BookingError("没有找到您的这个预约。", "not_found")
    if booking.status != BookingStatus.BOOKED:
        raise BookingError("这个预约已经取消过了。", "not_live")
    if booking.slot.starts_at <= now:
        raise BookingError("这个预约的时间已经过了，不能再取消。", "past")
    booking.status = BookingStatus.CANCELLED
    booking.cancelled_at = now
    session.flush()
    return booking


def my_bookings(session: Session, openid: str, now: dt.datetime | None = None) -> Sequence[Booking]:
    """The user's live bookings that have not started yet, earliest first."""
    now = now or utcnow()
    return session.scalars(
        select(Booking)
        .join(CounselingSlot, Booking.slot_id == CounselingSlot.id)
        .options(joinedload(Booking.slot).joinedload(CounselingSlot.counselor))
        .where(
            Booking.openid == openid, Booking.status == BookingStatus.BOOKED, CounselingSlot.starts_at > now
        )
        .order_by(CounselingSlot.starts_at, Booking.id)
    ).all()


def describe_booking(booking: Booking) -> str:
    """One line a user reads: time, counselor, place."""
    slot = booking.slot
    text = f"{format_local(slot.starts_at)} {slot.counselor.name}"
    if booking.topic:
        text += f"（{booking.topic}）"
    if slot.location:
        text += f"，地点：{slot.location}"
    return text


def _reminder_horizon(now: dt.datetime) -> dt.datetime:
    """The end of tomorrow in China time, as naive UTC."""
    local_now = to_local(now)
    end_of_tomorrow = dt.datetime.combine(local_now.date() + dt.timedelta(days=2), dt.time())
    return end_of_tomorrow - dt.timedelta(hours=8)


def due_reminders(session: Session, now: dt.datetime | None = None) -> Sequence[Booking]:
    """Live bookings starting between now and the end of tomorrow (China time) not yet reminded."""
    now = now or utcnow()
    return session.scalars(
        select(Booking)
        .join(CounselingSlot, Booking.slot_id == CounselingSlot.id)
        .where(
            and_(
                Booking.status == BookingStatus.BOOKED,
                Booking.reminded_at.is_(None),
                CounselingSlot.starts_at > now,
                CounselingSlot.starts_at < _reminder_horizon(now),
            )
        )
        .order_by(CounselingSlot.starts_at, Booking.id)
        .with_for_update(skip_locked=True, of=Booking)
    ).all()


def reminder_text(booking: Booking, now: dt.datetime | None = None) -> str:
    """The reminder a user gets the day before."""
    today = to_local(now).date() if now is not None else local_today()
    when = "明天" if to_local(booking.slot.starts_at).date() > today else "今天"
    return (
        f"【预约提醒】您{when}约了老战友：{describe_booking(booking)}。"
        "有事来不了，请回复“取消预约”，我们好安排别人。"
    )


def in_quiet_hours(now: dt.datetime) -> bool:
    """True between QUIET_HOURS[0]:00 and QUIET_HOURS[1]:00 China time."""
    hour = to_local(now).hour
    return hour >= QUIET_HOURS[0] or hour < QUIET_HOURS[1]


def send_booking_reminders(session: Session, now: dt.datetime | None = None) -> int:
    """Record a reminder for every due booking and mark it, so each booking is reminded once.

    Rows are locked (skipping those another worker holds), so two schedulers never remind twice.
    Nothing is sent during the night (QUIET_HOURS); the next run after 08:00 catches up.
    Returns how many reminders were recorded.
    """
    now = now or utcnow()
    if in_quiet_hours(now):
        return 0
    count = 0
    for booking in due_reminders(session, now):
        notify_user(
            session, booking.openid, "booking_reminder", reminder_text(booking, now), created_by="reminder"
        )
        booking.reminded_at = now
        count += 1
    session.flush()
    return count
