"""Real broadcast workers against the in-process WeChat simulator: used by the fault test and the benchmark.

Workers are `celery … worker` subprocesses (each in its own session, so SIGKILL takes its embedded beat
with it); the simulator runs in the calling process, so its record of every user's inbox is read
directly — the proof of "exactly one message each".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from bureau import db
from bureau.broadcast import campaigns
from bureau.models import Delivery, DeliveryStatus, JobPosting, JobStatus, JobSubscription, WechatUser
from bureau.timeutil import utcnow
from wechatsim.server import Follower, SimServer

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))


@dataclass
class Stack:
    database_url: str
    sim: SimServer
    log_dir: Path
    redis_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def factory(self) -> Any:
        return db.get_session_factory(self.database_url)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BROADCAST_", "PYTEST"))}
        env.pop("BROKER_URL", None)
        env.pop("REDIS_URL", None)
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "WECHAT_API_BASE": self.sim.url,
                "WECHAT_APP_ID": self.sim.state.app_id,
                "WECHAT_APP_SECRET": self.sim.state.secret,
                "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env["BROADCAST_QUEUE"] = f"zt.{Path(self.log_dir).name}.{id(self)}"  # never shared with another run
        env.update(self.extra_env)
        return env

    def start_worker(self, name: str, beat: bool = False, concurrency: int = 2) -> subprocess.Popen[bytes]:
        args = [
            CELERY,
            "-A",
            "bureau.broadcast.celery_app",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            str(concurrency),
            "-l",
            "info",
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        if beat:
            args += ["--beat", "--schedule", str(self.log_dir / f"beat-{name}")]
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            args, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.workers.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and everything it started (no chance to clean up)."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
        """A warm shutdown (SIGTERM), SIGKILL after `timeout`."""
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        for proc in self.workers:
            self.stop(proc, timeout=10)


def seed(factory: Any, sim: SimServer, n: int, prefix: str = "o") -> int:
    """n following subscribers (half of them wrote recently), registered in the simulator; returns a job id."""
    now = utcnow()
    openids = [f"{prefix}{i:06d}" for i in range(n)]
    with factory.begin() as session:
        session.execute(
            insert(WechatUser),
            [
                {
                    "openid": o,
                    "subscribed": True,
                    "bind_failures": 0,
                    "created_at": now,
                    "last_interaction_at": None,
                }
                for o in openids
            ],
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
    with sim.state.lock:
        for o in openids:
            sim.state.followers[o] = Follower(o)
    return job_id


def publish(factory: Any, job_id: int) -> int:
    with factory.begin() as session:
        return campaigns.publish_job(session, job_id, actor="harness", enqueue=False).id


def counts(factory: Any, campaign_id: int) -> dict[str, int]:
    with factory.begin() as session:
        return {
            str(k): int(v)
            for k, v in session.execute(
                select(Delivery.status, func.count())
                .where(Delivery.campaign_id == campaign_id)
                .group_by(Delivery.status)
            ).all()
        }


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def finished(factory: Any, campaign_id: int) -> bool:
    c = counts(factory, campaign_id)
    return c.get(DeliveryStatus.PENDING, 0) == 0 and c.get(DeliveryStatus.SENDING, 0) == 0


def inbox_counts(sim: SimServer) -> Counter[str]:
    with sim.state.lock:
        return Counter({openid: len(msgs) for openid, msgs in sim.state.inbox.items()})


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM) in MiB, while it is alive."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class EventPusher:
    """Plays WeChat's part of TEMPLATESENDJOBFINISH: for every template message the simulator accepted,
    the event reaches `ledger.record_template_event` (what webhook/gateway does with WeChat's push)."""

    def __init__(self, sim: SimServer, factory: Any, interval: float = 0.3) -> None:
        import threading

        self.sim = sim
        self.factory = factory
        self.interval = interval
        self.seen: dict[str, int] = {}
        self.pushed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="event-pusher", daemon=True)

    def start(self) -> EventPusher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.push_new()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.push_new()

    def push_new(self) -> None:
        from bureau.broadcast import ledger

        events: list[tuple[str, str]] = []
        with self.sim.state.lock:
            for openid, messages in self.sim.state.inbox.items():
                start = self.seen.get(openid, 0)
                for message in messages[start:]:
                    if message.get("kind") == "template":
                        events.append((openid, str(message["msgid"])))
                self.seen[openid] = len(messages)
        for openid, msgid in events:  # one push, one transaction: as the webhook receives them
            for attempt in range(5):
                try:
                    with self.factory.begin() as session:
                        ledger.relaxed_commit(session)
                        ledger.record_template_event(session, openid, msgid, "success")
                    break
                except Exception:  # a lock conflict with a worker's batch: WeChat would push again
                    if attempt == 4:
                        raise
                    time.sleep(0.1)
        self.pushed += len(events)
