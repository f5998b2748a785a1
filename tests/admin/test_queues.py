"""Work queues, jobs and campaigns, reference data and the dashboard, through the console's forms."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from bureau.models import (
    AuditLog,
    BenefitPolicy,
    Campaign,
    CertificateApplication,
    CertificateEvent,
    CrisisAlert,
    Delivery,
    HandoffTicket,
    HardshipApplication,
    JobPosting,
    JobSubscription,
    MessageLog,
    WechatUser,
)
from bureau.timeutil import utcnow
from tests.admin.conftest import CLEAR_ID, login, make_counselor, make_staff, make_veteran, token_of

OPENID = "o-applicant-0001"


def _application(session_factory, status: str = "submitted") -> int:
    veteran_id = make_veteran(session_factory)
    with session_factory.begin() as session:
        session.add(WechatUser(openid=OPENID, veteran_id=veteran_id, last_interaction_at=utcnow()))
        application = CertificateApplication(
            veteran_id=veteran_id, openid=OPENID, township="双城镇", category="退役士兵", status=status
        )
        session.add(application)
        session.flush()
        return application.id


def test_applications_list_filters_by_status_and_township(clerk_client, session_factory):
    app_id = _application(session_factory)
    other_vet = make_veteran(session_factory, "350926197001010011", name="吴长青", township="富溪镇")
    with session_factory.begin() as session:
        session.add(CertificateApplication(veteran_id=other_vet, township="富溪镇", status="under_review"))
    page = clerk_client.get("/admin/applications").get_data(as_text=True)
    assert "陈卫国" in page and "吴长青" in page
    page = clerk_client.get("/admin/applications?township=富溪镇").get_data(as_text=True)
    assert "吴长青" in page and "陈卫国" not in page
    page = clerk_client.get("/admin/applications?status=submitted").get_data(as_text=True)
    assert "陈卫国" in page and "吴长青" not in page
    assert f"/admin/applications/{app_id}" in clerk_client.get("/admin/applications").get_data(as_text=True)


def test_approving_an_application_notifies_the_applicant_and_is_audited(clerk_client, session_factory):
    app_id = _application(session_factory)
    detail = clerk_client.get(f"/admin/applications/{app_id}").get_data(as_text=True)
    assert "开始审核" in detail and CLEAR_ID not in detail
    for to_status in ("under_review", "approved"):
        token = token_of(clerk_client, f"/admin/applications/{app_id}")
        response = clerk_client.post(
            f"/admin/applications/{app_id}/status", data={"csrf_token": token, "to_status": to_status}
        )
        assert response.status_code == 302
    page = clerk_client.get(f"/admin/applications/{app_id}").get_data(as_text=True)
    assert "已通过" in page and "申请人会在微信里收到通知" in page
    with session_factory() as session:
        assert session.get(CertificateApplication, app_id).status == "approved"
        events = session.scalars(select(CertificateEvent).order_by(CertificateEvent.id)).all()
        assert [(e.to_status, e.actor) for e in events] == [
            ("under_review", "staff:clerk1"),
            ("approved", "staff:clerk1"),
        ]
        notices = session.scalars(
            select(Campaign).where(Campaign.kind == "certificate").order_by(Campaign.id)
        ).all()
        assert "已通过" in notices[-1].payload["text"]
        assert (
            session.scalars(select(Delivery.openid).where(Delivery.campaign_id == notices[-1].id)).one()
            == OPENID
        )
        audit = session.scalars(
            select(AuditLog).where(AuditLog.entity == "certificate_application").order_by(AuditLog.id)
        ).all()
        assert [(a.before["status"], a.after["status"]) for a in audit] == [
            ("submitted", "under_review"),
            ("under_review", "approved"),
        ]


def test_rejecting_needs_a_reason_which_the_applicant_receives(clerk_client, session_factory):
    app_id = _application(session_factory, status="under_review")
    token = token_of(clerk_client, f"/admin/applications/{app_id}")
    clerk_client.post(
        f"/admin/applications/{app_id}/status", data={"csrf_token": token, "to_status": "rejected"}
    )
    page = clerk_client.get(f"/admin/applications/{app_id}").get_data(as_text=True)
    assert "请写明原因" in page
    with session_factory() as session:
        assert session.get(CertificateApplication, app_id).status == "under_review"
    reason = "退役证明材料不全，请带退役证到乡镇服务站补交"
    clerk_client.post(
        f"/admin/applications/{app_id}/status",
        data={"csrf_token": token, "to_status": "rejected", "reason": reason},
    )
    with session_factory() as session:
        application = session.get(CertificateApplication, app_id)
        assert (application.status, application.reject_reason) == ("rejected", reason)
        notice = session.scalars(select(Campaign).where(Campaign.kind == "certificate")).one()
        assert reason in notice.payload["text"]


def test_a_stale_transition_is_refused_plainly(clerk_client, session_factory):
    app_id = _application(session_factory, status="approved")
    token = token_of(clerk_client, f"/admin/applications/{app_id}")
    clerk_client.post(
        f"/admin/applications/{app_id}/status", data={"csrf_token": token, "to_status": "rejected"}
    )
    page = clerk_client.get(f"/admin/applications/{app_id}").get_data(as_text=True)
    assert "不能做这个操作" in page
    with session_factory() as session:
        assert session.get(CertificateApplication, app_id).status == "approved"


def test_replying_to_a_ticket_sends_a_wechat_message(clerk_client, session_factory):
    with session_factory.begin() as session:
        session.add(WechatUser(openid="o-ticket-1", last_interaction_at=utcnow() - dt.timedelta(hours=1)))
        session.add(WechatUser(openid="o-ticket-2", last_interaction_at=utcnow() - dt.timedelta(days=5)))
        recent = HandoffTicket(openid="o-ticket-1", message="我想问问返乡报到要带什么")
        old = HandoffTicket(openid="o-ticket-2", message="电话多少")
        session.add_all([recent, old])
        session.flush()
        recent_id, old_id = recent.id, old.id
    assert "返乡报到" in clerk_client.get("/admin/tickets").get_data(as_text=True)
    token = token_of(clerk_client, f"/admin/tickets/{recent_id}")
    clerk_client.post(
        f"/admin/tickets/{recent_id}/reply", data={"csrf_token": token, "answer": "带退役证和身份证。"}
    )
    clerk_client.post(f"/admin/tickets/{old_id}/reply", data={"csrf_token": token, "answer": "0593-8352233"})
    page = clerk_client.get(f"/admin/tickets/{old_id}").get_data(as_text=True)
    assert "请打电话告诉他" in page
    with session_factory() as session:
        ticket = session.get(HandoffTicket, recent_id)
        assert (ticket.status, ticket.assigned_to) == ("answered", "clerk1")
        notice = session.scalars(select(Campaign).where(Campaign.kind == "handoff_answer")).one()
        assert "带退役证和身份证" in notice.payload["text"]
        assert session.get(HandoffTicket, old_id).needs_phone_call is True
    clerk_client.post(f"/admin/tickets/{recent_id}/close", data={"csrf_token": token})
    with session_factory() as session:
        assert session.get(HandoffTicket, recent_id).status == "closed"


def test_crisis_alerts_are_on_top_of_every_page_with_their_conversation(client, session_factory):
    counselor = make_counselor(session_factory, "林志强")
    make_staff(session_factory, "counselor1", "counselor", counselor)
    now = utcnow()
    with session_factory.begin() as session:
        session.add_all(
            [
                MessageLog(
                    openid="o-crisis",
                    direction="in",
                    msg_type="text",
                    content="两天前问过工作",
                    created_at=now - dt.timedelta(days=2),
                ),
                MessageLog(
                    openid="o-crisis",
                    direction="in",
                    msg_type="text",
                    content="最近睡不着，欠了很多钱",
                    created_at=now - dt.timedelta(minutes=10),
                ),
                MessageLog(
                    openid="o-crisis",
                    direction="in",
                    msg_type="text",
                    content="活着没意思",
                    intent="crisis",
                    created_at=now - dt.timedelta(minutes=1),
                ),
                MessageLog(
                    openid="o-other",
                    direction="in",
                    msg_type="text",
                    content="别人的消息",
                    created_at=now - dt.timedelta(minutes=5),
                ),
            ]
        )
        alert = CrisisAlert(openid="o-crisis", message="活着没意思", created_at=now - dt.timedelta(minutes=1))
        session.add(alert)
        session.flush()
        alert_id = alert.id
    login(client, "counselor1")
    for path in ("/admin/dashboard", "/admin/cases", "/admin/calendar"):
        page = client.get(path).get_data(as_text=True)
        assert "有 1 条危机预警还没处理完" in page, path
    detail = client.get(f"/admin/crisis/{alert_id}").get_data(as_text=True)
    assert "最近睡不着，欠了很多钱" in detail and "活着没意思" in detail
    assert "两天前问过工作" not in detail and "别人的消息" not in detail
    token = token_of(client, f"/admin/crisis/{alert_id}")
    client.post(f"/admin/crisis/{alert_id}", data={"csrf_token": token, "action": "take"})
    client.post(f"/admin/crisis/{alert_id}", data={"csrf_token": token, "action": "close"})  # no note
    with session_factory() as session:
        alert = session.get(CrisisAlert, alert_id)
        assert (alert.status, alert.handled_by) == ("assigned", "counselor1")
    client.post(
        f"/admin/crisis/{alert_id}",
        data={"csrf_token": token, "action": "close", "note": "已电话联系，情绪平稳"},
    )
    assert "危机预警还没处理完" not in client.get("/admin/dashboard").get_data(as_text=True)
    with session_factory() as session:
        row = session.scalars(
            select(AuditLog).where(AuditLog.entity == "crisis_alert", AuditLog.action == "close")
        ).one()
        assert row.after["note"] == "已电话联系，情绪平稳" and row.actor == "staff:counselor1"


def test_case_assignment_and_answer(clerk_client, session_factory):
    from bureau.models import LegalCase

    counselor = make_counselor(session_factory, "林志强")
    with session_factory.begin() as session:
        session.add(WechatUser(openid="o-case", last_interaction_at=utcnow()))
        case = LegalCase(openid="o-case", topic="劳动纠纷", description="老板欠薪三个月")
        session.add(case)
        session.flush()
        case_id = case.id
    token = token_of(clerk_client, f"/admin/cases/{case_id}")
    clerk_client.post(f"/admin/cases/{case_id}/assign", data={"csrf_token": token, "counselor_id": counselor})
    clerk_client.post(
        f"/admin/cases/{case_id}/reply", data={"csrf_token": token, "answer": "可以申请劳动仲裁。"}
    )
    with session_factory() as session:
        case = session.get(LegalCase, case_id)
        assert (case.counselor_id, case.status, case.answer) == (counselor, "answered", "可以申请劳动仲裁。")
        assert session.scalars(select(Campaign).where(Campaign.kind == "case_answer")).one()


def test_hardship_status_and_note(clerk_client, session_factory):
    with session_factory.begin() as session:
        item = HardshipApplication(applicant_name="郑大山", township="城郊乡", reason="住院费用负担重")
        session.add(item)
        session.flush()
        item_id = item.id
    assert "住院费用负担重" in clerk_client.get("/admin/hardship").get_data(as_text=True)
    token = token_of(clerk_client, f"/admin/hardship/{item_id}")
    clerk_client.post(
        f"/admin/hardship/{item_id}",
        data={"csrf_token": token, "status": "assigned", "staff_note": "乡镇已上门核实"},
    )
    with session_factory() as session:
        item = session.get(HardshipApplication, item_id)
        assert (item.status, item.staff_note) == ("assigned", "乡镇已上门核实")


def test_job_form_preview_and_publish(clerk_client, session_factory, monkeypatch):
    monkeypatch.setenv("BROKER_URL", "memory://")
    monkeypatch.setenv("BROADCAST_EAGER", "0")
    from bureau.broadcast.config import get_config

    get_config.cache_clear()
    with session_factory.begin() as session:
        for index, (category, township) in enumerate(
            [("保安", "双城镇"), ("保安", None), (None, None), ("司机", "双城镇"), ("保安", "富溪镇")]
        ):
            openid = f"o-sub-{index}"
            session.add(WechatUser(openid=openid))
            session.flush()
            session.add(JobSubscription(openid=openid, category=category, township=township))
    token = token_of(clerk_client, "/admin/jobs/new")
    response = clerk_client.post(
        "/admin/jobs/new", data={"csrf_token": token, "title": "", "salary_min": "三千"}
    )
    page = response.get_data(as_text=True)
    assert "请填写岗位名称" in page and "最低月薪请填数字" in page
    response = clerk_client.post(
        "/admin/jobs/new",
        data={
            "csrf_token": token,
            "title": "小区保安",
            "employer": "柘荣县城投物业",
            "category": "保安",
            "township": "双城镇",
            "salary_min": "3000",
            "salary_max": "3800",
            "contact": "0593-1234567",
        },
    )
    assert response.status_code == 302
    with session_factory() as session:
        job = session.scalars(select(JobPosting)).one()
        assert job.status == "draft"
    detail = clerk_client.get(f"/admin/jobs/{job.id}").get_data(as_text=True)
    assert '有 <b class="big">3</b> 位订阅' in detail
    response = clerk_client.post(f"/admin/jobs/{job.id}/publish", data={"csrf_token": token})
    assert response.status_code == 302 and "/admin/campaigns/" in response.headers["Location"]
    campaign_page = clerk_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "发送中" in campaign_page and "小区保安" in campaign_page
    with session_factory() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.kind == "job")).one()
        assert session.get(JobPosting, job.id).status == "open"
    progress = clerk_client.get(f"/admin/campaigns/{campaign.id}/progress.json").get_json()
    assert (progress["recipients"], progress["pending"], progress["status"]) == (3, 3, "running")
    clerk_client.post(f"/admin/campaigns/{campaign.id}/pause", data={"csrf_token": token})
    assert clerk_client.get(f"/admin/campaigns/{campaign.id}/progress.json").get_json()["status"] == "paused"
    clerk_client.post(f"/admin/campaigns/{campaign.id}/cancel", data={"csrf_token": token})
    progress = clerk_client.get(f"/admin/campaigns/{campaign.id}/progress.json").get_json()
    assert (progress["status"], progress["skipped"], progress["percent"]) == ("cancelled", 3, 100)
    get_config.cache_clear()


def test_policy_edits_are_used_by_the_bot_at_once_and_audited(clerk_client, session_factory):
    from bureau.services.benefits import policy_by_slug

    with session_factory.begin() as session:
        policy = BenefitPolicy(
            slug="bus-free", title="免费乘公交", keywords=["公交"], question="坐公交免费吗", answer="旧答复"
        )
        session.add(policy)
        session.flush()
        policy_id = policy.id
    token = token_of(clerk_client, f"/admin/ref/policies/{policy_id}")
    response = clerk_client.post(
        f"/admin/ref/policies/{policy_id}",
        data={
            "csrf_token": token,
            "slug": "bus-free",
            "title": "免费乘公交",
            "keywords": "公交，巴士 车",
            "question": "坐公交免费吗",
            "answer": "凭优待证乘县内公交免费。",
            "source": "",
        },
    )
    assert response.status_code == 302
    with session_factory() as session:
        policy = policy_by_slug(session, "bus-free")
        assert policy.answer == "凭优待证乘县内公交免费。" and policy.keywords == ["公交", "巴士", "车"]
        row = session.scalars(select(AuditLog).where(AuditLog.entity == "benefit_policy")).one()
        assert row.before["answer"] == "旧答复" and row.after["answer"] == "凭优待证乘县内公交免费。"


def test_merchant_with_offer(clerk_client, session_factory):
    from bureau.models import Merchant, MerchantOffer

    token = token_of(clerk_client, "/admin/ref/merchants/new")
    response = clerk_client.post(
        "/admin/ref/merchants/new",
        data={"csrf_token": token, "name": "老兵饭店", "category": "食", "township": "双城镇", "active": "1"},
    )
    assert response.status_code == 302
    with session_factory() as session:
        merchant = session.scalars(select(Merchant)).one()
    clerk_client.post(
        f"/admin/ref/merchants/{merchant.id}/offers",
        data={"csrf_token": token, "description": "凭优待证就餐九折"},
    )
    with session_factory() as session:
        assert session.scalars(select(MerchantOffer.description)).one() == "凭优待证就餐九折"
    bad = clerk_client.post(
        "/admin/ref/merchants/new", data={"csrf_token": token, "name": "", "category": "X"}
    ).get_data(as_text=True)
    assert "请填写商家名称" in bad and "请选择类别" in bad


def test_dashboard_shows_the_figures_as_charts(admin_client, session_factory):
    now = utcnow()
    with session_factory.begin() as session:
        for index in range(6):
            session.add(
                MessageLog(
                    openid=f"o-{index}",
                    direction="in",
                    msg_type="text",
                    content="找工作",
                    intent="job_search" if index < 4 else "nlu_fallback",
                    unanswered=index == 5,
                    created_at=now - dt.timedelta(hours=index),
                )
            )
    page = admin_client.get("/admin/dashboard").get_data(as_text=True)
    assert page.count("<svg") == 3
    assert "找工作" in page  # the intent label in Chinese
    assert "33.3%" in page  # 2 of 6 messages went unanswered or fell back
    assert "cdn" not in page.lower() and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
