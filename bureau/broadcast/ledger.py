"""The delivery ledger: claiming work, recording outcomes, expiring dead workers' claims.

A delivery moves pending → sending (claimed: `claimed_by`, `claimed_at`) → sent / failed / skipped.
Before each request to WeChat the sender sets `attempt_at` in its own commit; so a row found `sending`
with `attempt_at` set and its claim expired has an *unknown* outcome (the request may have gone out)
and is reconciled, never re-sent, while a claimed row without `attempt_at` was never tried and simply
goes back to pending. Every write is fenced on `claimed_by`, so a worker whose claim expired cannot
overwrite what another worker did since.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, bindparam, exists, func, or_, select, text, true, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.schema import Table

from bureau import metrics
from bureau.models import Campaign, CampaignStatus, Delivery, DeliveryStatus, WechatUser
from bureau.timeutil import utcnow

UNCONFIRMED = "unconfirmed"  # reason of a delivery whose request went out but whose answer was lost
ASYNC_COMMIT = "zhanyou_async_commit"  # connection.info flag: synchronous_commit is off for the session
NO_RECEIPT = "no_receipt"  # a template message WeChat never confirmed: due to be sent again


@dataclass(frozen=True)
class Claimed:
    """A claimed delivery with what the sender needs to choose a channel."""

    id: int
    campaign_id: int
    openid: str
    attempts: int
    kind: str
    payload: dict[str, Any]
    subscribed: bool
    last_interaction_at: dt.datetime | None
    custom_used: int  # customer-service messages we sent this user since their last message


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def relaxed_commit(session: Session) -> None:
    """Let this transaction's commit return before PostgreSQL flushes its WAL to disk.

    The bookkeeping commits of a send (claim, attempt, outcome) are several per message; waiting for an
    fsync on each one caps a campaign at the disk's flush rate. A worker that dies loses nothing this
    way (the server has the commit); only a crash of the database server itself could forget the last
    fraction of a second of bookkeeping. (SQLite's equivalent is WAL with synchronous=NORMAL.)
    """
    if session.get_bind().dialect.name == "postgresql":
        connection = session.connection()
        if not connection.info.get(ASYNC_COMMIT):  # the worker's own pool sets it once per connection
            connection.execute(text("SET LOCAL synchronous_commit TO OFF"))


def claim_batch(
    session: Session, worker: str, limit: int, campaign_id: int | None = None, now: dt.datetime | None = None
) -> list[Claimed]:
    """Claim up to `limit` due pending deliveries of running campaigns for `worker`.

    PostgreSQL: `FOR UPDATE SKIP LOCKED` lets any number of workers claim disjoint rows without waiting.
    SQLite: the single UPDATE … WHERE id IN (SELECT …) runs under the database's one write lock, and
    the `status = pending` guard in the UPDATE makes a row claimable once only.
    """
    now = now or utcnow()
    relaxed_commit(session)
    due = (
        select(Delivery.id)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(
            Delivery.status == DeliveryStatus.PENDING,
            Campaign.status == CampaignStatus.RUNNING,
            or_(Delivery.not_before.is_(None), Delivery.not_before <= now),
        )
    )
    if campaign_id is not None:
        due = due.where(Delivery.campaign_id == campaign_id).order_by(Delivery.id)
    else:  # any campaign: the newest first, so a one-person notification does not wait behind a big notice
        due = due.order_by(Delivery.campaign_id.desc(), Delivery.id)
    due = due.limit(limit)
    claim = update(Delivery).values(
        status=DeliveryStatus.SENDING, claimed_at=now, claimed_by=worker, attempt_at=None
    )
    if session.get_bind().dialect.name == "postgresql":
        # Lock first, then update by id: PostgreSQL may re-run an IN (… LIMIT n) subquery per row,
        # and every run would skip different locked rows.
        ids = list(session.scalars(due.with_for_update(of=Delivery, skip_locked=True)))
        if ids:
            session.connection().execute(
                claim.where(Delivery.id.in_(ids)).execution_options(synchronize_session=False)
            )
    else:
        ids = list(
            session.scalars(
                claim.where(Delivery.id.in_(due.scalar_subquery()), Delivery.status == DeliveryStatus.PENDING)
                .returning(Delivery.id)
                .execution_options(synchronize_session=False)
            )
        )
    if not ids:
        return []
    rows = session.execute(
        select(Delivery.id, Delivery.campaign_id, Delivery.openid, Delivery.attempts).where(
            Delivery.id.in_(ids)
        )
    ).all()
    campaigns = {
        c.id: c
        for c in session.scalars(select(Campaign).where(Campaign.id.in_({r.campaign_id for r in rows})))
    }
    openids = {r.openid for r in rows}
    users = {u.openid: u for u in session.scalars(select(WechatUser).where(WechatUser.openid.in_(openids)))}
    # Only users who wrote within the window can get a customer-service message: count our recent ones.
    window_start = now - dt.timedelta(hours=48)
    recent = {o for o, u in users.items() if u.last_interaction_at and u.last_interaction_at >= window_start}
    used: dict[str, int] = {}
    if recent:
        used = {
            str(o): int(n)
            for o, n in session.execute(
                select(Delivery.openid, func.count())
                .join(WechatUser, WechatUser.openid == Delivery.openid)
                .where(
                    Delivery.openid.in_(recent),
                    Delivery.channel == "custom",
                    Delivery.status == DeliveryStatus.SENT,
                    Delivery.finished_at >= WechatUser.last_interaction_at,
                )
                .group_by(Delivery.openid)
            ).all()
        }
    claimed = []
    for r in sorted(rows, key=lambda r: r.id):
        user = users.get(r.openid)
        campaign = campaigns[r.campaign_id]
        claimed.append(
            Claimed(
                id=r.id,
                campaign_id=r.campaign_id,
                openid=r.openid,
                attempts=r.attempts,
                kind=campaign.kind,
                payload=dict(campaign.payload or {}),
                subscribed=bool(user and user.subscribed),
                last_interaction_at=user.last_interaction_at if user else None,
                custom_used=int(used.get(r.openid, 0)),
            )
        )
    return claimed


def mark_attempt(session: Session, delivery_id: int, worker: str, channel: str) -> bool:
    """Record that a request is about to go out; False (do not send) when the claim is no longer ours or
    the campaign was paused or cancelled meanwhile."""
    relaxed_commit(session)
    done = session.connection().execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.claimed_by == worker,
            Delivery.attempt_at.is_(None),
            exists().where(Campaign.id == Delivery.campaign_id, Campaign.status == CampaignStatus.RUNNING),
        )
        .values(attempt_at=utcnow(), attempts=Delivery.attempts + 1, channel=channel)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(done) == 1


def record_outcome(
    session: Session,
    delivery_id: int,
    worker: str,
    status: str,
    channel: str | None = None,
    error_code: int | None = None,
    reason: str | None = None,
    msgid: str | None = None,
) -> bool:
    """Write the final status of a claimed delivery (fenced on the claim)."""
    values: dict[str, Any] = {
        "status": status,
        "error_code": error_code,
        "reason": (reason or None) and reason[:200],
        "finished_at": utcnow(),
        "not_before": None,
    }
    if channel is not None:
        values["channel"] = channel
    if msgid is not None:
        values["wechat_msgid"] = msgid
    relaxed_commit(session)
    done = session.connection().execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.claimed_by == worker,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    recorded = _rowcount(done) == 1
    if recorded:
        metrics.DELIVERIES.labels(status).inc()
    return recorded


def reschedule(
    session: Session,
    delivery_id: int,
    worker: str,
    delay_seconds: float,
    error_code: int | None,
    reason: str,
    attempt: int | None = None,
) -> bool:
    """Put a delivery back to pending, due again after `delay_seconds` (retry with backoff).

    `attempt` is this try's number: it counts even when the failure came before the request went out
    (e.g. the token endpoint was down), so retries stay bounded."""
    relaxed_commit(session)
    done = session.connection().execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.claimed_by == worker,
        )
        .values(
            status=DeliveryStatus.PENDING,
            claimed_by=None,
            claimed_at=None,
            attempt_at=None,
            not_before=utcnow() + dt.timedelta(seconds=delay_seconds),
            error_code=error_code,
            reason=reason[:200],
            **({"attempts": attempt} if attempt is not None else {}),
        )
        .execution_options(synchronize_session=False)
    )
    return _rowcount(done) == 1


def record_sent_many(session: Session, worker: str, rows: list[dict[str, Any]]) -> int:
    """Record many successful sends in one statement: rows of {id, channel, msgid, finished_at}."""
    if not rows:
        return 0
    relaxed_commit(session)
    table = cast(Table, Delivery.__table__)
    stmt = (
        table.update()
        .where(
            table.c.id == bindparam("b_id"),
            table.c.status == DeliveryStatus.SENDING,
            table.c.claimed_by == worker,
        )
        .values(
            status=DeliveryStatus.SENT,
            channel=bindparam("b_channel"),
            wechat_msgid=func.coalesce(
                bindparam("b_msgid", type_=table.c.wechat_msgid.type), table.c.wechat_msgid
            ),
            finished_at=bindparam("b_finished_at"),
            error_code=None,
            reason=None,
            not_before=None,
            updated_at=bindparam("b_finished_at"),
        )
    )
    # In id order, so two multi-row writers always lock rows in the same order and cannot deadlock.
    params = [
        {
            "b_id": r["id"],
            "b_channel": r["channel"],
            "b_msgid": r.get("msgid"),
            "b_finished_at": r["finished_at"],
        }
        for r in sorted(rows, key=lambda r: int(r["id"]))
    ]
    return _rowcount(session.connection().execute(stmt, params))


def release(session: Session, worker: str, ids: list[int]) -> int:
    """Give back claimed deliveries that were never tried (pause, cancel, shutdown)."""
    if not ids:
        return 0
    done = session.connection().execute(
        update(Delivery)
        .where(
            Delivery.id.in_(ids),
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.claimed_by == worker,
            Delivery.attempt_at.is_(None),
        )
        .values(status=DeliveryStatus.PENDING, claimed_by=None, claimed_at=None)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(done)


def expire_claims(
    session: Session,
    lease_seconds: float,
    template_grace_seconds: float,
    now: dt.datetime | None = None,
    owners: list[str] | None = None,
) -> tuple[int, int, int]:
    """Recover the claims of dead workers; returns (released, unconfirmed, resent).

    - Never tried → pending again (released).
    - Tried, answer lost, customer-service message → WeChat gives no receipt for these, so the request is
      taken as delivered with reason `unconfirmed`: a notice is never sent twice (unconfirmed).
    - Tried, answer lost, template message → WeChat pushes TEMPLATESENDJOBFINISH for every template
      message it accepted, and `record_template_event` settles the row when it comes. No event within
      `template_grace_seconds` means WeChat never took the request: the row goes back to pending and is
      sent again (resent) — reconciled against WeChat's own record, not blindly.
    `owners`: expire these workers' claims now, whatever their age (workers known to be dead).
    """
    now = now or utcnow()
    mine: ColumnElement[bool]
    if owners is not None:
        if not owners:
            return 0, 0, 0
        cutoff = now + dt.timedelta(seconds=1)
        mine = Delivery.claimed_by.in_(owners)
    else:
        cutoff = now - dt.timedelta(seconds=lease_seconds)
        mine = true()
    template_cutoff = min(cutoff, now - dt.timedelta(seconds=template_grace_seconds))
    released = session.execute(
        update(Delivery)
        .where(
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.attempt_at.is_(None),
            Delivery.claimed_at < cutoff,
            mine,
        )
        .values(status=DeliveryStatus.PENDING, claimed_by=None, claimed_at=None)
        .execution_options(synchronize_session=False)
    )
    unconfirmed = session.execute(
        update(Delivery)
        .where(
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.attempt_at.is_not(None),
            Delivery.attempt_at < cutoff,
            mine,
            or_(Delivery.channel.is_(None), Delivery.channel != "template"),
        )
        .values(status=DeliveryStatus.SENT, reason=UNCONFIRMED, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    resent = session.execute(
        update(Delivery)
        .where(
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.attempt_at.is_not(None),
            Delivery.attempt_at < template_cutoff,
            mine,
            Delivery.channel == "template",
        )
        .values(
            status=DeliveryStatus.PENDING,
            claimed_by=None,
            claimed_at=None,
            attempt_at=None,
            reason=NO_RECEIPT,
        )
        .execution_options(synchronize_session=False)
    )
    return _rowcount(released), _rowcount(unconfirmed), _rowcount(resent)


def set_channel(session: Session, delivery_id: int, worker: str, channel: str) -> None:
    """Record a change of channel before its request goes out (customer-service → template fallback)."""
    relaxed_commit(session)
    session.connection().execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.claimed_by == worker,
        )
        .values(channel=channel)
    )


def claim_owners(session: Session) -> list[str]:
    """The workers holding claims right now."""
    return list(
        session.scalars(
            select(Delivery.claimed_by)
            .where(Delivery.status == DeliveryStatus.SENDING, Delivery.claimed_by.is_not(None))
            .distinct()
        )
    )


def record_template_event(session: Session, openid: str, msgid: str | None, status: str) -> bool:
    """Apply WeChat's TEMPLATESENDJOBFINISH (`Status`: success / failed:user block / failed: system failed).

    Matched by MsgID; a template delivery to the same user whose answer was lost (msgid unknown) is
    matched by OpenID instead, which is how an unknown outcome gets reconciled. True when a row changed.
    """
    normalized = status.replace(" ", "").lower()
    if normalized == "success":
        new_status, reason = DeliveryStatus.SENT, "confirmed"
    elif "userblock" in normalized:
        new_status, reason = DeliveryStatus.FAILED, "user_block"
    else:
        new_status, reason = DeliveryStatus.FAILED, "system_failed"
    target = None
    if msgid:
        target = session.scalars(
            select(Delivery).where(Delivery.wechat_msgid == str(msgid), Delivery.openid == openid).limit(1)
        ).first()
    if target is None:
        target = session.scalars(
            select(Delivery)
            .where(
                Delivery.openid == openid,
                Delivery.status == DeliveryStatus.SENDING,
                Delivery.channel == "template",
                Delivery.attempt_at.is_not(None),
            )
            .order_by(Delivery.attempt_at.desc())
            .limit(1)
        ).first()
    if target is None:
        return False
    target.status = new_status
    target.reason = reason
    target.error_code = None
    if msgid:
        target.wechat_msgid = str(msgid)
    target.finished_at = target.finished_at or utcnow()
    return True


def mark_unsubscribed(session: Session, openid: str) -> None:
    """WeChat said 43004: the user no longer follows the account; no campaign sends to them again."""
    session.execute(
        update(WechatUser)
        .where(WechatUser.openid == openid, WechatUser.subscribed.is_(True))
        .values(subscribed=False, unsubscribed_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def finish_campaigns(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Close running or cancelled campaigns with nothing left pending or in flight; returns their ids."""
    now = now or utcnow()
    # A cancelled campaign's row can come back to pending (a template message WeChat never confirmed):
    # it is not sent again, it is skipped like the rest.
    session.execute(
        update(Delivery)
        .where(
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.campaign_id.in_(select(Campaign.id).where(Campaign.status == CampaignStatus.CANCELLED)),
        )
        .values(status=DeliveryStatus.SKIPPED, reason="cancelled", finished_at=now, claimed_by=None)
        .execution_options(synchronize_session=False)
    )
    open_rows = exists().where(
        Delivery.campaign_id == Campaign.id,
        Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING)),
    )
    ids = list(
        session.scalars(
            select(Campaign.id).where(
                Campaign.status.in_((CampaignStatus.RUNNING, CampaignStatus.CANCELLED)),
                Campaign.finished_at.is_(None),
                ~open_rows,
            )
        )
    )
    if ids:
        session.execute(
            update(Campaign)
            .where(Campaign.id.in_(ids), Campaign.status == CampaignStatus.RUNNING)
            .values(status=CampaignStatus.DONE, finished_at=now)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Campaign)
            .where(Campaign.id.in_(ids), Campaign.status == CampaignStatus.CANCELLED)
            .values(finished_at=now)
            .execution_options(synchronize_session=False)
        )
    return ids


