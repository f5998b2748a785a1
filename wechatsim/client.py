"""`WeChatClientSim`: pushes messages to a webhook exactly as the WeChat server does.

It signs every push (`signature`, `timestamp`, `nonce`, `openid` query parameters), optionally encrypts
it (safe mode: `encrypt_type=aes` + `msg_signature`, using wechatpy's implementation so the gateway's own
crypto is checked against an independent one), waits at most 5 seconds per try, tries 3 times in all on
a timeout or connection error with the same MsgId, and reads the passive reply the way the WeChat app
would: `success`/empty → nothing shown; anything it cannot use → "该公众号暂时无法提供服务，请稍后再试".
When `sim_url` is given it also tells the simulator that the user interacted (which opens the 48-hour
window and resets the customer-service quota) and can read what the user received (`inbox`).
"""

from __future__ import annotations

import hashlib
import itertools
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
import xmltodict

FAILURE_NOTICE = "该公众号暂时无法提供服务，请稍后再试"
DEADLINE_SECONDS = 5.0
TRIES = 3
_msgid_counter = itertools.count(int(time.time() * 1000) % 10**12 * 100)
_msgid_lock = threading.Lock()


def next_msgid() -> int:
    """A MsgId unique within this process (WeChat's are 64-bit integers)."""
    with _msgid_lock:
        return next(_msgid_counter)


