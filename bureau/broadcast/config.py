"""Broadcast knobs and message templates, read from the environment (see README's configuration table).

Every value has a default that serves a local run against the WeChat simulator.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


# The template each notification kind uses outside the 48-hour window, and how its fields are filled.
# A field value is a str.format pattern over the campaign payload's `fields` (see campaigns.py).
# Defaults match the templates the simulator (wechatsim) is configured with.
DEFAULT_TEMPLATE_IDS: dict[str, str] = {
    "job": "TPL_JOB_NOTICE",
    "certificate": "TPL_STATUS_UPDATE",
    "booking_reminder": "TPL_REMINDER",
    "case_answer": "TPL_STATUS_UPDATE",
    "handoff_answer": "TPL_STATUS_UPDATE",
    "crisis_duty": "TPL_STATUS_UPDATE",
}
TEMPLATE_ID_ENV: dict[str, str] = {
    "job": "WECHAT_JOB_TEMPLATE_ID",
    "certificate": "WECHAT_CERTIFICATE_TEMPLATE_ID",
    "booking_reminder": "WECHAT_BOOKING_TEMPLATE_ID",
    "case_answer": "WECHAT_CASE_TEMPLATE_ID",
    "handoff_answer": "WECHAT_HANDOFF_TEMPLATE_ID",
    "crisis_duty": "WECHAT_CRISIS_TEMPLATE_ID",
}
DEFAULT_TEMPLATE_FIELDS: dict[str, dict[str, str]] = {
    "job": {
        "first": "您好，有一个新岗位可能适合您：",
        "keyword1": "{title}",
        "keyword2": "{employer}",
        "keyword3": "{place}",
        "keyword4": "{salary}",
        "remark": "回复“找工作”查看详情，回复“退订岗位”不再接收。",
    },
    # Notifications carry their own field values (notify_user's template_fields); missing ones fall back
    # to the message text.
    "_notification": {
        "first": "{first}",
        "keyword1": "{keyword1}",
        "keyword2": "{keyword2}",
        "remark": "{remark}",
    },
}


@dataclass(frozen=True)
class BroadcastConfig:
    """How fast, how often, how patiently the broadcast sends."""

    rate: float = 100.0  # messages per second for the whole account, all workers together
    batch_size: int = 20  # deliveries claimed per round
    threads: int = 6  # concurrent requests per task (a worker runs --concurrency tasks)
    lanes: int = 2  # tasks queued per campaign when it starts (lets several workers share it)
    lease_seconds: float = 60.0  # a claim older than this belongs to a dead worker
    task_seconds: float = 30.0  # a task hands over to a fresh one after this long (lets pause act)
    max_attempts: int = 6
    backoff_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    cs_quota: int = 4  # customer-service messages we may use per user message (WeChat allows 5)
    window_hours: float = 48.0
    window_margin_minutes: float = 10.0
    template_grace_seconds: float = 300.0  # wait this long for TEMPLATESENDJOBFINISH before re-sending
    sweep_seconds: float = 10.0
    redis_prefix: str = "zhanyou:broadcast:"
    eager: bool = False
    template_ids: dict[str, str] = field(default_factory=dict)
    template_fields: dict[str, dict[str, str]] = field(default_factory=dict)
    template_url: str | None = None

    @classmethod
    def from_env(cls) -> BroadcastConfig:
        ids = {kind: _env(env, DEFAULT_TEMPLATE_IDS[kind]) for kind, env in TEMPLATE_ID_ENV.items()}
        fields: dict[str, dict[str, str]] = {k: dict(v) for k, v in DEFAULT_TEMPLATE_FIELDS.items()}
        for kind in [*TEMPLATE_ID_ENV, "_notification"]:
            raw = os.environ.get(f"WECHAT_TEMPLATE_FIELDS_{kind.strip('_').upper()}")
            if raw:
                parsed: Any = json.loads(raw)
                if not isinstance(parsed, dict):
                    raise ValueError(f"WECHAT_TEMPLATE_FIELDS_{kind.upper()} must be a JSON object")
                fields[kind] = {str(k): str(v) for k, v in parsed.items()}
        return cls(
            rate=float(_env("BROADCAST_RATE", "100")),
            batch_size=int(_env("BROADCAST_BATCH", "20")),
            threads=int(_env("BROADCAST_THREADS", "6")),
            lanes=int(_env("BROADCAST_LANES", "2")),
            lease_seconds=float(_env("BROADCAST_LEASE_SECONDS", "60")),
            task_seconds=float(_env("BROADCAST_TASK_SECONDS", "30")),
            max_attempts=int(_env("BROADCAST_MAX_ATTEMPTS", "6")),
            backoff_seconds=float(_env("BROADCAST_BACKOFF_SECONDS", "2")),
            backoff_max_seconds=float(_env("BROADCAST_BACKOFF_MAX_SECONDS", "300")),
            cs_quota=int(_env("BROADCAST_CS_QUOTA", "4")),
            window_hours=float(_env("BROADCAST_WINDOW_HOURS", "48")),
            window_margin_minutes=float(_env("BROADCAST_WINDOW_MARGIN_MINUTES", "10")),
            template_grace_seconds=float(_env("BROADCAST_TEMPLATE_GRACE_SECONDS", "300")),
            sweep_seconds=float(_env("BROADCAST_SWEEP_SECONDS", "10")),
            redis_prefix=_env("BROADCAST_REDIS_PREFIX", "zhanyou:broadcast:"),
            eager=_env("BROADCAST_EAGER", "0") in ("1", "true", "yes"),
            template_ids=ids,
            template_fields=fields,
            template_url=os.environ.get("WECHAT_TEMPLATE_URL") or None,
        )

    def template_id(self, kind: str) -> str:
        return self.template_ids.get(kind) or DEFAULT_TEMPLATE_IDS.get(kind, "")


@lru_cache(maxsize=1)
def get_config() -> BroadcastConfig:
    """The process-wide broadcast configuration (tests call get_config.cache_clear())."""
    return BroadcastConfig.from_env()
