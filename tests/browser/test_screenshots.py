"""Screenshots of the running console with the demo data: the dashboard and two work queues.

Always taken (into a temporary folder) and checked; with ZHANYOU_UPDATE_SCREENSHOTS=1 they are also
written to docs/screenshots/, which is how the pictures linked from the README are made:

    ZHANYOU_UPDATE_SCREENSHOTS=1 .venv/bin/python -m pytest tests/browser/test_screenshots.py -k sqlite
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
from pathlib import Path

from sqlalchemy import select

from bureau.models import (
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
    MessageLog,
    StaffUser,
    Veteran,
    WechatUser,
)
from bureau.seed import seed_demo_data
from bureau.timeutil import utcnow
from tests.admin.conftest import FAST_HASH, PASSWORD

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
INTENTS = [
    ("job_search", 30, "有没有保安的工作"),
    ("certificate_status", 18, "我的优待证办到哪一步了"),
    ("benefits_query", 15, "优待证坐公交免费吗"),
    ("counseling_book", 9, "想约老战友聊聊"),
    ("merchant_discounts", 8, "哪些饭店有优惠"),
    ("certificate_apply", 7, "我要申请优待证"),
    ("legal_help", 5, "老板拖欠工资怎么办"),
    ("service_station", 5, "富溪镇服务站在哪里"),
    ("nlu_fallback", 6, "那个事情咋说"),
]


def _demo_activity(session_factory) -> None:  # type: ignore[no-untyped-def]
    """What a few weeks of use leave behind: messages, applications, tickets, a crisis alert, a campaign."""
    rng = random.Random(7)
    now = utcnow()
    with session_factory.begin() as session:
        seed_demo_data(session)
        session.add(StaffUser(username="chief", display_name="周科长", password_hash=FAST_HASH, role="admin"))
        veterans = session.scalars(select(Veteran).order_by(Veteran.id).limit(12)).all()
        for index, veteran in enumerate(veterans):
            openid = f"o-demo-{index:03d}"
            session.add(WechatUser(openid=openid, veteran_id=veteran.id, last_interaction_at=now))
            if index < 7:
                session.add(
                    CertificateApplication(
                        veteran_id=veteran.id,
                        openid=openid,
                        township=veteran.township,
                        category=veteran.category,
                        status="submitted" if index < 4 else "under_review",
                        submitted_by_family=index == 2,
                        created_at=now - dt.timedelta(days=6 - index, hours=index),
                    )
                )
        for day in range(14):
            for intent, weight, text in INTENTS:
                for _ in range(rng.randint(0, max(1, weight * (day + 6) // 40))):
                    session.add(
                        MessageLog(
                            openid=f"o-demo-{rng.randint(0, 11):03d}",
                            direction="in",
                            msg_type="text",
                            content=text,
                            intent=intent,
                            confidence=0.4 if intent == "nlu_fallback" else 0.9,
                            unanswered=intent == "nlu_fallback",
                            created_at=now - dt.timedelta(days=day, hours=rng.randint(0, 9)),
                        )
                    )
        conversation = [
            ("in", "最近晚上老是睡不着", -14),
            ("out", "听起来您最近很辛苦。需要的话，我可以帮您约一位老战友聊聊。", -14),
            ("in", "欠了好多钱，家里也不理解我", -9),
            ("out", "这些事压在心里一定很难受。您愿意说说是什么时候开始的吗？", -9),
            ("in", "活着真没意思", -2),
            (
                "out",
                "您现在的安全最重要。请马上拨打心理援助热线 12356，紧急情况拨 120 或 110。工作人员会尽快联系您。",
                -2,
            ),
        ]
        for direction, text, minutes in conversation:
            session.add(
                MessageLog(
                    openid="o-demo-005",
                    direction=direction,
                    msg_type="text",
                    content=text,
                    intent="crisis" if "没意思" in text else None,
                    created_at=now + dt.timedelta(minutes=minutes),
                )
            )
        session.add(
            CrisisAlert(
                openid="o-demo-005",
                message="活着真没意思",
                source="keyword",
                created_at=now - dt.timedelta(minutes=2),
            )
        )
        session.add_all(
            [
                HandoffTicket(
                    openid="o-demo-008",
                    message="返乡报到需要带什么材料？",
                    created_at=now - dt.timedelta(hours=3),
                ),
                HandoffTicket(
                    openid="o-demo-009",
                    message="电话打不通，想找人问问安置的事",
                    reason="fallback",
                    needs_phone_call=True,
                ),
                LegalCase(
                    openid="o-demo-010", topic="劳动纠纷", description="工地拖欠三个月工资，老板不接电话"
                ),
                HardshipApplication(
                    openid="o-demo-011",
                    applicant_name="郑大山",
                    township="城郊乡",
                    reason="老伴住院，医药费负担重",
                ),
            ]
        )
        job = session.scalars(select(JobPosting).where(JobPosting.status == "open").limit(1)).first()
        if job is not None:
            campaign = Campaign(
                kind="job",
                job_id=job.id,
                title=f"岗位通知：{job.title}",
                status="done",
                created_by="staff:chief",
                started_at=now - dt.timedelta(days=1),
                finished_at=now - dt.timedelta(days=1),
                payload={},
            )
            session.add(campaign)
            session.flush()
            for index in range(12):
                session.add(
                    Delivery(
                        campaign_id=campaign.id, openid=f"o-demo-{index:03d}", status="sent", channel="custom"
                    )
                )
        slots = session.scalars(
            select(CounselingSlot)
            .where(CounselingSlot.starts_at > now)
            .order_by(CounselingSlot.starts_at)
            .limit(8)
        ).all()
        for index, slot in enumerate(slots[::2]):
            session.add(Booking(slot_id=slot.id, openid=f"o-demo-{index:03d}", topic="谈心"))


def _shoot(page, url: str, target: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(target), full_page=True)


def test_screenshots_of_the_dashboard_and_two_queues(live_console, page, sim, session_factory, tmp_path):
    _demo_activity(session_factory)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_console + "/admin/login")
    page.get_by_label("用户名").fill("chief")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"{live_console}/admin/dashboard")
    assert page.locator("svg.chart").count() == 3
    assert "有 1 条危机预警还没处理完" in page.content()

    with session_factory() as session:
        alert_id = session.scalars(select(CrisisAlert.id)).one()
    shots = {
        "dashboard.png": "/admin/dashboard",
        "queue-applications.png": "/admin/applications",
        "queue-crisis.png": f"/admin/crisis/{alert_id}",
    }
    for name, path in shots.items():
        _shoot(page, live_console + path, tmp_path / name)
        assert (tmp_path / name).stat().st_size > 20_000, name
    if os.environ.get("ZHANYOU_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        for name in shots:
            shutil.copyfile(tmp_path / name, DOCS / name)
