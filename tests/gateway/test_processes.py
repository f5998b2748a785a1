"""The gateway as real server processes (gunicorn, as `make run` starts it), driven by WeChatClientSim.

Where concurrency and the deadline matter: WeChat's 5-second deadline and retries, two webhook
processes sharing one database (or Redis), hostile bodies against a live server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import TEST_DATA_KEY
from tests.gateway.conftest import ACCOUNT, AES_KEY, TOKEN, free_port
from tests.gateway.rasa_double import RasaDouble
from wechatsim.client import WeChatClientSim, build_xml, next_msgid
from wechatsim.server import DEFAULT_SECRET, SimServer, SimState

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class Webhook:
    """One gunicorn webhook process on a free port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/wechat"
        self.log = log
        self.handle = log.open("ab")
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--threads",
                "8",
                "--worker-class",
                "gthread",
                "--timeout",
                "30",
                "webhook:create_app()",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        log = self.log
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("webhook exited:\n" + log.read_text(errors="replace")[-3000:])
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        self.stop()
        raise TimeoutError("webhook did not start:\n" + log.read_text(errors="replace")[-3000:])

    def alive(self) -> bool:
        return (
            self.process.poll() is None
            and requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).ok
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.handle.close()


@pytest.fixture
def stack(db_url: str, tmp_path: Path) -> Iterator[Any]:
    """stack(budget=, rasa_delay=, processes=, redis=) → (webhooks, sim, rasa, app_id)."""
    started: list[Any] = []

    def build(budget: float = 1.0, rasa_delay: float = 0.0, processes: int = 1, redis: bool = False) -> Any:
        app_id = "wx" + uuid.uuid4().hex[:16]  # a fresh account: nothing shared with other test runs in Redis
        sim = SimServer(state=SimState(app_id=app_id)).start()
        rasa = RasaDouble(delay=rasa_delay).start()
        started.extend([sim, rasa])
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.update(
            DATABASE_URL=db_url,
            DATA_KEY=TEST_DATA_KEY,
            SECRET_KEY="test",
            RASA_URL=rasa.url,
            WECHAT_API_BASE=sim.url,
            WECHAT_TOKEN=TOKEN,
            WECHAT_APP_ID=app_id,
            WECHAT_APP_SECRET=DEFAULT_SECRET,
            WECHAT_AES_KEY=AES_KEY,
            REPLY_BUDGET_SECONDS=str(budget),
            SERVICE_CENTER_PHONE="0593-1234567",
        )
        env.pop("REDIS_URL", None)
        if redis:
            env["REDIS_URL"] = "redis://127.0.0.1:6379/15"
        webhooks = [Webhook(env, tmp_path / f"webhook{i}.log") for i in range(processes)]
        started.extend(webhooks)
        for webhook in webhooks:  # started together, waited for together: half the start-up time
            webhook.wait_ready()
        return webhooks, sim, rasa, app_id

    yield build
    for part in reversed(started):
        part.stop()


def wechat(webhook: Any, sim: Any, app_id: str, aes: bool = False, deadline: float = 5.0) -> WeChatClientSim:
    return WeChatClientSim(
        webhook.url,
        TOKEN,
        app_id,
        AES_KEY if aes else None,
        account=ACCOUNT,
        sim_url=sim.url,
        deadline=deadline,
    )


def test_plain_and_safe_mode_round_trip(stack: Any) -> None:
    (webhook,), sim, rasa, app_id = stack()
    plain = wechat(webhook, sim, app_id).send_text("oP1", "你好")
    assert (plain.user_sees, plain.tries) == ("收到：你好", 1)
    safe = wechat(webhook, sim, app_id, aes=True)
    result = safe.send_text("oP2", "我想办优待证]]>")
    assert result.user_sees == "收到：我想办优待证]]>" and result.error is None
    subscribed = safe.send_event("oP2", "subscribe", "qrscene_42")
    assert subscribed.user_sees is not None and subscribed.user_sees.startswith("欢迎关注")


