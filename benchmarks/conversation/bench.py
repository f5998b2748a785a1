"""Conversation load: simulated veterans against the full stack, compared with Rasa's REST channel alone.

Each simulated veteran runs a short script across the flows (greeting, jobs, 优待证, benefits, stations,
counseling, legal aid, chitchat) and waits for each answer before the next message, as a person does.
Two paths are measured in the same run on the same stack:
  rest     POST {RASA_URL}/webhooks/rest/webhook — Rasa (and its actions) alone;
  webhook  signed WeChat XML through the gateway — what a veteran really gets, including late answers
           delivered through the customer-service API (timed until they reach the simulator's inbox).

    .venv/bin/python benchmarks/conversation/bench.py --users 1 20 50 --rasa-workers 1 2 --messages 8

Two kinds of run (`--think`): with no pause between an answer and the next message (a closed loop: the
capacity of the stack, for throughput ratios), and with a person's pause (`--think 3` waits 1.5–4.5 s,
uniformly), for the response times people see. Writes a Markdown report (default REPORT.md here).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from webhook.gateway.rasa_client import Balancer  # noqa: E402
from wechatsim.client import WeChatClientSim, next_msgid  # noqa: E402
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
    rasa_processes: int
    think: float
    samples: list[Sample] = field(default_factory=list)
    wall: float = 0.0  # from the first message to the last answer (not the watch for duplicates after it)
    last_answer: float = 0.0
    duplicates: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds each part spent during the run

    @property
    def throughput(self) -> float:
        return len(self.samples) / self.wall if self.wall else 0.0

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)
        self.last_answer = max(self.last_answer, time.perf_counter())

    def row(self) -> str:
        times = sorted(s.seconds for s in self.samples if not s.failed)
        count = len(self.samples)
        head = f"| {self.path} | {self.rasa_processes} | {self.users} | {self.think:g} | {count} "
        if not times:
            return head + "| – | – | – | – | – | – | – | – |"

        def pct(p: float) -> float:
            return times[min(len(times) - 1, int(round(p / 100 * (len(times) - 1))))]

        late = sum(1 for s in self.samples if s.late)
        cs = sum(1 for s in self.samples if s.via_customer_service)
        failed = sum(1 for s in self.samples if s.failed)
        dup = "–" if self.path == "rest" else str(self.duplicates)
        return (
            head + f"| {self.throughput:.1f} | "
            f"{statistics.median(times) * 1000:.0f} | {pct(95) * 1000:.0f} | {pct(99) * 1000:.0f} | "
            f"{late} ({late / count:.1%}) | {cs} | {dup} | {failed} |"
        )


def pause(think: float, rng: random.Random) -> None:
    """A person reading the answer and typing the next message: `think` ± 50 %, uniformly."""
    if think > 0:
        time.sleep(rng.uniform(think * 0.5, think * 1.5))


def rest_user(stack: LocalStack, balancer: Balancer, script: list[str], run: Run, lock: threading.Lock) -> None:
    sender = f"bench-rest-{uuid.uuid4().hex[:12]}"
    session = requests.Session()
    rng = random.Random(sender)
    for index, text in enumerate(script):
        if index:
            pause(run.think, rng)
        start = time.perf_counter()
        server = balancer.candidates()[0]  # the gateway's choice: fewest messages in flight
        try:
            with balancer.using(server):
                reply = session.post(stack.rasa_urls[server] + "/webhooks/rest/webhook",
                                     json={"sender": sender, "message": text}, timeout=30)
            ok = reply.ok and isinstance(reply.json(), list)
        except requests.RequestException:
            ok = False
        elapsed = time.perf_counter() - start
        with lock:
            run.add(Sample(elapsed, late=elapsed > LATE_SECONDS, failed=not ok))


def follower(stack: LocalStack, settings: dict[str, Any]) -> tuple[WeChatClientSim, str]:
    """A veteran who follows the account and has written to it before, set up before the clock starts:
    WeChat's own bookkeeping (the follower list, the 48-hour window) told to the simulator, and the
    `subscribe` push WeChat sent the webhook when they followed (the webhook keeps its follower row from
    it). The REST path has nothing like either; without the push, each veteran's first message was also
    the webhook's first sight of them, a cost real veterans, who followed long before, do not bring.

    Each veteran has their own client, as each REST user has their own session: both paths keep one
    connection alive per user. (One client shared by 20 threads overflowed its 10-connection pool, so
    about half the pushes opened and closed a connection, a cost the REST path did not pay.)"""
    client = WeChatClientSim(stack.webhook_url, **settings)
    openid = f"o-bench-{uuid.uuid4().hex[:12]}"
    client.http.post(stack.simulator_url + "sim/followers", json={"openid": openid}, timeout=5)
    client.http.post(f"{stack.simulator_url}sim/users/{openid}/interact", json={"kind": "message"}, timeout=5)
    welcome = client.push(client.message_fields(openid, "event", Event="subscribe", EventKey=""))
    if welcome.error or welcome.reply is None:
        raise RuntimeError(f"the webhook did not welcome a new follower: {welcome.error or welcome.body[:80]}")
    return client, openid


def webhook_user(client: WeChatClientSim, openid: str, script: list[str], run: Run, lock: threading.Lock) -> None:
    rng = random.Random(openid)
    seen = 0  # customer-service messages this user has received and accounted for
    tell_simulator = False  # the first message's window was opened by `follower`
    for index, text in enumerate(script):
        if index:
            pause(run.think, rng)
        fields = client.message_fields(openid, "text", Content=text, MsgId=next_msgid())
        # The real WeChat server notes each user message itself (it opens the customer-service window and
        # resets its quota); the simulator is told over HTTP. That bookkeeping is WeChat's work, not ours, so
        # it is done only when customer-service messages were sent since, keeping the harness's CPU on 2
        # shared cores from counting against the webhook.
        start = time.perf_counter()
        result = client.push(fields, "message" if tell_simulator else None)
        elapsed = time.perf_counter() - start
        sample = Sample(elapsed)
        if result.error:
            sample.failed = True
        elif result.reply is None:
            # "success": the answer comes later through the customer-service API.
            arrived = client.wait_inbox(openid, seen + 1, timeout=30)
            sample.seconds = time.perf_counter() - start
            sample.via_customer_service = True
            # Anything that arrived before this message was sent belongs to an earlier turn: a duplicate.
            wall_start = time.time() - sample.seconds
            early = sum(1 for item in arrived[seen:] if item.get("at", 0) < wall_start)
            sample.failed = len(arrived) - early <= seen
            time.sleep(0.3)  # the gateway sends all pieces of one late answer back to back; let them land
            now = len(client.inbox(openid))
            with lock:
                run.duplicates += early
            seen = now
            tell_simulator = True
        elif len((result.user_sees or "").encode("utf-8")) > 1800:
            # A long passive answer continues through the customer-service API a moment later.
            seen = settle(client, openid)
            tell_simulator = True
        else:
            tell_simulator = False
        sample.late = sample.seconds > LATE_SECONDS
        with lock:
            run.add(sample)
    time.sleep(2.0)  # a second delivery of an answer would come within the retry window
    final = len(client.inbox(openid))
    if final > seen:
        with lock:
            run.duplicates += final - seen


def settle(client: WeChatClientSim, openid: str, quiet: float = 1.2) -> int:
    """The user's inbox size once nothing new has arrived for `quiet` seconds."""
    count = len(client.inbox(openid))
    deadline = time.perf_counter() + quiet
    while time.perf_counter() < deadline:
        time.sleep(0.2)
        now = len(client.inbox(openid))
        if now != count:
            count, deadline = now, time.perf_counter() + quiet
    return count


