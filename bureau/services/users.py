"""Followers of the account: first contact, the 48-hour window, subscribe scenes, and forgetting a user.

WeChat requires an account to delete a user's information when they unfollow. `forget_user` deletes
what only served the user (subscriptions, pending choices, last position, identity binding) and
anonymises what the bureau must keep as a record, while open cases stay as they are so staff can
finish them (they are reached by phone, not through WeChat, once the user has left).
"""

from __future__ import annotations

from sqlalchemy import delete, text, update
from sqlalchemy.orm import Session

from bureau import secrets_box
from bureau.models import (
    Booking,
    BookingStatus,
    CaseStatus,
    CertificateApplication,
    CertificateStatus,
    CrisisAlert,
    Delivery,
    DeliveryStatus,
    HandoffTicket,
    HardshipApplication,
    JobSubscription,
    KeyValue,
    LegalCase,
    MessageLog,
    WechatUser,
)
from bureau.timeutil import utcnow

CHOICES_KEY_PREFIX = "choices:"


def anonymous_id(openid: str) -> str:
    """The stand-in kept in records of a user who left: stable per user, not reversible."""
    return "anon:" + secrets_box.openid_tag(openid)


def touch_user(session: Session, openid: str) -> WechatUser:
    """The follower row (created on first contact); marks now as the last interaction (48-hour window)."""
    user = session.get(WechatUser, openid)
    now = utcnow()
    if user is None:
        user = WechatUser(openid=openid, subscribed=True, bind_failures=0, created_at=now)
        session.add(user)
    elif not user.subscribed:
        # A message proves the user follows us (the subscribe event may have been lost).
        user.subscribed = True
        user.unsubscribed_at = None
    user.last_interaction_at = now
    session.flush()
    return user


# What a message does to a known follower's row (parameters :openid, :now). Plain SQL, so that the
# webhook can also run it inside its message-log INSERT on PostgreSQL (webhook.gateway.core); the ORM
# form cost twice the CPU on this, the hottest path.
NOTE_MESSAGE_SQL = (
    "UPDATE wechat_users SET last_interaction_at = :now, subscribed = true, unsubscribed_at = NULL"
    " WHERE openid = :openid"
)
_NOTE_MESSAGE = text(NOTE_MESSAGE_SQL)


def note_message(session: Session, openid: str) -> None:
    """`touch_user` for the hot path (every message): one UPDATE for a known follower, no SELECT first.

    A message proves the user follows us, so the row is marked subscribed as well."""
    result = session.execute(_NOTE_MESSAGE, {"openid": openid, "now": utcnow()})
    if not getattr(result, "rowcount", 0):
        touch_user(session, openid)


def record_subscribe(session: Session, openid: str, scene: str | None) -> WechatUser:
    """A (re-)follow; `scene` is the QR-code scene (EventKey without `qrscene_`), if any."""
    user = touch_user(session, openid)
    user.subscribed = True
    user.unsubscribed_at = None
    if scene:
        user.subscribe_scene = scene[:64]
    session.flush()
    return user


def set_last_location(session: Session, openid: str, lat: float, lng: float) -> WechatUser:
    """Remember where the user last was (LOCATION events and location messages)."""
    user = session.get(WechatUser, openid)
    if user is None:
        user = WechatUser(openid=openid, subscribed=True, bind_failures=0)
        session.add(user)
    user.last_latitude = lat
    user.last_longitude = lng
    user.last_location_at = utcnow()
    session.flush()
    return user


def forget_user(session: Session, openid: str) -> None:
    """Unfollow: delete or anonymise the user's data, keeping open cases for staff (see module doc)."""
    anon = anonymous_id(openid)
    now = utcnow()
    user = session.get(WechatUser, openid)
    if user is not None:
        user.subscribed = False
        user.unsubscribed_at = now
        user.veteran_id = None
        user.subscribe_scene = None
        user.last_latitude = user.last_longitude = None
        user.last_location_at = None
        user.last_interaction_at = None
        user.bind_failures = 0
        user.bind_locked_until = None
    session.execute(delete(JobSubscription).where(JobSubscription.openid == openid))
    # The exact key PendingChoices uses: found by primary key, where a LIKE prefix scans the whole table.
    session.execute(delete(KeyValue).where(KeyValue.key == CHOICES_KEY_PREFIX + openid))

    closed_certificates = (CertificateStatus.READY, CertificateStatus.REJECTED)
    session.execute(
        update(CertificateApplication)
        .where(
            CertificateApplication.openid == openid, CertificateApplication.status.in_(closed_certificates)
        )
        .values(openid=None)
    )
    for model in (LegalCase, HardshipApplication):
        session.execute(
            update(model).where(model.openid == openid, model.status == CaseStatus.CLOSED).values(openid=None)
        )
    session.execute(
        update(Booking)
        .where(Booking.openid == openid, Booking.status != BookingStatus.BOOKED)
        .values(openid=anon)
    )
    for ticket_model in (HandoffTicket, CrisisAlert):
        session.execute(
            update(ticket_model)
            .where(ticket_model.openid == openid, ticket_model.status == CaseStatus.CLOSED)
            .values(openid=anon)
        )
    # What they wrote is theirs: keep only the counts and intents the dashboard needs.
    session.execute(update(MessageLog).where(MessageLog.openid == openid).values(openid=anon, content=None))
    session.execute(
        update(Delivery)
        .where(Delivery.openid == openid, Delivery.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.SKIPPED, reason="用户已取消关注")
    )
    session.execute(
        update(Delivery)
        .where(
            Delivery.openid == openid,
            Delivery.status.in_((DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)),
        )
        .values(openid=anon)
    )
    session.flush()
