"""POST/GET /wechat through the Flask test client, with the WeChat simulator and a Rasa-shaped double."""

from __future__ import annotations

import time
from typing import Any

import requests
from sqlalchemy import select

from bureau.models import (
    CrisisAlert,
    HandoffTicket,
    MessageLog,
    ServiceStation,
    WechatUser,
)
from tests.gateway.conftest import ACCOUNT, AES_KEY, TOKEN, Pusher, free_port
from webhook.gateway import protocol
from wechatsim.client import build_xml, wechat_signature


def interact(sim: Any, openid: str) -> None:
    requests.post(f"{sim.url}sim/users/{openid}/interact", json={"kind": "message"}, timeout=5)


def inbox(sim: Any, openid: str, count: int, timeout: float = 8.0) -> list[dict[str, Any]]:
    end = time.monotonic() + timeout
    while True:
        items = requests.get(f"{sim.url}sim/inbox/{openid}", timeout=5).json()
        if len(items) >= count or time.monotonic() > end:
            return items
        time.sleep(0.05)


def test_url_verification(client: Any) -> None:
    ts, nonce = str(int(time.time())), "123456"
    sig = wechat_signature(TOKEN, ts, nonce)
    ok = client.get(
        "/wechat", query_string={"signature": sig, "timestamp": ts, "nonce": nonce, "echostr": "e42"}
    )
    assert ok.status_code == 200 and ok.get_data(as_text=True) == "e42"
    bad = client.get(
        "/wechat", query_string={"signature": "0" * 40, "timestamp": ts, "nonce": nonce, "echostr": "x"}
    )
    assert bad.status_code == 403
    old = str(int(time.time()) - 400)
    stale = client.get(
        "/wechat",
        query_string={
            "signature": wechat_signature(TOKEN, old, nonce),
            "timestamp": old,
            "nonce": nonce,
            "echostr": "x",
        },
    )
    assert stale.status_code == 403


def test_text_goes_to_rasa_with_openid_and_reply_comes_back(
    push: Pusher, rasa: Any, session_factory: Any
) -> None:
    reply = push.reply(push.text("oUserA", "我想找工作 110101199003071234"))
    assert reply["MsgType"] == "text"
    assert reply["ToUserName"] == "oUserA" and reply["FromUserName"] == ACCOUNT
    assert reply["Content"] == "收到：我想找工作 110101199003071234"
    assert rasa.calls == [("oUserA", "我想找工作 110101199003071234")]
    with session_factory.begin() as session:
        log = session.scalars(select(MessageLog)).one()
        assert log.content == "我想找工作 110***********1234"  # ID numbers never stored in clear
        assert session.get(WechatUser, "oUserA").last_interaction_at is not None


def test_the_understood_intent_is_logged_after_the_answer(
    push: Pusher, rasa: Any, session_factory: Any
) -> None:
    rasa.intent = "job_search"
    push.text("oIntent", "有没有保安的活")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with session_factory.begin() as session:
            log = session.scalars(select(MessageLog)).one()
            if log.intent:
                break
        time.sleep(0.05)
    assert (log.intent, log.confidence) == ("job_search", 0.93)


def test_without_the_gateway_channel_rasa_is_still_reached_through_rest(
    push: Pusher, rasa: Any, session_factory: Any
) -> None:
    rasa.gateway_channel = False  # Rasa started without bot/credentials.yml
    assert push.reply(push.text("oPlainRest", "你好"))["Content"] == "收到：你好"
    assert push.reply(push.text("oPlainRest", "再问一次"))["Content"] == "收到：再问一次"
    # One probe of the missing channel, then REST for good; the intent is simply not known.
    assert rasa.paths == ["/webhooks/gateway/webhook", "/webhooks/rest/webhook", "/webhooks/rest/webhook"]
    time.sleep(0.2)
    with session_factory.begin() as session:
        assert [log.intent for log in session.scalars(select(MessageLog))] == [None, None]


def test_safe_mode_push_gets_an_encrypted_reply(make_app: Any, rasa: Any) -> None:
    push = Pusher(make_app().test_client(), aes=True)
    response = push.text("oUserAes", "你好")
    raw = response.get_data(as_text=True)
    assert "<Encrypt>" in raw and "你好" not in raw
    assert push.reply(response)["Content"] == "收到：你好"


