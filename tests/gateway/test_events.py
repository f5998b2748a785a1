"""Events: subscribe/unsubscribe (forgetting the user), CLICK, SCAN, VIEW, LOCATION, TEMPLATESENDJOBFINISH."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from bureau.models import (
    Booking,
    BookingStatus,
    Campaign,
    CaseStatus,
    CertificateApplication,
    CertificateStatus,
    CounselingSlot,
    Counselor,
    Delivery,
    DeliveryStatus,
    JobSubscription,
    KeyValue,
    LegalCase,
    MessageLog,
    Veteran,
    WechatUser,
)
from bureau.services.users import anonymous_id
from bureau.timeutil import utcnow
from tests.gateway.conftest import Pusher
from webhook.gateway.menu import MENU_KEYS, build_menu


def test_subscribe_welcomes_with_the_main_menu_and_records_the_scene(
    push: Pusher, rasa: Any, session_factory: Any
) -> None:
    content = push.reply(push.event("oNew", "subscribe", EventKey="qrscene_shuangcheng_station"))["Content"]
    assert content.startswith("欢迎关注") and "1. <a href=" in content and "找工作" in content
    with session_factory.begin() as session:
        user = session.get(WechatUser, "oNew")
        assert user.subscribed and user.subscribe_scene == "shuangcheng_station" and user.last_interaction_at
    push.text("oNew", "1")  # the welcome's first choice
    assert rasa.messages() == ["/job_search"]


def test_click_maps_menu_keys_to_intents(push: Pusher, rasa: Any) -> None:
    assert (
        push.reply(push.event("oClick", "CLICK", EventKey="CERT_STATUS"))["Content"]
        == "收到：/certificate_status"
    )
    push.event("oClick", "CLICK", EventKey="NO_SUCH_KEY")
    assert rasa.messages() == ["/certificate_status", "/main_menu"]
    menu = build_menu()
    keys = [sub["key"] for button in menu["button"] for sub in button["sub_button"]]
    assert sorted(keys) == sorted(MENU_KEYS)


def test_view_scan_location_and_unknown_events(push: Pusher, rasa: Any, session_factory: Any) -> None:
    assert push.event("oEv", "VIEW", EventKey="https://example.invalid").get_data(as_text=True) == "success"
    assert "欢迎回来" in push.reply(push.event("oEv", "SCAN", EventKey="station_7"))["Content"]
    located = push.event("oEv", "LOCATION", Latitude="27.2351", Longitude="119.9093", Precision="30")
    assert located.get_data(as_text=True) == "success"
    assert push.event("oEv", "SOMETHING_NEW").get_data(as_text=True) == "success"
    with session_factory.begin() as session:
        user = session.get(WechatUser, "oEv")
        assert (user.last_latitude, user.last_longitude) == (27.2351, 119.9093)
    assert rasa.calls == []


def test_template_job_finish_updates_the_broadcast_ledger(push: Pusher, session_factory: Any) -> None:
    with session_factory.begin() as session:
        campaign = Campaign(kind="job", title="新岗位", payload={})
        session.add(campaign)
        session.flush()
        session.add_all(
            [
                Delivery(
                    campaign_id=campaign.id, openid="oT1", status=DeliveryStatus.SENT, wechat_msgid="700"
                ),
                Delivery(
                    campaign_id=campaign.id, openid="oT2", status=DeliveryStatus.SENT, wechat_msgid="701"
                ),
            ]
        )
    push.event("oT1", "TEMPLATESENDJOBFINISH", MsgID=700, Status="success")
    push.event("oT2", "TEMPLATESENDJOBFINISH", MsgID=701, Status="failed:user block")
    with session_factory.begin() as session:
        by_msgid = {d.wechat_msgid: d for d in session.scalars(select(Delivery))}
        assert (by_msgid["700"].status, by_msgid["700"].reason) == (DeliveryStatus.SENT, "confirmed")
        assert (by_msgid["701"].status, by_msgid["701"].reason) == (DeliveryStatus.FAILED, "user_block")


def test_unsubscribe_forgets_the_user_but_keeps_open_cases(push: Pusher, session_factory: Any) -> None:
    openid = "oLeaving"
    push.event(openid, "subscribe")
    push.text(openid, "我要找工作")
    with session_factory.begin() as session:
        veteran = Veteran(
            name="张三", id_number_encrypted="x", id_number_hash="h1", id_number_masked="350***1"
        )
        session.add(veteran)
        session.flush()
        user = session.get(WechatUser, openid)
        user.veteran_id = veteran.id
        user.last_latitude, user.last_longitude = 27.0, 119.0
        session.add(JobSubscription(openid=openid, category="司机"))
        session.add(
            CertificateApplication(
                veteran_id=veteran.id, openid=openid, status=CertificateStatus.UNDER_REVIEW
            )
        )
        session.add(LegalCase(openid=openid, topic="劳动", description="工资", status=CaseStatus.OPEN))
        session.add(LegalCase(openid=openid, topic="婚姻", description="旧事", status=CaseStatus.CLOSED))
        counselor = Counselor(name="李老兵")
        session.add(counselor)
        session.flush()
        start = utcnow() + dt.timedelta(days=1)
        slots = [
            CounselingSlot(
                counselor_id=counselor.id,
                starts_at=start + dt.timedelta(hours=h),
                ends_at=start + dt.timedelta(hours=h, minutes=30),
            )
            for h in (0, 1)
        ]
        session.add_all(slots)
        session.flush()
        session.add(Booking(slot_id=slots[0].id, openid=openid, status=BookingStatus.BOOKED))
        session.add(Booking(slot_id=slots[1].id, openid=openid, status=BookingStatus.CANCELLED))
    assert push.event(openid, "unsubscribe").get_data(as_text=True) == "success"
    anon = anonymous_id(openid)
    with session_factory.begin() as session:
        user = session.get(WechatUser, openid)
        assert not user.subscribed and user.unsubscribed_at and user.veteran_id is None
        assert user.last_latitude is None and user.last_interaction_at is None
        assert session.scalars(select(JobSubscription)).all() == []
        assert session.scalars(select(KeyValue).where(KeyValue.key.contains(openid))).all() == []
        assert session.scalars(select(CertificateApplication)).one().openid == openid  # open: kept
        cases = {c.topic: c.openid for c in session.scalars(select(LegalCase))}
        assert cases == {"劳动": openid, "婚姻": None}
        bookings = {b.status: b.openid for b in session.scalars(select(Booking))}
        assert bookings == {BookingStatus.BOOKED: openid, BookingStatus.CANCELLED: anon}
        logs = session.scalars(select(MessageLog)).all()
        assert logs and all(log.openid == anon and log.content is None for log in logs)
