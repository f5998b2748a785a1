"""Celery tasks of the broadcast: send a campaign, sweep the ledger, trigger booking reminders.

Tasks are short (at most `BROADCAST_TASK_SECONDS`) and hand over to a fresh task when there is more to
do, so pause/cancel, new notifications and extra workers all take effect within seconds. Nothing a task
knows is needed after it ends: the ledger holds all state, so a task lost with a killed worker or a
restarted broker costs only time — the sweep queues the campaign again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from celery.signals import worker_process_init, worker_ready, worker_shutting_down
from sqlalchemy import Engine, event
from sqlalchemy.orm import sessionmaker

from bureau.broadcast import ledger
from bureau.broadcast.celery_app import app
from bureau.broadcast.config import get_config
from bureau.broadcast.ratelimit import RateLimiter, make_limiter
from bureau.broadcast.sender import BroadcastClient, Broadcaster, make_client
from bureau.db import dispose_all, get_session_factory, make_engine
from bureau.settings import get_settings

logger = logging.getLogger("zhanyou.broadcast")

_state_lock = threading.Lock()
_limiter: dict[str, RateLimiter | None] = {}
_client: dict[str, BroadcastClient] = {}
_stop = threading.Event()  # set on warm shutdown: running sends stop and give their claims back


_factories: dict[str, sessionmaker] = {}
_own_engines: list[Engine] = []


def _shared() -> tuple[RateLimiter | None, BroadcastClient, sessionmaker]:
    settings = get_settings()
    config = get_config()
    key = f"{settings.database_url}|{settings.redis_url}|{config.rate}|{settings.wechat_api_base}|{config.threads}"
    with _state_lock:
        if key not in _limiter:
            factory = get_session_factory()
            if not settings.database_url.startswith("sqlite"):
                # Every sending thread holds a connection for its bookkeeping; the shared engine's pool
                # (5 + overflow) would open and close a connection per message beyond five threads.
                size = config.threads * 2 + 4
                engine = make_engine(settings.database_url, pool_size=size, max_overflow=size)
                event.listen(engine, "connect", _async_commit)
                _own_engines.append(engine)
                factory = sessionmaker(bind=engine, expire_on_commit=False)
            _factories[key] = factory
            _limiter[key] = make_limiter(config.rate, settings.redis_url, factory, config.redis_prefix)
            _client[key] = make_client(config.threads)
        return _limiter[key], _client[key], _factories[key]


def _async_commit(dbapi_connection: Any, record: Any) -> None:
    # See ledger.relaxed_commit: set once per pooled connection instead of once per transaction.
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    dbapi_connection.execute("SET synchronous_commit TO off")
    dbapi_connection.autocommit = autocommit
    record.info[ledger.ASYNC_COMMIT] = True


def make_broadcaster() -> Broadcaster:
    """A Broadcaster with this process's shared limiter, WeChat client and connection pool."""
    limiter, client, factory = _shared()
    return Broadcaster(factory, get_config(), limiter, client)


def reset_state() -> None:
    """Forget cached limiter/client (tests, after fork)."""
    with _state_lock:
        _limiter.clear()
        _client.clear()
        for engine in _own_engines:
            engine.dispose()
        _own_engines.clear()
        _factories.clear()
    _stop.clear()


@app.task(name="bureau.broadcast.tasks.run_campaign")
def run_campaign(campaign_id: int | None = None) -> dict[str, Any]:
    """Send due deliveries of `campaign_id` (None: of any campaign) for up to BROADCAST_TASK_SECONDS."""
    config = get_config()
    stats = make_broadcaster().run(campaign_id, budget_seconds=config.task_seconds, stop=_stop)
    factory = get_session_factory()
    with factory.begin() as session:
        finished = ledger.finish_campaigns(session)
    if stats.stopped_by_budget and not _stop.is_set():
        run_campaign.apply_async((campaign_id,))
    elif not _stop.is_set():
        with factory.begin() as session:
            due_in = ledger.next_due_in(session, campaign_id)
        if due_in is not None and due_in < 60:  # later ones are found by the sweep
            run_campaign.apply_async((campaign_id,), countdown=due_in + 0.2)
    summary = {
        "campaign": campaign_id,
        "claimed": stats.claimed,
        "seconds": round(stats.seconds, 2),
        "outcomes": dict(stats.outcomes),
        "finished": finished,
    }
    logger.info("event=broadcast_run %s", summary)
    return summary


def kick(campaign_id: int, lanes: int | None = None) -> None:
    """Queue `lanes` tasks for a campaign (several workers can then share it)."""
    for _ in range(max(1, lanes or get_config().lanes)):
        run_campaign.apply_async((campaign_id,), retry=False)


