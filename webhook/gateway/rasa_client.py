"""The call into Rasa, behind a tiny interface the gateway can be given in tests.

`send(openid, text, timeout)` posts {"sender": openid, "message": text} to Rasa's gateway channel
(`bot/gateway_channel.py`: the REST channel, plus the recognised intent in response headers) and
returns a `RasaAnswer`: Rasa's list of responses ({"recipient_id", "text"?, "buttons"?, "image"?,
"custom"?}) and the intent. Where that channel is not configured (404), the client falls back to the
plain REST channel for good and the intent is simply unknown.

`RASA_URL` may name several Rasa servers, separated by commas (they share the Redis tracker and lock
stores, so any of them can serve any conversation). Each message goes to the server with the fewest
messages in flight, so a slow turn on one does not queue the next message behind it. A server that
refuses the connection is passed over for a few seconds and the message goes to the next one; a
message that may have reached a server (a read timeout, a dropped answer) is never sent to a second
one, which could run the turn twice.

Anything that is not such an answer — connection refused, timeout, HTTP error, not JSON — raises
`RasaUnavailable`. An empty list means either that the action server failed (Rasa then says nothing)
or that the dialogue chose to say nothing; a look at the action server's health tells which:
`RasaUnavailable`, or `RasaSilent`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, ReadTimeoutError

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


def split_urls(value: str) -> list[str]:
    """The Rasa servers named by `RASA_URL`: one URL, or several separated by commas."""
    return [url.strip().rstrip("/") for url in value.split(",") if url.strip()]


class Balancer:
    """Picks a server per request: the fewest requests in flight, ties taken in turn.

    A server that refused a connection is tried last for `cooldown` seconds.
    """

    def __init__(
        self, count: int, cooldown: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if count < 1:
            raise ValueError("at least one server is needed")
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight = [0] * count
        self._down_until = [0.0] * count
        self._turn = 0

    def candidates(self) -> list[int]:
        """Server indexes, best first."""
        with self._lock:
            now = self._clock()
            count = len(self._in_flight)
            start = self._turn
            self._turn = (self._turn + 1) % count
            rotation = [(start + offset) % count for offset in range(count)]
            return sorted(rotation, key=lambda i: (self._down_until[i] > now, self._in_flight[i]))

    @contextmanager
    def using(self, index: int) -> Iterator[None]:
        """Count a request to server `index` as in flight while the block runs."""
        with self._lock:
            self._in_flight[index] += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight[index] -= 1

    def refused(self, index: int) -> None:
        with self._lock:
            self._down_until[index] = self._clock() + self.cooldown

    def recovered(self, index: int) -> None:
        with self._lock:
            self._down_until[index] = 0.0


class _NeverSent(Exception):
    """The connection to one server could not be made: the message can safely go to another."""


class RasaLike(Protocol):
    def send(self, openid: str, text: str, timeout: float) -> RasaAnswer: ...


class RasaClient:
    """Rasa over HTTP: one keep-alive connection pool per server, shared by the gateway's threads.

    urllib3 directly rather than requests: the gateway makes one call per message, and requests'
    per-call preparation (sessions, proxies from the environment, hooks) cost about half of the
    client's CPU, on the cores Rasa needs (benchmarks/gateway/REPORT.md). Rasa is an internal
    service, so no proxy from the environment is consulted either.
    """

    def __init__(self, base_url: str, action_health_url: str | None = None) -> None:
        self.base_urls = split_urls(base_url)
        if not self.base_urls:
            raise ValueError("RASA_URL names no Rasa server")
        self.balancer = Balancer(len(self.base_urls))
        self.action_health_url = action_health_url
        self.path = GATEWAY_CHANNEL_PATH
        # Up to 32 idle connections per server are kept; more threads may still call at once. One pool
        # per server, held directly: the PoolManager's URL parsing and pool lookup per call are skipped.
        self._servers = [
            (
                urllib3.connection_from_url(url, maxsize=32, block=False, retries=False),
                urllib3.util.parse_url(url).path or "",
            )
            for url in self.base_urls
        ]
        self._timeouts: dict[float, urllib3.Timeout] = {}
        self.http = urllib3.PoolManager(maxsize=4, block=False, retries=False)  # the action server's health

    def send(self, openid: str, text: str, timeout: float) -> RasaAnswer:
        """Rasa's answer to `text` from `openid` (one conversation per OpenID)."""
        body = json.dumps({"sender": openid, "message": text}, ensure_ascii=False).encode("utf-8")
        resp = self._post_balanced(body, timeout)
        if resp.status == 404 and self.path == GATEWAY_CHANNEL_PATH:
            logging.getLogger("zhanyou.gateway").warning(
                "event=rasa_channel_missing fallback=rest (intents will not be logged)"
            )
            self.path = REST_CHANNEL_PATH
            resp = self._post_balanced(body, timeout)
        if resp.status != 200:
            raise RasaUnavailable(f"HTTP {resp.status}")
        try:
            data = json.loads(resp.data)
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

    def _post_balanced(self, body: bytes, timeout: float) -> urllib3.BaseHTTPResponse:
        """POST to the best server; on to the next only where the connection could not be made."""
        for index in self.balancer.candidates():
            with self.balancer.using(index):
                try:
                    resp = self._post(index, body, timeout)
                except _NeverSent:
                    self.balancer.refused(index)
                    continue
            self.balancer.recovered(index)
            return resp
        raise RasaUnavailable("unreachable: no Rasa server accepted the connection")

    def _post(self, index: int, body: bytes, timeout: float) -> urllib3.BaseHTTPResponse:
        pool, prefix = self._servers[index]
        limits = self._timeouts.get(timeout)
        if limits is None:
            limits = self._timeouts[timeout] = urllib3.Timeout(connect=2.0, read=timeout)
        try:
            return pool.urlopen(
                "POST",
                prefix + self.path,
                body=body,
                headers=_JSON_HEADERS,
                timeout=limits,
                retries=False,
                redirect=False,
            )
        except ConnectTimeoutError:
            # Also a refused connection (NewConnectionError is one): nothing reached the server.
            raise _NeverSent() from None
        except ReadTimeoutError:
            raise RasaUnavailable("timeout") from None
        except HTTPError as exc:
            # The connection was made and then dropped: the message may have reached the server.
            raise RasaUnavailable(f"unreachable: {type(exc).__name__}") from None

    def _actions_healthy(self) -> bool:
        if not self.action_health_url:
            return False
        try:
            return self.http.request("GET", self.action_health_url, timeout=1.0).status == 200
        except HTTPError:
            return False


_JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


def _understanding(headers: Any) -> tuple[str | None, float | None]:
    """The intent headers of the gateway channel, or (None, None) when absent or unreadable."""
    name = (headers.get(INTENT_HEADER) or "").strip()[:40]
    if not name:
        return None, None
    try:
        return name, float(headers.get(CONFIDENCE_HEADER) or 0.0)
    except ValueError:
        return name, None
