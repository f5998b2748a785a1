"""Gateway fixtures: the WeChat simulator, a Rasa-shaped test double, the app wired to both, push helpers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bureau.settings import get_settings
from tests.gateway.rasa_double import RasaDouble
from webhook.gateway import protocol
from wechatsim.client import WeChatClientSim, build_xml, next_msgid
from wechatsim.server import DEFAULT_APP_ID, DEFAULT_SECRET, SimServer

TOKEN = "test-wechat-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ACCOUNT = "gh_zhanyou_test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sim() -> Iterator[SimServer]:
    server = SimServer().start()
    yield server
    server.stop()


@pytest.fixture
def rasa() -> Iterator[RasaDouble]:
    double = RasaDouble().start()
    yield double
    double.stop()


def configure_env(monkeypatch: pytest.MonkeyPatch, sim_url: str, rasa_url: str, budget: float = 1.0) -> None:
    monkeypatch.setenv("WECHAT_TOKEN", TOKEN)
    monkeypatch.setenv("WECHAT_APP_ID", DEFAULT_APP_ID)
    monkeypatch.setenv("WECHAT_APP_SECRET", DEFAULT_SECRET)
    monkeypatch.setenv("WECHAT_AES_KEY", AES_KEY)
    monkeypatch.setenv("WECHAT_API_BASE", sim_url)
    monkeypatch.setenv("RASA_URL", rasa_url)
    monkeypatch.setenv("REPLY_BUDGET_SECONDS", str(budget))
    monkeypatch.setenv("SERVICE_CENTER_PHONE", "0593-1234567")
    monkeypatch.delenv("REDIS_URL", raising=False)
    get_settings.cache_clear()


@pytest.fixture
def make_app(db_url: str, sim: SimServer, rasa: RasaDouble, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """make_app(**config) → a Flask app on this test's database, the simulator and the Rasa double."""
    apps: list[Flask] = []

    def build(rasa_url: str | None = None, budget: float = 1.0, **config: Any) -> Flask:
        from webhook import create_app

        configure_env(monkeypatch, sim.url, rasa_url or rasa.url, budget)
        app = create_app({"TESTING": True, "DATABASE_URL": db_url, "FOLLOWUP_DELAY_SECONDS": 0.1, **config})
        apps.append(app)
        return app

    yield build
    for app in apps:
        ctx = app.extensions.get("zhanyou_gateway")
        if ctx is not None:
            ctx.pool.shutdown(wait=True)


@pytest.fixture
def client(make_app: Any) -> FlaskClient:
    return make_app().test_client()


class Pusher:
    """Signs pushes like WeChat and posts them through the Flask test client."""

    def __init__(self, client: FlaskClient, aes: bool = False) -> None:
        self.client = client
        self.wechat = WeChatClientSim(
            "http://unused/wechat", TOKEN, DEFAULT_APP_ID, AES_KEY if aes else None, account=ACCOUNT
        )
        self.aes = aes

    def post(self, fields: dict[str, Any], **query: str) -> Any:
        params, body = self.wechat.signed_request(build_xml(fields), str(fields["FromUserName"]))
        params.update(query)
        return self.client.post("/wechat", query_string=params, data=body, content_type="text/xml")

    def fields(self, openid: str, msg_type: str, **extra: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "ToUserName": ACCOUNT,
            "FromUserName": openid,
            "CreateTime": int(time.time()),
            "MsgType": msg_type,
        }
        if msg_type != "event":
            base["MsgId"] = next_msgid()
        base.update(extra)
        return base

    def text(self, openid: str, content: str, msg_id: int | None = None) -> Any:
        fields = self.fields(openid, "text", Content=content)
        if msg_id is not None:
            fields["MsgId"] = msg_id
        return self.post(fields)

    def event(self, openid: str, event: str, **extra: Any) -> Any:
        return self.post(self.fields(openid, "event", Event=event, **extra))

    def reply(self, response: Any) -> dict[str, Any]:
        """The passive reply of a response, decrypted in safe mode; {} for `success`."""
        body = response.get_data(as_text=True)
        assert response.status_code == 200, body
        if body in ("success", ""):
            return {}
        fields = protocol.parse_xml(body)
        if self.aes:
            from wechatpy.crypto import WeChatCrypto

            crypto = WeChatCrypto(TOKEN, AES_KEY, DEFAULT_APP_ID)
            inner = crypto.decrypt_message(body, fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"])
            fields = protocol.parse_xml(inner)
        return fields


@pytest.fixture
def push(client: FlaskClient) -> Pusher:
    return Pusher(client)
