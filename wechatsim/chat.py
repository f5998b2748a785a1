"""`make chat`: talk to the running webhook as one WeChat user, in the terminal.

Speaks the real protocol (signed XML; `--aes` for safe mode) to http://127.0.0.1:$PORT/wechat and
prints the passive replies, plus whatever the account pushes to this user through the server API (late
answers, notifications) as seen in the simulator's inbox. `make run` points the webhook's
WECHAT_API_BASE at a simulator; when none is reachable, this starts one of its own and says so.

Commands: /位置 27.23 119.90 (a location), /语音 文字 (a voice message), /菜单 KEY (a menu click),
/关注, /图片, /退出.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
import threading
import time

import requests

from bureau.settings import get_settings
from wechatsim.client import PushResult, WeChatClientSim
from wechatsim.server import SimServer, SimState

_LINK = re.compile(r'<a href="[^"]*">([^<]*)</a>')


def readable(text: str) -> str:
    """Show a tappable link as its title, as the WeChat app does."""
    return _LINK.sub(r"[\1]", text)


def find_simulator(explicit: str | None) -> tuple[str, SimServer | None]:
    """The simulator's URL: --sim, else WECHAT_API_BASE when it is a simulator, else a new one here."""
    candidates = [explicit, os.environ.get("WECHAT_API_BASE")]
    for url in candidates:
        if not url:
            continue
        url = url.rstrip("/") + "/"
        try:
            if requests.get(url + "sim/health", timeout=1).ok:
                return url, None
        except requests.RequestException:
            continue
    settings = get_settings()
    server = SimServer(
        state=SimState(app_id=settings.wechat_app_id, secret=settings.wechat_app_secret)
    ).start()
    print(
        f"（没有找到正在运行的微信模拟器，已在 {server.url} 启动一个。要看到推送给您的消息，"
        f"请让 webhook 以 WECHAT_API_BASE={server.url} 启动。）"
    )
    return server.url, server


def show(result: PushResult) -> None:
    if result.error:
        print(f"战友：{result.user_sees}   （{result.error}）")
    elif result.user_sees:
        print("战友：" + readable(result.user_sees).replace("\n", "\n      "))


def watch_inbox(client: WeChatClientSim, openid: str, stop: threading.Event) -> None:
    seen = len(client.inbox(openid))
    while not stop.wait(0.5):
        try:
            items = client.inbox(openid)
        except requests.RequestException:
            continue
        for item in items[seen:]:
            print("\n战友（推送）：" + readable(str(item.get("text", ""))).replace("\n", "\n      "))
            print("你：", end="", flush=True)
        seen = len(items)


def handle(client: WeChatClientSim, openid: str, line: str) -> bool:
    """Send one line; False to quit."""
    if line in ("/退出", "/quit", "/exit"):
        return False
    parts = line.split()
    command = parts[0] if parts else ""
    if command in ("/位置", "/location") and len(parts) >= 3:
        show(client.send_location(openid, float(parts[1]), float(parts[2]), " ".join(parts[3:])))
    elif command in ("/语音", "/voice"):
        show(client.send_voice(openid, " ".join(parts[1:]) or None))
    elif command in ("/菜单", "/click") and len(parts) == 2:
        show(client.send_event(openid, "CLICK", parts[1]))
    elif command in ("/关注", "/subscribe"):
        show(client.send_event(openid, "subscribe", parts[1] if len(parts) > 1 else None))
    elif command in ("/图片", "/image"):
        show(client.send_image(openid))
    else:
        show(client.send_text(openid, line))
    return True


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description="Chat with the running Zhanyou webhook as a WeChat user.")
    parser.add_argument("--url", default=f"http://127.0.0.1:{settings.port}/wechat")
    parser.add_argument("--openid", default="o_chat_" + re.sub(r"\W", "", getpass.getuser())[:20])
    parser.add_argument("--aes", action="store_true", help="safe mode (needs WECHAT_AES_KEY)")
    parser.add_argument("--sim", help="URL of the WeChat simulator (default: WECHAT_API_BASE)")
    args = parser.parse_args(argv)
    if args.aes and not settings.wechat_aes_key:
        print("--aes 需要设置 WECHAT_AES_KEY（43 位）", file=sys.stderr)
        return 2
    sim_url, own_sim = find_simulator(args.sim)
    client = WeChatClientSim(
        args.url,
        settings.wechat_token,
        settings.wechat_app_id,
        settings.wechat_aes_key if args.aes else None,
        sim_url=sim_url,
    )
    try:
        requests.get(args.url.rsplit("/", 1)[0] + "/healthz", timeout=2)
    except requests.RequestException:
        print(f"连不上 webhook {args.url}。请先运行 make run。", file=sys.stderr)
        if own_sim:
            own_sim.stop()
        return 1
    mode = "安全模式（AES）" if args.aes else "明文模式"
    print(f"以用户 {args.openid} 连接 {args.url}（{mode}）。输入消息后回车；/退出 结束。")
    stop = threading.Event()
    threading.Thread(target=watch_inbox, args=(client, args.openid, stop), daemon=True).start()
    try:
        while True:
            try:
                line = input("你：").strip()
            except EOFError:
                break
            if line and not handle(client, args.openid, line):
                break
    except KeyboardInterrupt:
        print()
    finally:
        time.sleep(0.6)  # let a push that is on its way be printed
        stop.set()
        if own_sim:
            own_sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
