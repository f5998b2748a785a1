"""TEST FIXTURE: a local HTTP server shaped like Rasa's REST channel (not Rasa).

It answers `POST /webhooks/gateway/webhook` (the project's channel: the REST body, the intent in
headers) and `POST /webhooks/rest/webhook` with a configurable Rasa-shaped list after a configurable
delay and counts the calls, so the gateway's deadline, retry and rendering logic can be tested against
real HTTP before the trained model exists. End-to-end tests with the real model live elsewhere.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RasaDouble:
    """`responder(sender, message)` builds the answer; `delay` seconds pass before it is sent."""

    def __init__(
        self, responder: Callable[[str, str], list[dict[str, Any]]] | None = None, delay: float = 0.0
    ) -> None:
        self.responder = responder or (
            lambda sender, message: [{"recipient_id": sender, "text": f"收到：{message}"}]
        )
        self.delay = delay
        self.calls: list[tuple[str, str]] = []
        self.intent = "greet"
        self.gateway_channel = True  # False: as a Rasa started without bot/credentials.yml (404 there)
        self.paths: list[str] = []
        self.lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with double.lock:
                    double.paths.append(self.path)
                known = ["/webhooks/rest/webhook"] + (
                    ["/webhooks/gateway/webhook"] if double.gateway_channel else []
                )
                if self.path not in known:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with double.lock:
                    double.calls.append((body.get("sender"), body.get("message")))
                time.sleep(double.delay)
                data = json.dumps(double.responder(body.get("sender"), body.get("message")))
                raw = data.encode("utf-8")
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    if self.path == "/webhooks/gateway/webhook":
                        self.send_header("X-Rasa-Intent", double.intent)
                        self.send_header("X-Rasa-Intent-Confidence", "0.9300")
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:
                    pass

            def do_GET(self) -> None:  # noqa: N802
                # Health checks (Rasa's channel root, the action server's /health) all pass.
                raw = b'{"status": "ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> RasaDouble:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def messages(self) -> list[str]:
        with self.lock:
            return [m for _s, m in self.calls]
