"""Dedupe claims, rate limit and pending choices on both backends (database and Redis), and the menu command."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bureau.wechat.store import DatabaseStore, RedisStore, redis_client
from webhook.gateway.menu import build_menu
from webhook.gateway.state import DONE, LATE, PROCESSING, Claims, PendingChoices, RateLimiter

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture(params=["database", "redis"])
def redis(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "database":
        yield None
        return
    client = redis_client(REDIS_URL)
    client.ping()
    yield client


def test_claims_walk_processing_to_reply_or_late(session_factory: Any, redis: Any) -> None:
    claims = Claims(session_factory, redis)
    key_a, key_b = f"msg:{uuid.uuid4().hex}", f"msg:{uuid.uuid4().hex}"
    assert claims.claim(key_a, "oA") is None  # first sight: ours
    assert claims.claim(key_a, "oA") == PROCESSING
    assert claims.finish(key_a, "<xml>reply</xml>")
    assert claims.claim(key_a, "oA") == "<xml>reply</xml>"  # a retry after a lost connection: same reply
    assert not claims.mark_late(key_a)

    assert claims.claim(key_b, "oB") is None
    assert claims.mark_late(key_b)  # a retry while the first is still working
    assert not claims.finish(key_b, "<xml>too late</xml>")  # the first must push instead
    assert claims.claim(key_b, "oB") == LATE
    key_c = f"ev:{uuid.uuid4().hex}"
    claims.claim(key_c, "oC")
    assert claims.finish(key_c, None) and claims.claim(key_c, "oC") == DONE


def test_rate_limit_counts_per_user(session_factory: Any, redis: Any) -> None:
    from bureau.models import MessageLog

    limiter = RateLimiter(session_factory, limit=3, redis=redis)
    openid, other = "oR" + uuid.uuid4().hex[:8], "oS" + uuid.uuid4().hex[:8]
    results = []
    for _ in range(4):
        if redis is None:  # the database backend counts logged messages
            with session_factory.begin() as session:
                session.add(MessageLog(openid=openid, direction="in", msg_type="text", content="x"))
        results.append(limiter.allow(openid))
    assert results == [True, True, True, False]
    if redis is None:
        with session_factory.begin() as session:
            session.add(MessageLog(openid=other, direction="in", msg_type="text", content="x"))
    assert limiter.allow(other)


def test_pending_choices_expire_and_clear(session_factory: Any, redis: Any) -> None:
    store = (
        RedisStore(redis, prefix=f"zt{time.time_ns()}:")
        if redis is not None
        else DatabaseStore(session_factory)
    )
    choices = PendingChoices(store)
    choices.remember("oP", [("找工作", "/job_search"), ("优待证", "/certificate_apply")])
    assert choices.get("oP") == [("找工作", "/job_search"), ("优待证", "/certificate_apply")]
    choices.remember("oP", [])
    assert choices.get("oP") == []
    store.set("choices:oQ", '[["a", "/a"]]', ttl=0.2)
    time.sleep(0.3)
    assert PendingChoices(store).get("oQ") == []


def test_flask_wechat_menu_publishes_the_menu(make_app: Any, sim: Any) -> None:
    runner = make_app().test_cli_runner()
    shown = runner.invoke(args=["wechat", "menu", "--show"])
    assert shown.exit_code == 0 and "找工作" in shown.output
    published = runner.invoke(args=["wechat", "menu"])
    assert published.exit_code == 0, published.output
    assert sim.state.menu == build_menu()
    sim.state.faults.clear()
    from wechatsim.server import Fault

    sim.state.faults.append(Fault(mode="errcode", errcode=40164, path="menu/create"))
    failed = runner.invoke(args=["wechat", "menu"])
    assert failed.exit_code != 0 and "40164" in failed.output
