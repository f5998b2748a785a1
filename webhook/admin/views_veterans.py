"""Veteran records: search, view, edit, reveal one ID number (admin, audited), import and export."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bureau import audit, idcard, roster, secrets_box
from bureau.models import (
    TOWNSHIPS,
    VETERAN_CATEGORIES,
    CertificateApplication,
    HardshipApplication,
    LegalCase,
    Veteran,
    WechatUser,
)
from bureau.timeutil import local_today
from webhook.admin import bp
from webhook.admin.paging import paginate
from webhook.admin.security import actor_name, roles_required
from webhook.database import get_db

VETERAN_FIELDS = ("name", "id_number_masked", "phone", "township", "village", "category", "discharge_date")


def _filters() -> dict[str, str]:
    return {
        "name": request.args.get("name", "").strip()[:50],
        "id_text": request.args.get("id_text", "").strip()[:20],
        "township": request.args.get("township", ""),
        "category": request.args.get("category", ""),
    }


@bp.get("/veterans")
@roles_required("clerk")
def veterans() -> Any:
    db = get_db()
    filters = _filters()
    page = paginate(db, roster.search_query(**filters))
    # A full number typed into the search box is used for the lookup but never shown back.
    shown = dict(filters, id_text=idcard.redact(filters["id_text"]))
    if idcard.is_valid(filters["id_text"]):
        shown["id_text"] = idcard.mask(filters["id_text"])
    filters = shown
    total = db.scalar(select(func.count(Veteran.id))) or 0
    return render_template(
        "admin/veterans.html",
        page=page,
        filters=filters,
        townships=TOWNSHIPS,
        categories=VETERAN_CATEGORIES,
        total=total,
    )


@bp.post("/veterans")
@roles_required("clerk")
def veterans_search() -> Any:
    """The search form posts here, so a full ID number never travels in a URL (logs, history, proxies).

    A full, valid number opens that person's page; anything else comes back as an ordinary filtered list.
    """
    form = request.form
    filters = {
        "name": form.get("name", "").strip()[:50],
        "id_text": form.get("id_text", "").strip()[:20],
        "township": form.get("township", ""),
        "category": form.get("category", ""),
    }
    number = idcard.normalize(filters["id_text"])
    if idcard.is_valid(number):
        found = (
            get_db()
            .scalars(
                select(Veteran.id).where(Veteran.id_number_hash == secrets_box.lookup_hash(number)).limit(2)
            )
            .all()
        )
        if len(found) == 1:
            return redirect(url_for("admin.veteran_detail", veteran_id=found[0]))
        flash(f"名册里没有身份证号为 {idcard.mask(number)} 的人。", "error")
        filters["id_text"] = ""
    query: dict[str, Any] = {k: v for k, v in filters.items() if v}
    return redirect(url_for("admin.veterans", **query))


@bp.get("/veterans/export.xlsx")
@roles_required("clerk")
def veterans_export() -> Any:
    """The filtered list as an Excel file (masked ID numbers), audited."""
    db = get_db()
    filters = _filters()
    data = roster.export_xlsx(db, roster.search_query(**filters))
    audit.record(db, actor_name(), "export", "veteran", None, None, {k: v for k, v in filters.items() if v})
    db.commit()
    filename = f"veterans-{local_today():%Y%m%d}.xlsx"
    return Response(
        data,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f"attachment; filename={filename}"},
    )


@bp.get("/veterans/<int:veteran_id>")
@roles_required("clerk")
def veteran_detail(veteran_id: int) -> Any:
    db = get_db()
    veteran = db.get(Veteran, veteran_id) or abort(404)
    applications = db.scalars(
        select(CertificateApplication)
        .where(CertificateApplication.veteran_id == veteran.id)
        .order_by(CertificateApplication.id.desc())
    ).all()
    cases = db.scalars(
        select(LegalCase).where(LegalCase.veteran_id == veteran.id).order_by(LegalCase.id.desc())
    ).all()
    hardship = db.scalars(
        select(HardshipApplication)
        .where(HardshipApplication.veteran_id == veteran.id)
        .order_by(HardshipApplication.id.desc())
    ).all()
    bound = (
        db.scalar(select(func.count()).select_from(WechatUser).where(WechatUser.veteran_id == veteran.id))
        or 0
    )
    return render_template(
        "admin/veteran_detail.html",
        v=veteran,
        applications=applications,
        cases=cases,
        hardship=hardship,
        bound=bound,
        revealed=None,
    )


@bp.post("/veterans/<int:veteran_id>/reveal")
@roles_required("admin")
def veteran_reveal(veteran_id: int) -> Any:
    """Show one full ID number to an admin, once, with the reason written to the audit log."""
    db = get_db()
    veteran = db.get(Veteran, veteran_id) or abort(404)
    reason = request.form.get("reason", "").strip()[:200]
    if not reason:
        flash("查看完整身份证号前，请写明用途（会记入操作日志）。", "error")
        return redirect(url_for("admin.veteran_detail", veteran_id=veteran_id))
    audit.record(db, actor_name(), "reveal_id_number", "veteran", veteran.id, None, {"reason": reason})
    db.commit()
    return render_template(
        "admin/veteran_detail.html",
        v=veteran,
        applications=[],
        cases=[],
        hardship=[],
        bound=0,
        revealed=veteran.reveal_id_number(),
    )


@bp.route("/veterans/<int:veteran_id>/edit", methods=["GET", "POST"])
@roles_required("clerk")
def veteran_edit(veteran_id: int) -> Any:
    db = get_db()
    veteran = db.get(Veteran, veteran_id) or abort(404)
    errors: list[str] = []
    values: dict[str, Any] = audit.snapshot(veteran, VETERAN_FIELDS)
    if request.method == "POST":
        form = request.form
        values = {
            "name": form.get("name", "").strip()[:50],
            "phone": form.get("phone", "").strip()[:20] or None,
            "township": form.get("township") or None,
            "village": form.get("village", "").strip()[:40] or None,
            "category": form.get("category", ""),
            "discharge_date": form.get("discharge_date", "").strip(),
        }
        if not values["name"]:
            errors.append("请填写姓名")
        if values["township"] is not None and values["township"] not in TOWNSHIPS:
            errors.append("乡镇不对")
        if values["category"] not in VETERAN_CATEGORIES:
            errors.append("请选择人员类别")
        if values["phone"] and not roster._PHONE.match(values["phone"]):
            errors.append("手机号不对")
        try:
            values["discharge_date"] = (
                dt.date.fromisoformat(values["discharge_date"]) if values["discharge_date"] else None
            )
        except ValueError:
            errors.append("退役时间格式不对")
        new_number = form.get("new_id_number", "").strip()
        normalized = None
        if new_number:
            try:
                normalized = idcard.validate(new_number)
            except idcard.InvalidIdNumber as exc:
                errors.append(exc.reason)
            else:
                other = db.scalars(
                    select(Veteran).where(
                        Veteran.id_number_hash == secrets_box.lookup_hash(normalized),
                        Veteran.id != veteran.id,
                    )
                ).first()
                if other is not None:
                    errors.append("这个身份证号已属于另一位退役军人")
        if not errors:
            before = audit.snapshot(veteran, VETERAN_FIELDS)
            for key, value in values.items():
                setattr(veteran, key, value)
            if normalized:
                veteran.set_id_number(normalized)
            audit.record(
                db,
                actor_name(),
                "update",
                "veteran",
                veteran.id,
                *audit.changed(before, audit.snapshot(veteran, VETERAN_FIELDS)),
            )
            try:
                db.commit()
            except IntegrityError:
                db.rollback()
                errors.append("保存失败：身份证号重复")
            else:
                flash("已保存。", "ok")
                return redirect(url_for("admin.veteran_detail", veteran_id=veteran.id))
    return render_template(
        "admin/veteran_form.html",
        v=veteran,
        values=values,
        errors=errors,
        townships=TOWNSHIPS,
        categories=VETERAN_CATEGORIES,
    )


@bp.route("/veterans/import", methods=["GET", "POST"])
@roles_required("clerk")
def veterans_import() -> Any:
    """Upload the bureau's roster: all rows are checked; nothing is saved unless every row is right."""
    report = None
    file_error = None
    if request.method == "POST":
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            file_error = "请选择要导入的文件"
        else:
            db = get_db()
            try:
                rows = roster.read_rows(upload.stream, upload.filename)
            except roster.RosterError as exc:
                file_error = str(exc)
            else:
                report = roster.import_roster(db, rows, actor_name(), source_name=upload.filename)
                if report.ok:
                    try:
                        db.commit()
                    except IntegrityError:
                        db.rollback()
                        report = roster.ImportReport(rows=len(rows))
                        report.errors = [roster.RowError(1, "同时有人导入了相同的人员，请重新导入")]
                else:
                    db.rollback()
    return render_template("admin/veterans_import.html", report=report, file_error=file_error), (
        400 if file_error or (report is not None and not report.ok) else 200
    )