def measure(stack: LocalStack, path: str, users: int, rasa_processes: int, messages: int, think: float) -> Run:
    run = Run(path, users, rasa_processes, think)
    lock = threading.Lock()
    env = stack.env()
    settings = {
        "token": env.get("WECHAT_TOKEN", "zhanyou-dev-token"),
        "app_id": env.get("WECHAT_APP_ID", "wxzhanyoudev0001"),
        "sim_url": stack.simulator_url,
    }
    # Two different flows per veteran, so no answer legitimately repeats within one conversation.
    # Two different flows per veteran; a lone veteran goes through all of them, so that the one-user
    # figures rest on enough messages to mean something.
    if users == 1:
        scripts = [[text for flow in SCRIPTS for text in flow]]
    else:
        scripts = [
            ((SCRIPTS[i % len(SCRIPTS)] + SCRIPTS[(i + 3) % len(SCRIPTS)]) * 4)[:messages] for i in range(users)
        ]
    balancer = Balancer(len(stack.rasa_urls))
    followers = [follower(stack, settings) for _ in scripts] if path == "webhook" else []
    parts = cpu_parts(stack)
    # The harness started the stack's processes: its own CPU only, not theirs again.
    cpu_before = {name: cpu_seconds(pid, tree=name != "harness") for name, pid in parts.items()}
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=users) as pool:
        for index, script in enumerate(scripts):
            if path == "rest":
                pool.submit(rest_user, stack, balancer, script, run, lock)
            else:
                pool.submit(webhook_user, *followers[index], script, run, lock)
    run.wall = (run.last_answer or time.perf_counter()) - start
    run.cpu = {name: cpu_seconds(pid, tree=name != "harness") - cpu_before[name] for name, pid in parts.items()}
    return run