def idle_campaigns_with_due_work(
    session: Session, idle_seconds: float, now: dt.datetime | None = None
) -> list[int]:
    """Running campaigns with due pending deliveries that no worker has claimed from lately.

    The sweep queues work for these: it is how a campaign continues after a lost broker message,
    a killed worker or a restart, without flooding the queue while workers are busy.
    """
    now = now or utcnow()
    recent = now - dt.timedelta(seconds=idle_seconds)
    busy = exists().where(
        Delivery.campaign_id == Campaign.id,
        Delivery.status == DeliveryStatus.SENDING,
        Delivery.claimed_at >= recent,
    )
    due = exists().where(
        Delivery.campaign_id == Campaign.id,
        Delivery.status == DeliveryStatus.PENDING,
        or_(Delivery.not_before.is_(None), Delivery.not_before <= now),
    )
    return list(
        session.scalars(
            select(Campaign.id)
            .where(Campaign.status == CampaignStatus.RUNNING, due, ~busy)
            .order_by(Campaign.id)
        )
    )


def next_due_in(
    session: Session, campaign_id: int | None = None, now: dt.datetime | None = None
) -> float | None:
    """Seconds until the earliest backed-off pending delivery is due (None when nothing is waiting)."""
    now = now or utcnow()
    query = (
        select(func.min(Delivery.not_before))
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(
            Delivery.status == DeliveryStatus.PENDING,
            Campaign.status == CampaignStatus.RUNNING,
            Delivery.not_before.is_not(None),
        )
    )
    if campaign_id is not None:
        query = query.where(Delivery.campaign_id == campaign_id)
    earliest = session.scalar(query)
    if earliest is None:
        return None
    return max(0.0, (earliest - now).total_seconds())