def test_slow_rasa_yields_success_then_one_customer_service_message(stack: Any) -> None:
    (webhook,), sim, rasa, app_id = stack(budget=1.0, rasa_delay=2.5)
    client = wechat(webhook, sim, app_id)
    started = time.monotonic()
    result = client.send_text("oSlow", "附近有工作吗")
    assert result.user_sees is None and result.tries == 1 and time.monotonic() - started < 4.0
    received = client.wait_inbox("oSlow", 1, timeout=10)
    time.sleep(1.0)
    received = client.inbox("oSlow")
    assert [m["text"] for m in received] == ["收到：附近有工作吗"]
    assert rasa.messages() == ["附近有工作吗"]


def test_wechat_retries_during_a_slow_answer_neither_ask_twice_nor_answer_twice(stack: Any) -> None:
    # WeChat gives up on a try after its deadline and retries; scaled down: 1 s deadline, 2.5 s Rasa.
    (webhook,), sim, rasa, app_id = stack(budget=4.0, rasa_delay=2.5)
    client = wechat(webhook, sim, app_id, deadline=1.0)
    result = client.send_text("oRetry", "我要预约谈心")
    assert result.attempts[0] == "timeout" and result.user_sees is None  # the retry was answered `success`
    time.sleep(2.5)
    assert [m["text"] for m in client.wait_inbox("oRetry", 1)] == ["收到：我要预约谈心"]
    assert len(rasa.calls) == 1


@pytest.mark.parametrize("redis", [False, True], ids=["database", "redis"])
def test_same_msgid_three_times_to_two_processes_reaches_rasa_once(stack: Any, redis: bool) -> None:
    webhooks, sim, rasa, app_id = stack(budget=2.0, rasa_delay=0.5, processes=2, redis=redis)
    openid = "oTwice" + uuid.uuid4().hex[:6]
    clients = [wechat(w, sim, app_id) for w in webhooks]
    clients[0].http.post(f"{sim.url}sim/users/{openid}/interact", json={"kind": "message"}, timeout=5)
    xml = build_xml(clients[0].message_fields(openid, "text", Content="查一下优待证", MsgId=next_msgid()))
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda c=c: results.append(c.push_xml(xml, openid)))
        for c in (clients[0], clients[1], clients[0])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert len(results) == 3 and all(r.status == 200 for r in results)
    time.sleep(1.5)
    passive = {r.user_sees for r in results if r.user_sees}
    pushed = [m["text"] for m in clients[0].inbox(openid)]
    assert len(rasa.calls) == 1
    assert len(passive) + len(pushed) == 1  # the user sees the answer exactly once
    assert (passive | set(pushed)) == {"收到：查一下优待证"}


def test_hostile_requests_are_refused_and_the_server_keeps_serving(stack: Any) -> None:
    (webhook,), sim, rasa, app_id = stack()
    client = wechat(webhook, sim, app_id)
    params, _ = client.signed_request("", "oX")
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(f'<!ENTITY a{i} "{"&a;" * 10}">'.encode() for i in range(1))
        + b"]><xml><Content>&a0;</Content></xml>"
    )
    for body in [bomb, b"<xml><FromUserName>&x;</FromUserName>", os.urandom(2000)]:
        assert requests.post(webhook.url, params=params, data=body, timeout=5).status_code == 400
    try:
        status = requests.post(
            webhook.url, params=params, data=b"x" * (10 * 1024 * 1024), timeout=10
        ).status_code
        assert status == 413
    except requests.ConnectionError:
        pass  # the server may also cut the upload short; either way it is not processed
    forged = dict(params, signature="0" * 40)
    assert requests.post(webhook.url, params=forged, data=b"<xml/>", timeout=5).status_code == 403
    assert webhook.alive()
    assert client.send_text("oX", "还在吗").user_sees == "收到：还在吗"
    assert rasa.messages() == ["还在吗"]