def wechat_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def build_xml(fields: dict[str, Any]) -> str:
    """WeChat's push XML: strings in CDATA, numbers bare, nested dicts as elements."""
    parts = []
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, dict):
            parts.append(f"<{name}>{build_xml(value)[5:-6]}</{name}>")
        elif isinstance(value, (int, float)):
            parts.append(f"<{name}>{value}</{name}>")
        else:
            parts.append(f"<{name}>{_cdata(str(value))}</{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


@dataclass
class PushResult:
    """What happened to one push: HTTP tries, the raw body, the parsed reply, what the user sees."""

    tries: int
    status: int | None
    body: str
    elapsed: float
    reply: dict[str, Any] | None = None
    error: str | None = None
    attempts: list[str] = field(default_factory=list)

    @property
    def user_sees(self) -> str | None:
        """The text the WeChat app shows for this push (None when nothing is shown)."""
        if self.error:
            return FAILURE_NOTICE
        if self.reply is None:
            return None
        if self.reply.get("MsgType") == "text":
            return str(self.reply.get("Content", ""))
        if self.reply.get("MsgType") == "news":
            items = self.reply.get("Articles", {}).get("item", [])
            items = items if isinstance(items, list) else [items]
            return "\n".join(str(i.get("Title", "")) for i in items)
        return f"[{self.reply.get('MsgType')}]"

    @property
    def content(self) -> str:
        return self.user_sees or ""


class WeChatClientSim:
    """Speaks to a webhook like the WeChat server (see the module docstring)."""

    def __init__(
        self,
        webhook_url: str,
        token: str,
        app_id: str,
        aes_key: str | None = None,
        account: str = "gh_zhanyou0001",
        sim_url: str | None = None,
        deadline: float = DEADLINE_SECONDS,
        tries: int = TRIES,
    ) -> None:
        self.webhook_url = webhook_url
        self.token = token
        self.app_id = app_id
        self.aes_key = aes_key
        self.account = account
        self.sim_url = sim_url.rstrip("/") + "/" if sim_url else None
        self.deadline = deadline
        self.tries = tries
        self.http = requests.Session()
        self._crypto: Any = None
        if aes_key:
            from wechatpy.crypto import WeChatCrypto

            self._crypto = WeChatCrypto(token, aes_key, app_id)

    # ------------------------------------------------------------ building pushes

    def signed_request(
        self, xml: str, openid: str, timestamp: int | None = None, nonce: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """Query parameters and body of one push, signed (and encrypted in safe mode)."""
        ts = str(timestamp if timestamp is not None else int(time.time()))
        nonce = nonce or str(random.randint(10**8, 10**10))
        params = {
            "signature": wechat_signature(self.token, ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "openid": openid,
        }
        if self._crypto is None:
            return params, xml.encode("utf-8")
        from wechatpy.crypto import PrpCrypto

        encrypted = PrpCrypto(self._crypto.key).encrypt(xml, self.app_id).decode("ascii")
        params["encrypt_type"] = "aes"
        params["msg_signature"] = wechat_signature(self.token, ts, nonce, encrypted)
        body = f"<xml><ToUserName>{_cdata(self.account)}</ToUserName><Encrypt>{_cdata(encrypted)}</Encrypt></xml>"
        return params, body.encode("utf-8")

    def message_fields(self, openid: str, msg_type: str, **fields: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "ToUserName": self.account,
            "FromUserName": openid,
            "CreateTime": int(time.time()),
            "MsgType": msg_type,
        }
        base.update(fields)
        return base

    # ------------------------------------------------------------ sending

    def push(self, fields: dict[str, Any], interaction: str | None = None) -> PushResult:
        """Send one push with WeChat's deadline and retries; `interaction` tells the simulator."""
        openid = str(fields["FromUserName"])
        if interaction and self.sim_url:
            event = fields.get("Event") if fields.get("MsgType") == "event" else None
            self.http.post(
                f"{self.sim_url}sim/users/{openid}/interact",
                json={"kind": interaction, "event": event},
                timeout=5,
            )
        return self.push_xml(build_xml(fields), openid)

    def push_xml(self, xml: str, openid: str) -> PushResult:
        """POST an XML push like WeChat: 5 s per try, up to 3 tries on timeout or connection error."""
        start = time.monotonic()
        attempts: list[str] = []
        for attempt in range(1, self.tries + 1):
            params, body = self.signed_request(xml, openid)
            try:
                resp = self.http.post(
                    self.webhook_url,
                    params=params,
                    data=body,
                    headers={"Content-Type": "text/xml"},
                    timeout=self.deadline,
                )
            except requests.Timeout:
                attempts.append("timeout")
                continue
            except requests.ConnectionError:
                attempts.append("connection error")
                continue
            attempts.append(str(resp.status_code))
            return self._read_reply(resp, openid, attempt, time.monotonic() - start, attempts)
        return PushResult(
            self.tries, None, "", time.monotonic() - start, error="no answer", attempts=attempts
        )

    def _read_reply(
        self, resp: requests.Response, openid: str, tries: int, elapsed: float, attempts: list[str]
    ) -> PushResult:
        text = resp.content.decode("utf-8", "replace")
        result = PushResult(tries, resp.status_code, text, elapsed, attempts=attempts)
        if resp.status_code != 200:
            result.error = f"HTTP {resp.status_code}"
            return result
        if text.strip() in ("", "success"):
            return result
        try:
            reply = xmltodict.parse(text)["xml"]
            if self._crypto is not None:
                from wechatpy.crypto import PrpCrypto

                expected = wechat_signature(
                    self.token, str(reply["TimeStamp"]), str(reply["Nonce"]), str(reply["Encrypt"])
                )
                if expected != reply["MsgSignature"]:
                    raise ValueError("bad MsgSignature on the reply")
                inner = PrpCrypto(self._crypto.key).decrypt(reply["Encrypt"], self.app_id)
                reply = xmltodict.parse(inner)["xml"]
            if reply.get("ToUserName") != openid or reply.get("FromUserName") != self.account:
                raise ValueError("reply addressed to the wrong user or from the wrong account")
            if reply.get("MsgType") not in (
                "text",
                "news",
                "image",
                "voice",
                "video",
                "music",
                "transfer_customer_service",
            ):
                raise ValueError("unknown reply MsgType")
            if reply.get("MsgType") == "news":
                items = reply.get("Articles", {}).get("item")
                count = len(items) if isinstance(items, list) else 1
                if str(count) != str(reply.get("ArticleCount")) or count > 8:
                    raise ValueError("ArticleCount does not match")
            result.reply = reply
        except Exception as exc:  # whatever WeChat could not read, the user sees the failure notice
            result.error = f"unusable reply: {exc}"
        return result

    def send_text(self, openid: str, content: str, msg_id: int | None = None) -> PushResult:
        fields = self.message_fields(openid, "text", Content=content, MsgId=msg_id or next_msgid())
        return self.push(fields, "message")

    def send_voice(
        self, openid: str, recognition: str | None = None, msg_id: int | None = None
    ) -> PushResult:
        fields = self.message_fields(
            openid,
            "voice",
            MediaId="media_" + str(next_msgid()),
            Format="amr",
            Recognition=recognition if recognition is not None else None,
            MsgId=msg_id or next_msgid(),
        )
        return self.push(fields, "message")

    def send_location(
        self, openid: str, lat: float, lng: float, label: str = "", scale: int = 15
    ) -> PushResult:
        fields = self.message_fields(
            openid, "location", Location_X=lat, Location_Y=lng, Scale=scale, Label=label, MsgId=next_msgid()
        )
        return self.push(fields, "message")

    def send_image(self, openid: str, pic_url: str = "http://mmbiz.qpic.cn/example.jpg") -> PushResult:
        fields = self.message_fields(openid, "image", PicUrl=pic_url, MediaId="media_1", MsgId=next_msgid())
        return self.push(fields, "message")

    def send_video(self, openid: str, short: bool = False) -> PushResult:
        fields = self.message_fields(
            openid, "shortvideo" if short else "video", MediaId="m", ThumbMediaId="t", MsgId=next_msgid()
        )
        return self.push(fields, "message")

    def send_link(self, openid: str, title: str, url: str) -> PushResult:
        fields = self.message_fields(openid, "link", Title=title, Description="", Url=url, MsgId=next_msgid())
        return self.push(fields, "message")

    def send_event(self, openid: str, event: str, event_key: str | None = None, **extra: Any) -> PushResult:
        fields = self.message_fields(openid, "event", Event=event, EventKey=event_key, **extra)
        interaction = "event" if event in ("subscribe", "CLICK", "SCAN", "unsubscribe") else None
        return self.push(fields, interaction)

    # ------------------------------------------------------------ the simulator's side

    def inbox(self, openid: str) -> list[dict[str, Any]]:
        """What the simulator delivered to this user through the API (customer-service, template)."""
        if not self.sim_url:
            return []
        return list(self.http.get(f"{self.sim_url}sim/inbox/{openid}", timeout=5).json())

    def wait_inbox(self, openid: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The inbox once it holds `count` messages, or as it is when `timeout` passes (the simulator
        holds the request until then: no polling)."""
        if not self.sim_url:
            return []
        end = time.monotonic() + timeout
        while True:
            remaining = max(0.0, end - time.monotonic())
            items = list(
                self.http.get(
                    f"{self.sim_url}sim/inbox/{openid}",
                    params={"count": count, "wait": min(remaining, 30.0)},
                    timeout=min(remaining, 30.0) + 5,
                ).json()
            )
            if len(items) >= count or time.monotonic() >= end:
                return items


__all__ = ["FAILURE_NOTICE", "PushResult", "WeChatClientSim", "build_xml", "next_msgid"]
