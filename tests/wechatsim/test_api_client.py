"""bureau.wechat's client against the simulator: shared token, retries, error classes, limits."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from bureau.models import WechatUser
from bureau.wechat.client import UNKNOWN_OUTCOME, WeChatApiError
from bureau.wechat.store import RedisStore, redis_client
from webhook.gateway.menu import build_menu

CUSTOM = "cgi-bin/message/custom/send"
STABLE = "cgi-bin/stable_token"


def test_one_token_is_shared_by_every_process(make_client: Any, control: Any) -> None:
    clients = [make_client(), make_client()]  # two processes: two clients, one store
    control.interact("oA")
    errors: list[Exception] = []

    def work(client: Any) -> None:
        try:
            client.access_token()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(clients[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert len(control.calls(STABLE)) == 1
    assert clients[0].access_token() == clients[1].access_token()


def test_token_is_refreshed_ahead_of_expiry(make_client: Any, control: Any) -> None:
    control.post("sim/config", token_lifetime=3)
    client = make_client(refresh_margin=2)
    first = client.access_token()
    assert client.access_token() == first and len(control.calls(STABLE)) == 1
    time.sleep(1.2)  # inside the margin: refreshed before WeChat would refuse it
    client.access_token()
    assert len(control.calls(STABLE)) == 2
    time.sleep(2.2)
    assert client.access_token() != first  # the old one expired: a new token


def test_expired_token_is_refreshed_once_and_the_call_retried(
    make_client: Any, control: Any, session_factory: Any
) -> None:
    client = make_client()
    control.interact("oB")
    client.send_text("oB", "第一条")
    control.post("sim/tokens/expire")
    client.send_text("oB", "第二条")
    assert [c["errcode"] for c in control.calls(CUSTOM)] == [0, 42001, 0]
    assert [m["text"] for m in control.get("sim/inbox/oB")] == ["第一条", "第二条"]


def test_system_busy_is_retried_with_backoff(make_client: Any, control: Any) -> None:
    client = make_client()
    control.interact("oC")
    control.post("sim/faults", mode="errcode", errcode=-1, count=2, path=CUSTOM)
    client.send_text("oC", "hello")
    assert [c["errcode"] for c in control.calls(CUSTOM)] == [-1, -1, 0]
    assert make_client.sleeps == [0.5, 1.0]
    control.post("sim/faults", mode="errcode", errcode=45009, count=5, path=CUSTOM)
    with pytest.raises(WeChatApiError) as err:
        client.send_text("oC", "again")
    assert err.value.errcode == 45009 and err.value.kind == "retryable"


def test_permanent_errors_are_not_retried(make_client: Any, control: Any, session_factory: Any) -> None:
    client = make_client()
    with session_factory.begin() as session:
        session.add(WechatUser(openid="oGone", subscribed=True, bind_failures=0))
    control.interact("oGone")
    control.post("sim/users/oGone/unsubscribe")
    with pytest.raises(WeChatApiError) as err:
        client.send_text("oGone", "在吗")
    assert (err.value.errcode, err.value.kind) == (43004, "permanent")
    with session_factory.begin() as session:
        assert session.get(WechatUser, "oGone").subscribed is False

    control.post("sim/followers", openid="oOld")
    control.post("sim/users/oOld/last_message", seconds_ago=49 * 3600)
    with pytest.raises(WeChatApiError) as err:
        client.send_text("oOld", "通知")
    assert err.value.errcode == 45015

    control.interact("oMany")
    for i in range(5):
        client.send_text("oMany", f"第{i + 1}条")
    with pytest.raises(WeChatApiError) as err:
        client.send_text("oMany", "第6条")
    assert err.value.errcode == 45047
    control.interact("oMany")  # the user writes again: a new quota
    client.send_text("oMany", "又可以发了")
    codes = [c["errcode"] for c in control.calls(CUSTOM)]
    assert codes.count(43004) == 1 and codes.count(45015) == 1 and codes.count(45047) == 1


def test_dropped_connection_is_an_unknown_outcome_not_a_retry(make_client: Any, control: Any) -> None:
    client = make_client()
    control.interact("oD")
    control.post("sim/faults", mode="drop", path=CUSTOM)
    with pytest.raises(WeChatApiError) as err:
        client.send_text("oD", "x")
    assert err.value.errcode == UNKNOWN_OUTCOME and err.value.kind == "unknown"
    assert len(control.calls(CUSTOM)) == 1


def test_menu_text_news_template_and_menu(make_client: Any, control: Any) -> None:
    client = make_client()
    control.interact("oE")
    client.send_menu_text("oE", "您对这次服务满意吗？", ["满意", "不满意"], "感谢反馈")
    client.send_news("oE", {"title": "新岗位", "description": "保安", "url": "https://example.invalid/j/1"})
    msgid = client.send_template(
        "oE", "TPL_JOB_NOTICE", {"first": "新岗位", "keyword1": "保安"}, url="https://x.invalid"
    )
    assert msgid > 0
    inbox = control.get("sim/inbox/oE")
    assert [m["msgtype"] for m in inbox] == ["msgmenu", "news", "template"]
    assert "[满意]" in inbox[0]["text"] and inbox[2]["msgid"] == msgid
    with pytest.raises(WeChatApiError) as err:
        client.send_template("oE", "TPL_NOPE", {"first": "x"})
    assert err.value.errcode == 40037
    client.create_menu(build_menu())
    assert control.get("sim/menu") == build_menu()
    with pytest.raises(WeChatApiError) as err:
        client.create_menu({"button": [{"name": "太长的菜单名字超过十六字节", "type": "click", "key": "K"}]})
    assert err.value.errcode == 40018
    with pytest.raises(ValueError):
        client.send_text("oE", "长" * 700)  # 2100 bytes: split first


def test_wrong_credentials(make_client: Any) -> None:
    with pytest.raises(WeChatApiError) as err:
        make_client(app_secret="wrong").access_token()
    assert err.value.errcode == 40125
    with pytest.raises(WeChatApiError) as err:
        make_client(app_id="wxwrong").access_token()
    assert err.value.errcode == 40013


def test_token_on_redis(make_client: Any, control: Any) -> None:
    client = redis_client("redis://127.0.0.1:6379/15")
    store = RedisStore(client, prefix=f"zhanyou-test-{time.time_ns()}:")
    try:
        a, b = make_client(store=store), make_client(store=store)
        assert a.access_token() == b.access_token()
        assert len(control.calls(STABLE)) == 1
    finally:
        for key in client.scan_iter(store.prefix + "*"):
            client.delete(key)
