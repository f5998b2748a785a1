"""`flask jobs …`, queueing after commit, the rate limiters and the Celery configuration."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis as redis_lib
from sqlalchemy import select

from bureau.broadcast import celery_app, hooks
from bureau.broadcast.config import get_config
from bureau.broadcast.ratelimit import DatabaseRateLimiter, LocalRateLimiter, Pacer, RedisRateLimiter
from bureau.models import Campaign, Delivery
from bureau.notifications import notify_user
from bureau.settings import get_settings
from tests.broadcast.conftest import add_job, add_user


def test_flask_jobs_publish_report_and_controls(runner, session_factory):
    with session_factory.begin() as s:
        add_user(s, "u1", subscriptions=[(None, None)])
        add_user(s, "u2", subscriptions=[("保安", "双城镇")])
        job_id = add_job(s).id
    result = runner.invoke(args=["jobs", "publish", str(job_id), "--actor", "clerk1"])
    assert result.exit_code == 0, result.output
    assert "收件人 2" in result.output and "flask jobs campaign" in result.output
    with session_factory.begin() as s:
        cid = s.scalars(select(Campaign.id)).one()

    result = runner.invoke(args=["jobs", "campaign", str(cid), "--json"])
    data = json.loads(result.output)
    assert (data["recipients"], data["pending"], data["status"]) == (2, 2, "running")

    result = runner.invoke(args=["jobs", "pause", str(cid)])
    assert result.exit_code == 0 and "已暂停" in result.output
    result = runner.invoke(args=["jobs", "pause", str(cid)])
    assert result.exit_code == 1 and "不能暂停" in result.output and "Traceback" not in result.output
    assert runner.invoke(args=["jobs", "resume", str(cid)]).exit_code == 0
    result = runner.invoke(args=["jobs", "cancel", str(cid)])
    assert result.exit_code == 0 and "已取消" in result.output and "跳过 2" in result.output
    result = runner.invoke(args=["jobs", "campaigns"])
    assert "已取消" in result.output and "岗位通知：保安员" in result.output


def test_flask_jobs_refuses_bad_input_plainly(runner):
    result = runner.invoke(args=["jobs", "publish", "999"])
    assert result.exit_code == 1 and "没有编号为 999 的岗位" in result.output
    result = runner.invoke(args=["jobs", "campaign", "abc"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    result = runner.invoke(args=["jobs", "campaign", "7"])
    assert result.exit_code == 1 and "没有编号为 7 的发送任务" in result.output


@pytest.fixture
def kicked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr("bureau.broadcast.tasks.kick", lambda cid, lanes=None: calls.append(cid))
    return calls


def test_notification_is_queued_only_after_commit(session_factory, kicked):
    with session_factory.begin() as s:
        add_user(s, "u")
    with pytest.raises(RuntimeError), session_factory.begin() as s:
        notify_user(s, "u", "certificate", "您的优待证已可领取。")
        raise RuntimeError("the caller's transaction fails")
    assert kicked == []
    with session_factory.begin() as s:
        cid = notify_user(s, "u", "certificate", "您的优待证已可领取。").id
        assert kicked == []  # not inside the transaction
    assert kicked == [cid]


def test_an_unreachable_broker_does_not_break_the_callers_commit(session_factory, monkeypatch):
    def broken(cid, lanes=None):
        raise ConnectionError("broker down")

    monkeypatch.setattr("bureau.broadcast.tasks.kick", broken)
    with session_factory.begin() as s:
        add_user(s, "u")
        notify_user(s, "u", "case_answer", "您的问题已有答复。")
    with session_factory.begin() as s:
        assert s.scalars(select(Delivery.status)).one() == "pending"  # the sweep will send it


def test_eager_mode_sends_in_process_after_commit(session_factory, sim, monkeypatch):
    monkeypatch.setenv("BROADCAST_EAGER", "1")
    get_config.cache_clear()
    sim.follower("e")
    with session_factory.begin() as s:
        add_user(s, "e")
        notify_user(s, "e", "booking_reminder", "提醒：您明天上午9点预约了老战友谈心。")
    deadline = time.monotonic() + 10
    while not sim.inbox("e") and time.monotonic() < deadline:
        time.sleep(0.05)
    (msg,) = sim.inbox("e")
    assert msg["body"]["template_id"] == "TPL_REMINDER" and "老战友" in msg["text"]
    while time.monotonic() < deadline:
        with session_factory.begin() as s:
            if s.scalars(select(Campaign.status)).one() == "done":
                break
        time.sleep(0.05)
    for t in threading.enumerate():
        if t.name == "broadcast-inline":
            t.join(timeout=5)


def _spread(limiter, workers: int = 3, per_worker: int = 20) -> float:
    pacers = [Pacer(limiter, chunk=5) for _ in range(workers)]
    start = time.monotonic()

    def go(p: Pacer) -> None:
        for _ in range(per_worker):
            p.wait()

    threads = [threading.Thread(target=go, args=(p,)) for p in pacers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return time.monotonic() - start


def test_local_limiter_holds_the_rate():
    elapsed = _spread(LocalRateLimiter(100.0))
    assert 0.5 <= elapsed <= 1.0  # 60 sends at 100/s: ~0.6 s (the first chunk starts at once)


def test_database_limiter_is_shared_by_separate_limiters(session_factory):
    one = DatabaseRateLimiter(session_factory, "zt:rate", 100.0)
    two = DatabaseRateLimiter(session_factory, "zt:rate", 100.0)
    start = time.monotonic()
    pacers = [Pacer(one, chunk=5), Pacer(two, chunk=5)]
    threads = [threading.Thread(target=lambda p=p: [p.wait() for _ in range(30)]) for p in pacers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert 0.5 <= time.monotonic() - start <= 1.5  # 60 sends at 100/s


@pytest.fixture
def redis_url() -> str:
    url = "redis://127.0.0.1:6379/0"
    try:
        redis_lib.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis_lib.RedisError:
        pytest.skip("Redis not running on 127.0.0.1:6379")
    return url


def test_redis_limiter_is_shared_by_separate_clients(redis_url):
    key = get_config().redis_prefix + "rate"
    client = redis_lib.Redis.from_url(redis_url)
    try:
        limiters = [RedisRateLimiter(redis_lib.Redis.from_url(redis_url), key, 100.0) for _ in range(3)]
        start = time.monotonic()
        threads = [
            threading.Thread(target=lambda p=p: [p.wait() for _ in range(20)])
            for p in [Pacer(lim, chunk=5) for lim in limiters]
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert 0.5 <= time.monotonic() - start <= 1.0
    finally:
        client.delete(key)


def test_broker_choice(monkeypatch, tmp_path):
    monkeypatch.delenv("BROKER_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/zhanyou.db")
    get_settings.cache_clear()
    assert celery_app.broker_url() == f"sqla+sqlite:///{tmp_path}/zhanyou-broker.db"
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/zhanyou")
    get_settings.cache_clear()
    assert celery_app.broker_url() == "sqla+postgresql+psycopg://postgres@127.0.0.1:5432/zhanyou"
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    get_settings.cache_clear()
    assert celery_app.broker_url() == "redis://127.0.0.1:6379/3"
    monkeypatch.setenv("BROKER_URL", "amqp://guest@127.0.0.1:5672//")
    assert celery_app.broker_url() == "amqp://guest@127.0.0.1:5672//"
    conf = celery_app.celery_config()
    assert conf["task_acks_late"] and conf["worker_prefetch_multiplier"] == 1
    assert set(conf["beat_schedule"]) == {"broadcast-sweep", "booking-reminders"}
    get_settings.cache_clear()


def test_start_campaigns_never_raises(monkeypatch):
    monkeypatch.setattr("bureau.broadcast.tasks.kick", lambda cid, lanes=None: 1 / 0)
    hooks.start_campaigns([1, 2])


def test_sweep_frees_a_dead_local_workers_claims_at_once_and_queues_the_campaign(session_factory):
    import socket
    import subprocess

    from bureau.broadcast import campaigns, ledger, tasks

    with session_factory.begin() as s:
        for i in range(3):
            add_user(s, f"s{i}", subscriptions=[(None, None)])
        job_id = add_job(s).id
    with session_factory.begin() as s:
        cid = campaigns.publish_job(s, job_id, enqueue=False).id
    gone = subprocess.Popen(["true"])
    gone.wait()
    with session_factory.begin() as s:
        ledger.claim_batch(s, f"{socket.gethostname()[:30]}:{gone.pid}:abc123", 2, cid)
        ledger.claim_batch(s, "otherhost:1:def456", 1, cid)  # another machine: only its lease can tell
    result = tasks.sweep_once()
    assert result["released"] == 2 and result["dead_workers"] == [
        f"{socket.gethostname()[:30]}:{gone.pid}:abc123"
    ]
    assert result["idle"] == []  # the other host's fresh claim means someone is working on it
    with session_factory.begin() as s:
        statuses = sorted(s.scalars(select(Delivery.status).where(Delivery.campaign_id == cid)))
    assert statuses == ["pending", "pending", "sending"]


def test_booking_reminder_task_runs_the_counseling_service(session_factory):
    from bureau.broadcast import tasks

    assert tasks.booking_reminders.run() == 0  # nothing booked: nothing to remind


def test_consumed_messages_are_pruned_from_the_database_broker(tmp_path):
    from kombu import Connection

    from bureau.broadcast import tasks

    url = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    with Connection(url) as conn:
        queue = conn.SimpleQueue("prune-test")
        queue.put({"n": 1})
        queue.put({"n": 2})
        queue.get(timeout=5).ack()
        queue.close()
    assert tasks.prune_database_broker(keep_seconds=3600, url=url) == 0  # consumed just now: kept a while
    assert tasks.prune_database_broker(keep_seconds=-5, url=url) == 1  # the consumed one only
    with Connection(url) as conn:
        queue = conn.SimpleQueue("prune-test")
        assert queue.get(timeout=5).payload == {"n": 2}
        queue.close()
