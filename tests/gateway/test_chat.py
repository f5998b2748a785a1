"""`make chat` (python -m wechatsim.chat) against a served webhook, as a person would use it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from tests.gateway.conftest import TOKEN

ROOT = Path(__file__).resolve().parents[2]


def test_chat_prints_replies_and_pushes(make_app: Any, sim: Any, rasa: Any, db_url: str) -> None:
    rasa.responder = lambda s, m: [
        {"recipient_id": s, "text": f"收到：{m}", "buttons": [{"title": "找工作", "payload": "/job_search"}]}
    ]
    app = make_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = dict(os.environ, WECHAT_TOKEN=TOKEN, WECHAT_API_BASE=sim.url, DATABASE_URL=db_url)
        url = f"http://127.0.0.1:{server.server_port}/wechat"
        done = subprocess.run(
            [sys.executable, "-m", "wechatsim.chat", "--url", url, "--openid", "oChatter", "--aes"],
            input="你好\n1\n/关注\n/退出\n",
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env=env,
        )
    finally:
        server.shutdown()
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "安全模式" in out
    assert "战友：收到：你好" in out and "1. [找工作]" in out  # links shown as their titles
    assert "战友：收到：/job_search" in out
    assert "欢迎关注" in out
    assert rasa.messages() == ["你好", "/job_search"]
