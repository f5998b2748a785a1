"""One send rate for the whole account, shared by every worker (GCRA slot reservation).

The limiter keeps one number, the "theoretical arrival time" (TAT) of the next free slot. Reserving n
slots advances it by n / rate and tells the caller when its first slot starts; the caller spaces its
n sends 1 / rate apart from there. Slots that pass unused are not saved up, so the account never
bursts above the configured rate, however many workers there are.

- Redis (REDIS_URL set): one Lua script per reservation, on Redis's own clock, so workers on several
  machines share it exactly.
- Database (the embedded default): a row of `key_values`, updated under its row lock (PostgreSQL) or
  the write lock (SQLite). Several worker processes on one SQLite file still share one rate; reserving
  a chunk of slots at a time keeps it to a few writes per second.
- Local: a lock in this process, for a single in-process worker (eager mode, tests).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import sessionmaker

from bureau.models import KeyValue


class RateLimiter(Protocol):
    rate: float

    def reserve(self, n: int) -> float:
        """Reserve `n` consecutive slots; returns seconds from now until the first one (≥ 0)."""
        ...


class LocalRateLimiter:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tat = 0.0
        self._lock = threading.Lock()

    def reserve(self, n: int) -> float:
        with self._lock:
            now = time.monotonic()
            start = max(self._tat, now)
            self._tat = start + n / self.rate
            return start - now


class RedisRateLimiter:
    _SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local after = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.6f', after), 'PX', math.ceil((after - now) * 1000) + 60000)
return string.format('%.6f', tat - now)
"""

    def __init__(self, client: Any, key: str, rate: float) -> None:
        self.client = client
        self.key = key
        self.rate = rate
        self._script = client.register_script(self._SCRIPT)

    def reserve(self, n: int) -> float:
        raw = self._script(keys=[self.key], args=[f"{n / self.rate:.6f}"])
        return max(0.0, float(raw.decode() if isinstance(raw, bytes) else raw))


class DatabaseRateLimiter:
    def __init__(self, factory: sessionmaker, key: str, rate: float) -> None:
        self.factory = factory
        self.key = key
        self.rate = rate

    def reserve(self, n: int) -> float:
        for attempt in range(20):
            try:
                with self.factory.begin() as session:
                    # A no-op UPDATE first: it takes the lock before we read, so two reservations never
                    # read the same TAT (SQLite has no SELECT … FOR UPDATE).
                    session.execute(
                        update(KeyValue).where(KeyValue.key == self.key).values(value=KeyValue.value)
                    )
                    row = session.get(KeyValue, self.key, with_for_update=True)
                    now = time.time()
                    tat = max(float(row.value), now) if row is not None else now
                    value = f"{tat + n / self.rate:.6f}"
                    if row is None:
                        session.add(KeyValue(key=self.key, value=value))
                    else:
                        row.value = value
                return max(0.0, tat - now)
            except (IntegrityError, OperationalError):  # a racing first insert, or SQLite busy
                time.sleep(0.01 * (attempt + 1))
        raise RuntimeError("could not reserve a send slot")


class Pacer:
    """Hands out send slots to this process's threads, reserving them from the shared limiter in chunks."""

    def __init__(self, limiter: RateLimiter | None, chunk: int | None = None) -> None:
        self.limiter = limiter
        rate = limiter.rate if limiter else 0.0
        # About 50 ms worth of slots per reservation: few round trips, little waste when a worker stops.
        self.chunk = chunk or max(1, min(50, int(rate * 0.05)))
        self._slots: deque[float] = deque()
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event | None = None) -> bool:
        """Block until this caller's slot; False if `stop` was set meanwhile."""
        if self.limiter is None or self.limiter.rate <= 0:
            return not (stop and stop.is_set())
        with self._lock:
            if not self._slots:
                delay = self.limiter.reserve(self.chunk)
                first = time.monotonic() + delay
                interval = 1.0 / self.limiter.rate
                self._slots.extend(first + i * interval for i in range(self.chunk))
            slot = self._slots.popleft()
        pause = slot - time.monotonic()
        if pause > 0:
            if stop is not None:
                return not stop.wait(pause)
            time.sleep(pause)
        return not (stop and stop.is_set())


def make_limiter(
    rate: float, redis_url: str | None, factory: sessionmaker | None, prefix: str
) -> RateLimiter | None:
    """The shared limiter for this deployment (None when the rate is unlimited, i.e. ≤ 0)."""
    if rate <= 0:
        return None
    if redis_url:
        from bureau.wechat.store import redis_client

        return RedisRateLimiter(redis_client(redis_url), prefix + "rate", rate)
    if factory is not None:
        return DatabaseRateLimiter(factory, prefix + "rate", rate)
    return LocalRateLimiter(rate)
