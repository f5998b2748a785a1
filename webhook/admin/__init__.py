"""The staff console (/admin): server-rendered pages in Chinese for the bureau's clerks and counselors.

Every route needs a signed-in staff member except the sign-in page and the static files; every POST
needs the session's CSRF token. Both are enforced here, before any view runs.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, g, jsonify, redirect, render_template, request, session, url_for
from markupsafe import Markup
from sqlalchemy import func, select

from bureau import idcard, secrets_box
from bureau.models import CaseStatus, CertificateStatus, CrisisAlert, StaffUser
from bureau.timeutil import format_local, to_local, utcnow
from webhook.admin import security
from webhook.database import get_db

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

PUBLIC_ENDPOINTS = frozenset({"admin.login", "admin.static"})
SESSION_HOURS = 10
FORM_LIMIT = 1024 * 1024
UPLOAD_LIMIT = 5 * 1024 * 1024

STATUS_LABELS: dict[str, str] = {
    **CertificateStatus.LABELS,
    CaseStatus.OPEN: "待处理",
    CaseStatus.ASSIGNED: "已分派",
    CaseStatus.ANSWERED: "已答复",
    CaseStatus.CLOSED: "已关闭",
    "draft": "草稿",
    "running": "发送中",
    "paused": "已暂停",
    "cancelled": "已取消",
    "done": "已完成",
    "booked": "已预约",
    "pending": "待发送",
    "sending": "发送中",
    "sent": "已发送",
    "failed": "失败",
    "skipped": "已跳过",
}


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    # Only a path inside the console: never another host (open redirect).
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin"):
        return None
    return target


def _refuse_anonymous() -> Any:
    if request.path.endswith(".json") or request.accept_mimetypes.best == "application/json":
        return jsonify(error="请先登录"), 401
    target = request.full_path if request.method == "GET" else None
    return redirect(url_for("admin.login", next=_safe_next(target.rstrip("?") if target else None)))


def _csrf_refused() -> tuple[str, int]:
    return render_template(
        "admin/error.html", code=400, message="页面已过期或来源不明，请刷新页面后再提交一次。"
    ), 400


@bp.before_request
def guard() -> Any:
    """Sign-in and CSRF checks for every console request."""
    g.staff = None
    # The app-wide cap is sized for WeChat pushes; staff forms and roster files need more.
    request.max_content_length = UPLOAD_LIMIT if request.endpoint == "admin.veterans_import" else FORM_LIMIT
    staff_id = session.get("staff_id")
    if staff_id is not None:
        staff = get_db().get(StaffUser, staff_id)
        started = session.get("staff_since", 0)
        fresh = utcnow().timestamp() - float(started) < SESSION_HOURS * 3600
        if (
            staff is not None
            and staff.active
            and fresh
            and session.get("staff_fp") == staff.password_hash[-12:]
        ):
            g.staff = staff
        else:
            session.pop("staff_id", None)
    if request.endpoint not in PUBLIC_ENDPOINTS and g.staff is None:
        return _refuse_anonymous()
    if (
        request.method not in ("GET", "HEAD", "OPTIONS")
        and security.csrf_enabled()
        and not security.check_csrf()
    ):
        return _csrf_refused()
    return None


@bp.after_request
def no_store(response: Response) -> Response:
    # Pages with personal data must not stay in a shared office PC's cache.
    if request.endpoint != "admin.static":
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
    return response


@bp.app_template_filter("local")
def local_filter(value: dt.datetime | None, with_weekday: bool = False) -> str:
    if value is None:
        return ""
    return format_local(value, with_weekday=with_weekday)


@bp.app_template_filter("localdate")
def localdate_filter(value: dt.datetime | dt.date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = to_local(value).date()
    return f"{value.year}-{value.month:02d}-{value.day:02d}"


@bp.app_template_filter("redact")
def redact_filter(value: str | None) -> str:
    """Mask any ID-card number inside free text typed by a user or a clerk."""
    return idcard.redact(value or "")


@bp.app_template_filter("json_text")
def json_text_filter(value: Any) -> str:
    """Readable JSON (Chinese kept as is) for the audit log, with ID numbers masked."""
    if value is None:
        return ""
    return idcard.redact(json.dumps(value, ensure_ascii=False, sort_keys=True))


@bp.app_template_filter("oid")
def openid_filter(value: str | None) -> str:
    """A short pseudonym of an OpenID: enough to tell users apart, useless outside the console."""
    return "微信用户#" + secrets_box.openid_tag(value) if value else ""


@bp.app_template_filter("status")
def status_filter(value: str | None) -> str:
    return STATUS_LABELS.get(value or "", value or "")


@bp.app_template_filter("nl2br")
def nl2br_filter(value: str | None) -> Markup:
    from markupsafe import escape

    return Markup("<br>").join(escape(idcard.redact(value or "")).split("\n"))


@bp.app_context_processor
def console_context() -> dict[str, Any]:
    staff = g.get("staff")
    crisis_open = 0
    if staff is not None and request.blueprint == "admin":
        crisis_open = (
            get_db().scalar(select(func.count(CrisisAlert.id)).where(CrisisAlert.status != CaseStatus.CLOSED))
            or 0
        )
    return {
        "staff": staff,
        "csrf_token": security.csrf_token,
        "has_role": security.has_role,
        "ROLES": security.ROLES,
        "crisis_open": crisis_open,
        "now_utc": utcnow,
    }


def _error(code: int, message: str) -> tuple[str, int]:
    return render_template("admin/error.html", code=code, message=message), code


@bp.errorhandler(400)
def bad_request(_e: Exception) -> tuple[str, int]:
    return _error(400, "提交的内容有误，请返回检查后再试。")


@bp.errorhandler(401)
def unauthorized(_e: Exception) -> Any:
    return _refuse_anonymous()


@bp.errorhandler(403)
def forbidden(_e: Exception) -> tuple[str, int]:
    return _error(403, "您的账号没有这个页面的权限。如需开通，请联系管理员。")


@bp.errorhandler(404)
def not_found(_e: Exception) -> tuple[str, int]:
    return _error(404, "没有找到这条记录，它可能已被删除，或不归您处理。")


@bp.errorhandler(413)
def too_large(_e: Exception) -> tuple[str, int]:
    return _error(413, "文件太大了。花名册请不超过 5 MB，可以分成几个文件导入。")


@bp.errorhandler(500)
def server_error(_e: Exception) -> tuple[str, int]:
    # Flask has logged the exception; the staff member gets a plain answer, never a traceback.
    return _error(500, "系统出了点问题，刚才的操作没有完成。请稍后再试；如果一直这样，请联系技术人员。")


# The views register themselves on `bp`.
from webhook.admin import (  # noqa: E402,F401
    views_auth,
    views_counseling,
    views_dashboard,
    views_jobs,
    views_queues,
    views_reference,
    views_veterans,
)
