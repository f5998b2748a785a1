"""The simulator enforces WeChat's rules; its push client behaves like WeChat (deadline, retries)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from wechatsim.client import FAILURE_NOTICE, WeChatClientSim
from wechatsim.server import DEFAULT_APP_ID, DEFAULT_SECRET

CUSTOM = "cgi-bin/message/custom/send"


def token(control: Any) -> str:
    return str(
        control.post(
            "cgi-bin/stable_token",
            grant_type="client_credential",
            appid=DEFAULT_APP_ID,
            secret=DEFAULT_SECRET,
        )["access_token"]
    )


def custom(control: Any, access_token: str, body: dict[str, Any]) -> dict[str, Any]:
    return requests.post(
        f"{control.url}{CUSTOM}", params={"access_token": access_token}, json=body, timeout=5
    ).json()


def test_token_endpoints(sim: Any, control: Any) -> None:
    def fetch(appid: str = DEFAULT_APP_ID, secret: str = DEFAULT_SECRET) -> dict[str, Any]:
        params = {"grant_type": "client_credential", "appid": appid, "secret": secret}
        return requests.get(f"{sim.url}cgi-bin/token", params=params, timeout=5).json()

    assert fetch(appid="wxnope")["errcode"] == 40013
    assert fetch(secret="nope")["errcode"] == 40125
    first, second = fetch(), fetch()
    assert first["expires_in"] == 7200 and first["access_token"] != second["access_token"]
    # The previous token keeps working for 5 minutes only.
    assert sim.state.tokens[first["access_token"]].expires_at <= time.time() + 300
    assert sim.state.tokens[second["access_token"]].expires_at > time.time() + 7000
    stable = token(control)
    assert token(control) == stable  # normal mode: the same token
    forced = control.post(
        "cgi-bin/stable_token",
        grant_type="client_credential",
        appid=DEFAULT_APP_ID,
        secret=DEFAULT_SECRET,
        force_refresh=True,
    )["access_token"]
    assert forced != stable
    control.interact("oT")
    assert (
        custom(control, stable, {"touser": "oT", "msgtype": "text", "text": {"content": "x"}})["errcode"]
        == 42001
    )
    assert (
        custom(control, "made-up", {"touser": "oT", "msgtype": "text", "text": {"content": "x"}})["errcode"]
        == 40001
    )
    assert requests.post(f"{sim.url}{CUSTOM}", json={}, timeout=5).json()["errcode"] == 41001


def test_customer_service_validation_and_limits(control: Any) -> None:
    access = token(control)
    control.interact("oV")
    cases = [
        ({"msgtype": "text", "text": {"content": "x"}}, 40003),
        ({"touser": "oV", "msgtype": "fax", "fax": {}}, 40008),
        ({"touser": "oV", "msgtype": "text", "text": {"content": "  "}}, 44004),
        ({"touser": "oV", "msgtype": "text", "text": {"content": "长" * 683}}, 45002),  # 2049 bytes
        ({"touser": "oV", "msgtype": "text"}, 47001),
        ({"touser": "oStranger", "msgtype": "text", "text": {"content": "x"}}, 43004),
    ]
    for body, errcode in cases:
        assert custom(control, access, body)["errcode"] == errcode, body
    assert (
        custom(control, access, {"touser": "oV", "msgtype": "text", "text": {"content": "长" * 682}})[
            "errcode"
        ]
        == 0
    )
    # After a menu click: 3 messages within a minute.
    control.interact("oClick", kind="event")
    codes = [
        custom(control, access, {"touser": "oClick", "msgtype": "text", "text": {"content": "x"}})["errcode"]
        for _ in range(4)
    ]
    assert codes == [0, 0, 0, 45047]
    assert control.get("sim/inbox/oStranger") == []
    assert len(control.get("sim/inbox/oV")) == 1


def test_faults_and_reset(control: Any) -> None:
    access = token(control)
    control.interact("oF")
    control.post("sim/faults", mode="slow", seconds=0.6, path=CUSTOM)
    started = time.monotonic()
    assert (
        custom(control, access, {"touser": "oF", "msgtype": "text", "text": {"content": "x"}})["errcode"] == 0
    )
    assert time.monotonic() - started >= 0.6
    control.post("sim/config", random_error_rate=1.0)
    assert (
        custom(control, access, {"touser": "oF", "msgtype": "text", "text": {"content": "x"}})["errcode"]
        == -1
    )
    control.post("sim/reset")
    assert control.get("sim/inbox/oF") == [] and control.get("sim/calls") == []


class _Hanging:
    """A webhook that never answers in time, then one that answers garbage."""

    def __init__(self, delay: float, body: bytes) -> None:
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                outer.hits += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/wechat"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_client_enforces_the_deadline_and_retries_three_times() -> None:
    slow = _Hanging(delay=0.5, body=b"success")
    try:
        client = WeChatClientSim(slow.url, "t", DEFAULT_APP_ID, deadline=0.2)
        result = client.send_text("oU", "hi")
        assert slow.hits == 3 and result.tries == 3 and result.user_sees == FAILURE_NOTICE
    finally:
        slow.stop()
    garbage = _Hanging(delay=0, body=b"<xml><MsgType>text</MsgType>")
    try:
        result = WeChatClientSim(garbage.url, "t", DEFAULT_APP_ID).send_text("oU", "hi")
        assert garbage.hits == 1 and result.user_sees == FAILURE_NOTICE
    finally:
        garbage.stop()


def test_server_runs_as_a_module_on_the_given_port() -> None:
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "wechatsim.server", "--port", str(port)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert f"127.0.0.1:{port}" in process.stdout.readline()
        assert requests.get(f"http://127.0.0.1:{port}/sim/health", timeout=5).json() == {"ok": True}
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout:
            process.stdout.close()


def test_a_reader_can_wait_for_a_delivery_instead_of_polling(control: Any) -> None:
    access = token(control)
    control.interact("oWait")
    seen: list[Any] = []
    reader = threading.Thread(
        target=lambda: seen.append(
            requests.get(f"{control.url}sim/inbox/oWait", params={"count": 1, "wait": 10}, timeout=15).json()
        )
    )
    started = time.monotonic()
    reader.start()
    time.sleep(0.3)
    assert seen == []  # still held: nothing delivered yet
    custom(control, access, {"touser": "oWait", "msgtype": "text", "text": {"content": "来了"}})
    reader.join(5)
    assert [m["text"] for m in seen[0]] == ["来了"] and time.monotonic() - started < 3
    # Without enough messages the wait ends at its limit with what there is.
    started = time.monotonic()
    held = requests.get(f"{control.url}sim/inbox/oWait", params={"count": 2, "wait": 0.5}, timeout=5).json()
    assert len(held) == 1 and 0.4 < time.monotonic() - started < 3
