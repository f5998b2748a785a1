"""The webhook's own CPU per message, alone: gunicorn as deployed, PostgreSQL, Redis, a Rasa stand-in.

    .venv/bin/python benchmarks/gateway/cpu.py [--users 20] [--messages 30] [--repeat 3] [--root DIR ...]

The conversation benchmark (benchmarks/conversation) measures the whole path with the real model, where
Rasa's ~40 ms per message dominate and the webhook's few milliseconds are hard to see. This one replaces
Rasa by an instant stand-in in another process (keep-alive HTTP, a realistic answer with two buttons) and
counts only the CPU of the webhook's gunicorn processes while `--users` senders each post `--messages`
signed text pushes, one after the other. `--root` may name other checkouts of the project (e.g. a
`git worktree` of an older commit) to compare, measured in turn, `--repeat` times each.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "conversation"))

from bench import cpu_seconds, drop_postgres, fresh_postgres, server_pids  # noqa: E402

TOKEN = "bench-token"
ANSWER = [
    {
        "text": "为您找到以下岗位：\n1. 保安 双城镇 3500元\n2. 司机 富溪镇 5000元\n回复序号看详情",
        "buttons": [
            {"title": "看详情", "payload": "/job_detail"},
            {"title": "返回菜单", "payload": "/main_menu"},
        ],
    }
]


class RasaStandIn(BaseHTTPRequestHandler):
    """Answers Rasa's gateway channel at once, keeping connections alive as Rasa's Sanic does."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        raw = json.dumps([{"recipient_id": body.get("sender"), **m} for m in ANSWER]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("X-Rasa-Intent", "job_search")
        self.send_header("X-Rasa-Intent-Confidence", "0.97")
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *_args: object) -> None:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sender(
    port: int, user: int, count: int, next_id: list[int], lock: threading.Lock, ok: list[bool]
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    openid = f"oBench{user:03d}{uuid.uuid4().hex[:10]}"
    for _ in range(count):
        with lock:
            next_id[0] += 1
            msg_id = next_id[0]
        ts, nonce = str(int(time.time())), str(msg_id)
        signature = hashlib.sha1("".join(sorted([TOKEN, ts, nonce])).encode()).hexdigest()
        xml = (
            f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[双城镇有保安的工作吗]]></Content><MsgId>{msg_id}</MsgId></xml>"
        )
        query = f"/wechat?signature={signature}&timestamp={ts}&nonce={nonce}&openid={openid}"
        conn.request("POST", query, xml.encode(), {"Content-Type": "text/xml"})
        reply = conn.getresponse()
        ok.append(reply.status == 200 and "看详情".encode() in reply.read())


def measure(
    root: Path, args: argparse.Namespace, rasa_url: str
) -> tuple[float, float, int, dict[str, float]]:
    """(webhook CPU ms per message, messages per second, answered, {server: CPU ms per message}) for the
    checkout at `root`; the servers are PostgreSQL (all its backends) and Redis, which the webhook's
    statements and commands cost too."""
    database_url, database = fresh_postgres(args.postgres)
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        REDIS_URL=args.redis_url,
        WECHAT_TOKEN=TOKEN,
        WECHAT_APP_ID="wxbench",
        WECHAT_APP_SECRET="bench",
        WECHAT_API_BASE="http://127.0.0.1:9",
        RASA_URL=rasa_url,
        PYTHONPATH=str(root),
    )
    env.pop("WECHAT_AES_KEY", None)
    venv = ROOT / ".venv" / "bin"
    port = free_port()
    web = None
    try:
        subprocess.run(
            [venv / "flask", "--app", "webhook", "db-upgrade"],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
        )
        web = subprocess.Popen(
            [
                venv / "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(args.workers),
                "--threads",
                str(args.threads),
                "--worker-class",
                "gthread",
                "--timeout",
                "30",
                "webhook:create_app()",
            ],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(3)
        lock, next_id = threading.Lock(), [int(time.time() * 1000) * 1000]

        def load(users: int, count: int) -> list[bool]:
            ok: list[bool] = []
            threads = [
                threading.Thread(target=sender, args=(port, u, count, next_id, lock, ok))
                for u in range(users)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return ok

        load(4, 5)  # every worker builds its gateway (engines, pools) before the count starts
        servers = server_pids()
        servers_before = {name: cpu_seconds(pid) for name, pid in servers.items()}
        cpu_before, start = cpu_seconds(web.pid), time.perf_counter()
        ok = load(args.users, args.messages)
        cpu, wall = cpu_seconds(web.pid) - cpu_before, time.perf_counter() - start
        spent = {
            name: 1000 * (cpu_seconds(pid) - servers_before[name]) / len(ok) for name, pid in servers.items()
        }
        return 1000 * cpu / len(ok), len(ok) / wall, sum(ok), spent
    finally:
        if web is not None:
            web.terminate()
            web.wait()
        drop_postgres(args.postgres, database)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--messages", type=int, default=30, help="pushes per sender")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
    parser.add_argument("--root", nargs="+", default=[str(ROOT)], help="checkouts to measure, in turn")
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), RasaStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rasa_url = f"http://127.0.0.1:{server.server_port}"
    total = args.users * args.messages
    print(
        f"{args.users} senders x {args.messages} pushes, gunicorn {args.workers} workers x {args.threads} threads"
    )
    for attempt in range(1, args.repeat + 1):
        for root in args.root:
            commit = subprocess.run(
                ["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            ms, rate, answered, servers = measure(Path(root), args, rasa_url)
            print(
                f"run {attempt}  {commit}{'+changes' if dirty else ''}  webhook CPU {ms:.2f} ms/message  "
                + "".join(f"{name} {value:.2f}  " for name, value in servers.items())
                + f"{rate:.0f} messages/s  answered {answered}/{total}",
                flush=True,
            )
    server.shutdown()


if __name__ == "__main__":
    main()