def _dead_local_owners(owners: list[str]) -> list[str]:
    """Claim owners on this host whose process is gone (a SIGKILLed worker): no need to wait for the lease."""
    host = socket.gethostname()[:30]
    dead = []
    for owner in owners:
        parts = owner.rsplit(":", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            dead.append(owner)
        except PermissionError:
            pass
    return dead


def sweep_once() -> dict[str, Any]:
    """Recover dead workers' claims, close finished campaigns, and return idle campaigns that have work."""
    config = get_config()
    factory = get_session_factory()
    with factory.begin() as session:
        dead = _dead_local_owners(ledger.claim_owners(session))
        now_dead = ledger.expire_claims(
            session, config.lease_seconds, config.template_grace_seconds, owners=dead
        )
    with factory.begin() as session:
        expired = ledger.expire_claims(session, config.lease_seconds, config.template_grace_seconds)
    with factory.begin() as session:
        finished = ledger.finish_campaigns(session)
    with factory.begin() as session:
        idle = ledger.idle_campaigns_with_due_work(session, idle_seconds=max(config.sweep_seconds, 5.0))
    return {
        "released": now_dead[0] + expired[0],
        "unconfirmed": now_dead[1] + expired[1],
        "resent": now_dead[2] + expired[2],
        "finished": finished,
        "idle": idle,
        "dead_workers": dead,
    }


@app.task(name="bureau.broadcast.tasks.sweep")
def sweep() -> dict[str, Any]:
    """Periodic (beat): the safety net that makes every campaign finish whatever was lost on the way."""
    result = sweep_once()
    lanes = get_config().lanes
    if len(result["idle"]) > lanes:  # many small campaigns (notifications): a few tasks take them all
        for _ in range(lanes):
            run_campaign.apply_async((None,))
    else:
        for campaign_id in result["idle"]:
            run_campaign.apply_async((campaign_id,))
    global _sweeps
    _sweeps += 1
    if _sweeps % 60 == 1:
        result["broker_pruned"] = prune_database_broker()
    if any(result[k] for k in ("released", "unconfirmed", "resent", "finished", "idle")):
        logger.info("event=broadcast_sweep %s", result)
    return result


_sweeps = 0


def prune_database_broker(keep_seconds: float = 3600.0, url: str | None = None) -> int:
    """Delete consumed messages from the database broker's table (kombu's SQLAlchemy transport only hides
    them, so without this the table grows by every sweep and task forever)."""
    url = url or str(app.conf.broker_url or "")
    if not url.startswith("sqla+"):
        return 0
    import datetime as dt

    from sqlalchemy import create_engine, text

    engine = create_engine(url.removeprefix("sqla+"))
    try:
        with engine.begin() as conn:
            # kombu stamps a message with local time when it is taken off the queue.
            cutoff = dt.datetime.now() - dt.timedelta(seconds=keep_seconds)
            done = conn.execute(
                text('DELETE FROM kombu_message WHERE visible = :hidden AND "timestamp" < :cutoff'),
                {"hidden": False, "cutoff": cutoff},
            )
            return int(getattr(done, "rowcount", 0) or 0)
    except Exception:  # best effort: a missing table (nothing consumed yet) or a busy database
        logger.warning("event=broker_prune_failed", exc_info=True)
        return 0
    finally:
        engine.dispose()


@app.task(name="bureau.broadcast.tasks.booking_reminders")
def booking_reminders() -> int:
    """Periodic (beat): record due counseling reminders; they are sent through the ledger like any notice."""
    from bureau.services.counseling import send_booking_reminders

    with get_session_factory().begin() as session:
        return int(send_booking_reminders(session) or 0)


def run_inline(campaign_id: int | None = None, max_seconds: float = 3600.0) -> None:
    """The in-process worker (BROADCAST_EAGER=1): send a campaign to the end in this thread."""
    import time

    deadline = time.monotonic() + max_seconds
    factory = get_session_factory()
    while time.monotonic() < deadline:
        stats = make_broadcaster().run(campaign_id, budget_seconds=get_config().task_seconds)
        with factory.begin() as session:
            ledger.finish_campaigns(session)
            due_in = ledger.next_due_in(session, campaign_id)
        if stats.stopped_by_budget:
            continue
        if due_in is None:
            return
        time.sleep(min(due_in + 0.2, max(0.0, deadline - time.monotonic())))


@worker_ready.connect
def _on_worker_ready(**_kwargs: Any) -> None:
    # Resume at once after a restart: recover what a killed predecessor left and queue waiting work.
    try:
        sweep.apply_async()
    except Exception:
        logger.warning("event=broadcast_startup_sweep_failed", exc_info=True)


@worker_process_init.connect
def _on_process_init(**_kwargs: Any) -> None:
    # A forked pool process must not share the parent's database connections or HTTP pools.
    dispose_all()
    reset_state()


@worker_shutting_down.connect
def _on_shutdown(**_kwargs: Any) -> None:
    _stop.set()
