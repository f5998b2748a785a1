"""Helpers for console tests: staff accounts, signing in with the real form, CSRF tokens from the page."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from werkzeug.security import generate_password_hash

from bureau import idcard
from bureau.models import Counselor, StaffUser, Veteran

PASSWORD = "Zhanyou2024pass"
# pbkdf2 with few rounds keeps the tests fast; production hashes use scrypt (security.hash_password).
FAST_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
CLEAR_ID = idcard.make_number("350926", dt.date(1968, 8, 1), 457)


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def make_staff(session_factory, username: str, role: str, counselor_id: int | None = None) -> int:
    with session_factory.begin() as session:
        user = StaffUser(
            username=username,
            display_name={"admin": "王管理", "clerk": "李办事", "counselor": "赵老兵"}[role] + username[-1],
            password_hash=FAST_HASH,
            role=role,
            counselor_id=counselor_id,
        )
        session.add(user)
        session.flush()
        return user.id


def make_counselor(session_factory, name: str) -> int:
    with session_factory.begin() as session:
        counselor = Counselor(name=name, specialties=["法律援助"], township="双城镇")
        session.add(counselor)
        session.flush()
        return counselor.id


def make_veteran(
    session_factory, number: str = CLEAR_ID, name: str = "陈卫国", township: str = "双城镇"
) -> int:
    with session_factory.begin() as session:
        veteran = Veteran(name=name, phone="13905930001", township=township, category="退役士兵")
        veteran.set_id_number(number)
        session.add(veteran)
        session.flush()
        return veteran.id


def login(client, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    page = client.get("/admin/login")
    token = csrf_from(page.get_data(as_text=True))
    return client.post("/admin/login", data={"username": username, "password": password, "csrf_token": token})


def token_of(client, path: str = "/admin/dashboard") -> str:  # type: ignore[no-untyped-def]
    return csrf_from(client.get(path).get_data(as_text=True))


@pytest.fixture
def admin_client(client, session_factory):  # type: ignore[no-untyped-def]
    make_staff(session_factory, "admin1", "admin")
    response = login(client, "admin1")
    assert response.status_code == 302
    return client


@pytest.fixture
def clerk_client(client, session_factory):  # type: ignore[no-untyped-def]
    make_staff(session_factory, "clerk1", "clerk")
    response = login(client, "clerk1")
    assert response.status_code == 302
    return client
