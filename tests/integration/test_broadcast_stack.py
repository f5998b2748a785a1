"""A campaign started from the command line survives its worker being SIGKILLed, at stack level.

tests/broadcast/test_fault.py kills workers under a harness that creates the campaign itself and
settles template receipts by calling the ledger directly. Here everything goes the way production goes:
`flask jobs publish` puts the campaign in the broker, the worker is started with `make run`'s command
line by `LocalStack`, WeChat's TEMPLATESENDJOBFINISH receipts reach the ledger through the real webhook
(gunicorn), and the simulator — a separate process, like WeChat — is the proof: after the kill and a
new worker, every subscriber holds exactly one notice.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, insert, select
from sqlalchemy.orm import sessionmaker

from bureau import db
from bureau.broadcast import campaigns
from bureau.models import (
    Campaign,
    Delivery,
    DeliveryStatus,
    JobPosting,
    JobStatus,
    JobSubscription,
    WechatUser,
)
from bureau.timeutil import utcnow
from wechatsim.client import WeChatClientSim
from wechatsim.stack import ROOT, VENV_BIN, LocalStack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = 200


@pytest.fixture
def broadcast_stack(tmp_path: Path) -> Iterator[LocalStack]:
    stack = LocalStack(
        workdir=tmp_path,
        model="",  # no Rasa: the broadcast path needs the webhook, the worker and WeChat
        database_url=f"sqlite:///{tmp_path / 'zhanyou.db'}",
        extra_env={
            "DATA_KEY": "integration-data-key",
            "BROADCAST_RATE": "40",
            "BROADCAST_SWEEP_SECONDS": "2",
            "BROADCAST_TASK_SECONDS": "5",
            "BROADCAST_LEASE_SECONDS": "20",
            "BROADCAST_TEMPLATE_GRACE_SECONDS": "8",
            "BROADCAST_QUEUE": f"zt.stack.{uuid.uuid4().hex[:8]}",
        },
    )
    try:
        stack.prepare_database(seed=False)
        stack.start_simulator()
        stack.start_webhook()
        yield stack
    finally:
        stack.stop()


class ReceiptPusher:
    """WeChat's part: a TEMPLATESENDJOBFINISH push to the webhook for every template message delivered."""

    def __init__(self, stack: LocalStack, openids: list[str]) -> None:
        env = stack.env()
        self.wechat = WeChatClientSim(
            stack.webhook_url,
            token=env.get("WECHAT_TOKEN", "zhanyou-dev-token"),
            app_id=env.get("WECHAT_APP_ID", "wxzhanyoudev0001"),
            sim_url=stack.simulator_url,
        )
        self.openids = openids
        self.seen: dict[str, int] = {}
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="receipts", daemon=True)

    def __enter__(self) -> ReceiptPusher:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self.push_new()

    def push_new(self) -> None:
        for openid in self.openids:
            inbox = self.wechat.inbox(openid)
            for message in inbox[self.seen.get(openid, 0) :]:
                if message.get("kind") == "template" or message.get("msgtype") == "template":
                    result = self.wechat.send_event(
                        openid, "TEMPLATESENDJOBFINISH", MsgID=str(message["msgid"]), Status="success"
                    )
                    if result.status != 200 or result.body not in ("success", ""):
                        self.failed.append(f"{openid}: {result.status} {result.body[:80]}")
            self.seen[openid] = len(inbox)


def _seed(stack: LocalStack) -> tuple[int, list[str]]:
    """N subscribers outside the 48-hour window (template messages) and one open job."""
    factory = db.get_session_factory(stack.database_url)
    now = utcnow()
    openids = [f"o-bc-{uuid.uuid4().hex[:6]}-{i:04d}" for i in range(N)]
    with factory.begin() as session:
        session.execute(
            insert(WechatUser),
            [{"openid": o, "subscribed": True, "bind_failures": 0, "created_at": now} for o in openids],
        )
        session.execute(
            insert(JobSubscription),
            [{"openid": o, "category": None, "township": None, "created_at": now} for o in openids],
        )
        job = JobPosting(
            title="县城投物业保安员",
            employer="柘荣县城投物业公司",
            township="双城镇",
            category="保安",
            salary_min=3000,
            salary_max=4000,
            status=JobStatus.OPEN,
        )
        session.add(job)
        session.flush()
        job_id = job.id
    http = requests.Session()
    for openid in openids:
        http.post(
            stack.simulator_url + "sim/followers", json={"openid": openid}, timeout=5
        ).raise_for_status()
    return job_id, openids


def _sent(factory: sessionmaker, campaign_id: int) -> int:
    with factory() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.SENT
                )
            )
            or 0
        )


def test_a_campaign_published_from_the_cli_survives_a_sigkilled_worker_everyone_gets_one_notice(
    broadcast_stack: LocalStack,
) -> None:
    stack = broadcast_stack
    factory = db.get_session_factory(stack.database_url)
    job_id, openids = _seed(stack)
    published = subprocess.run(
        [str(VENV_BIN / "flask"), "--app", "webhook", "jobs", "publish", str(job_id)],
        cwd=ROOT,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert published.returncode == 0, published.stderr[-2000:]
    with factory() as session:
        campaign_id = session.scalars(select(Campaign.id).where(Campaign.job_id == job_id)).one()

    with ReceiptPusher(stack, openids) as receipts:
        stack.start_worker()
        wait_until(lambda: _sent(factory, campaign_id) >= N // 3, 90, "a third of the campaign sent")
        worker = stack.parts["worker"].process
        stack.stop_part("worker", signal.SIGKILL)  # mid-campaign: its claims and its task are lost
        assert worker.returncode == -signal.SIGKILL
        killed_at = _sent(factory, campaign_id)
        assert killed_at < N, "the campaign ended before the worker was killed"

        stack.start_worker()  # a new worker, as a supervisor would start it

        def done() -> bool:
            with factory() as session:
                return campaigns.report(session, campaign_id).status == "done"

        wait_until(done, 120, "the campaign to finish after the restart")
        receipts.push_new()
    assert not receipts.failed, receipts.failed[:5]

    counts = {openid: len(receipts.wechat.inbox(openid)) for openid in openids}
    missing = [o for o, n in counts.items() if n == 0]
    repeated = [o for o, n in counts.items() if n > 1]
    assert not missing and not repeated, f"{len(missing)} got nothing, {len(repeated)} got it twice"
    with factory() as session:
        report = campaigns.report(session, campaign_id)
    assert (report.recipients, report.sent, report.failed) == (N, N, 0)
