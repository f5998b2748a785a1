"""One-to-one notifications (优待证 status, booking reminders, case answers) through the broadcast ledger.

A notification is a campaign with one recipient: the same ledger, channel choice, rate limit, retries
and exactly-once guarantee as a job broadcast. `notify_user` only records it; the broadcast worker
(bureau.broadcast) sends it once the caller's transaction has committed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bureau.models import Campaign, CampaignStatus, Delivery, DeliveryStatus

NOTIFICATION_KINDS = ("certificate", "booking_reminder", "case_answer", "handoff_answer", "crisis_duty")


def notify_user(
    session: Session,
    openid: str,
    kind: str,
    text: str,
    template_fields: dict[str, Any] | None = None,
    created_by: str | None = None,
) -> Campaign:
    """Record a message for one user; it is delivered by the broadcast worker after commit.

    `text` is what a customer-service message says; `template_fields` fill the template message used
    when the user is outside the 48-hour window.
    """
    if kind not in NOTIFICATION_KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    campaign = Campaign(
        kind=kind,
        title=text[:200],
        payload={"text": text, "template_fields": template_fields or {}},
        status=CampaignStatus.RUNNING,
        created_by=created_by,
    )
    session.add(campaign)
    session.flush()
    session.add(Delivery(campaign_id=campaign.id, openid=openid, status=DeliveryStatus.PENDING))
    session.flush()
    # Broadcast: queue the sending once the caller commits (never inside its transaction).
    from bureau.broadcast.hooks import enqueue_after_commit

    enqueue_after_commit(session, campaign.id, lanes=1)
    return campaign
