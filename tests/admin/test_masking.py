"""ID-card numbers are masked on every console page and in every export; an admin's reveal is audited."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
from sqlalchemy import select

from bureau import idcard
from bureau.models import (
    AuditLog,
    BenefitPolicy,
    Booking,
    Campaign,
    CertificateApplication,
    CounselingSlot,
    CrisisAlert,
    Delivery,
    HandoffTicket,
    HardshipApplication,
    JobPosting,
    LegalCase,
    Merchant,
    MerchantOffer,
    MessageLog,
    ServiceStation,
    StaffUser,
)
from bureau.timeutil import utcnow
from tests.admin.conftest import CLEAR_ID, login, make_counselor, make_staff, make_veteran, token_of

MASKED = idcard.mask(CLEAR_ID)


def _everything_with_the_number(session_factory) -> dict[str, int]:
    """One row of every kind the console shows, each with the clear number where free text allows."""
    veteran_id = make_veteran(session_factory)
    counselor_id = make_counselor(session_factory, "林志强")
    said = f"我的身份证是{CLEAR_ID}，帮我查一下"
    now = utcnow()
    with session_factory.begin() as session:
        application = CertificateApplication(veteran_id=veteran_id, openid="o-mask", township="双城镇")
        case = LegalCase(
            openid="o-mask",
            veteran_id=veteran_id,
            topic="劳动纠纷",
            description=said,
            counselor_id=counselor_id,
        )
        ticket = HandoffTicket(openid="o-mask", message=said, answer=said)
        alert = CrisisAlert(openid="o-mask", message=said, created_at=now)
        hardship = HardshipApplication(
            openid="o-mask", veteran_id=veteran_id, applicant_name="陈卫国", reason=said
        )
        job = JobPosting(title="保安", employer="物业", category="保安", description=said, status="open")
        merchant = Merchant(name="老兵饭店", category="食", address=said)
        policy = BenefitPolicy(slug="p1", title="政策", keywords=["公交"], question=said, answer=said)
        station = ServiceStation(name="双城镇服务站", level="township", township="双城镇", address=said)
        session.add_all([application, case, ticket, alert, hardship, job, merchant, policy, station])
        session.flush()
        session.add(MerchantOffer(merchant_id=merchant.id, description=said))
        session.add(
            MessageLog(openid="o-mask", direction="in", msg_type="text", content=said, created_at=now)
        )
        campaign = Campaign(kind="job", job_id=job.id, title=said, payload={"text": said})
        session.add(campaign)
        session.flush()
        session.add(Delivery(campaign_id=campaign.id, openid="o-mask", status="sent", channel="custom"))
        slot = CounselingSlot(
            counselor_id=counselor_id,
            starts_at=now + dt.timedelta(hours=2),
            ends_at=now + dt.timedelta(hours=3),
        )
        session.add(slot)
        session.flush()
        session.add(Booking(slot_id=slot.id, openid="o-mask", veteran_id=veteran_id, note=said))
        # A raw audit row as a careless writer might leave it: the page must still mask it.
        session.add(
            AuditLog(actor="system", action="note", entity="veteran", entity_id="1", after={"said": said})
        )
        return {
            "veteran_id": veteran_id,
            "app_id": application.id,
            "case_id": case.id,
            "ticket_id": ticket.id,
            "alert_id": alert.id,
            "item_id": hardship.id,
            "job_id": job.id,
            "campaign_id": campaign.id,
            "merchant": merchant.id,
            "policy": policy.id,
            "station": station.id,
        }


def _get_urls(app, ids: dict[str, int], staff_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    urls = []
    for rule in app.url_map.iter_rules():
        if (
            not rule.endpoint.startswith("admin.")
            or "GET" not in rule.methods
            or rule.endpoint == "admin.static"
        ):
            continue
        if rule.endpoint in ("admin.ref_list", "admin.ref_new"):
            urls += [rule.build({"slug": slug})[1] for slug in ("merchants", "policies", "stations")]
            continue
        if rule.endpoint == "admin.ref_edit":
            urls += [
                rule.build({"slug": slug, "row_id": ids[key]})[1]
                for slug, key in (("merchants", "merchant"), ("policies", "policy"), ("stations", "station"))
            ]
            continue
        values = {arg: (staff_id if arg == "user_id" else ids[arg]) for arg in rule.arguments}
        urls.append(rule.build(values)[1])
    # Filters and searches, including a search by the full number.
    urls += [
        "/admin/veterans?township=双城镇",
        f"/admin/veterans?id_text={CLEAR_ID}",
        f"/admin/veterans?id_text={CLEAR_ID[-4:]}",
        "/admin/applications?status=all",
        "/admin/cases?status=all",
        "/admin/tickets?status=all",
        "/admin/crisis?show=all",
        "/admin/campaigns?kind=all",
        "/admin/calendar",
    ]
    return urls


def test_no_page_shows_a_clear_id_number(app, client, session_factory):
    ids = _everything_with_the_number(session_factory)
    staff_id = make_staff(session_factory, "admin1", "admin")
    login(client, "admin1")
    urls = _get_urls(app, ids, staff_id)
    assert len(urls) > 35
    for url in urls:
        response = client.get(url, follow_redirects=True)
        assert response.status_code == 200, url
        body = response.get_data()
        assert CLEAR_ID.encode() not in body, url
    for url in (
        f"/admin/veterans/{ids['veteran_id']}",
        "/admin/veterans",
        f"/admin/applications/{ids['app_id']}",
    ):
        assert MASKED in client.get(url).get_data(as_text=True), url
    # The search by the full number found the person, and shows only the masked form.
    page = client.get(f"/admin/veterans?id_text={CLEAR_ID}").get_data(as_text=True)
    assert "陈卫国" in page and MASKED in page


def test_the_roster_search_form_keeps_a_full_number_out_of_every_url(client, session_factory):
    ids = _everything_with_the_number(session_factory)
    make_staff(session_factory, "clerk1", "clerk")
    login(client, "clerk1")
    page = client.get("/admin/veterans").get_data(as_text=True)
    assert 'method="post"' in page
    token = token_of(client, "/admin/veterans")

    found = client.post("/admin/veterans", data={"id_text": CLEAR_ID, "csrf_token": token})
    assert found.status_code == 302
    assert found.headers["Location"].endswith(f"/admin/veterans/{ids['veteran_id']}")
    assert CLEAR_ID not in found.headers["Location"]

    other = "11010119900307123" + idcard.check_char("11010119900307123")
    missing = client.post(
        "/admin/veterans", data={"id_text": other, "csrf_token": token, "township": "双城镇"}
    )
    assert missing.status_code == 302 and other not in missing.headers["Location"]
    shown = client.get(missing.headers["Location"]).get_data(as_text=True)
    assert "没有身份证号为" in shown and other not in shown

    partial = client.post("/admin/veterans", data={"id_text": CLEAR_ID[-4:], "csrf_token": token})
    assert "id_text=" + CLEAR_ID[-4:] in partial.headers["Location"]
    assert "陈卫国" in client.get(partial.headers["Location"]).get_data(as_text=True)


def _cells(data: bytes) -> list[str]:
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    cells = [
        str(c) for row in workbook.worksheets[0].iter_rows(values_only=True) for c in row if c is not None
    ]
    workbook.close()
    return cells


def test_the_excel_export_has_masked_numbers_only(clerk_client, session_factory):
    make_veteran(session_factory)
    make_veteran(session_factory, "350926197001010011", name="吴长青", township="富溪镇")
    response = clerk_client.get("/admin/veterans/export.xlsx?township=双城镇")
    assert response.status_code == 200
    assert response.mimetype.endswith("spreadsheetml.sheet")
    cells = _cells(response.get_data())
    assert "陈卫国" in cells and MASKED in cells
    assert "吴长青" not in cells  # the filter applies
    assert not any(CLEAR_ID in cell for cell in cells)
    with session_factory() as session:
        row = session.scalars(select(AuditLog).where(AuditLog.action == "export")).one()
        assert row.actor == "staff:clerk1" and row.after == {"township": "双城镇"}


def test_the_cli_export_has_masked_numbers_only(runner, session_factory, tmp_path):
    make_veteran(session_factory)
    target = tmp_path / "out.xlsx"
    result = runner.invoke(args=["veterans", "export", "-o", str(target)])
    assert result.exit_code == 0, result.output
    cells = _cells(target.read_bytes())
    assert MASKED in cells and not any(CLEAR_ID in cell for cell in cells)


def test_an_admin_reveal_shows_the_number_once_and_is_audited(admin_client, session_factory):
    veteran_id = make_veteran(session_factory)
    detail = admin_client.get(f"/admin/veterans/{veteran_id}").get_data(as_text=True)
    assert "查看完整身份证号" in detail and CLEAR_ID not in detail
    token = token_of(admin_client, f"/admin/veterans/{veteran_id}")
    refused = admin_client.post(f"/admin/veterans/{veteran_id}/reveal", data={"csrf_token": token})
    assert CLEAR_ID not in admin_client.get(refused.headers["Location"]).get_data(as_text=True)
    response = admin_client.post(
        f"/admin/veterans/{veteran_id}/reveal", data={"csrf_token": token, "reason": "与省平台核对"}
    )
    assert response.status_code == 200
    assert CLEAR_ID in response.get_data(as_text=True)
    # Shown once: the next visit is masked again.
    assert CLEAR_ID not in admin_client.get(f"/admin/veterans/{veteran_id}").get_data(as_text=True)
    with session_factory() as session:
        rows = session.scalars(select(AuditLog).where(AuditLog.action == "reveal_id_number")).all()
        assert [(r.actor, r.entity_id, r.after) for r in rows] == [
            ("staff:admin1", str(veteran_id), {"reason": "与省平台核对"})
        ]
    audit_page = admin_client.get("/admin/audit").get_data(as_text=True)
    assert "reveal_id_number" in audit_page and CLEAR_ID not in audit_page


def test_a_clerk_cannot_reveal(clerk_client, session_factory):
    veteran_id = make_veteran(session_factory)
    detail = clerk_client.get(f"/admin/veterans/{veteran_id}").get_data(as_text=True)
    assert "查看完整身份证号" not in detail
    token = token_of(clerk_client, f"/admin/veterans/{veteran_id}")
    response = clerk_client.post(
        f"/admin/veterans/{veteran_id}/reveal", data={"csrf_token": token, "reason": "看看"}
    )
    assert response.status_code == 403
    assert CLEAR_ID not in response.get_data(as_text=True)
    with session_factory() as session:
        assert session.scalars(select(AuditLog).where(AuditLog.action == "reveal_id_number")).first() is None


def test_editing_a_veteran_corrects_the_number_and_logs_only_masked_values(clerk_client, session_factory):
    veteran_id = make_veteran(session_factory)
    new_number = idcard.make_number("350926", dt.date(1968, 8, 1), 458)
    token = token_of(clerk_client, f"/admin/veterans/{veteran_id}/edit")
    form = {
        "csrf_token": token,
        "name": "陈卫国",
        "phone": "13905930001",
        "township": "双城镇",
        "category": "退役士兵",
        "new_id_number": new_number[:-1] + ("0" if new_number[-1] != "0" else "1"),
    }
    page = clerk_client.post(f"/admin/veterans/{veteran_id}/edit", data=form).get_data(as_text=True)
    assert "校验位不对" in page
    form["new_id_number"] = new_number
    assert clerk_client.post(f"/admin/veterans/{veteran_id}/edit", data=form).status_code == 302
    with session_factory() as session:
        row = session.scalars(select(AuditLog).where(AuditLog.entity == "veteran")).one()
        assert row.before == {"id_number_masked": MASKED}
        assert row.after == {"id_number_masked": idcard.mask(new_number)}
        assert session.scalars(select(StaffUser)).one().username == "clerk1"
