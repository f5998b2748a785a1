"""The fault test: a 5,000-recipient campaign survives two SIGKILLed workers; everyone gets exactly one message.

Workers are real `celery worker` processes on the embedded defaults (SQLite, the database broker, no
Redis) — and, when TEST_DATABASE_URL is set and Redis runs, on PostgreSQL + Redis too. The simulator's
inboxes are the proof.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import pytest
import redis as redis_lib
from sqlalchemy import text

from bureau import db
from bureau.broadcast import campaigns
from bureau.models import DeliveryStatus
from tests.broadcast import harness
from wechatsim.server import SimServer

N = 5000


@pytest.fixture(params=["sqlite", "postgresql+redis"])
def stack_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[str, str | None]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'zhanyou.db'}"
        db.Base.metadata.create_all(db.get_engine(url))
        yield url, None
        db.get_engine(url).dispose()
        return
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL not set")
    redis_url = "redis://127.0.0.1:6379/0"
    try:
        redis_lib.Redis.from_url(redis_url, socket_connect_timeout=1).ping()
    except redis_lib.RedisError:
        pytest.skip("Redis not running")
    schema = f"zf_{uuid.uuid4().hex[:8]}"
    admin = db.make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    db.Base.metadata.create_all(db.get_engine(url))
    yield url, redis_url
    db.get_engine(url).dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.mark.slow
def test_two_sigkills_mid_campaign_every_subscriber_gets_exactly_one_message(stack_url, tmp_path):
    url, redis_url = stack_url
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    prefix = f"zf:{uuid.uuid4().hex[:8]}:"
    sim = SimServer().start()
    stack = harness.Stack(
        url,
        sim,
        tmp_path,
        redis_url=redis_url,
        extra_env={
            "BROADCAST_RATE": "200",
            "BROADCAST_SWEEP_SECONDS": "2",
            "BROADCAST_LEASE_SECONDS": "20",
            "BROADCAST_TEMPLATE_GRACE_SECONDS": "10",
            "BROADCAST_TASK_SECONDS": "10",
            "BROADCAST_REDIS_PREFIX": prefix,
        },
    )
    factory = stack.factory
    pusher = harness.EventPusher(sim, factory)
    try:
        job_id = harness.seed(factory, sim, N)
        cid = harness.publish(factory, job_id)
        pusher.start()
        for name, kill_at in (("w1", 1500), ("w2", 3200)):
            worker = stack.start_worker(name, beat=True)
            reached = harness.wait_until(
                lambda k=kill_at: harness.counts(factory, cid).get(DeliveryStatus.SENT, 0) >= k, timeout=90
            )
            assert reached, f"{name} did not reach {kill_at} sends: {harness.counts(factory, cid)}"
            stack.kill(worker)  # SIGKILL, mid-run: claims, in-flight requests and queued tasks are lost
        last = stack.start_worker("w3", beat=True)
        assert harness.wait_until(lambda: harness.finished(factory, cid), timeout=120), harness.counts(
            factory, cid
        )
        stack.stop(last)
        pusher.stop()

        inboxes = harness.inbox_counts(sim)
        assert len(inboxes) == N, f"{N - len(inboxes)} subscribers got nothing"
        repeated = {o: n for o, n in inboxes.items() if n != 1}
        assert not repeated, f"{len(repeated)} subscribers got more than one message"
        with factory.begin() as session:
            rep = campaigns.report(session, cid)
        assert (rep.recipients, rep.sent, rep.failed, rep.skipped) == (N, N, 0, 0)
        assert rep.status == "done"
    finally:
        pusher.stop()
        stack.stop_all()
        sim.stop()
        if redis_url:
            client = redis_lib.Redis.from_url(redis_url)
            for key in client.scan_iter(prefix + "*"):
                client.delete(key)
