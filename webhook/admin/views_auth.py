"""Sign-in, sign-out, staff accounts (admin) and the audit log (admin)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, render_template, request, session, url_for
from sqlalchemy import func, select

from bureau import audit
from bureau.models import AuditLog, Counselor, StaffUser
from bureau.timeutil import utcnow
from webhook.admin import _safe_next, bp, security
from webhook.admin.security import actor_name, roles_required
from webhook.database import get_db

STAFF_FIELDS = ("username", "display_name", "role", "counselor_id", "openid", "on_duty", "active")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The sign-in page; a successful sign-in starts a fresh session (no fixation)."""
    if g.staff is not None and request.method == "GET":
        return redirect(url_for("admin.dashboard"))
    error = None
    username = ""
    if request.method == "POST":
        db = get_db()
        username = request.form.get("username", "").strip()[:50]
        password = request.form.get("password", "")
        if not username or not password:
            error = "请输入用户名和密码"
        else:
            user, error = security.authenticate(db, username, password)
            if user is not None:
                audit.record(db, f"staff:{user.username}", "login", "staff_user", user.id, None, None)
            db.commit()
            if user is not None:
                target = _safe_next(request.args.get("next"))
                session.clear()
                session["staff_id"] = user.id
                session["staff_fp"] = user.password_hash[-12:]
                session["staff_since"] = utcnow().timestamp()
                session.permanent = False
                return redirect(target or url_for("admin.dashboard"))
    return render_template("admin/login.html", error=error, username=username), (401 if error else 200)


@bp.post("/logout")
def logout() -> Any:
    session.clear()
    flash("您已退出登录。", "ok")
    return redirect(url_for("admin.login"))


@bp.route("/password", methods=["GET", "POST"])
def change_password() -> Any:
    """Any staff member changes their own password (signs out their other sessions)."""
    staff = g.staff
    error = None
    if request.method == "POST":
        db = get_db()
        from werkzeug.security import check_password_hash

        old = request.form.get("old_password", "")
        new = request.form.get("new_password", "")
        if not check_password_hash(staff.password_hash, old):
            error = "原密码不对"
        elif new != request.form.get("new_password2", ""):
            error = "两次输入的新密码不一样"
        else:
            try:
                staff.password_hash = security.hash_password(new)
            except security.PasswordTooWeak as exc:
                error = str(exc)
            else:
                audit.record(db, actor_name(), "change_password", "staff_user", staff.id, None, None)
                db.commit()
                session["staff_fp"] = staff.password_hash[-12:]
                flash("密码已修改。", "ok")
                return redirect(url_for("admin.dashboard"))
    return render_template("admin/password.html", error=error)


@bp.get("/staff")
@roles_required("admin")
def staff_list() -> Any:
    db = get_db()
    users = db.scalars(select(StaffUser).order_by(StaffUser.active.desc(), StaffUser.username)).all()
    counselors = {c.id: c for c in db.scalars(select(Counselor)).all()}
    return render_template("admin/staff_list.html", users=users, counselors=counselors)


def _staff_form_values(db: Any) -> tuple[dict[str, Any], list[str]]:
    errors: list[str] = []
    values: dict[str, Any] = {
        "username": request.form.get("username", "").strip()[:50],
        "display_name": request.form.get("display_name", "").strip()[:50],
        "role": request.form.get("role", ""),
        "openid": request.form.get("openid", "").strip()[:64] or None,
        "on_duty": request.form.get("on_duty") == "1",
        "active": request.form.get("active", "1") == "1",
    }
    counselor_raw = request.form.get("counselor_id", "").strip()
    values["counselor_id"] = int(counselor_raw) if counselor_raw.isdigit() else None
    if not values["username"] or not values["username"].replace("_", "").replace(".", "").isalnum():
        errors.append("用户名只能用字母、数字、下划线")
    if not values["display_name"]:
        errors.append("请填写姓名")
    if values["role"] not in security.ROLES:
        errors.append("请选择角色")
    if values["role"] == "counselor":
        if values["counselor_id"] is None or db.get(Counselor, values["counselor_id"]) is None:
            errors.append("辅导员账号要关联一位老战友辅导员")
    else:
        values["counselor_id"] = None
    return values, errors


@bp.route("/staff/new", methods=["GET", "POST"])
@roles_required("admin")
def staff_new() -> Any:
    db = get_db()
    errors: list[str] = []
    values: dict[str, Any] = {"role": "clerk", "active": True}
    if request.method == "POST":
        values, errors = _staff_form_values(db)
        password = request.form.get("password", "")
        if values["username"] and security.find_staff(db, values["username"]) is not None:
            errors.append("这个用户名已经有人用了")
        try:
            password_hash = security.hash_password(password)
        except security.PasswordTooWeak as exc:
            errors.append(str(exc))
        if not errors:
            user = StaffUser(password_hash=password_hash, **values)
            db.add(user)
            db.flush()
            audit.record(
                db, actor_name(), "create", "staff_user", user.id, None, audit.snapshot(user, STAFF_FIELDS)
            )
            db.commit()
            flash(f"已添加员工 {user.display_name}。", "ok")
            return redirect(url_for("admin.staff_list"))
    counselors = db.scalars(select(Counselor).order_by(Counselor.name)).all()
    return render_template(
        "admin/staff_form.html", values=values, errors=errors, counselors=counselors, user=None
    )


@bp.route("/staff/<int:user_id>", methods=["GET", "POST"])
@roles_required("admin")
def staff_edit(user_id: int) -> Any:
    db = get_db()
    user = db.get(StaffUser, user_id) or abort(404)
    errors: list[str] = []
    values = audit.snapshot(user, STAFF_FIELDS)
    if request.method == "POST":
        values, errors = _staff_form_values(db)
        values["username"] = user.username  # the sign-in name stays; audit rows refer to it
        if user.id == g.staff.id and (values["role"] != "admin" or not values["active"]):
            errors.append("不能取消自己的管理员权限或停用自己的账号")
        new_password = request.form.get("password", "")
        if new_password:
            try:
                user.password_hash = security.hash_password(new_password)
            except security.PasswordTooWeak as exc:
                errors.append(str(exc))
        if not errors:
            before = audit.snapshot(user, STAFF_FIELDS)
            for key, value in values.items():
                setattr(user, key, value)
            if request.form.get("unlock") == "1":
                user.locked_until = None
                user.failed_logins = 0
            after = audit.snapshot(user, STAFF_FIELDS)
            if new_password:
                after["password"] = "已重置"
            audit.record(db, actor_name(), "update", "staff_user", user.id, *audit.changed(before, after))
            db.commit()
            flash("已保存。", "ok")
            return redirect(url_for("admin.staff_list"))
    counselors = db.scalars(select(Counselor).order_by(Counselor.name)).all()
    return render_template(
        "admin/staff_form.html", values=values, errors=errors, counselors=counselors, user=user
    )


@bp.get("/audit")
@roles_required("admin")
def audit_log() -> Any:
    db = get_db()
    page = max(1, request.args.get("page", 1, type=int) or 1)
    entity = request.args.get("entity", "").strip()
    actor = request.args.get("actor", "").strip()
    query = select(AuditLog)
    if entity:
        query = query.where(AuditLog.entity == entity)
    if actor:
        query = query.where(AuditLog.actor.contains(actor))
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.scalars(
        query.order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(50).offset((page - 1) * 50)
    ).all()
    entities = db.scalars(select(AuditLog.entity).distinct().order_by(AuditLog.entity)).all()
    return render_template(
        "admin/audit.html", rows=rows, page=page, total=total, entity=entity, actor=actor, entities=entities
    )
