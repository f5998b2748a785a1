"""The stack's infrastructure fails: PostgreSQL briefly unreachable, Redis cut. Real processes throughout.

The whole stack (webhook under gunicorn, Rasa with its tracker and lock store in Redis, the action server,
the simulator) reaches PostgreSQL and Redis only through a FaultProxy each: the servers are real, only
the network path to them is cut, as a restart, a failover or a dropped link looks to the application.

- PostgreSQL gone for two seconds while a veteran files a legal-aid case: the connections wait for it
  (bureau.db), the veteran gets the case number, and the case and the message are stored exactly once.
- PostgreSQL gone for longer than the retries: an apology with the phone number within WeChat's
  deadline, nothing half-written, and the next message works once it is back.
- Redis cut: the webhook answers from the database (dedupe, choices, rate limit, token); Rasa, whose
  tracker and lock store are in Redis, cannot, so the veteran gets the apology with the phone number in
  time and the message waits for staff, once. When Redis returns, the conversation goes on.
- Two Rasa servers share the work (RASA_URL names both); one is killed in the middle of a veteran's
  legal-aid form: the other carries the conversation on from the shared tracker, with no apology, and
  the case is filed once.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import redis as redis_lib
import requests
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from bureau import db
from bureau.models import HandoffTicket, LegalCase, MessageLog, WechatUser
from wechatsim.client import FAILURE_NOTICE, WeChatClientSim, next_msgid
from wechatsim.faultproxy import FaultProxy
from wechatsim.stack import LocalStack, current_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVICE_PHONE = "0593-8352233"
PHONE = "13905931111"


class Infra:
    def __init__(self, stack: LocalStack, pg: FaultProxy, redis: FaultProxy, factory: sessionmaker) -> None:
        self.stack, self.pg, self.redis, self.factory = stack, pg, redis, factory
        env = stack.env()
        self.wechat = WeChatClientSim(
            stack.webhook_url,
            token=env.get("WECHAT_TOKEN", "zhanyou-dev-token"),
            app_id=env.get("WECHAT_APP_ID", "wxzhanyoudev0001"),
            sim_url=stack.simulator_url,
        )

    def new_user(self) -> str:
        openid = f"o-infra-{uuid.uuid4().hex[:12]}"
        requests.post(
            self.stack.simulator_url + "sim/followers", json={"openid": openid}, timeout=5
        ).raise_for_status()
        return openid

    def say(self, openid: str, message: str, msg_id: int | None = None) -> str:
        """What the user reads: the passive reply, or what arrived later through the customer-service API."""
        before = len(self.wechat.inbox(openid))
        result = self.wechat.send_text(openid, message, msg_id=msg_id)
        assert result.status == 200 and result.error is None, (result.error, result.attempts)
        seen = result.user_sees or ""
        if result.reply is None:
            late = self.wechat.wait_inbox(openid, before + 1, timeout=60)[before:]
            seen = "\n".join(str(item.get("text", item)) for item in late)
        assert FAILURE_NOTICE not in seen
        return seen

    def count(self, model: Any, *where: Any) -> int:
        with self.factory() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@pytest.fixture(scope="module")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL not set: the infrastructure fault tests need PostgreSQL")
    redis_url = urlparse(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    redis_host, redis_port = redis_url.hostname or "127.0.0.1", redis_url.port or 6379
    redis_db = redis_url.path.lstrip("/") or "15"
    try:
        redis_lib.Redis(host=redis_host, port=redis_port, socket_connect_timeout=1).ping()
    except redis_lib.RedisError:
        pytest.skip("Redis not running")

    pg = make_url(base)
    name = f"zt_faults_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    pg_proxy = FaultProxy((pg.host or "127.0.0.1", pg.port or 5432)).start()
    redis_proxy = FaultProxy((redis_host, redis_port)).start()
    proxied = pg.set(drivername="postgresql", host="127.0.0.1", port=pg_proxy.port, database=name)
    database_url = proxied.render_as_string(hide_password=False)
    workdir: Path = tmp_path_factory.mktemp("infra")
    stack = LocalStack(
        workdir=workdir,
        model=current_model(),
        database_url=database_url,
        redis_url=f"redis://127.0.0.1:{redis_proxy.port}/{redis_db}",
        rasa_processes=2,
        extra_env={
            "DATA_KEY": "integration-data-key",
            "DB_RETRY_SECONDS": "3",
            "REDIS_COOLDOWN_SECONDS": "1",
            "BROADCAST_QUEUE": f"zt.{name}",
        },
    )
    # What the tests read is checked on a direct connection, not through the proxy they cut.
    direct = db.make_engine(
        pg.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    )
    try:
        stack.start()
        yield Infra(stack, pg_proxy, redis_proxy, sessionmaker(bind=direct, expire_on_commit=False))
    finally:
        pg_proxy.up()
        redis_proxy.up()
        stack.stop()
        direct.dispose()
        pg_proxy.stop()
        redis_proxy.stop()
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def restore(infra: Infra) -> Iterator[None]:
    yield
    infra.pg.up()
    infra.redis.up()
    if any(name not in infra.stack.parts for name in infra.stack.rasa_names):
        infra.stack.start_rasa()


def _start_legal_case(infra: Infra, openid: str) -> None:
    """Walk the legal-aid form up to its last question (the phone number)."""
    answer = infra.say(openid, "我想申请法律援助，老板拖欠工资三个月了")
    for _ in range(3):
        if "电话" in answer:
            return
        answer = infra.say(openid, "在工地干了半年，老板一直不给工钱")
    pytest.fail(f"the legal-aid form never asked for a phone number: {answer!r}")


def test_postgres_gone_for_two_seconds_while_a_case_is_filed_nothing_lost_nothing_twice(
    infra: Infra, restore: None
) -> None:
    openid = infra.new_user()
    _start_legal_case(infra, openid)

    infra.pg.down()  # every open connection of the webhook and the action server is cut too
    threading.Timer(2.0, infra.pg.up).start()
    started = time.monotonic()
    answer = infra.say(openid, PHONE)
    took = time.monotonic() - started
    assert "编号" in answer and SERVICE_PHONE not in answer, answer
    assert took >= 1.5, f"answered in {took:.1f} s: was the database really cut?"

    with infra.factory() as session:
        cases = session.scalars(select(LegalCase).where(LegalCase.openid == openid)).all()
        assert [c.contact_phone for c in cases] == [PHONE]
        assert re.search(str(cases[0].id), answer) or "编号" in answer
    assert infra.count(MessageLog, MessageLog.openid == openid, MessageLog.content == PHONE) == 1
    assert infra.count(HandoffTicket, HandoffTicket.openid == openid) == 0

    # Every log line of the webhook's requests carries a request id (the gateway's included).
    lines = (infra.stack.workdir / "webhook.log").read_text(errors="replace").splitlines()
    replies = [line for line in lines if "zhanyou.gateway" in line and "event=reply" in line]
    assert replies and all(re.search(r"rid=[0-9a-f]{32} ", line) for line in replies)
    assert any("event=db_connect_retry" in line for line in lines)


def test_postgres_gone_longer_than_the_retries_apology_in_time_then_back_to_normal(
    infra: Infra, restore: None
) -> None:
    openid = infra.new_user()
    infra.say(openid, "你好")
    infra.pg.down()
    try:
        started = time.monotonic()
        result = infra.wechat.send_text(openid, "我想问问优待证怎么办")
        took = time.monotonic() - started
    finally:
        infra.pg.up()
    assert result.tries == 1 and took < 5.0, (result.attempts, took)
    assert result.status == 200 and SERVICE_PHONE in (result.user_sees or ""), result.body
    back = infra.say(openid, "你好")
    assert back and SERVICE_PHONE not in back
    assert infra.count(MessageLog, MessageLog.openid == openid, MessageLog.content == "你好") == 2
    with infra.factory() as session:
        assert session.get(WechatUser, openid) is not None


def test_redis_cut_the_webhook_answers_rasa_apologises_and_the_message_waits_once(
    infra: Infra, restore: None
) -> None:
    openid = infra.new_user()
    assert SERVICE_PHONE not in infra.say(openid, "你好")

    infra.redis.down()
    question = "我想问问定期补助金怎么领"
    msg_id = next_msgid()
    started = time.monotonic()
    first = infra.wechat.send_text(openid, question, msg_id=msg_id)
    took = time.monotonic() - started
    assert first.tries == 1 and took < 5.0, (first.attempts, took)
    assert SERVICE_PHONE in (first.user_sees or ""), first.user_sees
    # WeChat's retry of the same message is recognised without Redis: no second ticket.
    again = infra.wechat.send_text(openid, question, msg_id=msg_id)
    assert again.user_sees == first.user_sees
    assert infra.count(HandoffTicket, HandoffTicket.openid == openid) == 1
    assert (
        infra.count(
            MessageLog, MessageLog.openid == openid, MessageLog.content == question, MessageLog.unanswered
        )
        == 1
    )
    # What the webhook answers by itself still works: the welcome menu, the nearest station, the hotline.
    welcome = infra.wechat.send_event(openid, "subscribe")
    assert welcome.user_sees and "1." in welcome.user_sees
    station = infra.wechat.send_location(openid, 27.2362, 119.9001, "柘荣县城")
    assert station.user_sees and "服务站" in station.user_sees
    crisis = infra.wechat.send_text(openid, "我真的不想活了")
    assert "12356" in (crisis.user_sees or "")

    infra.redis.up()
    time.sleep(1.5)  # REDIS_COOLDOWN_SECONDS=1 in this stack
    back = infra.say(openid, "双城镇有保安的工作吗")
    assert "保安" in back and SERVICE_PHONE not in back
    details = infra.say(openid, "1")  # the numbered choice is in Redis again
    assert "工资" in details or "联系" in details


def test_one_of_two_rasa_servers_killed_mid_form_the_other_carries_on(infra: Infra, restore: None) -> None:
    openid = infra.new_user()
    _start_legal_case(infra, openid)

    infra.stack.stop_part("rasa-2", signal.SIGKILL)
    started = time.monotonic()
    answer = infra.say(openid, PHONE)
    assert time.monotonic() - started < 4.5
    assert "编号" in answer and SERVICE_PHONE not in answer, answer
    with infra.factory() as session:
        cases = session.scalars(select(LegalCase).where(LegalCase.openid == openid)).all()
        assert [c.contact_phone for c in cases] == [PHONE]
    # Every later message is served by the remaining server, none is lost to the dead one.
    for question in ("你好", "双城镇有保安的工作吗"):
        assert SERVICE_PHONE not in infra.say(openid, question)
    assert infra.count(HandoffTicket, HandoffTicket.openid == openid) == 0
