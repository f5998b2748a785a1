"""Redis down: the webhook is degraded but answers — dedupe, rate limit, pending choices and the access
token fall back to the database — and goes back to Redis when it returns.

The webhook's Redis is the machine's real Redis behind a FaultProxy (only the path to it is cut).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib

from bureau.services.users import CHOICES_KEY_PREFIX
from bureau.wechat.store import guard_for, redis_client
from tests.gateway.conftest import Pusher
from tests.gateway.test_http import inbox, interact
from webhook.gateway import texts
from wechatsim.faultproxy import FaultProxy

REDIS_DB = 15


@pytest.fixture
def redis_proxy() -> Iterator[tuple[FaultProxy, str]]:
    try:
        redis_lib.Redis(port=6379, socket_connect_timeout=1).ping()
    except redis_lib.RedisError:
        pytest.skip("Redis not running")
    with FaultProxy(("127.0.0.1", 6379)) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/{REDIS_DB}"
        guard_for(redis_client(url)).cooldown = 0.3  # production: 5 s
        yield proxy, url


def _menu_answer(sender: str, message: str) -> list[dict[str, Any]]:
    if message.startswith("/"):
        return [{"recipient_id": sender, "text": f"选了{message}"}]
    return [
        {
            "recipient_id": sender,
            "text": f"收到：{message}",
            "buttons": [
                {"title": "找工作", "payload": "/job_search"},
                {"title": "办优待证", "payload": "/certificate_apply"},
            ],
        }
    ]


def test_with_redis_down_the_webhook_answers_from_the_database_and_recovers(
    make_app: Any, rasa: Any, sim: Any, redis_proxy: tuple[FaultProxy, str]
) -> None:
    proxy, url = redis_proxy
    rasa.responder = _menu_answer
    push = Pusher(make_app(budget=1.0, REDIS_URL=url, RATE_LIMIT_PER_MINUTE=4).test_client())
    openid = "oRedis" + uuid.uuid4().hex[:8]
    interact(sim, openid)
    direct = redis_lib.Redis(port=6379, db=REDIS_DB)

    assert "收到：你好" in push.reply(push.text(openid, "你好"))["Content"]
    assert direct.exists(f"zhanyou:{CHOICES_KEY_PREFIX}{openid}")  # Redis in use while it is up

    proxy.down()
    started = time.monotonic()
    first = push.text(openid, "我想找工作", msg_id=(msg_id := int(time.time() * 1000)))
    assert time.monotonic() - started < 1.5
    answer = push.reply(first)["Content"]
    assert "收到：我想找工作" in answer and "1." in answer
    # WeChat's retry of the same message: the claim in the database dedupes it; Rasa is not asked again.
    retry = push.reply(push.text(openid, "我想找工作", msg_id=msg_id))
    assert retry.get("Content") == answer
    assert [m for _s, m in rasa.calls].count("我想找工作") == 1
    # The numbered choices were kept in the database: "2" is the second button.
    assert push.reply(push.text(openid, "2"))["Content"] == "选了/certificate_apply"
    # The rate limit counts logged messages instead (4 a minute here: 你好, 我想找工作, 2, this one).
    assert "收到" in push.reply(push.text(openid, "还有别的吗"))["Content"]
    assert push.reply(push.text(openid, "在吗"))["Content"] == texts.RATE_LIMITED

    # A late answer still goes out through the customer-service API (token kept in the database).
    other = "oRedisLate" + uuid.uuid4().hex[:6]
    interact(sim, other)
    rasa.delay = 1.5
    assert push.text(other, "附近有什么工作").get_data(as_text=True) == "success"
    late = inbox(sim, other, 1)
    assert len(late) == 1 and "收到：附近有什么工作" in late[0]["text"]
    rasa.delay = 0.0
    assert not direct.keys(f"*{other}*")  # nothing reached Redis while it was cut

    proxy.up()
    time.sleep(0.4)  # the guard's cooldown (0.3 s here) before Redis is tried again
    back = "oRedisBack" + uuid.uuid4().hex[:6]
    new_id = int(time.time() * 1000) + 7
    assert "收到：你好" in push.reply(push.text(back, "你好", msg_id=new_id))["Content"]
    assert direct.get(f"zhanyou:msg:msg:{new_id}") is not None  # the claim is in Redis again
    assert push.reply(push.text(back, "1"))["Content"] == "选了/job_search"  # choices from Redis again
