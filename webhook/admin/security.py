"""Staff sign-in, roles and CSRF protection of the console.

Passwords are hashed with werkzeug (scrypt). Five wrong passwords lock an account for 15 minutes.
CSRF: a random token kept in the signed session must come back with every POST (form field
`csrf_token` or header `X-CSRFToken`), compared in constant time.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from flask import abort, current_app, g, request, session
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from bureau import audit
from bureau.models import StaffUser
from bureau.timeutil import utcnow

ROLES: dict[str, str] = {"admin": "管理员", "clerk": "业务员", "counselor": "老战友辅导员"}
MAX_FAILURES = 5
LOCK_MINUTES = 15
MIN_PASSWORD_LENGTH = 8
# Computed once so an unknown username costs the same time as a wrong password.
_DUMMY_HASH = generate_password_hash("zhanyou-timing-equaliser")

F = TypeVar("F", bound=Callable[..., Any])


class PasswordTooWeak(ValueError):
    """The password is too short or too simple; the message is Chinese for the staff member."""


def hash_password(password: str) -> str:
    """A scrypt hash of `password` (refuses short passwords)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordTooWeak(f"密码至少要{MIN_PASSWORD_LENGTH}位")
    if password.isdigit() or len(set(password)) < 4:
        raise PasswordTooWeak("密码太简单了，请混合使用字母和数字")
    return generate_password_hash(password, method="scrypt")


def find_staff(db: Session, username: str) -> StaffUser | None:
    return db.scalars(
        select(StaffUser).where(func.lower(StaffUser.username) == username.strip().lower())
    ).first()


def authenticate(db: Session, username: str, password: str) -> tuple[StaffUser | None, str | None]:
    """Check a sign-in; returns (user, None) or (None, Chinese error). Updates failure counters (no commit)."""
    user = find_staff(db, username)
    now = utcnow()
    if user is None or not user.active:
        check_password_hash(_DUMMY_HASH, password)
        return None, "用户名或密码不对"
    if user.locked_until is not None and user.locked_until > now:
        minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
        return None, f"密码错误次数太多，账号已锁定，请{minutes}分钟后再试"
    if not check_password_hash(user.password_hash, password):
        user.failed_logins = (user.failed_logins or 0) + 1
        if user.failed_logins >= MAX_FAILURES:
            user.locked_until = now + dt.timedelta(minutes=LOCK_MINUTES)
            user.failed_logins = 0
            audit.record(
                db,
                f"staff:{user.username}",
                "lockout",
                "staff_user",
                user.id,
                None,
                {"locked_until": user.locked_until},
            )
            return None, f"密码错误次数太多，账号已锁定{LOCK_MINUTES}分钟"
        left = MAX_FAILURES - user.failed_logins
        return None, f"用户名或密码不对（再错{left}次将锁定{LOCK_MINUTES}分钟）"
    user.failed_logins = 0
    user.locked_until = None
    return user, None


def csrf_token() -> str:
    """The session's CSRF token, created on first use."""
    token = session.get("csrf_token")
    if not token:
        token = session["csrf_token"] = secrets.token_urlsafe(32)
    return str(token)


def csrf_enabled() -> bool:
    return bool(current_app.config.get("WTF_CSRF_ENABLED", True))


def check_csrf() -> bool:
    """True when the request carries the session's token."""
    expected = session.get("csrf_token")
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRFToken") or ""
    return bool(expected) and hmac.compare_digest(str(expected).encode(), sent.encode())


def current_staff() -> StaffUser | None:
    return g.get("staff")


def actor_name() -> str:
    """How the audit log names the signed-in staff member: staff:<username>."""
    staff = current_staff()
    return f"staff:{staff.username}" if staff is not None else "anonymous"


def roles_required(*roles: str) -> Callable[[F], F]:
    """Refuse (403) a signed-in staff member whose role is not among `roles`; admin always passes."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            staff = current_staff()
            if staff is None:
                abort(401)
            if staff.role != "admin" and staff.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def has_role(*roles: str) -> bool:
    staff = current_staff()
    return staff is not None and (staff.role == "admin" or staff.role in roles)
