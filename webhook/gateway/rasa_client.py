"""The call into Rasa's REST channel, behind a tiny interface the gateway can be given in tests.

`send(openid, text, timeout)` posts {"sender": openid, "message": text} to
`{RASA_URL}/webhooks/rest/webhook` and returns Rasa's list of responses
({"recipient_id", "text"?, "buttons"?, "image"?, "custom"?}). Anything that is not such an answer —
connection refused, timeout, HTTP error, not JSON — raises `RasaUnavailable`. An empty list means
either that the action server failed (Rasa then says nothing) or that the dialogue chose to say
nothing; a look at the action server's health tells which: `RasaUnavailable`, or `RasaSilent`.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import quote

import requests


class RasaUnavailable(Exception):
    """Rasa (or its action server) gave no usable answer; `reason` says why, for the logs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RasaSilent(RasaUnavailable):
    """Rasa and its action server are up, but the dialogue had nothing to say to this message."""


class RasaLike(Protocol):
    def send(self, openid: str, text: str, timeout: float) -> list[dict[str, Any]]: ...


Understanding = tuple[str, float]  # (intent name, confidence)


class RasaClient:
    """Rasa's REST channel over HTTP (a pooled session shared by the gateway's threads)."""

    def __init__(
        self, base_url: str, http: requests.Session | None = None, action_health_url: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.action_health_url = action_health_url
        self.url = self.base_url + "/webhooks/rest/webhook"
        self.http = http or requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)

    def send(self, openid: str, text: str, timeout: float) -> list[dict[str, Any]]:
        """Rasa's responses to `text` from `openid` (one conversation per OpenID)."""
        try:
            resp = self.http.post(self.url, json={"sender": openid, "message": text}, timeout=(2.0, timeout))
        except requests.Timeout:
            raise RasaUnavailable("timeout") from None
        except requests.RequestException as exc:
            raise RasaUnavailable(f"unreachable: {type(exc).__name__}") from None
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
        return messages

    def _actions_healthy(self) -> bool:
        if not self.action_health_url:
            return False
        try:
            return self.http.get(self.action_health_url, timeout=1.0).status_code == 200
        except requests.RequestException:
            return False

    def understanding(self, openid: str, text: str, timeout: float = 2.0) -> Understanding | None:
        """How Rasa understood `text` (its tracker's latest message), for the message log; None if unknown.

        Needs Rasa's HTTP API (`rasa run --enable-api`); any failure just means "not known".
        """
        try:
            resp = self.http.get(
                f"{self.base_url}/conversations/{quote(openid, safe='')}/tracker",
                params={"include_events": "NONE"},
                timeout=(1.0, timeout),
            )
            latest = resp.json().get("latest_message") or {} if resp.status_code == 200 else {}
        except (requests.RequestException, ValueError, AttributeError):
            return None
        intent = latest.get("intent") or {}
        if latest.get("text") != text or not intent.get("name"):
            return None  # the user has written again since, or nothing was recognised
        try:
            return str(intent["name"])[:40], float(intent.get("confidence") or 0.0)
        except (TypeError, ValueError):
            return None