def pooled(runs: list[Run]) -> Run:
    """Several measurements of one setting as one: all samples, the walls added."""
    first = runs[0]
    total = Run(first.path, first.users, first.rasa_processes, first.think)
    for run in runs:
        total.samples += run.samples
        total.wall += run.wall
        total.duplicates += run.duplicates
        for name, seconds in run.cpu.items():
            total.cpu[name] = total.cpu.get(name, 0.0) + seconds
    return total


def cpu_rows(runs: list[Run]) -> list[str]:
    """CPU milliseconds per message, by part, for the closed-loop runs (where the CPU is the limit)."""
    names = sorted({name for run in runs for name in run.cpu}, key=lambda n: (n.startswith("rasa") is False, n))
    lines = [
        "| path | Rasa processes | users | " + " | ".join(names) + " | all |",
        "|---|---|---|" + "---|" * (len(names) + 1),
    ]
    for run in runs:
        if run.think or not run.samples:
            continue
        per = [1000 * run.cpu.get(name, 0.0) / len(run.samples) for name in names]
        lines.append(
            f"| {run.path} | {run.rasa_processes} | {run.users} | " + " | ".join(f"{v:.0f}" for v in per)
            + f" | {sum(per):.0f} |"
        )
    return lines


class PeakMemory:
    """Samples the resident memory of every part every 0.5 s while load runs; keeps the peak."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            for name, part in self.stack.parts.items():
                self.peak[name] = max(self.peak.get(name, 0.0), rss_mb(part.process.pid))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def reading(self, label: str) -> tuple[str, dict[str, float]]:
        return label, {name: self.peak.get(name, 0.0) for name in self.stack.parts}


def process_tree(pid: int) -> set[int]:
    """A process and all its descendants (Sanic/gunicorn workers, PostgreSQL backends)."""
    pids, seen = [pid], set()
    while pids:
        current = pids.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return seen


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """User + system CPU seconds of a process (and its tree) so far; exited children are not counted."""
    total = 0
    for p in process_tree(pid) if tree else {pid}:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def server_pids() -> dict[str, int]:
    """The PostgreSQL postmaster and the Redis server of this machine (each found by its oldest process)."""
    pids = {}
    for name, program in (("postgres", "postgres"), ("redis", "redis-server")):
        found = subprocess.run(["pgrep", "-o", program], capture_output=True, text=True).stdout.split()
        if found:
            pids[name] = int(found[0])
    return pids


def cpu_parts(stack: LocalStack) -> dict[str, int]:
    """Every process tree whose CPU a run costs: the stack's parts, this harness, PostgreSQL and Redis."""
    pids = {name: part.process.pid for name, part in stack.parts.items()}
    pids["harness"] = os.getpid()
    pids.update(server_pids())
    return pids


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (Sanic/gunicorn workers), in MB."""
    total = 0
    seen = process_tree(pid)
    for p in seen:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def fresh_postgres(base_url: str) -> tuple[str, str]:
    """A new empty PostgreSQL database on `base_url`'s server: (its URL, its name)."""
    name = f"zhanyou_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    host = base_url.rsplit("/", 1)[0]
    subprocess.run(["psql", base_url, "-qc", f"CREATE DATABASE {name}"], check=True)
    return f"{host}/{name}", name


