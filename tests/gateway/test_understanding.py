"""The intents Rasa recognised are filed into the message log in batches, after the answers."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from bureau.models import MessageLog
from webhook.gateway.understanding import UnderstandingWriter


def _log(session_factory: Any, *texts: str) -> list[int]:
    with session_factory.begin() as session:
        rows = [MessageLog(openid="oUnder", direction="in", msg_type="text", content=t) for t in texts]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def _labels(session_factory: Any) -> list[tuple[str | None, float | None]]:
    with session_factory.begin() as session:
        return [(m.intent, m.confidence) for m in session.scalars(select(MessageLog).order_by(MessageLog.id))]


def test_a_batch_files_each_message_its_own_intent(session_factory: Any) -> None:
    first, second, third = _log(session_factory, "找工作", "谢谢", "嗯")
    writer = UnderstandingWriter(session_factory, interval=60)  # only the explicit flush writes
    writer.record(first, "job_search", 0.91)
    writer.record(third, "x" * 60, None)  # an over-long name is cut to the column's size
    assert _labels(session_factory) == [(None, None)] * 3
    assert writer.flush() == 2
    assert _labels(session_factory) == [("job_search", 0.91), (None, None), ("x" * 40, None)]
    assert writer.flush() == 0  # nothing is written twice


def test_the_background_thread_files_within_the_interval(session_factory: Any) -> None:
    (log_id,) = _log(session_factory, "我要申请优待证")
    writer = UnderstandingWriter(session_factory, interval=0.05)
    writer.record(log_id, "certificate_apply", 0.88)
    deadline = time.monotonic() + 5
    while _labels(session_factory) != [("certificate_apply", 0.88)] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _labels(session_factory) == [("certificate_apply", 0.88)]


def test_a_database_failure_loses_only_the_labels(session_factory: Any, caplog: Any) -> None:
    (log_id,) = _log(session_factory, "你好")

    def broken() -> Any:
        raise ConnectionError("database gone")

    writer = UnderstandingWriter(session_factory, interval=60)
    writer.factory = type("Broken", (), {"begin": staticmethod(broken)})()  # type: ignore[assignment]
    writer.record(log_id, "greet", 0.99)
    assert writer.flush() == 0
    assert "event=understanding_failed rows=1" in caplog.text
    assert _labels(session_factory) == [(None, None)]  # the message itself is untouched
