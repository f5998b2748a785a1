"""Conversation load: simulated veterans against the full stack, compared with Rasa's REST channel alone.

Each simulated veteran runs a short script across the flows (greeting, jobs, 优待证, benefits, stations,
counseling, legal aid, chitchat) and waits for each answer before the next message, as a person does.
Two paths are measured in the same run on the same stack:
  rest     POST {RASA_URL}/webhooks/rest/webhook — Rasa (and its actions) alone;
  webhook  signed WeChat XML through the gateway — what a veteran really gets, including late answers
           delivered through the customer-service API (timed until they reach the simulator's inbox).

    .venv/bin/python benchmarks/conversation/bench.py --users 1 20 --rasa-workers 1 2 --messages 8

Writes a Markdown report (default benchmarks/conversation/REPORT.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from wechatsim.client import WeChatClientSim  # noqa: E402
from wechatsim.stack import LocalStack, current_model  # noqa: E402

LATE_SECONDS = 4.5
SCRIPTS: list[list[str]] = [
    ["你好", "我想找工作", "双城镇有保安的工作吗", "谢谢"],
    ["优待证怎么办", "需要什么材料", "好的谢谢", "再见"],
    ["定期补助金怎么领", "义务兵优待金有多少", "服务站在哪里", "谢谢你"],
    ["我想预约老战友聊聊", "谈心", "菜单", "再见"],
    ["工资被拖欠了怎么办", "菜单", "拥军贷怎么申请", "谢谢"],
    ["你是机器人吗", "富溪镇有什么工作", "司机", "好的"],
    ["刚退伍回来要去哪里报到", "户口怎么迁", "谢谢", "拜拜"],
    ["有没有拥军优惠的饭店", "住宿有优惠吗", "菜单", "再见"],
]


@dataclass
class Sample:
    seconds: float
    late: bool = False
    via_customer_service: bool = False
    failed: bool = False


@dataclass
class Run:
    path: str
    users: int
    rasa_workers: int
    samples: list[Sample] = field(default_factory=list)
    wall: float = 0.0

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)

    def row(self) -> str:
        times = sorted(s.seconds for s in self.samples if not s.failed)
        count = len(self.samples)
        if not times:
            return f"| {self.path} | {self.rasa_workers} | {self.users} | {count} | – | – | – | – | – | – | – |"

        def pct(p: float) -> float:
            return times[min(len(times) - 1, int(round(p / 100 * (len(times) - 1))))]

        late = sum(1 for s in self.samples if s.late)
        cs = sum(1 for s in self.samples if s.via_customer_service)
        failed = sum(1 for s in self.samples if s.failed)
        return (
            f"| {self.path} | {self.rasa_workers} | {self.users} | {count} | {count / self.wall:.1f} | "
            f"{statistics.median(times) * 1000:.0f} | {pct(95) * 1000:.0f} | {pct(99) * 1000:.0f} | "
            f"{late / count:.1%} | {cs} | {failed} |"
        )


def rest_user(stack: LocalStack, script: list[str], run: Run, lock: threading.Lock) -> None:
    sender = f"bench-rest-{uuid.uuid4().hex[:12]}"
    session = requests.Session()
    for text in script:
        start = time.perf_counter()
        try:
            reply = session.post(stack.url("rasa") + "/webhooks/rest/webhook",
                                 json={"sender": sender, "message": text}, timeout=30)
            ok = reply.ok and isinstance(reply.json(), list)
        except requests.RequestException:
            ok = False
        elapsed = time.perf_counter() - start
        with lock:
            run.add(Sample(elapsed, late=elapsed > LATE_SECONDS, failed=not ok))


def webhook_user(stack: LocalStack, client: WeChatClientSim, script: list[str], run: Run,
                 lock: threading.Lock) -> None:
    openid = f"o-bench-{uuid.uuid4().hex[:12]}"
    requests.post(stack.simulator_url + "sim/followers", json={"openid": openid}, timeout=5)
    for text in script:
        before = len(client.inbox(openid))
        start = time.perf_counter()
        result = client.send_text(openid, text)
        elapsed = time.perf_counter() - start
        sample = Sample(elapsed)
        if result.error:
            sample.failed = True
        elif result.reply is None:
            # "success": the answer comes later through the customer-service API.
            arrived = client.wait_inbox(openid, before + 1, timeout=30)
            sample.seconds = time.perf_counter() - start
            sample.via_customer_service = True
            sample.failed = len(arrived) <= before
        sample.late = sample.seconds > LATE_SECONDS
        with lock:
            run.add(sample)


def measure(stack: LocalStack, path: str, users: int, rasa_workers: int, messages: int) -> Run:
    run = Run(path, users, rasa_workers)
    lock = threading.Lock()
    env = stack.env()
    client = WeChatClientSim(stack.webhook_url, token=env.get("WECHAT_TOKEN", "zhanyou-dev-token"),
                             app_id=env.get("WECHAT_APP_ID", "wxzhanyoudev0001"), sim_url=stack.simulator_url)
    scripts = [(SCRIPTS[i % len(SCRIPTS)] * 4)[:messages] for i in range(users)]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=users) as pool:
        for script in scripts:
            if path == "rest":
                pool.submit(rest_user, stack, script, run, lock)
            else:
                pool.submit(webhook_user, stack, client, script, run, lock)
    run.wall = time.perf_counter() - start
    return run


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (Sanic/gunicorn workers), in MB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def memory_row(stack: LocalStack, label: str) -> str:
    cells = [f"{rss_mb(part.process.pid):.0f}" for part in stack.parts.values()]
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[1, 20, 50])
    parser.add_argument("--rasa-workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--messages", type=int, default=8, help="messages per simulated veteran")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--report", default=str(ROOT / "benchmarks" / "conversation" / "REPORT.md"))
    args = parser.parse_args()

    model = current_model()
    rows: list[str] = []
    memory: list[str] = []
    for workers in args.rasa_workers:
        with tempfile.TemporaryDirectory(prefix="zhanyou-bench-") as tmp:
            stack = LocalStack(workdir=Path(tmp), model=model, database_url=f"sqlite:///{tmp}/bench.db",
                               redis_url=args.redis_url, rasa_workers=workers)
            with stack:
                stack.start()
                memory.append(memory_row(stack, f"{workers} Rasa worker(s), at rest"))
                # Warm-up: the first messages load lazy parts of the model and the actions.
                measure(stack, "rest", 2, workers, 3)
                for users in args.users:
                    for path in ("rest", "webhook"):
                        run = measure(stack, path, users, workers, args.messages)
                        rows.append(run.row())
                        print(rows[-1], flush=True)
                memory.append(memory_row(stack, f"{workers} Rasa worker(s), after load"))
                names = " | ".join(stack.parts)

    report = [
        "# Conversation load benchmark",
        "",
        f"Run {dt.datetime.now():%Y-%m-%d %H:%M} on {os.cpu_count()} cores: "
        f"`{' '.join(sys.argv)}`. Each simulated veteran sends {args.messages} messages and waits for each "
        "answer. Rasa uses the Redis lock and tracker stores (several Sanic workers share conversations).",
        "",
        "| path | Rasa workers | users | messages | msg/s | p50 ms | p95 ms | p99 ms | later than 4.5 s | "
        "via customer-service API | failed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "`rest` is Rasa's REST channel alone; `webhook` is signed WeChat XML through the gateway, where an answer "
        "that misses the reply budget is timed until it reaches the user through the customer-service API.",
        "",
        "## Resident memory (MB)",
        "",
        f"| when | {names} |",
        "|---|" + "---|" * len(names.split(" | ")),
        *memory,
    ]
    Path(args.report).write_text("\n".join(report) + "\n")
    print(f"report written to {args.report}")


if __name__ == "__main__":
    main()