def test_forged_or_missing_signatures_are_refused_and_never_processed(make_app: Any, rasa: Any) -> None:
    client = make_app().test_client()
    push = Pusher(client)
    fields = push.fields("oEvil", "text", Content="hi")
    params, body = push.wechat.signed_request(
        "<xml><ToUserName>g</ToUserName><FromUserName>oEvil</FromUserName><CreateTime>1</CreateTime>"
        "<MsgType>text</MsgType><Content>hi</Content><MsgId>1</MsgId></xml>",
        "oEvil",
    )
    forged = dict(params, signature="f" * 40)
    assert client.post("/wechat", query_string=forged, data=body).status_code == 403
    missing = {k: v for k, v in params.items() if k != "signature"}
    assert client.post("/wechat", query_string=missing, data=body).status_code == 403
    old_ts = str(int(time.time()) - 3600)
    replay = dict(params, timestamp=old_ts, signature=wechat_signature(TOKEN, old_ts, params["nonce"]))
    assert client.post("/wechat", query_string=replay, data=body).status_code == 403
    # Safe mode: right plain signature but a wrong msg_signature, and a message for another AppID.
    aes_push = Pusher(client, aes=True)
    params, body = aes_push.wechat.signed_request(protocol.text_reply("g", "oEvil", "x"), "oEvil")
    assert (
        client.post("/wechat", query_string=dict(params, msg_signature="0" * 40), data=body).status_code
        == 403
    )
    other = protocol.WeChatAES(AES_KEY, "wxSomebodyElse00")
    ciphertext = other.encrypt(protocol.text_reply("g", "oEvil", "x"))
    ts, nonce = str(int(time.time())), "99"
    query = {
        "signature": wechat_signature(TOKEN, ts, nonce),
        "timestamp": ts,
        "nonce": nonce,
        "encrypt_type": "aes",
        "msg_signature": wechat_signature(TOKEN, ts, nonce, ciphertext),
    }
    wrong_app = client.post("/wechat", query_string=query, data=f"<xml><Encrypt>{ciphertext}</Encrypt></xml>")
    assert wrong_app.status_code == 403
    assert push.post(fields, openid="oSomeoneElse").status_code == 400  # query openid ≠ FromUserName
    assert rasa.calls == []


def test_buttons_become_numbered_choices_and_numbers_map_back(make_app: Any, rasa: Any) -> None:
    def responder(sender: str, message: str) -> list[dict[str, Any]]:
        if message == "办证":
            return [
                {
                    "recipient_id": sender,
                    "text": "您要办哪一项？",
                    "buttons": [
                        {"title": "申请优待证", "payload": "/certificate_apply"},
                        {"title": "查进度", "payload": '/certificate_status{"choice":"status"}'},
                    ],
                }
            ]
        return [{"recipient_id": sender, "text": "好的"}]

    rasa.responder = responder
    push = Pusher(make_app().test_client())
    content = push.reply(push.text("oChoice", "办证"))["Content"]
    assert content.startswith(
        '您要办哪一项？\n1. <a href="weixin://bizmsgmenu?msgmenucontent=申请优待证&msgmenuid=1">'
    )
    assert "2. <a href=" in content and "回复数字即可" in content
    push.text("oChoice", "２")  # full-width digit typed on a phone
    push.text("oChoice", "办证")
    push.text("oChoice", "申请优待证")  # the tapped link sends the title
    push.text("oChoice", "0")
    push.text("oChoice", "1")  # the last answer had no buttons: "1" is just text
    assert rasa.messages() == [
        "办证",
        '/certificate_status{"choice":"status"}',
        "办证",
        "/certificate_apply",
        "/main_menu",
        "1",
    ]


def test_hostile_text_still_yields_valid_xml(push: Pusher, rasa: Any) -> None:
    # From the user (WeChat puts `]]>` in CDATA correctly) and from Rasa (control characters too).
    reply = push.reply(push.text("oHostile", "a]]>b<![CDATA[c]]>&amp;<xml></xml>"))
    assert reply["Content"] == "收到：a]]>b<![CDATA[c]]>&amp;<xml></xml>"
    rasa.responder = lambda s, m: [{"recipient_id": s, "text": "x]]>\x00\x07\x1b\ud800y</Content></xml>"}]
    assert push.reply(push.text("oHostile", "hi"))["Content"] == "x]]>y</Content></xml>"


def test_long_answer_is_split_and_the_rest_pushed(make_app: Any, rasa: Any, sim: Any) -> None:
    paragraph = "退役军人优待证可以在县服务中心和各乡镇服务站申请办理。" * 20  # ~1.6 KB per line
    rasa.responder = lambda s, m: [{"recipient_id": s, "text": "\n".join([paragraph] * 3)}]
    push = Pusher(make_app().test_client())
    interact(sim, "oLong")
    reply = push.reply(push.text("oLong", "优待证"))
    assert len(reply["Content"].encode("utf-8")) <= 2000
    pushed = inbox(sim, "oLong", 2)
    assert [m["msgtype"] for m in pushed] == ["text", "text"]
    assert all(len(m["text"].encode("utf-8")) <= 2000 for m in pushed)
    assert "\n".join([reply["Content"]] + [m["text"] for m in pushed]) == "\n".join([paragraph] * 3)


