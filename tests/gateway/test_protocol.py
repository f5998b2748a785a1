"""The protocol core against the official vectors of shared/wechat-protocol.md, wechatpy, and hostile XML."""

from __future__ import annotations

import json

import pytest
from wechatpy.crypto import WeChatCrypto

from webhook.gateway import protocol
from webhook.gateway.protocol import ProtocolError, WeChatAES

AES_VECTOR = {
    "token": "AAAAA",
    "key": "A" * 43,
    "appid": "wxba5fad812f8e6fb9",
    "timestamp": "1714112445",
    "nonce": "415670741",
    "msg_signature": "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3",
    "encrypt": (
        "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVz"
        "azhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwK"
        "SqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="
    ),
}
AES_PLAIN = {
    "ToUserName": "gh_97417a04a28d",
    "FromUserName": "o9AgO5Kd5ggOC-bXrbNODIiE3bGY",
    "CreateTime": 1714112445,
    "MsgType": "event",
    "Event": "debug_demo",
    "debug_str": "hello world",
}


def test_official_url_verification_signature() -> None:
    assert (
        protocol.signature("AAAAA", "1714036504", "1514711492") == "f464b24fc39322e44b38aa78f5edd27bd1441696"
    )
    protocol.verify_signature("AAAAA", "f464b24fc39322e44b38aa78f5edd27bd1441696", "1714036504", "1514711492")
    with pytest.raises(ProtocolError) as err:
        protocol.verify_signature(
            "AAAAA", "f464b24fc39322e44b38aa78f5edd27bd1441697", "1714036504", "1514711492"
        )
    assert err.value.status == 403
    with pytest.raises(ProtocolError):
        protocol.verify_signature("AAAAA", None, "1714036504", "1514711492")


def test_official_aes_vector_signature_and_decryption() -> None:
    v = AES_VECTOR
    protocol.verify_msg_signature(v["token"], v["msg_signature"], v["timestamp"], v["nonce"], v["encrypt"])
    plain = WeChatAES(v["key"], v["appid"]).decrypt(v["encrypt"])
    assert json.loads(plain) == AES_PLAIN
    # wechatpy agrees on the same vector (XML form wraps the same Encrypt).
    crypto = WeChatCrypto(v["token"], v["key"], v["appid"])
    xml = f"<xml><Encrypt><![CDATA[{v['encrypt']}]]></Encrypt></xml>"
    assert (
        json.loads(crypto.decrypt_message(xml, v["msg_signature"], v["timestamp"], v["nonce"])) == AES_PLAIN
    )


def test_aes_vector_refuses_tampering_and_wrong_appid() -> None:
    v = AES_VECTOR
    with pytest.raises(ProtocolError) as err:
        protocol.verify_msg_signature(v["token"], "0" * 40, v["timestamp"], v["nonce"], v["encrypt"])
    assert err.value.status == 403
    with pytest.raises(ProtocolError) as err:
        WeChatAES(v["key"], "wx0000000000000000").decrypt(v["encrypt"])
    assert err.value.status == 403
    for garbage in ["", "not base64!!", "QUJD", v["encrypt"][:-8] + "AAAAAAA="]:
        with pytest.raises(ProtocolError):
            WeChatAES(v["key"], v["appid"]).decrypt(garbage)


def test_our_encryption_round_trips_through_wechatpy() -> None:
    aes = WeChatAES("A" * 43, "wxba5fad812f8e6fb9")
    text = "<xml><Content><![CDATA[你好，战友]]></Content></xml>"
    encrypted = aes.encrypt(text)
    assert aes.decrypt(encrypted) == text
    from wechatpy.crypto import PrpCrypto

    assert PrpCrypto(aes.key).decrypt(encrypted, "wxba5fad812f8e6fb9") == text
    theirs = PrpCrypto(aes.key).encrypt(text, "wxba5fad812f8e6fb9").decode()
    assert aes.decrypt(theirs) == text


def test_encrypted_reply_envelope_is_signed() -> None:
    aes = WeChatAES("A" * 43, "wxba5fad812f8e6fb9")
    envelope = protocol.encrypt_reply(
        aes, "AAAAA", "<xml><Content>x</Content></xml>", nonce="42", timestamp="1700000000"
    )
    fields = protocol.parse_xml(envelope)
    protocol.verify_msg_signature(
        "AAAAA", fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"], fields["Encrypt"]
    )
    crypto = WeChatCrypto("AAAAA", "A" * 43, "wxba5fad812f8e6fb9")
    assert (
        crypto.decrypt_message(envelope, fields["MsgSignature"], "1700000000", "42")
        == "<xml><Content>x</Content></xml>"
    )


def test_digest_compare_uses_hmac(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = protocol.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(protocol.hmac, "compare_digest", spy)
    protocol.verify_signature("AAAAA", "f464b24fc39322e44b38aa78f5edd27bd1441696", "1714036504", "1514711492")
    assert calls


def test_timestamp_window() -> None:
    protocol.check_timestamp("1000", now=1000 + 299)
    for bad in ["1000", None, "", "abc", "-5", "99999999999999"]:
        with pytest.raises(ProtocolError) as err:
            protocol.check_timestamp(bad, now=1000 + 301)
        assert err.value.status == 403


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>',
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><xml><C>&b;</C></xml>',
        b'<!DOCTYPE xml SYSTEM "http://example.invalid/x.dtd"><xml><C>1</C></xml>',
        b"<!DOCTYPE xml><xml><C>1</C></xml>",
        b"<xml><C>&undefined;</C></xml>",
        b"hello <<<",
        b"",
        b"<notxml><C>1</C></notxml>",
        b"<xml>" + b"<a>" * 50 + b"</a>" * 50 + b"</xml>",
        b"\xff\xfe\x00garbage",
    ],
)
def test_hostile_xml_is_refused(body: bytes) -> None:
    with pytest.raises(ProtocolError) as err:
        protocol.parse_xml(body)
    assert err.value.status == 400


def test_parse_flat_and_nested_push() -> None:
    fields = protocol.parse_xml(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Content><![CDATA[a ]]]]><![CDATA[> b &amp;]]></Content>"
        "<SendLocationInfo><Location_X>26.9</Location_X></SendLocationInfo><MsgId>12</MsgId></xml>"
    )
    assert fields == {
        "ToUserName": "gh_1",
        "Content": "a ]]> b &amp;",
        "SendLocationInfo": {"Location_X": "26.9"},
        "MsgId": "12",
    }


@pytest.mark.parametrize(
    "hostile", ["]]>", "a]]>b]]>", "<![CDATA[x]]>", "\x00\x01\x1b bell\x07", "&lt;&", "\ud800"]
)
def test_reply_xml_is_valid_for_hostile_content(hostile: str) -> None:
    xml = protocol.text_reply("oUser", "gh_account", f"前{hostile}后", create_time=1)
    fields = protocol.parse_xml(xml)
    assert fields["Content"] == "前" + protocol.clean_text(hostile) + "后"
    news = protocol.news_reply(
        "oUser", "gh", [{"title": hostile, "description": "]]>", "url": "u", "picurl": ""}]
    )
    parsed = protocol.parse_xml(news)
    assert parsed["Articles"]["item"]["Description"] == "]]>"
