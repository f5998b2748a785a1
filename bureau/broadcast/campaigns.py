"""Campaigns: publishing a job notice, staff controls (pause/resume/cancel) and the progress report.

A campaign's recipients are written into the delivery ledger when it is created (one row per OpenID,
unique per campaign), so the ledger alone says who still needs a message. The text and template fields
are rendered once, at publishing, and frozen in the campaign's payload: what staff published is what
every recipient gets, even if the posting is edited while the campaign runs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.orm import Session, aliased

from bureau import audit
from bureau.broadcast import hooks
from bureau.broadcast.ledger import UNCONFIRMED
from bureau.models import Campaign, CampaignStatus, Delivery, DeliveryStatus, JobPosting, JobStatus
from bureau.timeutil import local_today, utcnow


class CampaignError(ValueError):
    """A request staff cannot make (unknown campaign, closed job, wrong state); `str()` is for people."""


ERROR_LABELS: dict[str, str] = {
    "-1": "微信系统繁忙",
    "-2": "请求已发出但没有应答",
    "40001": "access_token 无效",
    "40003": "OpenID 无效",
    "40037": "模板ID无效",
    "42001": "access_token 过期",
    "43004": "用户已取消关注",
    "45009": "接口调用次数超限",
    "45015": "超出48小时客服消息时限",
    "45047": "客服消息条数已用完",
    "47001": "消息格式错误",
    "unsubscribed": "用户未关注或已取消关注",
    "cancelled": "活动已取消",
    "user_block": "用户拒收模板消息",
    "system_failed": "微信发送失败",
    UNCONFIRMED: "请求已发出、应答丢失，未重发",
    "too_many_attempts": "多次重试仍失败",
    "no_receipt": "微信未确认收到，已重发",
}


def _job_fields(job: JobPosting) -> dict[str, str]:
    from bureau.services.jobs import salary_text

    return {
        "title": job.title,
        "employer": job.employer,
        "place": job.township or "全县",
        "salary": salary_text(job),
        "category": job.category,
        "requirements": (job.requirements or "").strip(),
        "contact": (job.contact or "").strip(),
        "address": (job.address or "").strip(),
    }


def job_notice_text(fields: dict[str, str]) -> str:
    """The customer-service text of a job notice: short lines a 60-year-old reads easily on a phone."""
    lines = [
        "【新岗位】" + fields["title"],
        "单位：" + fields["employer"],
        "地点：" + fields["place"],
        "工资：" + fields["salary"],
    ]
    if fields.get("requirements"):
        lines.append("要求：" + fields["requirements"][:80])
    if fields.get("contact"):
        lines.append("联系：" + fields["contact"])
    lines.append("回复“找工作”看更多岗位，回复“退订”不再接收。")
    return "\n".join(lines)


def _recipients_select(session: Session, job: JobPosting) -> Any:
    from bureau.services.jobs import matching_subscribers

    return matching_subscribers(session, job)


def publish_job(session: Session, job_id: int, actor: str = "system", enqueue: bool = True) -> Campaign:
    """Publish a job posting and create its notice campaign (idempotent: one live campaign per job).

    Recipients: following users whose subscription matches the job's category and township (a NULL
    preference matches anything; see `bureau.services.jobs.matching_subscribers`). The workers are
    told to start once the caller's transaction commits.
    """
    # The UPDATE takes the job's row lock (PostgreSQL) or the write lock (SQLite) first, so two staff
    # publishing the same job at once cannot both create a campaign.
    now = utcnow()
    touched = session.execute(
        update(JobPosting)
        .where(JobPosting.id == job_id)
        .values(published_at=func.coalesce(JobPosting.published_at, now))
    )
    job = session.get(JobPosting, job_id)
    if job is None or not getattr(touched, "rowcount", 0):
        raise CampaignError(f"没有编号为 {job_id} 的岗位。")
    session.refresh(job)
    if job.status == JobStatus.CLOSED:
        raise CampaignError(f"岗位 {job_id}「{job.title}」已关闭，不能发布。")
    if job.valid_until is not None and job.valid_until < local_today():
        raise CampaignError(f"岗位 {job_id}「{job.title}」已过有效期（{job.valid_until}），不能发布。")
    existing = session.scalars(
        select(Campaign)
        .where(Campaign.kind == "job", Campaign.job_id == job_id, Campaign.status != CampaignStatus.CANCELLED)
        .order_by(Campaign.id)
        .limit(1)
    ).first()
    if existing is not None:
        return existing
    if job.status != JobStatus.OPEN:
        job.status = JobStatus.OPEN
    fields = _job_fields(job)
    campaign = Campaign(
        kind="job",
        job_id=job.id,
        title=f"岗位通知：{job.title}"[:200],
        payload={"text": job_notice_text(fields), "fields": fields},
        status=CampaignStatus.RUNNING,
        created_by=actor,
        started_at=now,
    )
    session.add(campaign)
    session.flush()
    recipients = _recipients_select(session, job).subquery()
    # Re-publishing after a cancel must not tell anyone twice: skip users an earlier campaign reached.
    earlier = aliased(Delivery)
    already_told = (
        select(earlier.id)
        .join(Campaign, Campaign.id == earlier.campaign_id)
        .where(
            Campaign.job_id == job.id,
            earlier.openid == recipients.c.openid,
            earlier.status.in_((DeliveryStatus.SENT, DeliveryStatus.SENDING)),
        )
        .exists()
    )
    session.execute(
        insert(Delivery).from_select(
            ["campaign_id", "openid", "status", "attempts", "updated_at"],
            select(
                literal(campaign.id),
                recipients.c.openid,
                literal(DeliveryStatus.PENDING),
                literal(0),
                literal(now),
            ).where(~already_told),
        )
    )
    count = session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.campaign_id == campaign.id)
    )
    if not count:  # nobody to tell: the campaign is complete at once
        campaign.status = CampaignStatus.DONE
        campaign.finished_at = now
    audit.record(
        session, actor, "publish", "campaign", campaign.id, after={"job_id": job.id, "recipients": count}
    )
    if enqueue and count:
        hooks.enqueue_after_commit(session, campaign.id)
    return campaign


def _get(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id, with_for_update=True)
    if campaign is None:
        raise CampaignError(f"没有编号为 {campaign_id} 的发送任务。")
    return campaign


_STATUS_LABELS = {
    CampaignStatus.RUNNING: "发送中",
    CampaignStatus.PAUSED: "已暂停",
    CampaignStatus.CANCELLED: "已取消",
    CampaignStatus.DONE: "已完成",
}


def pause(session: Session, campaign_id: int, actor: str = "system") -> Campaign:
    """Stop handing out new deliveries; messages already on their way finish."""
    campaign = _get(session, campaign_id)
    if campaign.status != CampaignStatus.RUNNING:
        raise CampaignError(
            f"发送任务 {campaign_id} {_STATUS_LABELS.get(campaign.status, campaign.status)}，不能暂停。"
        )
    campaign.status = CampaignStatus.PAUSED
    audit.record(session, actor, "pause", "campaign", campaign_id)
    return campaign


def resume(session: Session, campaign_id: int, actor: str = "system", enqueue: bool = True) -> Campaign:
    """Continue a paused campaign where it stopped."""
    campaign = _get(session, campaign_id)
    if campaign.status != CampaignStatus.PAUSED:
        raise CampaignError(
            f"发送任务 {campaign_id} {_STATUS_LABELS.get(campaign.status, campaign.status)}，不能继续。"
        )
    campaign.status = CampaignStatus.RUNNING
    audit.record(session, actor, "resume", "campaign", campaign_id)
    if enqueue:
        hooks.enqueue_after_commit(session, campaign_id)
    return campaign


def cancel(session: Session, campaign_id: int, actor: str = "system") -> Campaign:
    """Stop for good: every delivery not yet attempted is skipped with reason `cancelled`."""
    campaign = _get(session, campaign_id)
    if campaign.status in (CampaignStatus.CANCELLED, CampaignStatus.DONE):
        raise CampaignError(f"发送任务 {campaign_id} {_STATUS_LABELS[campaign.status]}，不能取消。")
    now = utcnow()
    campaign.status = CampaignStatus.CANCELLED
    skipped = session.execute(
        update(Delivery)
        .where(
            Delivery.campaign_id == campaign_id,
            (Delivery.status == DeliveryStatus.PENDING)
            | ((Delivery.status == DeliveryStatus.SENDING) & Delivery.attempt_at.is_(None)),
        )
        .values(status=DeliveryStatus.SKIPPED, reason="cancelled", finished_at=now, claimed_by=None)
        .execution_options(synchronize_session=False)
    )
    in_flight = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.SENDING)
    )
    if not in_flight:
        campaign.finished_at = now
    audit.record(
        session,
        actor,
        "cancel",
        "campaign",
        campaign_id,
        after={"skipped": int(getattr(skipped, "rowcount", 0) or 0)},
    )
    return campaign


@dataclass
class CampaignReport:
    """What staff see of a campaign (`to_dict()` is the console's JSON for the live progress bar)."""

    id: int
    kind: str
    title: str
    status: str
    status_label: str
    job_id: int | None
    recipients: int
    pending: int
    in_flight: int
    sent: int
    failed: int
    skipped: int
    unconfirmed: int
    by_channel: dict[str, int] = field(default_factory=dict)
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    elapsed_seconds: float | None = None
    send_seconds: float | None = None
    rate: float | None = None  # messages sent per second while sending

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped

    @property
    def progress(self) -> float:
        return 1.0 if not self.recipients else self.done / self.recipients

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("created_at", "started_at", "finished_at"):
            value = data[key]
            data[key] = value.isoformat() if value else None
        data["done"] = self.done
        data["progress"] = round(self.progress, 4)
        return data


def _label(code: int | None, reason: str | None) -> str:
    key = str(code) if code is not None else (reason or "unknown")
    label = ERROR_LABELS.get(key) or ERROR_LABELS.get(reason or "", "")
    return f"{key} {label}".strip() if code is not None else (f"{label}（{reason}）" if label else key)


def report(session: Session, campaign_id: int, now: dt.datetime | None = None) -> CampaignReport:
    """Counts by status, failures by WeChat error, skips by reason, elapsed time and achieved rate."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignError(f"没有编号为 {campaign_id} 的发送任务。")
    now = now or utcnow()
    counts: dict[str, int] = {
        str(k): int(v)
        for k, v in session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.campaign_id == campaign_id)
            .group_by(Delivery.status)
        ).all()
    }
    by_channel: dict[str, int] = {
        str(k): int(v)
        for k, v in session.execute(
            select(Delivery.channel, func.count())
            .where(Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.SENT)
            .group_by(Delivery.channel)
        ).all()
    }
    failed_by: dict[str, int] = {}
    skipped_by: dict[str, int] = {}
    for status, code, reason, n in session.execute(
        select(Delivery.status, Delivery.error_code, Delivery.reason, func.count())
        .where(
            Delivery.campaign_id == campaign_id,
            Delivery.status.in_((DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)),
        )
        .group_by(Delivery.status, Delivery.error_code, Delivery.reason)
    ).all():
        target = failed_by if status == DeliveryStatus.FAILED else skipped_by
        label = _label(code if status == DeliveryStatus.FAILED else None, reason)
        target[label] = target.get(label, 0) + int(n)
    unconfirmed = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.campaign_id == campaign_id,
            Delivery.status == DeliveryStatus.SENT,
            Delivery.reason == UNCONFIRMED,
        )
    )
    first_attempt, last_outcome = session.execute(
        select(func.min(Delivery.attempt_at), func.max(Delivery.finished_at)).where(
            Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.SENT
        )
    ).one()
    sent = int(counts.get(DeliveryStatus.SENT, 0))
    send_seconds = rate = None
    if first_attempt is not None and last_outcome is not None and sent:
        send_seconds = max((last_outcome - first_attempt).total_seconds(), 0.001)
        rate = round(sent / send_seconds, 2)
        send_seconds = round(send_seconds, 2)
    started = campaign.started_at or campaign.created_at
    end = campaign.finished_at or (
        now if campaign.status == CampaignStatus.RUNNING else (last_outcome or now)
    )
    elapsed = round((end - started).total_seconds(), 2) if started else None
    return CampaignReport(
        id=campaign.id,
        kind=campaign.kind,
        title=campaign.title,
        status=campaign.status,
        status_label=_STATUS_LABELS.get(campaign.status, campaign.status),
        job_id=campaign.job_id,
        recipients=int(sum(counts.values())),
        pending=int(counts.get(DeliveryStatus.PENDING, 0)),
        in_flight=int(counts.get(DeliveryStatus.SENDING, 0)),
        sent=sent,
        failed=int(counts.get(DeliveryStatus.FAILED, 0)),
        skipped=int(counts.get(DeliveryStatus.SKIPPED, 0)),
        unconfirmed=int(unconfirmed or 0),
        by_channel=by_channel,
        failed_by_reason=failed_by,
        skipped_by_reason=skipped_by,
        created_at=campaign.created_at,
        started_at=campaign.started_at,
        finished_at=campaign.finished_at,
        elapsed_seconds=elapsed,
        send_seconds=send_seconds,
        rate=rate,
    )


def format_report(rep: CampaignReport) -> str:
    """The report as plain text for `flask jobs campaign ID`."""
    from bureau.timeutil import format_local

    lines = [
        f"发送任务 {rep.id}：{rep.title}",
        f"状态：{rep.status_label}    进度：{rep.done}/{rep.recipients}（{rep.progress:.0%}）",
        f"收件人 {rep.recipients}  已发送 {rep.sent}  失败 {rep.failed}  跳过 {rep.skipped}  "
        f"待发 {rep.pending}  发送中 {rep.in_flight}",
    ]
    if rep.by_channel:
        names = {"custom": "客服消息", "template": "模板消息"}
        lines.append(
            "渠道：" + "  ".join(f"{names.get(k, k)} {v}" for k, v in sorted(rep.by_channel.items()))
        )
    if rep.unconfirmed:
        lines.append(f"其中 {rep.unconfirmed} 条请求已发出但应答丢失，按已发送计，未重发。")
    for title, reasons in (("失败原因", rep.failed_by_reason), ("跳过原因", rep.skipped_by_reason)):
        if reasons:
            lines.append(title + "：" + "；".join(f"{k} × {v}" for k, v in sorted(reasons.items())))
    if rep.started_at:
        lines.append(
            f"开始：{format_local(rep.started_at)}"
            + (f"  结束：{format_local(rep.finished_at)}" if rep.finished_at else "")
        )
    if rep.elapsed_seconds is not None:
        lines.append(f"用时：{rep.elapsed_seconds:.1f} 秒")
    if rep.rate is not None:
        lines.append(f"发送速率：{rep.rate:.1f} 条/秒（{rep.send_seconds:.1f} 秒内发出 {rep.sent} 条）")
    return "\n".join(lines)