def test_image_answer_is_a_one_article_news_reply(push: Pusher, rasa: Any) -> None:
    rasa.responder = lambda s, m: [
        {"recipient_id": s, "text": "优待证样式如下"},
        {"recipient_id": s, "image": "https://example.invalid/card.jpg"},
    ]
    reply = push.reply(push.text("oNews", "优待证长什么样"))
    assert reply["MsgType"] == "news" and reply["ArticleCount"] == "1"
    item = reply["Articles"]["item"]
    assert item["Title"] == "优待证样式如下" and item["PicUrl"] == "https://example.invalid/card.jpg"


def test_voice_with_and_without_recognition(push: Pusher, rasa: Any) -> None:
    said = push.reply(
        push.post(push.fields("oVoice", "voice", MediaId="m", Format="amr", Recognition="我要找工作。"))
    )
    assert said["Content"] == "收到：我要找工作"
    unclear = push.reply(push.post(push.fields("oVoice", "voice", MediaId="m", Format="amr")))
    assert "没听清" in unclear["Content"] and "打字" in unclear["Content"]
    assert rasa.messages() == ["我要找工作"]


def test_location_lists_nearest_stations_by_distance(push: Pusher, session_factory: Any) -> None:
    with session_factory.begin() as session:
        session.add_all(
            [
                ServiceStation(
                    name="县退役军人服务中心",
                    level="county",
                    address="双城镇1号",
                    phone="0593-1",
                    latitude=27.235,
                    longitude=119.909,
                ),
                ServiceStation(
                    name="富溪镇服务站", level="township", address="富溪镇", latitude=27.40, longitude=119.95
                ),
                ServiceStation(name="没有坐标的站", level="village", address="某村"),
            ]
        )
    reply = push.reply(
        push.post(
            push.fields("oLoc", "location", Location_X=27.40, Location_Y=119.951, Scale=15, Label="富溪")
        )
    )
    content = reply["Content"]
    assert content.index("富溪镇服务站") < content.index("县退役军人服务中心")
    assert "没有坐标的站" not in content and "米" in content
    with session_factory.begin() as session:
        user = session.get(WechatUser, "oLoc")
        assert (user.last_latitude, user.last_longitude) == (27.40, 119.951)


def test_media_and_unknown_types_get_a_polite_answer(push: Pusher, rasa: Any) -> None:
    for msg_type, extra in [
        ("image", {"PicUrl": "http://x/1.jpg", "MediaId": "m"}),
        ("video", {"MediaId": "m", "ThumbMediaId": "t"}),
        ("link", {"Title": "t", "Url": "http://x"}),
        ("hologram", {}),
    ]:
        content = push.reply(push.post(push.fields("oMedia", msg_type, **extra)))["Content"]
        assert "找工作" in content and "菜单" in content
    assert rasa.calls == []


def test_rasa_down_gives_the_apology_and_keeps_the_message(make_app: Any, session_factory: Any) -> None:
    push = Pusher(make_app(rasa_url=f"http://127.0.0.1:{free_port()}").test_client())
    started = time.monotonic()
    content = push.reply(push.text("oDown", "我的优待证办好了吗"))["Content"]
    assert time.monotonic() - started < 4.0  # well inside WeChat's 5 s, even on a loaded machine
    assert "已转给工作人员" in content and "0593-1234567" in content
    with session_factory.begin() as session:
        assert session.scalars(select(MessageLog)).one().unanswered is True
        ticket = session.scalars(select(HandoffTicket)).one()
        assert (ticket.openid, ticket.reason, ticket.message) == (
            "oDown",
            "bot_unavailable",
            "我的优待证办好了吗",
        )


def test_crisis_with_rasa_down_gets_the_hotline_and_alerts_staff(make_app: Any, session_factory: Any) -> None:
    push = Pusher(make_app(rasa_url=f"http://127.0.0.1:{free_port()}", RATE_LIMIT_PER_MINUTE=1).test_client())
    push.text("oCrisis", "你好")
    content = push.reply(push.text("oCrisis", "我不想活了"))["Content"]  # over the rate limit, still answered
    assert content.startswith("您不是一个人") and "12356" in content and "0593-1234567" in content
    with session_factory.begin() as session:
        alert = session.scalars(select(CrisisAlert)).one()
        assert (alert.openid, alert.source) == ("oCrisis", "keyword")


