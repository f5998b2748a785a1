"""The console in a real browser: sign in, approve an application, publish a job, import a roster."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import func, select

from bureau import idcard
from bureau.models import (
    Campaign,
    CertificateApplication,
    JobSubscription,
    StaffUser,
    Veteran,
    WechatUser,
)
from bureau.timeutil import utcnow
from tests.admin.conftest import FAST_HASH, PASSWORD
from tests.browser.conftest import wait_until

APPLICANT = "o-browser-applicant"


def _staff(session_factory, username: str = "clerk1", role: str = "clerk") -> None:
    with session_factory.begin() as session:
        session.add(StaffUser(username=username, display_name="李办事", password_hash=FAST_HASH, role=role))


def _sign_in(page, base: str, target: str, username: str = "clerk1") -> None:  # type: ignore[no-untyped-def]
    page.goto(base + target)
    assert "/admin/login" in page.url  # anonymous: sent to the sign-in page first
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(re.compile(re.escape(target) + "$"))


def test_sign_in_approve_an_application_and_the_applicant_gets_the_wechat_message(
    live_console, page, sim, session_factory
):
    _staff(session_factory)
    number = idcard.make_number("350926", dt.date(1966, 5, 4), 321)
    with session_factory.begin() as session:
        veteran = Veteran(name="陈卫国", phone="13905930001", township="双城镇", category="退役士兵")
        veteran.set_id_number(number)
        session.add(veteran)
        session.flush()
        session.add(WechatUser(openid=APPLICANT, veteran_id=veteran.id, last_interaction_at=utcnow()))
        session.add(CertificateApplication(veteran_id=veteran.id, openid=APPLICANT, township="双城镇"))
    sim.follower(APPLICANT)

    _sign_in(page, live_console, "/admin/applications")
    row = page.locator("tr", has_text="陈卫国")
    assert idcard.mask(number) in row.inner_text()
    assert number not in page.content()
    row.get_by_role("link", name="审核").click()
    page.get_by_role("button", name="开始审核").click()
    page.get_by_text("已开始审核").wait_for()
    page.get_by_role("button", name="审核通过").click()
    page.get_by_text("已审核通过，申请人会在微信里收到通知").wait_for()
    assert "已通过" in page.locator("h1").inner_text()

    message = sim.wait_for_message(APPLICANT, "已通过")
    assert "优待证" in message["text"]
    with session_factory() as session:
        assert session.scalars(select(CertificateApplication.status)).one() == "approved"


def test_publish_a_job_and_watch_the_campaign_finish(live_console, page, sim, session_factory):
    _staff(session_factory)
    subscribers = [f"o-browser-sub-{i}" for i in range(4)]
    with session_factory.begin() as session:
        for index, openid in enumerate(subscribers):
            session.add(WechatUser(openid=openid, last_interaction_at=utcnow()))
            session.flush()
            # The last one wants driver jobs only, so it must not be told.
            session.add(JobSubscription(openid=openid, category="司机" if index == 3 else "保安"))
    for openid in subscribers:
        sim.follower(openid)

    _sign_in(page, live_console, "/admin/jobs")
    page.get_by_role("link", name="+ 新岗位").click()
    page.get_by_label("岗位名称").fill("小区夜班保安")
    page.get_by_label("用人单位").fill("柘荣县城投物业")
    page.get_by_label("类别").select_option("保安")
    page.get_by_label("乡镇").select_option("双城镇")
    page.get_by_label("最低月薪（元）").fill("3200")
    page.get_by_label("最高月薪（元）").fill("3800")
    page.get_by_label("联系方式").fill("0593-8350000")
    page.get_by_role("button", name="保存").click()
    page.get_by_text("岗位已保存为草稿").wait_for()
    assert "有 3 位订阅了招聘信息的战友会收到这条推送" in page.locator("#matching").inner_text()

    page.get_by_role("button", name="发布并推送").click()
    page.wait_for_url(re.compile(r"/admin/campaigns/\d+$"))
    # The page polls the progress and shows the campaign finishing without a reload.
    page.locator("#campaign-status[data-status=done]").wait_for(timeout=30_000)
    assert page.locator("#campaign-status").inner_text() == "已完成"
    assert page.locator("#c-sent").inner_text() == "3"
    assert page.locator("#percent").inner_text() == "100"
    assert page.locator("#progress-bar").get_attribute("style") == "width: 100%;"

    for openid in subscribers[:3]:
        assert "小区夜班保安" in sim.wait_for_message(openid, "【新岗位】")["text"]
    assert sim.inbox(subscribers[3]) == []
    with session_factory() as session:
        assert session.scalars(select(Campaign.status).where(Campaign.kind == "job")).one() == "done"


def test_import_a_roster_with_one_bad_row(live_console, page, sim, session_factory, tmp_path):
    _staff(session_factory)
    numbers = [idcard.make_number("350926", dt.date(1960 + i, 3, 1), 100 + i) for i in range(3)]
    bad = numbers[1][:-1] + ("0" if numbers[1][-1] != "0" else "1")
    roster = tmp_path / "花名册.csv"
    rows = [
        "姓名,身份证号,手机号,乡镇",
        f"张一,{numbers[0]},13905930011,双城镇",
        f"王二,{bad},,富溪镇",
        f"李三,{numbers[2]},,东源乡",
    ]
    roster.write_text("\n".join(rows), encoding="utf-8")

    _sign_in(page, live_console, "/admin/veterans")
    page.get_by_role("link", name="导入花名册").click()
    page.get_by_label("选择文件").set_input_files(str(roster))
    page.get_by_role("button", name="检查并导入").click()
    report = page.locator("#import-report")
    report.wait_for()
    assert "第3行：身份证号校验位不对" in report.inner_text()
    assert "没有导入" in report.inner_text()
    with session_factory() as session:
        assert session.scalar(select(func.count(Veteran.id))) == 0

    rows[2] = f"王二,{numbers[1]},,富溪镇"
    roster.write_text("\n".join(rows), encoding="utf-8")
    page.get_by_label("选择文件").set_input_files(str(roster))
    page.get_by_role("button", name="检查并导入").click()
    page.get_by_text("导入成功：共 3 人").wait_for()
    page.get_by_role("link", name="‹ 返回名册").click()
    assert page.locator("tbody tr").count() == 3
    assert idcard.mask(numbers[1]) in page.content() and numbers[1] not in page.content()

    # Searching by the full number opens the person's page; the number never appears in a URL.
    page.get_by_label("身份证号（可输后4位）").fill(numbers[1])
    page.get_by_role("button", name="查找").click()
    page.wait_for_url("**/admin/veterans/*")
    assert numbers[1] not in page.url
    assert "王二" in page.content() and numbers[1] not in page.content()


def test_the_console_works_on_a_phone(live_console, browser, sim, session_factory):
    _staff(session_factory)
    context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        phone = context.new_page()
        phone.set_default_timeout(15_000)
        _sign_in(phone, live_console, "/admin/dashboard")
        nav = phone.locator("nav.nav")
        assert not nav.is_visible()  # folded away on a small screen
        phone.locator("label.navbtn").click()
        wait_until(nav.is_visible, 5, "the menu to open")
        nav.get_by_role("link", name="优待证", exact=True).click()
        phone.wait_for_url(re.compile(r"/admin/applications$"))
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # no sideways scrolling of the whole page; wide tables scroll inside their box
    finally:
        context.close()
