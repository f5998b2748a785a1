"""Sending against the local WeChat simulator: channel choice, fallbacks, errors, retries, pause/cancel."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from bureau.broadcast import campaigns, ledger, tasks
from bureau.models import Campaign, Delivery, DeliveryStatus, WechatUser
from bureau.notifications import notify_user
from tests.broadcast.conftest import add_job, add_user, hours_ago


def _publish(factory, users: dict[str, dict]) -> int:
    with factory.begin() as s:
        for openid, kwargs in users.items():
            add_user(s, openid, subscriptions=[(None, None)], **kwargs)
        job_id = add_job(s).id
    with factory.begin() as s:
        return campaigns.publish_job(s, job_id, enqueue=False).id


def _run_to_end(factory, campaign_id: int | None = None, rounds: int = 40) -> None:
    for _ in range(rounds):
        tasks.make_broadcaster().run(campaign_id, budget_seconds=20)
        with factory.begin() as s:
            ledger.finish_campaigns(s)
            waiting = ledger.next_due_in(s, campaign_id)
        if waiting is None:
            return
        time.sleep(min(waiting, 0.3) + 0.02)
    raise AssertionError("campaign did not finish")


def _rows(factory, cid: int) -> dict[str, Delivery]:
    with factory.begin() as s:
        return {d.openid: d for d in s.scalars(select(Delivery).where(Delivery.campaign_id == cid))}


def test_window_decides_between_customer_service_and_template(session_factory, sim):
    sim.follower("fresh", last_message_ago=3600)
    sim.follower("stale", last_message_ago=50 * 3600)
    sim.follower("never")
    cid = _publish(
        session_factory,
        {
            "fresh": {"last_interaction": hours_ago(1)},
            "stale": {"last_interaction": hours_ago(50)},
            "never": {},
        },
    )
    _run_to_end(session_factory, cid)
    rows = _rows(session_factory, cid)
    assert {k: (r.status, r.channel) for k, r in rows.items()} == {
        "fresh": ("sent", "custom"),
        "stale": ("sent", "template"),
        "never": ("sent", "template"),
    }
    (fresh,) = sim.inbox("fresh")
    assert fresh["kind"] == "custom" and "【新岗位】保安员" in fresh["text"] and "回复“退订”" in fresh["text"]
    (stale,) = sim.inbox("stale")
    assert stale["kind"] == "template" and stale["body"]["template_id"] == "TPL_JOB_NOTICE"
    data = stale["body"]["data"]
    assert data["keyword1"]["value"] == "保安员" and data["keyword4"]["value"] == "3000-4000元/月"
    assert rows["stale"].wechat_msgid == str(stale["msgid"])
    with session_factory.begin() as s:
        assert s.get(Campaign, cid).status == "done"


def test_our_own_quota_use_moves_the_next_message_to_a_template(session_factory, sim, monkeypatch):
    monkeypatch.setenv("BROADCAST_CS_QUOTA", "1")
    from bureau.broadcast.config import get_config

    get_config.cache_clear()
    sim.follower("u", last_message_ago=60)
    cid1 = _publish(session_factory, {"u": {"last_interaction": hours_ago(0.02)}})
    _run_to_end(session_factory, cid1)
    with session_factory.begin() as s:
        job2 = add_job(s, title="仓库管理员").id
    with session_factory.begin() as s:
        cid2 = campaigns.publish_job(s, job2, enqueue=False).id
    _run_to_end(session_factory, cid2)
    assert _rows(session_factory, cid1)["u"].channel == "custom"
    assert _rows(session_factory, cid2)["u"].channel == "template"
    assert [m["kind"] for m in sim.inbox("u")] == ["custom", "template"]


@pytest.mark.parametrize("code", [45015, 45047])
def test_window_or_quota_refusal_falls_back_to_a_template(session_factory, sim, code):
    # Our records say "inside the window"; WeChat disagrees (the window closed / the quota is used up).
    sim.follower("u", last_message_ago=60)
    sim.fault(mode="errcode", errcode=code, count=1, path="custom/send")
    cid = _publish(session_factory, {"u": {"last_interaction": hours_ago(0.02)}})
    _run_to_end(session_factory, cid)
    row = _rows(session_factory, cid)["u"]
    assert (row.status, row.channel, row.attempts) == ("sent", "template", 1)
    assert [m["kind"] for m in sim.inbox("u")] == ["template"]


def test_43004_skips_and_marks_the_user_unsubscribed(session_factory, sim):
    sim.follower("gone", subscribed=False)
    sim.follower("here")
    cid = _publish(session_factory, {"gone": {}, "here": {}})
    _run_to_end(session_factory, cid)
    rows = _rows(session_factory, cid)
    assert (rows["gone"].status, rows["gone"].error_code, rows["gone"].reason) == (
        "skipped",
        43004,
        "unsubscribed",
    )
    assert rows["here"].status == "sent"
    with session_factory.begin() as s:
        assert s.get(WechatUser, "gone").subscribed is False
        rep = campaigns.report(s, cid)
    assert rep.skipped_by_reason == {"用户未关注或已取消关注（unsubscribed）": 1}


def test_users_known_to_have_left_are_skipped_without_a_request(session_factory, sim):
    with session_factory.begin() as s:
        add_user(s, "left", subscribed=False)
        cid = notify_user(s, "left", "certificate", "您的优待证已可领取。").id
    _run_to_end(session_factory, cid)
    assert _rows(session_factory, cid)["left"].status == "skipped"
    assert sim.server.state.calls == []


def test_system_busy_is_retried_with_backoff_until_it_works(session_factory, sim):
    sim.follower("u")
    sim.fault(mode="errcode", errcode=-1, count=2, path="template/send")
    cid = _publish(session_factory, {"u": {}})
    _run_to_end(session_factory, cid)
    row = _rows(session_factory, cid)["u"]
    assert (row.status, row.attempts, row.channel) == ("sent", 3, "template")
    assert len(sim.inbox("u")) == 1


def test_retries_stop_after_max_attempts_and_the_failure_is_recorded(session_factory, sim, monkeypatch):
    monkeypatch.setenv("BROADCAST_MAX_ATTEMPTS", "3")
    from bureau.broadcast.config import get_config

    get_config.cache_clear()
    sim.follower("u")
    sim.fault(mode="errcode", errcode=45009, count=10, path="template/send")
    cid = _publish(session_factory, {"u": {}})
    _run_to_end(session_factory, cid)
    row = _rows(session_factory, cid)["u"]
    assert (row.status, row.error_code, row.attempts) == ("failed", 45009, 3)
    assert sim.inbox("u") == []
    with session_factory.begin() as s:
        assert campaigns.report(s, cid).failed_by_reason == {"45009 接口调用次数超限": 1}


def test_permanent_errors_are_recorded_not_retried(session_factory, sim):
    sim.post("/sim/config", {"templates": ["SOMETHING_ELSE"]})
    sim.follower("u")
    cid = _publish(session_factory, {"u": {}})
    _run_to_end(session_factory, cid)
    row = _rows(session_factory, cid)["u"]
    assert (row.status, row.error_code, row.attempts) == ("failed", 40037, 1)
    assert len([c for c in sim.server.state.calls if "template" in c["path"]]) == 1


def test_an_expired_token_is_refreshed_and_the_message_still_sent(session_factory, sim):
    sim.follower("a")
    sim.follower("b")
    cid = _publish(session_factory, {"a": {}})
    _run_to_end(session_factory, cid)
    sim.post("/sim/tokens/expire")
    with session_factory.begin() as s:
        add_user(s, "b")
        cid2 = notify_user(s, "b", "case_answer", "您咨询的问题已有答复，请回复“我的问题”查看。").id
    _run_to_end(session_factory, cid2)
    row = _rows(session_factory, cid2)["b"]
    assert row.status == "sent"
    assert any(c["errcode"] == 42001 for c in sim.server.state.calls)
    (msg,) = sim.inbox("b")
    assert msg["body"]["template_id"] == "TPL_STATUS_UPDATE" and "已有答复" in msg["text"]


def test_a_lost_answer_is_not_resent(session_factory, sim):
    sim.follower("c", last_message_ago=60)
    sim.fault(mode="drop", count=1, path="custom/send")
    cid = _publish(session_factory, {"c": {"last_interaction": hours_ago(0.02)}})
    _run_to_end(session_factory, cid)
    row = _rows(session_factory, cid)["c"]
    assert (row.status, row.reason, row.attempts) == ("sent", ledger.UNCONFIRMED, 1)
    with session_factory.begin() as s:
        assert campaigns.report(s, cid).unconfirmed == 1


def test_notification_uses_given_template_fields_outside_the_window(session_factory, sim):
    sim.follower("v")
    with session_factory.begin() as s:
        add_user(s, "v")
        cid = notify_user(
            s, "v", "certificate", "您的优待证申请已通过。", {"first": "优待证进度", "keyword1": "已通过"}
        ).id
    _run_to_end(session_factory)
    (msg,) = sim.inbox("v")
    assert msg["body"]["template_id"] == "TPL_STATUS_UPDATE"
    assert msg["body"]["data"] == {"first": {"value": "优待证进度"}, "keyword1": {"value": "已通过"}}
    assert _rows(session_factory, cid)["v"].status == "sent"


def test_pause_stops_sending_and_resume_finishes_without_repeats(session_factory, sim, monkeypatch):
    monkeypatch.setenv("BROADCAST_RATE", "40")
    from bureau.broadcast.config import get_config

    get_config.cache_clear()
    users = {f"p{i:03d}": {} for i in range(60)}
    for openid in users:
        sim.follower(openid)
    cid = _publish(session_factory, users)
    runner = threading.Thread(target=lambda: tasks.make_broadcaster().run(cid, budget_seconds=30))
    runner.start()
    time.sleep(0.5)
    with session_factory.begin() as s:
        campaigns.pause(s, cid)
    runner.join(timeout=20)
    assert not runner.is_alive()
    rows = _rows(session_factory, cid)
    sent = {k for k, r in rows.items() if r.status == "sent"}
    assert 5 <= len(sent) < 60
    assert {r.status for k, r in rows.items() if k not in sent} == {DeliveryStatus.PENDING}
    assert {k for k, v in sim.all_inboxes().items() if v} == sent
    # Paused: a worker finds nothing to do.
    assert tasks.make_broadcaster().run(cid, budget_seconds=5).claimed == 0
    with session_factory.begin() as s:
        campaigns.resume(s, cid)
    _run_to_end(session_factory, cid)
    inboxes = sim.all_inboxes()
    assert sorted(inboxes) == sorted(users) and all(len(v) == 1 for v in inboxes.values())
    with session_factory.begin() as s:
        rep = campaigns.report(s, cid)
    assert (rep.status, rep.sent) == ("done", 60)


def test_cancel_skips_everyone_not_yet_sent(session_factory, sim, monkeypatch):
    monkeypatch.setenv("BROADCAST_RATE", "40")
    from bureau.broadcast.config import get_config

    get_config.cache_clear()
    users = {f"c{i:03d}": {} for i in range(60)}
    for openid in users:
        sim.follower(openid)
    cid = _publish(session_factory, users)
    runner = threading.Thread(target=lambda: tasks.make_broadcaster().run(cid, budget_seconds=30))
    runner.start()
    time.sleep(0.5)
    with session_factory.begin() as s:
        campaigns.cancel(s, cid)
    runner.join(timeout=20)
    with session_factory.begin() as s:
        ledger.finish_campaigns(s)
        rep = campaigns.report(s, cid)
    received = sum(len(v) for v in sim.all_inboxes().values())
    assert rep.sent == received and 5 <= received < 60
    assert rep.skipped == 60 - received and rep.pending == rep.in_flight == 0
    assert rep.status == "cancelled"
    with session_factory.begin() as s:
        assert s.get(Campaign, cid).finished_at is not None
