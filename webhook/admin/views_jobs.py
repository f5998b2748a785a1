"""Job postings (create, edit, close, publish to subscribers) and broadcast campaigns."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bureau import audit, idcard
from bureau.models import TOWNSHIPS, Campaign, Delivery, JobPosting, JobStatus
from webhook.admin import bp
from webhook.admin.paging import paginate
from webhook.admin.security import actor_name, roles_required
from webhook.admin.services import ServiceMissing, service
from webhook.database import get_db

JOB_FIELDS = (
    "title",
    "employer",
    "township",
    "category",
    "salary_min",
    "salary_max",
    "requirements",
    "description",
    "contact",
    "address",
    "valid_until",
    "status",
)
JOB_STATUS = {JobStatus.DRAFT: "草稿", JobStatus.OPEN: "招聘中", JobStatus.CLOSED: "已结束"}
JOB_CATEGORIES = (
    "保安",
    "司机",
    "物流",
    "制造",
    "建筑",
    "餐饮",
    "销售",
    "文员",
    "技工",
    "农业",
    "护理",
    "其他",
)
CAMPAIGN_KINDS = {
    "job": "招聘推送",
    "certificate": "优待证通知",
    "booking_reminder": "预约提醒",
    "case_answer": "法律援助答复",
    "handoff_answer": "人工回复",
    "crisis_duty": "危机值班提醒",
}


def _job_form(job: JobPosting | None) -> tuple[dict[str, Any], list[str]]:
    form = request.form
    errors: list[str] = []
    values: dict[str, Any] = {}
    for name in ("title", "employer", "category", "requirements", "description", "contact", "address"):
        values[name] = form.get(name, "").strip() or None
    values["township"] = form.get("township") or None
    if not values["title"]:
        errors.append("请填写岗位名称")
    if not values["employer"]:
        errors.append("请填写用人单位")
    if not values["category"]:
        errors.append("请选择岗位类别")
    if values["township"] is not None and values["township"] not in TOWNSHIPS:
        errors.append("乡镇不对")
    for name, label in (("salary_min", "最低月薪"), ("salary_max", "最高月薪")):
        raw = form.get(name, "").strip()
        if not raw:
            values[name] = None
        elif raw.isdigit() and int(raw) < 1_000_000:
            values[name] = int(raw)
        else:
            errors.append(f"{label}请填数字（元）")
            values[name] = raw
    if isinstance(values.get("salary_min"), int) and isinstance(values.get("salary_max"), int):
        if values["salary_min"] > values["salary_max"]:
            errors.append("最低月薪不能高于最高月薪")
    raw_until = form.get("valid_until", "").strip()
    try:
        values["valid_until"] = dt.date.fromisoformat(raw_until) if raw_until else None
    except ValueError:
        errors.append("截止日期格式不对")
        values["valid_until"] = None
    for name, limit in (
        ("title", 100),
        ("employer", 100),
        ("category", 20),
        ("contact", 100),
        ("address", 200),
    ):
        if values[name] and len(values[name]) > limit:
            errors.append(f"内容太长了（最多{limit}字）")
    return values, errors


@bp.get("/jobs")
@roles_required("clerk")
def jobs() -> Any:
    db = get_db()
    status = request.args.get("status", "")
    q = request.args.get("q", "").strip()
    query = select(JobPosting)
    if status in JOB_STATUS:
        query = query.where(JobPosting.status == status)
    if q:
        query = query.where(JobPosting.title.contains(q) | JobPosting.employer.contains(q))
    page = paginate(db, query.order_by(JobPosting.created_at.desc(), JobPosting.id.desc()))
    return render_template("admin/jobs.html", page=page, status=status, q=q, labels=JOB_STATUS)


@bp.route("/jobs/new", methods=["GET", "POST"])
@roles_required("clerk")
def job_new() -> Any:
    db = get_db()
    values: dict[str, Any] = {}
    errors: list[str] = []
    if request.method == "POST":
        values, errors = _job_form(None)
        if not errors:
            job = JobPosting(status=JobStatus.DRAFT, **values)
            db.add(job)
            db.flush()
            audit.record(
                db, actor_name(), "create", "job_posting", job.id, None, audit.snapshot(job, JOB_FIELDS)
            )
            db.commit()
            flash("岗位已保存为草稿。核对无误后，点“发布并推送”。", "ok")
            return redirect(url_for("admin.job_detail", job_id=job.id))
    return render_template(
        "admin/job_form.html",
        job=None,
        values=values,
        errors=errors,
        townships=TOWNSHIPS,
        categories=JOB_CATEGORIES,
    )


def _matching_count(db: Session, job: JobPosting) -> int | None:
    try:
        matching = service("services.jobs:matching_subscribers")
    except ServiceMissing:
        return None
    return int(db.scalar(select(func.count()).select_from(matching(db, job).order_by(None).subquery())) or 0)


@bp.get("/jobs/<int:job_id>")
@roles_required("clerk")
def job_detail(job_id: int) -> Any:
    db = get_db()
    job = db.get(JobPosting, job_id) or abort(404)
    campaigns = db.scalars(
        select(Campaign).where(Campaign.job_id == job.id).order_by(Campaign.id.desc())
    ).all()
    return render_template(
        "admin/job_detail.html",
        job=job,
        labels=JOB_STATUS,
        matching=_matching_count(db, job),
        campaigns=campaigns,
    )


@bp.route("/jobs/<int:job_id>/edit", methods=["GET", "POST"])
@roles_required("clerk")
def job_edit(job_id: int) -> Any:
    db = get_db()
    job = db.get(JobPosting, job_id) or abort(404)
    values = audit.snapshot(job, JOB_FIELDS)
    values["valid_until"] = job.valid_until
    errors: list[str] = []
    if request.method == "POST":
        values, errors = _job_form(job)
        if not errors:
            before = audit.snapshot(job, JOB_FIELDS)
            for key, value in values.items():
                setattr(job, key, value)
            audit.record(
                db,
                actor_name(),
                "update",
                "job_posting",
                job.id,
                *audit.changed(before, audit.snapshot(job, JOB_FIELDS)),
            )
            db.commit()
            flash("已保存。", "ok")
            return redirect(url_for("admin.job_detail", job_id=job.id))
    return render_template(
        "admin/job_form.html",
        job=job,
        values=values,
        errors=errors,
        townships=TOWNSHIPS,
        categories=JOB_CATEGORIES,
    )


@bp.post("/jobs/<int:job_id>/close")
@roles_required("clerk")
def job_close(job_id: int) -> Any:
    db = get_db()
    job = db.get(JobPosting, job_id) or abort(404)
    before = audit.snapshot(job, ("status",))
    job.status = JobStatus.CLOSED
    audit.record(db, actor_name(), "close", "job_posting", job.id, before, audit.snapshot(job, ("status",)))
    db.commit()
    flash("岗位已结束招聘，机器人不再推荐它。", "ok")
    return redirect(url_for("admin.job_detail", job_id=job.id))


@bp.post("/jobs/<int:job_id>/publish")
@roles_required("clerk")
def job_publish(job_id: int) -> Any:
    """Open the posting and start its notice campaign (the broadcast sends once this commits)."""
    db = get_db()
    job = db.get(JobPosting, job_id) or abort(404)
    before = audit.snapshot(job, ("status", "published_at"))
    try:
        campaign = service("broadcast.campaigns:publish_job")(db, job.id, actor_name())
    except ServiceMissing as exc:
        db.rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.job_detail", job_id=job_id))
    except ValueError as exc:  # CampaignError: closed, expired, unknown — explained in Chinese
        db.rollback()
        flash(f"没有发布：{exc}", "error")
        return redirect(url_for("admin.job_detail", job_id=job_id))
    db.flush()
    db.refresh(job)
    after = audit.snapshot(job, ("status", "published_at"))
    if after != before:
        audit.record(db, actor_name(), "publish", "job_posting", job.id, before, after)
    db.commit()
    flash("已发布，正在推送给订阅的战友。", "ok")
    return redirect(url_for("admin.campaign_detail", campaign_id=campaign.id))


# ---------------------------------------------------------------- campaigns


def campaign_progress(db: Session, campaign_id: int) -> dict[str, Any]:
    """The broadcast's report of a campaign as JSON-ready data, with a whole-number percent."""
    data: dict[str, Any] = service("broadcast.campaigns:report")(db, campaign_id).to_dict()
    data["percent"] = int(round(100 * float(data["progress"])))
    data["title"] = idcard.redact(str(data.get("title") or ""))
    return data


