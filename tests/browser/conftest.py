"""Browser tests: the real console served on a free port, Debian's Chromium driven by Playwright.

Chromium comes from Debian (`apt-get install -y chromium`), never from `playwright install` (no
downloads here). The WeChat simulator stands in for the WeChat server API, and the broadcast runs
in-process (BROADCAST_EAGER=1) exactly as the worker would send.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Sim:
    """The WeChat simulator on a free port, with what its users received."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.url = server.url

    def follower(self, openid: str) -> None:
        """A follower who has just written to the account (inside the 48-hour window)."""
        for path in ("sim/followers", f"sim/users/{openid}/interact"):
            requests.post(self.url + path, json={"openid": openid}, timeout=5).raise_for_status()

    def inbox(self, openid: str) -> list[dict[str, Any]]:
        return list(requests.get(self.url + f"sim/inbox/{openid}", timeout=5).json())

    def wait_for_message(self, openid: str, contains: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.inbox(openid):
                if contains in (message.get("text") or str(message)):
                    return message
            time.sleep(0.2)
        raise AssertionError(f"{openid} received no message containing {contains!r}: {self.inbox(openid)}")


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[Sim]:
    from bureau.broadcast import tasks
    from bureau.broadcast.config import get_config
    from bureau.settings import get_settings
    from bureau.wechat import reset_client
    from wechatsim.server import SimServer

    server = SimServer().start()
    for key, value in {
        "WECHAT_API_BASE": server.url,
        "WECHAT_APP_ID": "wxzhanyoudev0001",
        "WECHAT_APP_SECRET": "zhanyou-dev-secret",
        "BROADCAST_EAGER": "1",
        "BROADCAST_RATE": "0",
        "BROADCAST_BACKOFF_SECONDS": "0.05",
        "BROADCAST_BACKOFF_MAX_SECONDS": "0.2",
        "BROKER_URL": "memory://",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("REDIS_URL", raising=False)
    get_settings.cache_clear()
    get_config.cache_clear()
    reset_client()
    tasks.reset_state()
    try:
        yield Sim(server)
    finally:
        server.stop()
        reset_client()
        tasks.reset_state()
        get_config.cache_clear()
        get_settings.cache_clear()


@pytest.fixture
def live_console(db_url: str, sim: Sim) -> Iterator[str]:
    """The Flask app (gateway + console) as a real HTTP server on 127.0.0.1; yields its base URL."""
    from werkzeug.serving import make_server

    from webhook import create_app

    app = create_app({"DATABASE_URL": db_url, "SECRET_KEY": "browser-test-secret", "WTF_CSRF_ENABLED": True})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="console", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} not found: browser tests need Debian's Chromium (apt-get install -y chromium)"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed in .venv")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    try:
        yield tab
    finally:
        context.close()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
