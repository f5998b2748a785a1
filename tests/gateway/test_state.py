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


def test_arrival_claims_counts_and_reads_choices_at_once(
    session_factory: Any, db_url: str, redis: Any
) -> None:
    from bureau.wechat.store import make_store

    limiter = RateLimiter(session_factory, limit=2, redis=redis)
    claims = Claims(session_factory, redis)
    store = make_store(REDIS_URL if redis is not None else None, db_url)
    choices = PendingChoices(store)
    openid = "oV" + uuid.uuid4().hex[:8]
    choices.remember(openid, [("看详情", "/job_detail")])
    keys = {"choices_key": choices.redis_key(openid), "rate_key": limiter.redis_key(openid)}
    first, second, third = (f"msg:{uuid.uuid4().hex}" for _ in range(3))

    arrival = claims.arrive(first, openid, **keys)
    assert arrival.existing is None
    if redis is None:  # no Redis: the claim alone; the gateway asks the limiter and the store itself
        assert keys == {"choices_key": None, "rate_key": None}
        assert arrival.rate_count is None and arrival.choices is None
        return
    assert arrival.choices == [("看详情", "/job_detail")] and arrival.rate_count == 1
    assert limiter.allow(openid, arrival.rate_count)

    retry = claims.arrive(first, openid, **keys)  # WeChat's retry: not a new message, nothing counted
    assert (retry.existing, retry.rate_count, retry.choices) == (PROCESSING, None, None)

    choices.remember(openid, [])
    assert claims.arrive(second, openid, **keys).rate_count == 2
    over = claims.arrive(third, openid, **keys)
    assert over.choices == [] and over.rate_count == 3 and not limiter.allow(openid, over.rate_count)
    assert claims.finish(first, "<xml>reply</xml>") and claims.claim(first, openid) == "<xml>reply</xml>"


def test_finish_stores_the_reply_and_the_choices_together(
    session_factory: Any, db_url: str, redis: Any
) -> None:
    from bureau.wechat.store import make_store

    claims = Claims(session_factory, redis)
    choices = PendingChoices(make_store(REDIS_URL if redis is not None else None, db_url))
    openid, key, late_key = "oW" + uuid.uuid4().hex[:8], f"msg:{uuid.uuid4().hex}", f"msg:{uuid.uuid4().hex}"
    write = choices.redis_write(openid, [("1号岗位", '/job_detail{"job": 1}')])
    if redis is None:
        assert write is None  # the choices live in the database: the view stores them itself
        return
    assert write is not None
    claims.claim(key, openid)
    assert claims.finish_with(key, "<xml>reply</xml>", write) == (True, True)
    assert claims.claim(key, openid) == "<xml>reply</xml>"
    assert choices.get(openid) == [("1号岗位", '/job_detail{"job": 1}')]

    # A retry made the turn late: the claim stays LATE, the choices are stored all the same (the answer
    # goes out through the customer-service API and "1" must still mean its first choice).
    claims.claim(late_key, openid)
    assert claims.mark_late(late_key)
    no_choices = choices.redis_write(openid, [])
    assert no_choices is not None and no_choices[1] is None
    assert claims.finish_with(late_key, "<xml>late</xml>", no_choices) == (False, True)
    assert claims.claim(late_key, openid) == LATE and choices.get(openid) == []
