"""Work queues: 优待证 applications, legal-aid cases, handoff tickets, crisis alerts, hardship aid."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from bureau import audit
from bureau.models import (
    TOWNSHIPS,
    CaseStatus,
    CertificateApplication,
    CertificateStatus,
    Counselor,
    CrisisAlert,
    HandoffTicket,
    HardshipApplication,
    LegalCase,
    MessageLog,
    StaffUser,
    Veteran,
)
from bureau.timeutil import utcnow
from webhook.admin import bp
from webhook.admin.paging import paginate
from webhook.admin.security import actor_name, has_role, roles_required
from webhook.admin.services import ServiceMissing, service
from webhook.database import get_db

ACTION_LABELS = {
    CertificateStatus.UNDER_REVIEW: "开始审核",
    CertificateStatus.APPROVED: "审核通过",
    CertificateStatus.READY: "证已制好，通知领取",
    CertificateStatus.REJECTED: "不予通过",
}
CASE_FIELDS = ("status", "counselor_id", "answer")
TICKET_FIELDS = ("status", "assigned_to", "answer")
HARDSHIP_STATUSES = {CaseStatus.OPEN: "待处理", CaseStatus.ASSIGNED: "核实中", CaseStatus.CLOSED: "已办结"}


# ---------------------------------------------------------------- 优待证 applications


@bp.get("/applications")
@roles_required("clerk")
def applications() -> Any:
    db = get_db()
    status = request.args.get("status", "open")
    township = request.args.get("township", "")
    q = request.args.get("q", "").strip()
    query = select(CertificateApplication).join(Veteran)
    if status == "open":
        query = query.where(CertificateApplication.status.in_(CertificateStatus.OPEN))
    elif status in CertificateStatus.LABELS:
        query = query.where(CertificateApplication.status == status)
    if township in TOWNSHIPS:
        query = query.where(CertificateApplication.township == township)
    if q:
        query = query.where(Veteran.name.contains(q))
    page = paginate(db, query.order_by(CertificateApplication.created_at.asc(), CertificateApplication.id))
    return render_template(
        "admin/applications.html",
        page=page,
        status=status,
        township=township,
        q=q,
        statuses=CertificateStatus.LABELS,
        townships=TOWNSHIPS,
    )


@bp.get("/applications/<int:app_id>")
@roles_required("clerk")
def application_detail(app_id: int) -> Any:
    db = get_db()
    application = db.get(CertificateApplication, app_id) or abort(404)
    actions = [(s, ACTION_LABELS[s]) for s in CertificateStatus.TRANSITIONS.get(application.status, ())]
    return render_template("admin/application_detail.html", a=application, actions=actions)


@bp.post("/applications/<int:app_id>/status")
@roles_required("clerk")
def application_status(app_id: int) -> Any:
    """Move an application on; the certificate service records the event and notifies the applicant."""
    db = get_db()
    application = db.get(CertificateApplication, app_id) or abort(404)
    to_status = request.form.get("to_status", "")
    reason = request.form.get("reason", "").strip()[:500] or None
    if to_status not in CertificateStatus.TRANSITIONS.get(application.status, ()):
        flash("这份申请现在不能做这个操作，请刷新页面看看最新状态。", "error")
        return redirect(url_for("admin.application_detail", app_id=app_id))
    if to_status == CertificateStatus.REJECTED and not reason:
        flash("不予通过时，请写明原因，申请人会收到这段话。", "error")
        return redirect(url_for("admin.application_detail", app_id=app_id))
    before = {"status": application.status, "reject_reason": application.reject_reason}
    try:
        service("services.certificate:change_status")(db, app_id, to_status, actor_name(), reason=reason)
    except ServiceMissing as exc:
        db.rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.application_detail", app_id=app_id))
    except LookupError:
        db.rollback()
        abort(404)
    except ValueError:
        db.rollback()
        flash("这份申请的状态刚被别人改过，请看看最新状态。", "error")
        return redirect(url_for("admin.application_detail", app_id=app_id))
    db.flush()
    db.refresh(application)
    after = {"status": application.status, "reject_reason": application.reject_reason}
    audit.record(db, actor_name(), "change_status", "certificate_application", app_id, before, after)
    db.commit()
    flash(f"已{ACTION_LABELS[to_status]}，申请人会在微信里收到通知。", "ok")
    return redirect(url_for("admin.application_detail", app_id=app_id))


# ---------------------------------------------------------------- legal-aid cases


def _own_counselor_id() -> int | None:
    """A counselor sees only the cases assigned to them; None means "all cases" (admin, clerk)."""
    staff = g.staff
    if staff.role == "counselor":
        return int(staff.counselor_id) if staff.counselor_id is not None else -1
    return None


def _visible_case(db: Session, case_id: int) -> LegalCase:
    case = db.get(LegalCase, case_id)
    own = _own_counselor_id()
    if case is None or (own is not None and case.counselor_id != own):
        abort(404)  # another counselor's case does not exist for this one
    return case


@bp.get("/cases")
@roles_required("clerk", "counselor")
def cases() -> Any:
    db = get_db()
    status = request.args.get("status", "active")
    query = select(LegalCase)
    own = _own_counselor_id()
    if own is not None:
        query = query.where(LegalCase.counselor_id == own)
    if status == "active":
        query = query.where(LegalCase.status != CaseStatus.CLOSED)
    elif status in (CaseStatus.OPEN, CaseStatus.ASSIGNED, CaseStatus.ANSWERED, CaseStatus.CLOSED):
        query = query.where(LegalCase.status == status)
    page = paginate(db, query.order_by(LegalCase.created_at.asc(), LegalCase.id))
    return render_template("admin/cases.html", page=page, status=status)


@bp.get("/cases/<int:case_id>")
@roles_required("clerk", "counselor")
def case_detail(case_id: int) -> Any:
    db = get_db()
    case = _visible_case(db, case_id)
    counselors = db.scalars(
        select(Counselor).where(Counselor.active.is_(True)).order_by(Counselor.name)
    ).all()
    veteran = db.get(Veteran, case.veteran_id) if case.veteran_id else None
    return render_template("admin/case_detail.html", case=case, counselors=counselors, veteran=veteran)


@bp.post("/cases/<int:case_id>/assign")
@roles_required("clerk")
def case_assign(case_id: int) -> Any:
    db = get_db()
    case = _visible_case(db, case_id)
    raw = request.form.get("counselor_id", "")
    counselor = db.get(Counselor, int(raw)) if raw.isdigit() else None
    if counselor is None:
        flash("请选择一位辅导员。", "error")
        return redirect(url_for("admin.case_detail", case_id=case_id))
    before = audit.snapshot(case, CASE_FIELDS)
    case.counselor_id = counselor.id
    if case.status == CaseStatus.OPEN:
        case.status = CaseStatus.ASSIGNED
    audit.record(
        db,
        actor_name(),
        "assign",
        "legal_case",
        case.id,
        *audit.changed(before, audit.snapshot(case, CASE_FIELDS)),
    )
    db.commit()
    flash(f"已分派给 {counselor.name}。", "ok")
    return redirect(url_for("admin.case_detail", case_id=case_id))


@bp.post("/cases/<int:case_id>/reply")
@roles_required("clerk", "counselor")
def case_reply(case_id: int) -> Any:
    """Answer the veteran in WeChat (the legal service records, audits and sends it)."""
    db = get_db()
    case = _visible_case(db, case_id)
    return _send_answer(
        "services.handoff:answer_case", case.id, url_for("admin.case_detail", case_id=case_id)
    )


@bp.post("/cases/<int:case_id>/close")
@roles_required("clerk", "counselor")
def case_close(case_id: int) -> Any:
    db = get_db()
    case = _visible_case(db, case_id)
    before = audit.snapshot(case, CASE_FIELDS)
    case.status = CaseStatus.CLOSED
    audit.record(
        db,
        actor_name(),
        "close",
        "legal_case",
        case.id,
        *audit.changed(before, audit.snapshot(case, CASE_FIELDS)),
    )
    db.commit()
    flash("案件已关闭。", "ok")
    return redirect(url_for("admin.cases"))


# ---------------------------------------------------------------- handoff tickets


@bp.get("/tickets")
@roles_required("clerk")
def tickets() -> Any:
    db = get_db()
    status = request.args.get("status", "active")
    query = select(HandoffTicket)
    if status == "active":
        query = query.where(HandoffTicket.status != CaseStatus.CLOSED)
    elif status == "mine":
        query = query.where(
            HandoffTicket.assigned_to == g.staff.username, HandoffTicket.status != CaseStatus.CLOSED
        )
    elif status in (CaseStatus.OPEN, CaseStatus.ASSIGNED, CaseStatus.ANSWERED, CaseStatus.CLOSED):
        query = query.where(HandoffTicket.status == status)
    page = paginate(db, query.order_by(HandoffTicket.created_at.asc(), HandoffTicket.id))
    return render_template("admin/tickets.html", page=page, status=status)


def _conversation(db: Session, openid: str, around: dt.datetime, before_hours: int = 6) -> list[MessageLog]:
    query = (
        select(MessageLog)
        .where(
            MessageLog.openid == openid,
            MessageLog.created_at >= around - dt.timedelta(hours=before_hours),
            MessageLog.created_at <= around + dt.timedelta(hours=2),
        )
        .order_by(MessageLog.created_at, MessageLog.id)
        .limit(80)
    )
    return list(db.scalars(query).all())


@bp.get("/tickets/<int:ticket_id>")
@roles_required("clerk")
def ticket_detail(ticket_id: int) -> Any:
    db = get_db()
    ticket = db.get(HandoffTicket, ticket_id) or abort(404)
    staff = db.scalars(select(StaffUser).where(StaffUser.active.is_(True)).order_by(StaffUser.username)).all()
    messages = _conversation(db, ticket.openid, ticket.created_at)
    return render_template("admin/ticket_detail.html", t=ticket, staff_users=staff, messages=messages)


@bp.post("/tickets/<int:ticket_id>/assign")
@roles_required("clerk")
def ticket_assign(ticket_id: int) -> Any:
    db = get_db()
    ticket = db.get(HandoffTicket, ticket_id) or abort(404)
    username = request.form.get("assigned_to", "").strip() or g.staff.username
    if db.scalars(select(StaffUser).where(StaffUser.username == username)).first() is None:
        flash("没有这个员工。", "error")
        return redirect(url_for("admin.ticket_detail", ticket_id=ticket_id))
    before = audit.snapshot(ticket, TICKET_FIELDS)
    ticket.assigned_to = username
    if ticket.status == CaseStatus.OPEN:
        ticket.status = CaseStatus.ASSIGNED
    audit.record(
        db,
        actor_name(),
        "assign",
        "handoff_ticket",
        ticket.id,
        *audit.changed(before, audit.snapshot(ticket, TICKET_FIELDS)),
    )
    db.commit()
    flash(f"已交给 {username} 处理。", "ok")
    return redirect(url_for("admin.ticket_detail", ticket_id=ticket_id))


@bp.post("/tickets/<int:ticket_id>/reply")
@roles_required("clerk")
def ticket_reply(ticket_id: int) -> Any:
    db = get_db()
    ticket = db.get(HandoffTicket, ticket_id) or abort(404)
    return _send_answer(
        "services.handoff:answer_ticket", ticket.id, url_for("admin.ticket_detail", ticket_id=ticket_id)
    )


def _send_answer(function: str, item_id: int, back: str) -> Any:
    """Send a staff answer through the handoff service, which audits it and notifies the user."""
    db = get_db()
    text = request.form.get("answer", "").strip()
    if not text:
        flash("请先写好回复内容。", "error")
        return redirect(back)
    try:
        answer = service(function)
        result = answer(db, item_id, text[:2000], g.staff.username)
    except ServiceMissing as exc:
        db.rollback()
        flash(str(exc), "error")
        return redirect(back)
    except Exception as exc:
        # The service explains refusals (empty, closed) in Chinese; anything else is a real error.
        reason = getattr(exc, "reason", None)
        db.rollback()
        if reason is None:
            raise
        flash(f"没有发出：{reason}", "error")
        return redirect(back)
    db.commit()
    if getattr(result, "delivered", True):
        flash("回复已发出，对方会在微信里收到。", "ok")
    else:
        flash(
            "对方超过48小时没有在公众号里发消息，微信不允许再主动发给他。回复已保存，请打电话告诉他。",
            "error",
        )
    return redirect(back)


@bp.post("/tickets/<int:ticket_id>/close")
@roles_required("clerk")
def ticket_close(ticket_id: int) -> Any:
    db = get_db()
    ticket = db.get(HandoffTicket, ticket_id) or abort(404)
    before = audit.snapshot(ticket, TICKET_FIELDS)
    ticket.status = CaseStatus.CLOSED
    audit.record(
        db,
        actor_name(),
        "close",
        "handoff_ticket",
        ticket.id,
        *audit.changed(before, audit.snapshot(ticket, TICKET_FIELDS)),
    )
    db.commit()
    flash("已关闭。", "ok")
    return redirect(url_for("admin.tickets"))


# ---------------------------------------------------------------- crisis alerts (every role)


@bp.get("/crisis")
def crisis_list() -> Any:
    db = get_db()
    show = request.args.get("show", "open")
    query = select(CrisisAlert)
    if show != "all":
        query = query.where(CrisisAlert.status != CaseStatus.CLOSED)
    page = paginate(db, query.order_by(CrisisAlert.created_at.desc(), CrisisAlert.id.desc()))
    return render_template("admin/crisis.html", page=page, show=show)


@bp.get("/crisis/<int:alert_id>")
def crisis_detail(alert_id: int) -> Any:
    db = get_db()
    alert = db.get(CrisisAlert, alert_id) or abort(404)
    messages = _conversation(db, alert.openid, alert.created_at)
    return render_template("admin/crisis_detail.html", alert=alert, messages=messages)


@bp.post("/crisis/<int:alert_id>")
def crisis_update(alert_id: int) -> Any:
    db = get_db()
    alert = db.get(CrisisAlert, alert_id) or abort(404)
    action = request.form.get("action", "")
    fields = ("status", "handled_by", "closed_at")
    before = audit.snapshot(alert, fields)
    if action == "take":
        alert.status = CaseStatus.ASSIGNED
        alert.handled_by = g.staff.username
        flash("已由您跟进。请尽快打电话联系对方，必要时拨打 110 / 120。", "ok")
    elif action == "close":
        note = request.form.get("note", "").strip()
        if not note:
            flash("关闭前请简单写下处理情况。", "error")
            return redirect(url_for("admin.crisis_detail", alert_id=alert_id))
        alert.status = CaseStatus.CLOSED
        alert.handled_by = alert.handled_by or g.staff.username
        alert.closed_at = utcnow()
        after = audit.snapshot(alert, fields)
        after["note"] = note[:1000]
        audit.record(db, actor_name(), "close", "crisis_alert", alert.id, before, after)
        db.commit()
        flash("已记录处理情况并关闭。", "ok")
        return redirect(url_for("admin.crisis_list"))
    else:
        abort(400)
    audit.record(
        db,
        actor_name(),
        action,
        "crisis_alert",
        alert.id,
        *audit.changed(before, audit.snapshot(alert, fields)),
    )
    db.commit()
    return redirect(url_for("admin.crisis_detail", alert_id=alert_id))


# ---------------------------------------------------------------- hardship aid


@bp.get("/hardship")
@roles_required("clerk")
def hardship() -> Any:
    db = get_db()
    status = request.args.get("status", "active")
    township = request.args.get("township", "")
    query = select(HardshipApplication)
    if status == "active":
        query = query.where(HardshipApplication.status != CaseStatus.CLOSED)
    elif status in HARDSHIP_STATUSES:
        query = query.where(HardshipApplication.status == status)
    if township in TOWNSHIPS:
        query = query.where(HardshipApplication.township == township)
    page = paginate(db, query.order_by(HardshipApplication.created_at.asc(), HardshipApplication.id))
    return render_template(
        "admin/hardship.html",
        page=page,
        status=status,
        township=township,
        townships=TOWNSHIPS,
        labels=HARDSHIP_STATUSES,
    )


@bp.route("/hardship/<int:item_id>", methods=["GET", "POST"])
@roles_required("clerk")
def hardship_detail(item_id: int) -> Any:
    db = get_db()
    item = db.get(HardshipApplication, item_id) or abort(404)
    if request.method == "POST":
        status = request.form.get("status", "")
        if status not in HARDSHIP_STATUSES:
            flash("请选择处理状态。", "error")
        else:
            fields = ("status", "staff_note")
            before = audit.snapshot(item, fields)
            item.status = status
            item.staff_note = request.form.get("staff_note", "").strip()[:2000] or None
            audit.record(
                db,
                actor_name(),
                "update",
                "hardship_application",
                item.id,
                *audit.changed(before, audit.snapshot(item, fields)),
            )
            db.commit()
            flash("已保存。", "ok")
            return redirect(url_for("admin.hardship"))
    veteran = db.get(Veteran, item.veteran_id) if item.veteran_id else None
    return render_template("admin/hardship_detail.html", item=item, veteran=veteran, labels=HARDSHIP_STATUSES)


def open_counts(db: Session) -> dict[str, int]:
    """Open items per queue, for the dashboard and the navigation badges."""
    from sqlalchemy import func

    def count(model: Any, *where: Any) -> int:
        return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    counts = {
        "crisis": count(CrisisAlert, CrisisAlert.status != CaseStatus.CLOSED),
        "applications": count(
            CertificateApplication,
            CertificateApplication.status.in_((CertificateStatus.SUBMITTED, CertificateStatus.UNDER_REVIEW)),
        ),
        "cases": count(LegalCase, LegalCase.status.in_((CaseStatus.OPEN, CaseStatus.ASSIGNED))),
        "tickets": count(HandoffTicket, HandoffTicket.status.in_((CaseStatus.OPEN, CaseStatus.ASSIGNED))),
        "hardship": count(HardshipApplication, HardshipApplication.status != CaseStatus.CLOSED),
    }
    if not has_role("clerk"):
        own = _own_counselor_id()
        counts["cases"] = count(
            LegalCase,
            LegalCase.status.in_((CaseStatus.OPEN, CaseStatus.ASSIGNED)),
            LegalCase.counselor_id == own,
        )
    return counts