def drop_postgres(base_url: str, name: str) -> None:
    subprocess.run(["psql", base_url, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)


def memory_now(stack: LocalStack, label: str) -> tuple[str, dict[str, float]]:
    return label, {name: rss_mb(part.process.pid) for name, part in stack.parts.items()}


def memory_table(readings: list[tuple[str, dict[str, float]]]) -> list[str]:
    """One row per reading, one column per part of any stack ("–" where that stack had no such part)."""
    names: list[str] = []
    for _label, values in readings:
        names += [name for name in values if name not in names]
    lines = [f"| when | {' | '.join(names)} |", "|---|" + "---|" * len(names)]
    for label, values in readings:
        cells = [f"{values[name]:.0f}" if name in values else "–" for name in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def summary(runs: list[Run], think_values: list[float]) -> list[str]:
    """The figures the issues ask for, read off the runs."""

    def find(path: str, workers: int, users: int, think: float) -> Run | None:
        for run in runs:
            if (run.path, run.rasa_processes, run.users, run.think) == (path, workers, users, think):
                return run
        return None

    def p99(run: Run) -> float:
        times = sorted(s.seconds for s in run.samples if not s.failed)
        return times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))] if times else float("nan")

    lines = []
    for think in think_values:
        for workers in sorted({r.rasa_processes for r in runs}):
            for users in sorted({r.users for r in runs}):
                rest, hook = find("rest", workers, users, think), find("webhook", workers, users, think)
                if rest and hook and rest.throughput:
                    late = sum(1 for s in hook.samples if s.late)
                    lines.append(
                        f"- think {think:g} s, {workers} Rasa process(es), {users} users: webhook/REST throughput "
                        f"**{hook.throughput / rest.throughput:.2f}** ({hook.throughput:.1f} / {rest.throughput:.1f} "
                        f"msg/s); webhook p99 **{p99(hook) * 1000:.0f} ms**; answers after 4.5 s: **{late}**; "
                        f"through the customer-service API: {sum(1 for s in hook.samples if s.via_customer_service)}"
                        f", delivered twice: {hook.duplicates}, failed: {sum(1 for s in hook.samples if s.failed)}"
                    )
        for path in ("rest", "webhook"):
            for users in sorted({r.users for r in runs}):
                one, two = find(path, 1, users, think), find(path, 2, users, think)
                if one and two and one.throughput:
                    lines.append(
                        f"- think {think:g} s, {path}, {users} users: 2 Rasa processes / 1 = "
                        f"**{two.throughput / one.throughput:.2f}×** ({two.throughput:.1f} / {one.throughput:.1f} msg/s)"
                    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[1, 20, 50])
    parser.add_argument("--rasa-processes", type=int, nargs="+", default=[1, 2],
                        help="separate Rasa servers, balanced per message by the gateway (RASA_URL with commas)")
    parser.add_argument("--sanic-workers", type=int, default=1, help="Sanic workers in each Rasa process")
    parser.add_argument("--messages", type=int, default=8, help="messages per simulated veteran")
    parser.add_argument(
        "--think", type=float, nargs="+", default=[0.0, 3.0],
        help="seconds a veteran pauses between an answer and the next message (±50%%); 0 = closed loop",
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument(
        "--postgres", default=os.environ.get("BENCH_POSTGRES_URL"),
        help="a PostgreSQL server URL (e.g. postgresql://postgres@127.0.0.1:5432/test): the stack gets a fresh "
        "database there; default: SQLite",
    )
    parser.add_argument("--repeat", type=int, default=2,
                        help="measurements of each path per setting, in the order rest, webhook, webhook, rest")
    parser.add_argument("--report", default=str(ROOT / "benchmarks" / "conversation" / "REPORT.md"))
    args = parser.parse_args()

    model = current_model()
    runs: list[Run] = []
    rows: list[str] = []
    memory: list[tuple[str, dict[str, float]]] = []
    started = time.perf_counter()
    for workers in args.rasa_processes:
        with tempfile.TemporaryDirectory(prefix="zhanyou-bench-") as tmp:
            database_url, database = f"sqlite:///{tmp}/bench.db", None
            if args.postgres:
                database_url, database = fresh_postgres(args.postgres)
            stack = LocalStack(workdir=Path(tmp), model=model, database_url=database_url,
                               redis_url=args.redis_url, rasa_processes=workers,
                               rasa_workers=args.sanic_workers)
            try:
                with stack:
                    stack.start()
                    memory.append(memory_now(stack, f"{workers} Rasa process(es), at rest"))
                    # Warm-up: the first messages load lazy parts of the model and the actions.
                    measure(stack, "rest", 2, workers, 3, 0.0)
                    measure(stack, "webhook", 2, workers, 3, 0.0)
                    with PeakMemory(stack) as peak:
                        for think in args.think:
                            for users in args.users:
                                if think and users == 1:
                                    continue  # one person pausing between messages measures the pause
                                # rest, webhook, webhook, rest…: a drift in the host's speed during the
                                # pair falls on both paths alike (the two halves are pooled).
                                order = ["rest", "webhook", "webhook", "rest"] * args.repeat
                                parts: dict[str, list[Run]] = {"rest": [], "webhook": []}
                                for path in order[: 2 * args.repeat]:
                                    parts[path].append(measure(stack, path, users, workers, args.messages, think))
                                for path in ("rest", "webhook"):
                                    run = pooled(parts[path])
                                    runs.append(run)
                                    rows.append(run.row())
                                    print(rows[-1], flush=True)
                    memory.append(peak.reading(f"{workers} Rasa process(es), peak under load"))
                    memory.append(memory_now(stack, f"{workers} Rasa process(es), after load"))
            finally:
                if database:
                    drop_postgres(args.postgres, database)

    report = [
        "# Conversation load benchmark",
        "",
        f"Run {dt.datetime.now():%Y-%m-%d %H:%M} on {os.cpu_count()} cores in {time.perf_counter() - started:.0f} s: "
        f"`{' '.join(sys.argv)}`. Each simulated veteran sends {args.messages} messages across the flows and waits "
        "for each answer, then pauses `think` seconds (±50 %) before the next one (0: at once). Rasa uses the Redis "
        f"lock and tracker stores; the database is {'PostgreSQL' if args.postgres else 'SQLite'}, Redis holds the "
        "gateway's dedupe and state.",
        "",
        "## Summary",
        "",
        *summary(runs, args.think),
        "",
        "## All runs",
        "",
        "| path | Rasa processes | users | think s | messages | msg/s | p50 ms | p95 ms | p99 ms | later than 4.5 s | "
        "via customer-service API | delivered twice | failed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "`rest` is Rasa's REST channel alone; `webhook` is signed WeChat XML through the gateway, where an answer "
        "that misses the reply budget is timed until it reaches the user through the customer-service API. "
        "\"Delivered twice\" counts customer-service messages that reached a user after the turn they belonged to "
        "was complete (a second delivery of one answer).",
        "",
        "## Where the CPU goes (ms per message, each part with its worker processes; think 0)",
        "",
        "The harness is this benchmark's own process (the simulated veterans and WeChat's side of the XML); "
        "`postgres` and `redis` are the servers (all their backends, so other work on them counts too).",
        "",
        *cpu_rows(runs),
        "",
        "## Resident memory (MB, each part with all its worker processes)",
        "",
        *memory_table(memory),
    ]
    Path(args.report).write_text("\n".join(report) + "\n")
    print(f"report written to {args.report}")


if __name__ == "__main__":
    main()
