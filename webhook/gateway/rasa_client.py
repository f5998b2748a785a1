"""The call into Rasa, behind a tiny interface the gateway can be given in tests.

`send(openid, text, timeout)` posts {"sender": openid, "message": text} to Rasa's gateway channel
(`bot/gateway_channel.py`: the REST channel, plus the recognised intent in response headers) and
returns a `RasaAnswer`: Rasa's list of responses ({"recipient_id", "text"?, "buttons"?, "image"?,
"custom"?}) and the intent. Where that channel is not configured (404), the client falls back to the
plain REST channel for good and the intent is simply unknown.

Anything that is not such an answer — connection refused, timeout, HTTP error, not JSON — raises
`RasaUnavailable`. An empty list means either that the action server failed (Rasa then says nothing)
or that the dialogue chose to say nothing; a look at the action server's health tells which:
`RasaUnavailable`, or `RasaSilent`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

GATEWAY_CHANNEL_PATH = "/webhooks/gateway/webhook"
REST_CHANNEL_PATH = "/webhooks/rest/webhook"
INTENT_HEADER = "X-Rasa-Intent"
CONFIDENCE_HEADER = "X-Rasa-Intent-Confidence"


class RasaUnavailable(Exception):
    """Rasa (or its action server) gave no usable answer; `reason` says why, for the logs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RasaSilent(RasaUnavailable):
    """Rasa and its action server are up, but the dialogue had nothing to say to this message."""


@dataclass
class RasaAnswer:
    """Rasa's messages for one user message, and the intent it recognised (None when unknown)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    intent: str | None = None
    confidence: float | None = None


class RasaLike(Protocol):
    def send(self, openid: str, text: str, timeout: float) -> RasaAnswer: ...


class RasaClient:
    """Rasa over HTTP (a pooled session shared by the gateway's threads)."""

    def __init__(
        self, base_url: str, http: requests.Session | None = None, action_health_url: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.action_health_url = action_health_url
        self.url = self.base_url + GATEWAY_CHANNEL_PATH
        self.http = http or requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)

    def send(self, openid: str, text: str, timeout: float) -> RasaAnswer:
        """Rasa's answer to `text` from `openid` (one conversation per OpenID)."""
        resp = self._post(openid, text, timeout)
        if resp.status_code == 404 and self.url.endswith(GATEWAY_CHANNEL_PATH):
            logging.getLogger("zhanyou.gateway").warning(
                "event=rasa_channel_missing fallback=rest (intents will not be logged)"
            )
            self.url = self.base_url + REST_CHANNEL_PATH
            resp = self._post(openid, text, timeout)
        if resp.status_code != 200:
            raise RasaUnavailable(f"HTTP {resp.status_code}")
        try:
            data = resp.json()
        except ValueError:
            raise RasaUnavailable("not JSON") from None
        if not isinstance(data, list):
            raise RasaUnavailable("not a list")
        messages = [m for m in data if isinstance(m, dict)]
        if not messages:
            if self._actions_healthy():
                raise RasaSilent("nothing to say")
            raise RasaUnavailable("empty answer, action server down")
        intent, confidence = _understanding(resp.headers)
        return RasaAnswer(messages, intent, confidence)

    def _post(self, openid: str, text: str, timeout: float) -> requests.Response:
        try:
            return self.http.post(self.url, json={"sender": openid, "message": text}, timeout=(2.0, timeout))
        except requests.Timeout:
            raise RasaUnavailable("timeout") from None
        except requests.RequestException as exc:
            raise RasaUnavailable(f"unreachable: {type(exc).__name__}") from None

    def _actions_healthy(self) -> bool:
        if not self.action_health_url:
            return False
        try:
            return self.http.get(self.action_health_url, timeout=1.0).status_code == 200
        except requests.RequestException:
            return False


def _understanding(headers: Any) -> tuple[str | None, float | None]:
    """The intent headers of the gateway channel, or (None, None) when absent or unreadable."""
    name = (headers.get(INTENT_HEADER) or "").strip()[:40]
    if not name:
        return None, None
    try:
        return name, float(headers.get(CONFIDENCE_HEADER) or 0.0)
    except ValueError:
        return name, None