def test_crisis_answer_from_rasa_without_hotline_gets_the_net(push: Pusher, rasa: Any) -> None:
    content = push.reply(push.text("oCrisis2", "活着没意思，不想活了"))["Content"]
    assert content.startswith("您不是一个人") and content.endswith("收到：活着没意思，不想活了")


def test_rate_limit_answers_politely_without_asking_rasa(make_app: Any, rasa: Any) -> None:
    push = Pusher(make_app(RATE_LIMIT_PER_MINUTE=3).test_client())
    answers = [push.reply(push.text("oFast", f"消息{i}"))["Content"] for i in range(4)]
    assert answers[3].startswith("您发得有点快")
    assert len(rasa.calls) == 3
    assert push.reply(push.text("oOther", "你好"))["Content"] == "收到：你好"


def test_same_msgid_twice_reaches_rasa_once_and_gets_the_same_reply(push: Pusher, rasa: Any) -> None:
    first = push.reply(push.text("oDup", "你好", msg_id=987654321))
    second = push.reply(push.text("oDup", "你好", msg_id=987654321))
    assert first["Content"] == second["Content"] == "收到：你好"
    assert len(rasa.calls) == 1


def test_slow_rasa_yields_success_then_exactly_one_customer_service_message(
    make_app: Any, rasa: Any, sim: Any
) -> None:
    rasa.delay = 2.0
    push = Pusher(make_app(budget=0.5).test_client())
    interact(sim, "oSlow")
    started = time.monotonic()
    first = push.text("oSlow", "附近有什么工作", msg_id=5550001)
    assert first.get_data(as_text=True) == "success" and time.monotonic() - started < 4.0
    retry = push.text("oSlow", "附近有什么工作", msg_id=5550001)  # WeChat's retry of the same message
    assert retry.get_data(as_text=True) == "success"
    pushed = inbox(sim, "oSlow", 1)
    time.sleep(0.5)
    pushed = inbox(sim, "oSlow", 1)
    assert [m["text"] for m in pushed] == ["收到：附近有什么工作"]
    assert len(rasa.calls) == 1


def test_time_spent_before_asking_rasa_comes_off_the_reply_budget(
    make_app: Any, rasa: Any, sim: Any, monkeypatch: Any
) -> None:
    from webhook.gateway.state import RateLimiter

    allow = RateLimiter.allow

    def slow_allow(self: Any, openid: str, counted: int | None = None) -> bool:
        time.sleep(0.8)  # e.g. a database that needed a reconnect before the turn could start
        return allow(self, openid, counted)

    monkeypatch.setattr(RateLimiter, "allow", slow_allow)
    rasa.delay = 0.5  # on time if the budget (1 s) started with the Rasa call; late counted from the push
    push = Pusher(make_app(budget=1.0).test_client())
    interact(sim, "oSlowDb")
    started = time.monotonic()
    first = push.text("oSlowDb", "附近有什么工作")
    assert first.get_data(as_text=True) == "success" and time.monotonic() - started < 1.5
    assert [m["text"] for m in inbox(sim, "oSlowDb", 1)] == ["收到：附近有什么工作"]


def test_hostile_bodies_are_refused_and_the_server_keeps_serving(push: Pusher, rasa: Any) -> None:
    client = push.client
    bodies = [
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><FromUserName>&e;'
        b"</FromUserName></xml>",
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]><xml><Content>&c;</Content></xml>',
        b"\x00\x01garbage<<<>>>",
        b"<xml><FromUserName>oX</FromUserName></xml>",  # no MsgType
        b"",
    ]
    for body in bodies:
        params, _ = push.wechat.signed_request("", "oX")
        params.pop("openid")
        response = client.post("/wechat", query_string=params, data=body, content_type="text/xml")
        assert response.status_code == 400, body[:40]
        assert b"Traceback" not in response.get_data()
    params, _ = push.wechat.signed_request("", "oX")
    huge = client.post("/wechat", query_string=params, data=b"<xml>" + b"a" * (10 * 1024 * 1024) + b"</xml>")
    assert huge.status_code == 413
    assert rasa.calls == []
    assert push.reply(push.text("oAfter", "还在吗"))["Content"] == "收到：还在吗"


def test_healthz(client: Any) -> None:
    assert client.get("/healthz").status_code == 200


