"""Campaign creation (who is told about a job), staff controls and the report — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from bureau.broadcast import campaigns
from bureau.broadcast.campaigns import CampaignError
from bureau.models import AuditLog, Campaign, CampaignStatus, Delivery, DeliveryStatus, JobPosting, JobStatus
from bureau.timeutil import utcnow
from tests.broadcast.conftest import add_job, add_user


def _recipients(session, campaign_id: int) -> set[str]:
    return set(session.scalars(select(Delivery.openid).where(Delivery.campaign_id == campaign_id)))


def test_publish_tells_exactly_the_matching_followers(session_factory):
    with session_factory.begin() as s:
        add_user(s, "any", subscriptions=[(None, None)])
        add_user(s, "cat", subscriptions=[("保安", None)])
        add_user(s, "town", subscriptions=[(None, "双城镇")])
        add_user(s, "both", subscriptions=[("保安", "双城镇")])
        add_user(s, "twice", subscriptions=[("保安", None), (None, "双城镇"), ("司机", "富溪镇")])
        add_user(s, "other_cat", subscriptions=[("司机", None)])
        add_user(s, "other_town", subscriptions=[(None, "富溪镇")])
        add_user(s, "left", subscribed=False, subscriptions=[(None, None)])
        add_user(s, "no_subscription")
        job = add_job(s, status=JobStatus.DRAFT)
        job_id = job.id
    with session_factory.begin() as s:
        campaign = campaigns.publish_job(s, job_id, actor="clerk1")
        cid = campaign.id
    with session_factory.begin() as s:
        assert _recipients(s, cid) == {"any", "cat", "town", "both", "twice"}
        rows = s.scalars(select(Delivery).where(Delivery.campaign_id == cid)).all()
        assert {r.status for r in rows} == {DeliveryStatus.PENDING}
        campaign = s.get(Campaign, cid)
        assert (
            campaign.kind == "job" and campaign.job_id == job_id and campaign.status == CampaignStatus.RUNNING
        )
        assert "保安员" in campaign.payload["text"] and "3000-4000元/月" in campaign.payload["text"]
        assert campaign.payload["fields"]["place"] == "双城镇"
        job = s.get(JobPosting, job_id)
        assert job.status == JobStatus.OPEN and job.published_at is not None
        assert s.scalars(select(AuditLog).where(AuditLog.entity == "campaign")).one().actor == "clerk1"


def test_publishing_twice_creates_no_second_campaign(session_factory):
    with session_factory.begin() as s:
        add_user(s, "u1", subscriptions=[(None, None)])
        job_id = add_job(s).id
    with session_factory.begin() as s:
        first = campaigns.publish_job(s, job_id).id
    with session_factory.begin() as s:
        second = campaigns.publish_job(s, job_id).id
    assert first == second
    with session_factory.begin() as s:
        assert len(s.scalars(select(Delivery).where(Delivery.openid == "u1")).all()) == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"status": JobStatus.CLOSED}, "已关闭"),
        ({"valid_until": dt.date(2020, 1, 1)}, "已过有效期"),
    ],
)
def test_closed_or_expired_jobs_are_refused_with_a_clear_reason(session_factory, change, message):
    with session_factory.begin() as s:
        job_id = add_job(s, **change).id
    with pytest.raises(CampaignError, match=message), session_factory.begin() as s:
        campaigns.publish_job(s, job_id)
    with session_factory.begin() as s:
        assert s.scalars(select(Campaign)).all() == []


def test_unknown_job_is_refused(session_factory):
    with pytest.raises(CampaignError, match="没有编号为 999 的岗位"), session_factory.begin() as s:
        campaigns.publish_job(s, 999)


def test_a_job_nobody_wants_is_done_at_once(session_factory):
    with session_factory.begin() as s:
        add_user(s, "driver", subscriptions=[("司机", None)])
        job_id = add_job(s).id
    with session_factory.begin() as s:
        cid = campaigns.publish_job(s, job_id).id
    with session_factory.begin() as s:
        rep = campaigns.report(s, cid)
        assert rep.recipients == 0 and rep.status == CampaignStatus.DONE and rep.progress == 1.0


def _campaign_with(session_factory, n: int) -> int:
    with session_factory.begin() as s:
        for i in range(n):
            add_user(s, f"u{i:03d}", subscriptions=[(None, None)])
        job_id = add_job(s).id
    with session_factory.begin() as s:
        return campaigns.publish_job(s, job_id).id


def test_pause_resume_cancel_transitions(session_factory):
    cid = _campaign_with(session_factory, 5)
    with session_factory.begin() as s:
        campaigns.pause(s, cid, actor="clerk1")
    with pytest.raises(CampaignError, match="已暂停，不能暂停"), session_factory.begin() as s:
        campaigns.pause(s, cid)
    with session_factory.begin() as s:
        campaigns.resume(s, cid)
    with pytest.raises(CampaignError, match="发送中，不能继续"), session_factory.begin() as s:
        campaigns.resume(s, cid)
    with session_factory.begin() as s:
        # one delivery already on its way: cancel leaves it to finish
        d = s.scalars(select(Delivery).where(Delivery.campaign_id == cid).order_by(Delivery.id)).first()
        d.status, d.claimed_by, d.attempt_at, d.claimed_at = DeliveryStatus.SENDING, "w1", utcnow(), utcnow()
    with session_factory.begin() as s:
        campaigns.cancel(s, cid, actor="clerk2")
    with session_factory.begin() as s:
        rep = campaigns.report(s, cid)
        assert rep.status == CampaignStatus.CANCELLED
        assert rep.skipped == 4 and rep.in_flight == 1
        assert rep.skipped_by_reason == {"活动已取消（cancelled）": 4}
        assert s.get(Campaign, cid).finished_at is None  # not finished while a message is in flight
    with pytest.raises(CampaignError, match="已取消，不能取消"), session_factory.begin() as s:
        campaigns.cancel(s, cid)
    with pytest.raises(CampaignError, match="没有编号为 42 的发送任务"), session_factory.begin() as s:
        campaigns.pause(s, 42)


def test_report_counts_reasons_elapsed_and_rate(session_factory):
    cid = _campaign_with(session_factory, 6)
    t0 = utcnow() - dt.timedelta(seconds=10)
    outcomes = [
        (DeliveryStatus.SENT, "custom", None, None),
        (DeliveryStatus.SENT, "template", None, None),
        (DeliveryStatus.SENT, "template", None, "unconfirmed"),
        (DeliveryStatus.FAILED, "template", 40037, "invalid template_id"),
        (DeliveryStatus.SKIPPED, "custom", 43004, "unsubscribed"),
        (DeliveryStatus.PENDING, None, None, None),
    ]
    with session_factory.begin() as s:
        rows = s.scalars(select(Delivery).where(Delivery.campaign_id == cid).order_by(Delivery.id)).all()
        for i, (row, (status, channel, code, reason)) in enumerate(zip(rows, outcomes, strict=True)):
            row.status, row.channel, row.error_code, row.reason = status, channel, code, reason
            if status != DeliveryStatus.PENDING:
                row.attempt_at = t0 + dt.timedelta(seconds=i)
                row.finished_at = t0 + dt.timedelta(seconds=i, milliseconds=500)
    with session_factory.begin() as s:
        rep = campaigns.report(s, cid)
    assert (rep.recipients, rep.sent, rep.failed, rep.skipped, rep.pending) == (6, 3, 1, 1, 1)
    assert rep.unconfirmed == 1
    assert rep.by_channel == {"custom": 1, "template": 2}
    assert rep.failed_by_reason == {"40037 模板ID无效": 1}
    assert rep.skipped_by_reason == {"用户未关注或已取消关注（unsubscribed）": 1}
    assert rep.send_seconds == 2.5 and rep.rate == 1.2
    assert rep.elapsed_seconds is not None and rep.elapsed_seconds >= 0
    data = rep.to_dict()
    assert data["progress"] == round(5 / 6, 4) and data["done"] == 5
    text = campaigns.format_report(rep)
    assert "收件人 6  已发送 3  失败 1  跳过 1" in text and "40037 模板ID无效 × 1" in text


def test_republishing_after_cancel_tells_only_those_not_yet_told(session_factory):
    cid = _campaign_with(session_factory, 4)
    with session_factory.begin() as s:
        rows = s.scalars(select(Delivery).where(Delivery.campaign_id == cid).order_by(Delivery.id)).all()
        rows[0].status, rows[0].channel = DeliveryStatus.SENT, "template"
        job_id = s.get(Campaign, cid).job_id
    with session_factory.begin() as s:
        campaigns.cancel(s, cid)
    with session_factory.begin() as s:
        again = campaigns.publish_job(s, job_id).id
    assert again != cid
    with session_factory.begin() as s:
        assert _recipients(s, again) == {"u001", "u002", "u003"}


def test_a_cancelled_campaigns_returning_rows_are_skipped_not_sent(session_factory):
    from bureau.broadcast import ledger

    cid = _campaign_with(session_factory, 2)
    with session_factory.begin() as s:
        campaigns.cancel(s, cid)
    with session_factory.begin() as s:  # e.g. an unconfirmed template message put back to pending
        s.scalars(select(Delivery).where(Delivery.campaign_id == cid)).first().status = DeliveryStatus.PENDING
    with session_factory.begin() as s:
        ledger.finish_campaigns(s)
    with session_factory.begin() as s:
        rep = campaigns.report(s, cid)
    assert (rep.skipped, rep.pending, rep.status) == (2, 0, "cancelled")