@bp.get("/campaigns")
@roles_required("clerk")
def campaigns() -> Any:
    db = get_db()
    kind = request.args.get("kind", "job")
    query = select(Campaign)
    if kind in CAMPAIGN_KINDS:
        query = query.where(Campaign.kind == kind)
    page = paginate(db, query.order_by(Campaign.created_at.desc(), Campaign.id.desc()))
    counts: dict[int, dict[str, int]] = {c.id: {} for c in page.items}
    if counts:
        for campaign_id, status, n in db.execute(
            select(Delivery.campaign_id, Delivery.status, func.count())
            .where(Delivery.campaign_id.in_(list(counts)))
            .group_by(Delivery.campaign_id, Delivery.status)
        ):
            counts[campaign_id][status] = int(n)
    return render_template("admin/campaigns.html", page=page, kind=kind, kinds=CAMPAIGN_KINDS, counts=counts)


@bp.get("/campaigns/<int:campaign_id>")
@roles_required("clerk")
def campaign_detail(campaign_id: int) -> Any:
    db = get_db()
    campaign = db.get(Campaign, campaign_id) or abort(404)
    job = db.get(JobPosting, campaign.job_id) if campaign.job_id else None
    return render_template(
        "admin/campaign_detail.html",
        c=campaign,
        job=job,
        p=campaign_progress(db, campaign.id),
        kinds=CAMPAIGN_KINDS,
    )


@bp.get("/campaigns/<int:campaign_id>/progress.json")
@roles_required("clerk")
def campaign_progress_json(campaign_id: int) -> Any:
    db = get_db()
    if db.get(Campaign, campaign_id) is None:
        abort(404)
    return jsonify(campaign_progress(db, campaign_id))


@bp.post("/campaigns/<int:campaign_id>/<any(pause,resume,cancel):action>")
@roles_required("clerk")
def campaign_action(campaign_id: int, action: str) -> Any:
    """Pause, resume or cancel (the broadcast service checks the state and writes the audit row)."""
    db = get_db()
    campaign = db.get(Campaign, campaign_id) or abort(404)
    back = redirect(url_for("admin.campaign_detail", campaign_id=campaign.id))
    try:
        service(f"broadcast.campaigns:{action}")(db, campaign.id, actor_name())
    except ServiceMissing as exc:
        db.rollback()
        flash(str(exc), "error")
        return back
    except ValueError as exc:
        db.rollback()
        flash(f"操作没有完成：{exc}", "error")
        return back
    db.commit()
    flash(
        {"pause": "已暂停推送。", "resume": "已继续推送。", "cancel": "已取消，剩下的不再发送。"}[action],
        "ok",
    )
    return back