def test_compat_mode_push_with_plain_fields_and_encrypt(make_app: Any, rasa: Any) -> None:
    # Compatible mode: the plaintext fields travel next to <Encrypt>; only the signed ciphertext counts.
    client = make_app().test_client()
    push = Pusher(client, aes=True)
    inner = push.fields("oCompat", "text", Content="真正的内容")
    params, body = push.wechat.signed_request(build_xml(inner), "oCompat")
    outer = body.decode().replace(
        "<xml>",
        "<xml><FromUserName><![CDATA[oCompat]]></FromUserName><Content><![CDATA[伪造的明文]]></Content>",
        1,
    )
    response = client.post("/wechat", query_string=params, data=outer.encode(), content_type="text/xml")
    assert push.reply(response)["Content"] == "收到：真正的内容"
    assert rasa.messages() == ["真正的内容"]


def test_crisis_during_a_slow_answer_gets_the_hotline_at_once(
    make_app: Any, rasa: Any, sim: Any, session_factory: Any
) -> None:
    rasa.delay = 1.5
    push = Pusher(make_app(budget=0.5).test_client())
    interact(sim, "oCrisisSlow")
    content = push.reply(push.text("oCrisisSlow", "我想自杀"))["Content"]
    assert content.startswith("您不是一个人") and "12356" in content
    assert [m["text"] for m in inbox(sim, "oCrisisSlow", 1)] == [
        "收到：我想自杀"
    ]  # the assistant's answer follows
    with session_factory.begin() as session:
        assert session.scalars(select(CrisisAlert)).one().source == "keyword"


def test_database_failure_still_answers_politely(make_app: Any, rasa: Any, monkeypatch: Any) -> None:
    client = make_app().test_client()
    push = Pusher(client)
    push.text("oDb", "先来一条")  # builds the gateway
    from webhook.gateway.state import Claims

    def broken(*_args: Any) -> None:
        raise RuntimeError("database is gone")

    monkeypatch.setattr(Claims, "claim", broken)
    response = push.text("oDb", "你好")
    assert response.status_code == 200
    assert "系统出了点问题" in push.reply(response)["Content"]


def test_late_failure_sends_the_apology_and_keeps_the_message(
    make_app: Any, rasa: Any, sim: Any, session_factory: Any
) -> None:
    rasa.delay = 1.0
    rasa.responder = lambda s, m: []  # what Rasa's REST channel returns when the action server is down
    push = Pusher(make_app(budget=0.3, ACTION_SERVER_URL="http://127.0.0.1:9/webhook").test_client())
    interact(sim, "oLateFail")
    assert push.text("oLateFail", "帮我查一下补贴").get_data(as_text=True) == "success"
    pushed = inbox(sim, "oLateFail", 1)
    assert len(pushed) == 1 and "已转给工作人员" in pushed[0]["text"]
    with session_factory.begin() as session:
        assert session.scalars(select(HandoffTicket)).one().reason == "bot_unavailable"


def test_silence_with_every_part_up_is_answered_kindly_and_opens_no_ticket(
    make_app: Any, rasa: Any, session_factory: Any
) -> None:
    rasa.responder = lambda s, m: []  # the dialogue chose to say nothing (e.g. a bare number, no form)
    # The double answers any GET with 200, so the action server's health check passes.
    push = Pusher(make_app(ACTION_SERVER_URL=rasa.url + "/webhook").test_client())
    reply = push.reply(push.text("oSilent", "350926197509153531"))["Content"]
    assert "没太明白" in reply and "已转给工作人员" not in reply
    with session_factory.begin() as session:
        assert session.scalars(select(HandoffTicket)).all() == []
        logged = session.scalars(select(MessageLog).where(MessageLog.direction == "in")).one()
        assert logged.unanswered is True
        assert "350926197509153531" not in (logged.content or "")


def test_logs_hold_no_openid_and_no_id_number(push: Pusher, rasa: Any, caplog: Any) -> None:
    caplog.set_level("INFO", logger="zhanyou.gateway")
    push.text("oSecretOpenId123", "我的身份证是 110101199003071234")
    push.event("oSecretOpenId123", "subscribe")
    text = caplog.text
    assert "event=reply" in text and "user=" in text
    assert "oSecretOpenId123" not in text and "110101199003071234" not in text


def test_a_malformed_aes_key_refuses_safe_mode_but_serves_plain(make_app: Any, rasa: Any) -> None:
    client = make_app(WECHAT_AES_KEY="too-short").test_client()
    assert Pusher(client, aes=True).text("oKey", "你好").status_code == 400
    plain = Pusher(client)
    assert plain.reply(plain.text("oKey", "你好"))["Content"] == "收到：你好"
