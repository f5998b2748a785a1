"""The simulator on a free port, and API clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from bureau.wechat.client import WeChatClient
from bureau.wechat.store import DatabaseStore
from wechatsim.server import DEFAULT_APP_ID, DEFAULT_SECRET, SimServer


@pytest.fixture
def sim() -> Iterator[SimServer]:
    server = SimServer().start()
    yield server
    server.stop()


class SimControl:
    def __init__(self, url: str) -> None:
        self.url = url

    def post(self, path: str, /, **body: Any) -> Any:
        return requests.post(self.url + path, json=body, timeout=5).json()

    def get(self, path: str) -> Any:
        return requests.get(self.url + path, timeout=5).json()

    def interact(self, openid: str, kind: str = "message") -> None:
        self.post(f"sim/users/{openid}/interact", kind=kind)

    def calls(self, path: str) -> list[dict[str, Any]]:
        return [c for c in self.get("sim/calls") if c["path"] == path]


@pytest.fixture
def control(sim: SimServer) -> SimControl:
    return SimControl(sim.url)


@pytest.fixture
def make_client(sim: SimServer, session_factory: Any) -> Any:
    """make_client(**kwargs) → a WeChatClient on the simulator sharing this test's database token store."""
    sleeps: list[float] = []

    def build(**kwargs: Any) -> WeChatClient:
        kwargs.setdefault("store", DatabaseStore(session_factory))
        kwargs.setdefault("session_factory", session_factory)
        kwargs.setdefault("sleep", sleeps.append)
        kwargs.setdefault("app_id", DEFAULT_APP_ID)
        kwargs.setdefault("app_secret", DEFAULT_SECRET)
        return WeChatClient(api_base=sim.url, **kwargs)

    build.sleeps = sleeps  # type: ignore[attr-defined]
    return build
