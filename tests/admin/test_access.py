"""Sign-in, lockout, roles, CSRF and the anonymous refusal of every console route."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from bureau.models import AuditLog, JobPosting, LegalCase, StaffUser
from bureau.timeutil import utcnow
from tests.admin.conftest import PASSWORD, csrf_from, login, make_counselor, make_staff, token_of

PUBLIC = {"admin.login", "admin.static"}
SAMPLE_ARGS = {"slug": "merchants", "action": "pause", "filename": "admin.css"}


def _console_rules(app):  # type: ignore[no-untyped-def]
    return [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("admin.")]


def _url(rule) -> str:  # type: ignore[no-untyped-def]
    values = {arg: SAMPLE_ARGS.get(arg, 1) for arg in rule.arguments}
    built = rule.build(values, append_unknown=False)
    assert built is not None, rule
    return str(built[1])


def test_every_console_route_refuses_anonymous_users(app, client):
    rules = _console_rules(app)
    assert len(rules) > 40  # the whole console, not a handful
    assert {r.endpoint for r in rules} >= {"admin.dashboard", "admin.veterans", "admin.application_status"}
    checked = 0
    for rule in rules:
        if rule.endpoint in PUBLIC:
            continue
        url = _url(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method)
            assert response.status_code in (302, 401), (method, url, response.status_code)
            if response.status_code == 302:
                assert response.headers["Location"].startswith("/admin/login"), (method, url)
            body = response.get_data(as_text=True)
            assert "退役军人名册" not in body and "工作概况" not in body
            checked += 1
    assert checked > 50


def test_only_the_login_page_and_static_files_are_public(app, client):
    public = []
    for rule in _console_rules(app):
        if "GET" not in rule.methods:
            continue
        response = client.get(_url(rule))
        if response.status_code == 200:
            public.append(rule.endpoint)
        response.close()
    assert sorted(public) == sorted(PUBLIC)


def test_login_with_right_password_then_logout(client, session_factory):
    make_staff(session_factory, "clerk1", "clerk")
    response = login(client, "clerk1")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/dashboard")
    page = client.get("/admin/dashboard")
    assert page.status_code == 200
    assert "工作概况" in page.get_data(as_text=True)
    token = csrf_from(page.get_data(as_text=True))
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/admin/dashboard").status_code == 302
    with session_factory() as session:
        actions = session.scalars(select(AuditLog.action).where(AuditLog.actor == "staff:clerk1")).all()
    assert "login" in actions


def test_wrong_password_is_refused_and_counted(client, session_factory):
    make_staff(session_factory, "clerk1", "clerk")
    response = login(client, "clerk1", "wrong-password-1")
    assert response.status_code == 401
    assert "用户名或密码不对" in response.get_data(as_text=True)
    assert client.get("/admin/dashboard").status_code == 302
    response = login(client, "nobody", PASSWORD)
    assert "用户名或密码不对" in response.get_data(as_text=True)


def test_five_failures_lock_the_account_for_fifteen_minutes(client, session_factory):
    user_id = make_staff(session_factory, "clerk1", "clerk")
    for _ in range(5):
        login(client, "clerk1", "wrong-password-1")
    response = login(client, "clerk1", PASSWORD)  # even the right password is refused now
    assert response.status_code == 401
    assert "锁定" in response.get_data(as_text=True)
    with session_factory() as session:
        user = session.get(StaffUser, user_id)
        assert user.locked_until is not None
        minutes = (user.locked_until - utcnow()).total_seconds() / 60
        assert 13 < minutes <= 15
        lockout = session.scalars(select(AuditLog).where(AuditLog.action == "lockout")).one()
        assert lockout.actor == "staff:clerk1"
    with session_factory.begin() as session:
        session.get(StaffUser, user_id).locked_until = utcnow() - dt.timedelta(seconds=1)
    assert login(client, "clerk1", PASSWORD).status_code == 302


def test_login_form_without_csrf_token_is_refused(client, session_factory):
    make_staff(session_factory, "clerk1", "clerk")
    client.get("/admin/login")
    response = client.post("/admin/login", data={"username": "clerk1", "password": PASSWORD})
    assert response.status_code == 400
    assert "刷新页面" in response.get_data(as_text=True)
    assert client.get("/admin/dashboard").status_code == 302


def test_every_console_form_refuses_a_post_without_the_csrf_token(app, admin_client, session_factory):
    checked = 0
    for rule in _console_rules(app):
        if "POST" not in rule.methods or rule.endpoint in PUBLIC:
            continue
        url = _url(rule)
        for data in ({}, {"csrf_token": "forged-token"}):
            response = admin_client.post(url, data=data)
            assert response.status_code == 400, (url, response.status_code)
        checked += 1
    assert checked > 20
    # The session is still signed in: the refusal changed nothing.
    assert admin_client.get("/admin/dashboard").status_code == 200


def test_csrf_refusal_changes_nothing(admin_client, session_factory):
    with session_factory.begin() as session:
        job = JobPosting(title="保安", employer="县城物业", category="保安", status="open")
        session.add(job)
        session.flush()
        job_id = job.id
    assert admin_client.post(f"/admin/jobs/{job_id}/close", data={}).status_code == 400
    with session_factory() as session:
        assert session.get(JobPosting, job_id).status == "open"
    token = token_of(admin_client)
    assert admin_client.post(f"/admin/jobs/{job_id}/close", data={"csrf_token": token}).status_code == 302
    with session_factory() as session:
        assert session.get(JobPosting, job_id).status == "closed"
        row = session.scalars(select(AuditLog).where(AuditLog.entity == "job_posting")).one()
        assert (row.actor, row.action, row.before, row.after) == (
            "staff:admin1",
            "close",
            {"status": "open"},
            {"status": "closed"},
        )


@pytest.mark.parametrize(
    ("role", "path", "allowed"),
    [
        ("clerk", "/admin/staff", False),
        ("clerk", "/admin/audit", False),
        ("clerk", "/admin/applications", True),
        ("clerk", "/admin/jobs", True),
        ("clerk", "/admin/ref/merchants", True),
        ("clerk", "/admin/ref/policies", True),
        ("counselor", "/admin/applications", False),
        ("counselor", "/admin/veterans", False),
        ("counselor", "/admin/jobs", False),
        ("counselor", "/admin/ref/policies", False),
        ("counselor", "/admin/cases", True),
        ("counselor", "/admin/availability", True),
        ("counselor", "/admin/calendar", True),
        ("admin", "/admin/staff", True),
    ],
)
def test_roles(client, session_factory, role, path, allowed):
    counselor_id = make_counselor(session_factory, "林志强") if role == "counselor" else None
    make_staff(session_factory, f"{role}1", role, counselor_id)
    login(client, f"{role}1")
    response = client.get(path)
    assert response.status_code == (200 if allowed else 403)
    if not allowed:
        assert "没有这个页面的权限" in response.get_data(as_text=True)


def test_a_counselor_sees_only_their_own_cases(client, session_factory):
    mine = make_counselor(session_factory, "林志强")
    other = make_counselor(session_factory, "黄建华")
    make_staff(session_factory, "counselor1", "counselor", mine)
    with session_factory.begin() as session:
        own_case = LegalCase(
            topic="劳动纠纷", description="工地欠我三个月工资", counselor_id=mine, status="assigned"
        )
        other_case = LegalCase(
            topic="婚姻家庭", description="离婚财产分割的问题", counselor_id=other, status="assigned"
        )
        unassigned = LegalCase(topic="土地", description="宅基地被邻居占了", status="open")
        session.add_all([own_case, other_case, unassigned])
        session.flush()
        own_id, other_id, unassigned_id = own_case.id, other_case.id, unassigned.id
    login(client, "counselor1")
    listing = client.get("/admin/cases?status=all").get_data(as_text=True)
    assert "工地欠我三个月工资" in listing
    assert "离婚财产分割" not in listing and "宅基地" not in listing
    assert client.get(f"/admin/cases/{own_id}").status_code == 200
    for case_id in (other_id, unassigned_id):
        assert client.get(f"/admin/cases/{case_id}").status_code == 404
        token = token_of(client)
        assert client.post(f"/admin/cases/{case_id}/close", data={"csrf_token": token}).status_code == 404
        assert (
            client.post(
                f"/admin/cases/{case_id}/reply", data={"csrf_token": token, "answer": "x"}
            ).status_code
            == 404
        )
    # Counselors cannot re-assign cases (that is the clerks' job).
    token = token_of(client)
    assert (
        client.post(
            f"/admin/cases/{own_id}/assign", data={"csrf_token": token, "counselor_id": other}
        ).status_code
        == 403
    )
    with session_factory() as session:
        assert session.get(LegalCase, other_id).status == "assigned"
        assert session.get(LegalCase, own_id).counselor_id == mine


def test_a_counselor_manages_only_their_own_availability(client, session_factory):
    mine = make_counselor(session_factory, "林志强")
    other = make_counselor(session_factory, "黄建华")
    make_staff(session_factory, "counselor1", "counselor", mine)
    login(client, "counselor1")
    token = token_of(client, "/admin/availability")
    day = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    # Even when the form names another counselor, the slot is the signed-in counselor's own.
    response = client.post(
        "/admin/availability/add",
        data={
            "csrf_token": token,
            "counselor_id": other,
            "day": day,
            "start": "09:30",
            "minutes": "60",
            "weeks": "2",
        },
    )
    assert response.status_code == 302
    from bureau.models import CounselingSlot

    with session_factory() as session:
        slots = session.scalars(select(CounselingSlot)).all()
    assert len(slots) == 2 and {s.counselor_id for s in slots} == {mine}
    calendar = client.get(f"/admin/calendar?week={day}").get_data(as_text=True)
    assert "林志强" in calendar and "09:30" in calendar


def test_staff_create_command_makes_the_first_admin(runner, session_factory, client):
    result = runner.invoke(
        args=["staff", "create"], input="chief\n张局长\nadmin\nStrongPass2024\nStrongPass2024\n"
    )
    assert result.exit_code == 0, result.output
    assert "已创建管理员账号 chief" in result.output
    with session_factory() as session:
        user = session.scalars(select(StaffUser).where(StaffUser.username == "chief")).one()
        assert user.role == "admin"
        assert user.password_hash.startswith("scrypt:")
        assert "StrongPass2024" not in user.password_hash
    assert login(client, "chief", "StrongPass2024").status_code == 302
    assert client.get("/admin/staff").status_code == 200


def test_staff_create_refuses_a_weak_password(runner, session_factory):
    result = runner.invoke(args=["staff", "create"], input="chief\n张局长\nadmin\n12345678\n12345678\n")
    assert result.exit_code != 0
    assert "太简单" in result.output
    with session_factory() as session:
        assert session.scalars(select(StaffUser)).first() is None


def test_admin_adds_a_clerk_in_the_console_and_it_is_audited(admin_client, session_factory, client):
    token = token_of(admin_client, "/admin/staff/new")
    response = admin_client.post(
        "/admin/staff/new",
        data={
            "csrf_token": token,
            "username": "xiaoli",
            "display_name": "李晓",
            "role": "clerk",
            "password": "Clerk2024pass",
            "active": "1",
        },
    )
    assert response.status_code == 302
    with session_factory() as session:
        row = session.scalars(
            select(AuditLog).where(AuditLog.entity == "staff_user", AuditLog.action == "create")
        ).one()
    assert row.actor == "staff:admin1"
    assert row.after["username"] == "xiaoli" and row.after["role"] == "clerk"
    assert "password_hash" not in row.after


def test_open_redirect_after_login_is_refused(client, session_factory):
    make_staff(session_factory, "clerk1", "clerk")
    page = client.get("/admin/login?next=https://evil.example/")
    token = csrf_from(page.get_data(as_text=True))
    response = client.post(
        "/admin/login?next=https://evil.example/",
        data={"username": "clerk1", "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/admin/dashboard"


def test_an_unexpected_error_gives_a_plain_chinese_page(app, admin_client, monkeypatch):
    from webhook.admin import views_dashboard

    def broken(_db):  # type: ignore[no-untyped-def]
        raise RuntimeError("database went away")

    monkeypatch.setattr(views_dashboard, "open_counts", broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = admin_client.get("/admin/dashboard")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "刚才的操作没有完成" in body and "Traceback" not in body and "database went away" not in body
