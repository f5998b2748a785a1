"""Telling the workers about new work only once the caller's transaction has committed.

A task queued inside the transaction could run before the rows it needs are visible (or for rows that
are then rolled back). So campaigns created in a session are collected in `session.info` and queued
from the session's `after_commit` event — best effort: if the broker is unreachable the periodic sweep
(bureau.broadcast.tasks.sweep) finds the campaign anyway, a few seconds later.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

logger = logging.getLogger("zhanyou.broadcast")

_PENDING = "zhanyou_broadcast_enqueue"
_HOOKED = "zhanyou_broadcast_hooked"


def enqueue_after_commit(session: Session, campaign_id: int, lanes: int | None = None) -> None:
    """Queue `campaign_id` for sending when `session` commits (nothing happens on rollback).

    `lanes`: how many tasks share the campaign (default BROADCAST_LANES; 1 for a single recipient)."""
    session.info.setdefault(_PENDING, {})[campaign_id] = lanes
    if not session.info.get(_HOOKED):
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_soft_rollback", _after_rollback)
        session.info[_HOOKED] = True


def _after_rollback(session: Session, _previous: Any) -> None:
    if not session.in_transaction():
        session.info.pop(_PENDING, None)


def _after_commit(session: Session) -> None:
    pending: dict[int, int | None] = session.info.pop(_PENDING, {})
    if pending:
        start_campaigns(sorted(pending), lanes=pending)


def start_campaigns(ids: list[int], lanes: dict[int, int | None] | None = None) -> None:
    """Queue the sending of these campaigns now (never raises: the sweep is the safety net)."""
    from bureau.broadcast.config import get_config

    if get_config().eager:
        # No broker at all: an in-process worker thread sends, through the same code path.
        threading.Thread(target=_run_inline, args=(ids,), name="broadcast-inline", daemon=True).start()
        return
    try:
        from bureau.broadcast.tasks import kick

        for campaign_id in ids:
            kick(campaign_id, (lanes or {}).get(campaign_id))
    except Exception:  # the broker may be down; the sweep will pick the campaign up
        logger.warning("event=broadcast_enqueue_failed campaigns=%s", ids, exc_info=True)


def _run_inline(ids: list[int]) -> None:
    try:
        from bureau.broadcast.tasks import run_inline

        for campaign_id in ids:
            run_inline(campaign_id)
    except Exception:
        logger.exception("event=broadcast_inline_failed campaigns=%s", ids)
