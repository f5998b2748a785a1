"""What Rasa understood of each message, filed into the message log in batches.

The intent and its confidence are known only once Rasa has answered, after the message itself was
stored. One transaction per message for them cost about 18 % of the gateway's CPU per message
(benchmarks/gateway/REPORT.md), so a background thread files whatever has gathered with one
executemany UPDATE every `interval` seconds instead. Best effort, as the dashboard needs it: the
messages are already safe; a crash loses at most the last interval's labels.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Any, cast

from sqlalchemy import Table, bindparam
from sqlalchemy.orm import sessionmaker

from bureau.models import MessageLog

INTENT_MAX = 40  # MessageLog.intent is a String(40)


class UnderstandingWriter:
    """Collects (message log id, intent, confidence) and writes them in batches; thread-safe."""

    def __init__(self, session_factory: sessionmaker, interval: float = 0.2) -> None:
        self.factory = session_factory
        self.interval = interval
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, log_id: int, intent: str, confidence: float | None) -> None:
        """Queue one message's understanding; it reaches the database within about `interval` seconds."""
        with self._lock:
            # The thread is woken by the first row of a batch only: it then sleeps `interval` and takes
            # every row that came meanwhile.
            first = not self._pending
            self._pending.append(
                {"log_id": log_id, "new_intent": intent[:INTENT_MAX], "new_confidence": confidence}
            )
            if self._thread is None:
                # Started by the first message, so it belongs to the worker process that serves it.
                self._thread = threading.Thread(target=self._run, name="understanding", daemon=True)
                self._thread.start()
                atexit.register(self.flush)
        if first:
            self._wake.set()

    def flush(self) -> int:
        """Write everything queued now; returns how many rows were sent."""
        with self._lock:
            rows, self._pending = self._pending, []
        if not rows:
            return 0
        table = cast(Table, MessageLog.__table__)
        statement = (
            table.update()
            .where(table.c.id == bindparam("log_id"))
            .values(intent=bindparam("new_intent"), confidence=bindparam("new_confidence"))
        )
        try:
            with self.factory.begin() as session:
                session.connection().execute(statement, rows)
        except Exception:
            logging.getLogger("zhanyou.gateway").exception("event=understanding_failed rows=%d", len(rows))
            return 0
        return len(rows)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            # Let the messages of the next moment join this batch.
            time.sleep(self.interval)
            self.flush()
