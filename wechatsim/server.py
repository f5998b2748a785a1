"""The simulated WeChat server API, with WeChat's limits and error codes.

Real endpoints (JSON, always HTTP 200 with `errcode` like WeChat):
  GET  /cgi-bin/token?grant_type=client_credential&appid=&secret=
  POST /cgi-bin/stable_token            {grant_type, appid, secret, force_refresh}
  POST /cgi-bin/message/custom/send?access_token=
  POST /cgi-bin/message/template/send?access_token=
  POST /cgi-bin/menu/create?access_token=
Control endpoints for tests (`/sim/...`):
  POST /sim/followers {openid, subscribed?=true}           register a follower
  POST /sim/users/<openid>/interact {kind: message|event}   the user wrote (opens the 48-h window, resets quota)
  POST /sim/users/<openid>/last_message {seconds_ago}       move the user's last message into the past
  POST /sim/users/<openid>/unsubscribe
  POST /sim/faults {mode: errcode|slow|drop, errcode?, seconds?, count?, path?}   next N calls misbehave
  POST /sim/config {token_lifetime?, random_error_rate?, templates?}
  POST /sim/tokens/expire                                   every token expires now
  GET  /sim/inbox/<openid>[?count=N&wait=S]               what that user received, in order (held ≤ S s until N)
  GET  /sim/calls                                           every API call (path, errcode)
  GET  /sim/menu                                            the published menu
  POST /sim/reset

Rules enforced: tokens expire (`token_lifetime`, default 7200 s); a new `cgi-bin/token` fetch leaves the
previous token valid for 5 more minutes; `stable_token` returns the same token until it expires
(force_refresh issues a new one and invalidates the old); wrong appid → 40013, wrong secret → 40125;
missing token → 41001, unknown token → 40001, expired → 42001; customer-service messages only within
48 h of the user's last message (45015), at most 5 per user message (45047; 3 within a minute after an
event such as a menu click), only to followers (43004 for unsubscribed or unknown users); text content
non-empty and ≤ 2048 bytes (45002 / 44004); template IDs must be configured (40037).
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.serving import BaseWSGIServer, make_server

DEFAULT_APP_ID = "wxzhanyoudev0001"
DEFAULT_SECRET = "zhanyou-dev-secret"
DEFAULT_TEMPLATES = ("TPL_JOB_NOTICE", "TPL_STATUS_UPDATE", "TPL_REMINDER")
WINDOW_SECONDS = 48 * 3600
MESSAGE_QUOTA = 5
EVENT_QUOTA = 3
EVENT_QUOTA_SECONDS = 60
OLD_TOKEN_GRACE = 300
TEXT_LIMIT = 2048
CS_TYPES = (
    "text",
    "image",
    "voice",
    "video",
    "music",
    "news",
    "mpnews",
    "mpnewsarticle",
    "msgmenu",
    "wxcard",
    "miniprogrampage",
)


@dataclass
class Follower:
    openid: str
    subscribed: bool = True
    last_interaction: float | None = None
    interaction_kind: str = "message"
    sent_since_interaction: int = 0


@dataclass
class TokenInfo:
    value: str
    kind: str  # token / stable
    expires_at: float


@dataclass
class Fault:
    mode: str
    errcode: int = -1
    seconds: float = 0.0
    remaining: int = 1
    path: str | None = None


@dataclass
class SimState:
    """Everything the simulator knows; guarded by `lock`."""

    app_id: str = DEFAULT_APP_ID
    secret: str = DEFAULT_SECRET
    token_lifetime: int = 7200
    random_error_rate: float = 0.0
    templates: set[str] = field(default_factory=lambda: set(DEFAULT_TEMPLATES))
    followers: dict[str, Follower] = field(default_factory=dict)
    tokens: dict[str, TokenInfo] = field(default_factory=dict)
    stable_token: str | None = None
    inbox: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    menu: dict[str, Any] | None = None
    next_msgid: int = 1000
    token_fetches: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)
    # Notified on every delivery, so a test can wait for a message instead of polling for it.
    delivered: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.delivered = threading.Condition(self.lock)

    def reset(self) -> None:
        with self.lock:
            self.followers.clear()
            self.tokens.clear()
            self.stable_token = None
            self.inbox.clear()
            self.calls.clear()
            self.faults.clear()
            self.menu = None
            self.token_fetches = 0
            self.random_error_rate = 0.0


def _json(data: dict[str, Any] | list[Any], status: int = 200) -> Response:
    return Response(json.dumps(data, ensure_ascii=False), status=status, mimetype="application/json")


def _err(errcode: int, errmsg: str) -> dict[str, Any]:
    return {"errcode": errcode, "errmsg": errmsg}


def create_sim_app(state: SimState | None = None) -> Flask:
    """The simulator as a Flask app; `app.config["SIM_STATE"]` holds its state."""
    sim = state or SimState()
    app = Flask("wechatsim")
    app.config["SIM_STATE"] = sim

    def take_fault(path: str) -> Fault | None:
        with sim.lock:
            for fault in sim.faults:
                if fault.path is None or fault.path in path:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        sim.faults.remove(fault)
                    return fault
        return None

    def record(path: str, result: dict[str, Any], body: Any = None) -> dict[str, Any]:
        """Note the call (once per request: a dropped call is noted before its connection goes)."""
        if not g.get("sim_recorded"):
            g.sim_recorded = True
            with sim.lock:
                sim.calls.append(
                    {"path": path, "errcode": result.get("errcode", 0), "at": time.time(), "body": body}
                )
        return result

    def apply_fault(path: str) -> dict[str, Any] | None:
        """A fault for this call: an error answer, a delay, or a dropped connection."""
        fault = take_fault(path)
        if fault is not None:
            if fault.mode == "slow":
                time.sleep(min(fault.seconds, 30))
            elif fault.mode == "drop":
                # Noted first: the caller sees the connection go and may ask at once what we received.
                record(path, _err(-1, "connection dropped"), request.get_json(silent=True))
                sock = request.environ.get("werkzeug.socket")
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return _err(-1, "connection dropped")
            else:
                return _err(fault.errcode, "simulated fault")
        if sim.random_error_rate and random.random() < sim.random_error_rate:
            return _err(-1, "system error")
        return None

    def new_token(kind: str) -> TokenInfo:
        info = TokenInfo(secrets.token_urlsafe(48), kind, time.time() + sim.token_lifetime)
        sim.tokens[info.value] = info
        sim.token_fetches += 1
        return info

    def check_credentials(appid: Any, secret: Any) -> dict[str, Any] | None:
        if appid != sim.app_id:
            return _err(40013, "invalid appid")
        if secret != sim.secret:
            return _err(40125, "invalid appsecret")
        return None

    def check_token() -> dict[str, Any] | None:
        token = request.args.get("access_token")
        if not token:
            return _err(41001, "access_token missing")
        info = sim.tokens.get(token)
        if info is None:
            return _err(40001, "invalid credential, access_token is invalid or not latest")
        if info.expires_at <= time.time():
            return _err(42001, "access_token expired")
        return None

    def json_body() -> dict[str, Any] | None:
        try:
            data = json.loads(request.get_data() or b"null")
        except (ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    @app.get("/cgi-bin/token")
    def token() -> Response:
        with sim.lock:
            fault = apply_fault("cgi-bin/token")
            if fault:
                return _json(record("cgi-bin/token", fault))
            if request.args.get("grant_type") != "client_credential":
                return _json(record("cgi-bin/token", _err(40002, "invalid grant_type")))
            bad = check_credentials(request.args.get("appid"), request.args.get("secret"))
            if bad:
                return _json(record("cgi-bin/token", bad))
            now = time.time()
            for info in sim.tokens.values():  # the previous token of this kind lives 5 more minutes
                if info.kind == "token" and info.expires_at > now + OLD_TOKEN_GRACE:
                    info.expires_at = now + OLD_TOKEN_GRACE
            info = new_token("token")
            return _json(
                record("cgi-bin/token", {"access_token": info.value, "expires_in": sim.token_lifetime})
            )

    @app.post("/cgi-bin/stable_token")
    def stable_token() -> Response:
        with sim.lock:
            fault = apply_fault("cgi-bin/stable_token")
            if fault:
                return _json(record("cgi-bin/stable_token", fault))
            body = json_body()
            if body is None:
                return _json(record("cgi-bin/stable_token", _err(47001, "data format error")))
            if body.get("grant_type") != "client_credential":
                return _json(record("cgi-bin/stable_token", _err(40002, "invalid grant_type")))
            bad = check_credentials(body.get("appid"), body.get("secret"))
            if bad:
                return _json(record("cgi-bin/stable_token", bad))
            now = time.time()
            current = sim.tokens.get(sim.stable_token or "")
            if body.get("force_refresh") is True or current is None or current.expires_at <= now:
                if current is not None:
                    current.expires_at = min(current.expires_at, now)
                current = new_token("stable")
                sim.stable_token = current.value
            remaining = int(current.expires_at - now)
            return _json(
                record("cgi-bin/stable_token", {"access_token": current.value, "expires_in": remaining})
            )

    def deliver(openid: str, kind: str, message: dict[str, Any]) -> None:
        sim.inbox.setdefault(openid, []).append({"kind": kind, "at": time.time(), **message})
        sim.delivered.notify_all()

    def api_call(path: str, handle: Callable[[dict[str, Any]], dict[str, Any]]) -> Response:
        """What every API call goes through, in WeChat's order: an injected fault, the access token,
        a JSON body; then `handle(body)` decides (under the state lock) and the call is recorded."""
        fault = apply_fault(path)  # outside the lock: a slow fault must not stall other calls
        with sim.lock:
            if fault:
                return _json(record(path, fault))
            bad = check_token()
            if bad:
                return _json(record(path, bad))
            body = json_body()
            if body is None:
                return _json(record(path, _err(47001, "data format error")))
            return _json(record(path, handle(body), body))

    @app.post("/cgi-bin/message/custom/send")
    def custom_send() -> Response:
        return api_call("cgi-bin/message/custom/send", send_custom)

    def send_custom(body: dict[str, Any]) -> dict[str, Any]:
        result = validate_custom(body)
        if result is not None:
            return result
        openid = body["touser"]
        sim.followers[openid].sent_since_interaction += 1
        deliver(openid, "custom", {"msgtype": body["msgtype"], "body": body, "text": custom_text(body)})
        return _err(0, "ok")

    def custom_text(body: dict[str, Any]) -> str:
        msgtype = body["msgtype"]
        if msgtype == "text":
            return str(body["text"]["content"])
        if msgtype == "msgmenu":
            menu = body["msgmenu"]
            lines = [menu.get("head_content", "")] + [f"[{i['content']}]" for i in menu.get("list", [])]
            return "\n".join(line for line in lines + [menu.get("tail_content", "")] if line)
        if msgtype == "news":
            return "\n".join(f"{a.get('title', '')} {a.get('url', '')}" for a in body["news"]["articles"])
        return f"[{msgtype}]"

    def validate_custom(body: dict[str, Any]) -> dict[str, Any] | None:
        openid = body.get("touser")
        msgtype = body.get("msgtype")
        if not isinstance(openid, str) or not openid:
            return _err(40003, "invalid openid")
        if msgtype not in CS_TYPES:
            return _err(40008, "invalid message type")
        content = body.get(msgtype)
        if not isinstance(content, dict):
            return _err(47001, "data format error")
        if msgtype == "text":
            text = content.get("content")
            if not isinstance(text, str) or not text.strip():
                return _err(44004, "empty content")
            if len(text.encode("utf-8")) > TEXT_LIMIT:
                return _err(45002, "content size out of limit")
        if msgtype == "msgmenu":
            items = content.get("list")
            if (
                not isinstance(items, list)
                or not items
                or not all(isinstance(i, dict) and i.get("id") and i.get("content") for i in items)
            ):
                return _err(47001, "data format error")
        if msgtype == "news":
            articles = content.get("articles")
            if not isinstance(articles, list) or len(articles) != 1 or not articles[0].get("title"):
                return _err(47001, "data format error")
        follower = sim.followers.get(openid)
        if follower is None or not follower.subscribed:
            return _err(43004, "require subscribe")
        now = time.time()
        if follower.last_interaction is None or now - follower.last_interaction > WINDOW_SECONDS:
            return _err(45015, "response out of time limit or subscription is canceled")
        if follower.interaction_kind == "event":
            if (
                now - follower.last_interaction > EVENT_QUOTA_SECONDS
                or follower.sent_since_interaction >= EVENT_QUOTA
            ):
                return _err(45047, "out of response count limit")
        elif follower.sent_since_interaction >= MESSAGE_QUOTA:
            return _err(45047, "out of response count limit")
        return None

    @app.post("/cgi-bin/message/template/send")
    def template_send() -> Response:
        return api_call("cgi-bin/message/template/send", send_template)

    def send_template(body: dict[str, Any]) -> dict[str, Any]:
        openid = body.get("touser")
        if not isinstance(openid, str) or not openid:
            return _err(40003, "invalid openid")
        if body.get("template_id") not in sim.templates:
            return _err(40037, "invalid template_id")
        data = body.get("data")
        if not isinstance(data, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("value"), str) for v in data.values()
        ):
            return _err(47001, "data format error")
        follower = sim.followers.get(openid)
        if follower is None or not follower.subscribed:
            return _err(43004, "require subscribe")
        sim.next_msgid += 1
        msgid = sim.next_msgid
        text = "\n".join(v["value"] for v in data.values())
        deliver(openid, "template", {"msgtype": "template", "msgid": msgid, "body": body, "text": text})
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}

    @app.post("/cgi-bin/menu/create")
    def menu_create() -> Response:
        return api_call("cgi-bin/menu/create", create_menu)

    def create_menu(body: dict[str, Any]) -> dict[str, Any]:
        result = validate_menu(body)
        if result is None:
            sim.menu = body
            result = _err(0, "ok")
        return result

    def validate_menu(body: dict[str, Any]) -> dict[str, Any] | None:
        buttons = body.get("button")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            return _err(40016, "invalid button size")
        for button in buttons:
            if not isinstance(button, dict):
                return _err(47001, "data format error")
            name = button.get("name")
            if not isinstance(name, str) or not name or len(name.encode("utf-8")) > 16:
                return _err(40018, "invalid button name size")
            subs = button.get("sub_button")
            if subs is not None:
                if not isinstance(subs, list) or not 1 <= len(subs) <= 5:
                    return _err(40023, "invalid sub button size")
                for sub in subs:
                    sub_name = sub.get("name") if isinstance(sub, dict) else None
                    if not isinstance(sub_name, str) or not sub_name or len(sub_name.encode("utf-8")) > 60:
                        return _err(40021, "invalid sub button name size")
                    bad = validate_leaf(sub)
                    if bad:
                        return bad
            else:
                bad = validate_leaf(button)
                if bad:
                    return bad
        return None

    def validate_leaf(button: dict[str, Any]) -> dict[str, Any] | None:
        kind = button.get("type")
        if kind in ("click", "location_select", "scancode_push", "pic_photo_or_album"):
            key = button.get("key")
            if not isinstance(key, str) or not key or len(key.encode("utf-8")) > 128:
                return _err(40019, "invalid button key size")
        elif kind == "view":
            url = button.get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 1024:
                return _err(40055, "invalid button url domain")
        else:
            return _err(40017, "invalid button type")
        return None

    # ------------------------------------------------------------ control endpoints

    @app.post("/sim/followers")
    def add_follower() -> Response:
        body = json_body() or {}
        openid = str(body.get("openid", ""))
        if not openid:
            return _json({"error": "openid required"}, 400)
        with sim.lock:
            follower = sim.followers.setdefault(openid, Follower(openid))
            follower.subscribed = bool(body.get("subscribed", True))
        return _json({"ok": True})

    @app.post("/sim/users/<openid>/interact")
    def interact(openid: str) -> Response:
        body = json_body() or {}
        with sim.lock:
            follower = sim.followers.setdefault(openid, Follower(openid))
            if body.get("event") == "subscribe":
                follower.subscribed = True
            if body.get("event") == "unsubscribe":
                follower.subscribed = False
            else:
                follower.last_interaction = time.time()
                follower.interaction_kind = "event" if body.get("kind") == "event" else "message"
                follower.sent_since_interaction = 0
        return _json({"ok": True})

    @app.post("/sim/users/<openid>/last_message")
    def last_message(openid: str) -> Response:
        body = json_body() or {}
        with sim.lock:
            follower = sim.followers.setdefault(openid, Follower(openid))
            follower.last_interaction = time.time() - float(body.get("seconds_ago", 0))
            follower.interaction_kind = "message"
        return _json({"ok": True})

    @app.post("/sim/users/<openid>/unsubscribe")
    def unsubscribe(openid: str) -> Response:
        with sim.lock:
            sim.followers.setdefault(openid, Follower(openid)).subscribed = False
        return _json({"ok": True})

    @app.post("/sim/faults")
    def add_fault() -> Response:
        body = json_body() or {}
        mode = body.get("mode", "errcode")
        if mode not in ("errcode", "slow", "drop"):
            return _json({"error": "mode must be errcode, slow or drop"}, 400)
        with sim.lock:
            sim.faults.append(
                Fault(
                    mode=mode,
                    errcode=int(body.get("errcode", -1)),
                    seconds=float(body.get("seconds", 0)),
                    remaining=int(body.get("count", 1)),
                    path=body.get("path"),
                )
            )
        return _json({"ok": True})

    @app.post("/sim/config")
    def config() -> Response:
        body = json_body() or {}
        with sim.lock:
            if "token_lifetime" in body:
                sim.token_lifetime = int(body["token_lifetime"])
            if "random_error_rate" in body:
                sim.random_error_rate = float(body["random_error_rate"])
            if "templates" in body:
                sim.templates = set(body["templates"])
        return _json({"ok": True})

    @app.post("/sim/tokens/expire")
    def expire_tokens() -> Response:
        with sim.lock:
            for info in sim.tokens.values():
                info.expires_at = min(info.expires_at, time.time())
        return _json({"ok": True})

    @app.get("/sim/inbox/<openid>")
    def inbox(openid: str) -> Response:
        """What the user received; `?count=N&wait=S` holds the answer up to S seconds (≤ 60) until there
        are N messages — one request instead of polling."""
        count = request.args.get("count", default=0, type=int)
        wait = min(max(request.args.get("wait", default=0.0, type=float), 0.0), 60.0)
        with sim.lock:
            sim.delivered.wait_for(lambda: len(sim.inbox.get(openid, [])) >= count, timeout=wait)
            return _json(list(sim.inbox.get(openid, [])))

    @app.get("/sim/calls")
    def calls() -> Response:
        with sim.lock:
            return _json([{k: v for k, v in c.items() if k != "body"} for c in sim.calls])

    @app.get("/sim/menu")
    def menu() -> Response:
        with sim.lock:
            return _json(sim.menu or {})

    @app.post("/sim/reset")
    def reset() -> Response:
        sim.reset()
        return _json({"ok": True})

    @app.get("/sim/health")
    def health() -> Response:
        return _json({"ok": True})

    return app


class SimServer:
    """The simulator on 127.0.0.1 in a background thread (port 0 = a free port); stop() ends it."""

    def __init__(self, port: int = 0, state: SimState | None = None) -> None:
        self.state = state or SimState()
        self.app = create_sim_app(self.state)
        self._server: BaseWSGIServer = make_server("127.0.0.1", port, self.app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="wechatsim", daemon=True)

    def start(self) -> SimServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the local WeChat server API simulator.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = a free one)")
    parser.add_argument("--appid", default=DEFAULT_APP_ID)
    parser.add_argument("--secret", default=DEFAULT_SECRET)
    parser.add_argument("--token-lifetime", type=int, default=7200)
    args = parser.parse_args(argv)
    state = SimState(app_id=args.appid, secret=args.secret, token_lifetime=args.token_lifetime)
    server = SimServer(args.port, state)
    print(f"WeChat simulator listening on {server.url} (appid {args.appid})", flush=True)
    try:
        server._server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
