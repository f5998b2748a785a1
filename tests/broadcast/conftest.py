"""Fixtures of the broadcast tests: the WeChat simulator on a free port, broadcast settings, recipients."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from bureau.broadcast import tasks
from bureau.broadcast.config import get_config
from bureau.models import JobPosting, JobStatus, JobSubscription, WechatUser
from bureau.settings import get_settings
from bureau.timeutil import utcnow
from bureau.wechat import reset_client
from wechatsim.server import SimServer


class Sim:
    """The running simulator and its control endpoints."""

    def __init__(self, server: SimServer) -> None:
        self.server = server
        self.url = server.url
        self.http = requests.Session()

    def post(self, path: str, body: dict[str, Any] | None = None) -> None:
        resp = self.http.post(self.url + path.lstrip("/"), json=body or {}, timeout=5)
        resp.raise_for_status()

    def follower(self, openid: str, subscribed: bool = True, last_message_ago: float | None = None) -> None:
        self.post("/sim/followers", {"openid": openid, "subscribed": subscribed})
        if last_message_ago is not None:
            self.post(f"/sim/users/{openid}/last_message", {"seconds_ago": last_message_ago})

    def fault(self, **body: Any) -> None:
        self.post("/sim/faults", body)

    def inbox(self, openid: str) -> list[dict[str, Any]]:
        return list(self.server.state.inbox.get(openid, []))

    def all_inboxes(self) -> dict[str, list[dict[str, Any]]]:
        with self.server.state.lock:
            return {k: list(v) for k, v in self.server.state.inbox.items()}


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sim]:
    server = SimServer().start()
    monkeypatch.setenv("WECHAT_API_BASE", server.url)
    monkeypatch.setenv("WECHAT_APP_ID", "wxzhanyoudev0001")
    monkeypatch.setenv("WECHAT_APP_SECRET", "zhanyou-dev-secret")
    monkeypatch.delenv("REDIS_URL", raising=False)
    get_settings.cache_clear()
    reset_client()
    tasks.reset_state()
    try:
        yield Sim(server)
    finally:
        server.stop()
        reset_client()
        tasks.reset_state()
        get_settings.cache_clear()


@pytest.fixture(autouse=True)
def broadcast_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fast, deterministic broadcast settings; tests override single knobs with monkeypatch.setenv."""
    for key, value in {
        "BROADCAST_RATE": "0",
        "BROADCAST_THREADS": "4",
        "BROADCAST_BATCH": "10",
        "BROADCAST_BACKOFF_SECONDS": "0.05",
        "BROADCAST_BACKOFF_MAX_SECONDS": "0.2",
        "BROADCAST_TASK_SECONDS": "20",
        "BROADCAST_REDIS_PREFIX": f"zt:{uuid.uuid4().hex[:8]}:",
        "BROADCAST_EAGER": "0",
        # No broker in unit tests: queueing after commit is exercised by its own tests.
        "BROKER_URL": "memory://",
    }.items():
        monkeypatch.setenv(key, value)
    get_config.cache_clear()
    yield
    get_config.cache_clear()


def add_user(
    session: Any,
    openid: str,
    *,
    subscribed: bool = True,
    last_interaction: dt.datetime | None = None,
    subscriptions: list[tuple[str | None, str | None]] | None = None,
) -> WechatUser:
    user = WechatUser(openid=openid, subscribed=subscribed, last_interaction_at=last_interaction)
    session.add(user)
    session.flush()
    for category, township in subscriptions or []:
        session.add(JobSubscription(openid=openid, category=category, township=township))
    session.flush()
    return user


def add_job(session: Any, **kwargs: Any) -> JobPosting:
    values: dict[str, Any] = {
        "title": "保安员",
        "employer": "柘荣县城投物业公司",
        "township": "双城镇",
        "category": "保安",
        "salary_min": 3000,
        "salary_max": 4000,
        "status": JobStatus.OPEN,
        "contact": "0593-1234567",
    }
    values.update(kwargs)
    job = JobPosting(**values)
    session.add(job)
    session.flush()
    return job


def hours_ago(hours: float) -> dt.datetime:
    return utcnow() - dt.timedelta(hours=hours)
