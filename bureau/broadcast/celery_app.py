"""The Celery app of the broadcast worker, configured on first use from the environment.

Broker, in order: BROKER_URL (e.g. RabbitMQ `amqp://…`), else REDIS_URL, else kombu's SQLAlchemy
transport on the database — no server to run. On PostgreSQL it uses DATABASE_URL itself; on SQLite a
sibling file (`zhanyou-broker.db` next to `zhanyou.db`), so the broker's polling transactions never
hold the write lock the ledger needs, and kombu's tables stay out of the schema Alembic manages.
The broker only carries "there is work" nudges: the delivery ledger is the truth, and the periodic
sweep recovers anything a lost message, a killed worker or a restarted broker left behind.

Start a worker (what `make run` does):
    .venv/bin/celery -A bureau.broadcast.celery_app worker --beat --pool threads --concurrency 4 -l info
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import beat_init, celeryd_init

from bureau.settings import PROJECT_ROOT, get_settings

app = Celery("zhanyou", include=["bureau.broadcast.tasks"], set_as_current=False)


def broker_url() -> str:
    """The broker URL for this deployment (see module docstring)."""
    explicit = os.environ.get("BROKER_URL")
    if explicit:
        return explicit
    settings = get_settings()
    if settings.redis_url:
        return settings.redis_url
    url = settings.database_url
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if not path or path == ":memory:":
            raise RuntimeError("the broadcast worker needs a database file, not an in-memory SQLite")
        db_path = Path(path)
        broker = db_path.with_name(db_path.stem + "-broker.db")
        broker.parent.mkdir(parents=True, exist_ok=True)
        return f"sqla+sqlite:///{broker}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return "sqla+" + url


def celery_config() -> dict[str, Any]:
    from bureau.broadcast.config import get_config

    config = get_config()
    url = broker_url()
    conf: dict[str, Any] = {
        "broker_url": url,
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,
        "result_backend": None,
        # A task is acknowledged when it finishes and a worker reserves one task at a time, so a killed
        # worker's task goes back to the queue (brokers that support it) instead of vanishing.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # One queue per deployment: two deployments sharing a Redis must not run each other's campaign ids.
        "task_default_queue": os.environ.get("BROADCAST_QUEUE") or "zhanyou.broadcast",
        "task_serializer": "json",
        "accept_content": ["json"],
        "timezone": "Asia/Shanghai",
        "task_always_eager": config.eager,
        "beat_schedule_filename": str(PROJECT_ROOT / "instance" / "celerybeat-schedule"),
        "beat_schedule": {
            "broadcast-sweep": {"task": "bureau.broadcast.tasks.sweep", "schedule": config.sweep_seconds},
            "booking-reminders": {
                "task": "bureau.broadcast.tasks.booking_reminders",
                "schedule": float(os.environ.get("BOOKING_REMINDER_SECONDS", "300")),
            },
        },
    }
    # (kombu's SQLAlchemy transport passes its transport options to create_engine: none set for it;
    # it polls once a second.)
    if url.startswith(("redis://", "rediss://")):
        conf["broker_transport_options"] = {"visibility_timeout": 3600}
    return conf


@app.on_configure.connect
def _configure(sender: Celery, **_kwargs: Any) -> None:
    (PROJECT_ROOT / "instance").mkdir(parents=True, exist_ok=True)
    sender.conf.update(celery_config())


@celeryd_init.connect
def _prepare_database_broker(**_kwargs: Any) -> None:
    """Create the SQLAlchemy broker's queue row before the worker and its embedded beat both try to.

    kombu's SQLAlchemy transport creates a queue row on first use and only tolerates OperationalError,
    so two processes starting together (worker + `--beat`) can crash on the unique name; the loser of
    this race here just finds the row on its next try.
    """
    url = str(app.conf.broker_url or "")
    if not url.startswith("sqla+"):
        return
    from kombu import Connection
    from sqlalchemy.exc import IntegrityError

    for _ in range(5):
        try:
            with Connection(url) as conn:
                conn.default_channel.queue_declare(queue=app.conf.task_default_queue)
            return
        except IntegrityError:
            continue


@beat_init.connect
def _forget_inherited_broker_engines(**_kwargs: Any) -> None:
    """`worker --beat` forks beat from the worker: kombu's SQLAlchemy transport caches its engines in a
    class attribute, and a SQLite connection inherited across fork breaks ("channel disconnected" on the
    next publish). The beat process makes its own (the parent's are left alone, not closed)."""
    try:
        from kombu.transport.sqlalchemy import Channel
    except ImportError:  # pragma: no cover - kombu without SQLAlchemy support
        return
    Channel._engines = {}
