"""Broadcast benchmark: one campaign to N simulated subscribers, a global rate limit, several workers.

    .venv/bin/python benchmarks/broadcast/run.py                      # 10,000 recipients, 200 msg/s, 2 workers,
                                                                      # PostgreSQL + Redis (production set-up)
    .venv/bin/python benchmarks/broadcast/run.py --db sqlite          # the embedded default (no servers)

Workers are real `celery worker` processes; the WeChat simulator runs in this process and its record of
every user's inbox gives the duplicates and losses. Prints a summary and writes results.json beside this
file. Needs PostgreSQL at --pg (trust auth) and Redis at --redis for the default set-up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0, help="global limit, messages per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    args = parser.parse_args(argv)

    workdir = ROOT / "instance" / f"bench-broadcast-{uuid.uuid4().hex[:6]}"
    workdir.mkdir(parents=True)
    prefix = f"zb:{uuid.uuid4().hex[:8]}:"
    redis_url = None
    schema = None
    if args.db == "postgresql":
        from sqlalchemy import text

        from bureau import db

        schema = f"zb_{uuid.uuid4().hex[:8]}"
        admin = db.make_engine(args.pg)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{args.pg}{'&' if '?' in args.pg else '?'}options=-csearch_path%3D{schema}"
        redis_url = args.redis
    else:
        url = f"sqlite:///{workdir / 'zhanyou.db'}"

    # This process publishes the campaign through the same broker the workers use.
    os.environ.update(
        {
            "DATABASE_URL": url,
            "BROADCAST_RATE": str(args.rate),
            "BROADCAST_LANES": str(2 * args.workers),
            "BROADCAST_REDIS_PREFIX": prefix,
            "BROADCAST_QUEUE": f"zb.{prefix}",
        }
    )
    os.environ.pop("BROKER_URL", None)
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    else:
        os.environ.pop("REDIS_URL", None)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    from bureau import db, models  # noqa: F401
    from bureau.broadcast import campaigns
    from bureau.settings import get_settings
    from tests.broadcast import harness
    from wechatsim.server import SimServer

    get_settings.cache_clear()
    db.Base.metadata.create_all(db.get_engine(url))
    sim = SimServer().start()
    stack = harness.Stack(
        url,
        sim,
        workdir,
        redis_url=redis_url,
        extra_env={
            "BROADCAST_RATE": str(args.rate),
            "BROADCAST_REDIS_PREFIX": prefix,
            "BROADCAST_QUEUE": f"zb.{prefix}",
        },
    )
    factory = stack.factory
    result: dict[str, object] = {}
    try:
        job_id = harness.seed(factory, sim, args.subscribers)
        workers = [stack.start_worker(f"bench{i + 1}", beat=(i == 0)) for i in range(args.workers)]
        for i in range(args.workers):
            log = workdir / f"bench{i + 1}.log"
            ok = harness.wait_until(lambda log=log: log.exists() and " ready." in log.read_text(), 60, 0.2)
            if not ok:
                raise SystemExit(f"worker {i + 1} did not start; see {log}")
        load_before = os.getloadavg()
        t0 = time.monotonic()
        with factory.begin() as session:
            cid = campaigns.publish_job(session, job_id, actor="benchmark").id
        done = harness.wait_until(lambda: harness.finished(factory, cid), args.timeout, 0.5)
        wall = time.monotonic() - t0
        load_after = os.getloadavg()
        peaks = [harness.peak_rss_mb(w.pid) for w in workers]
        stack.stop_all()

        inboxes = harness.inbox_counts(sim)
        received = sum(inboxes.values())
        duplicates = sum(n - 1 for n in inboxes.values() if n > 1)
        lost = args.subscribers - len(inboxes)
        with sim.state.lock:
            times = sorted(m["at"] for msgs in sim.state.inbox.values() for m in msgs)
        sim_span = (times[-1] - times[0]) if len(times) > 1 else 0.0
        with factory.begin() as session:
            rep = campaigns.report(session, cid)
        result = {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "database": args.db,
            "broker": "redis" if redis_url else "sqlalchemy (database)",
            "limiter": "redis" if redis_url else "database",
            "subscribers": args.subscribers,
            "workers": args.workers,
            "rate_limit": args.rate,
            "finished": done,
            "wall_seconds_publish_to_done": round(wall, 2),
            "ledger_send_seconds": rep.send_seconds,
            "ledger_rate": rep.rate,
            "simulator_span_seconds": round(sim_span, 2),
            "simulator_rate": round((len(times) - 1) / sim_span, 2) if sim_span else None,
            "rate_vs_limit": round((rep.rate or 0) / args.rate, 3),
            "sent": rep.sent,
            "failed": rep.failed,
            "skipped": rep.skipped,
            "unconfirmed": rep.unconfirmed,
            "received": received,
            "duplicates": duplicates,
            "lost": lost,
            "worker_peak_rss_mb": [round(p, 1) if p else None for p in peaks],
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "cpus": os.cpu_count(),
        }
        print(campaigns.format_report(rep))
        print(json.dumps(result, ensure_ascii=False, indent=2))
        Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        ok = done and duplicates == 0 and lost == 0 and (rep.rate or 0) >= 0.9 * args.rate
        print(
            "PASS" if ok else "FAIL",
            f"(rate {rep.rate} vs limit {args.rate}, duplicates {duplicates}, lost {lost})",
        )
        return 0 if ok else 1
    finally:
        stack.stop_all()
        sim.stop()
        if schema:
            from sqlalchemy import text

            db.dispose_all()
            admin = db.make_engine(args.pg)
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
        if redis_url:
            import redis

            client = redis.Redis.from_url(redis_url)
            for key in client.scan_iter(prefix + "*"):
                client.delete(key)


if __name__ == "__main__":
    raise SystemExit(main())
