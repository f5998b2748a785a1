"""Small shared state for every process: Redis when REDIS_URL is set, else the `key_values` table.

Used for the shared access token (and its refresh lock) and the gateway's per-user pending choices.
Each call is its own short unit of work, so it is safe from any thread or process.

Redis down is a degraded mode, not an outage: `RedisGuard` turns any Redis failure into `RedisUnavailable`
and then, for a few seconds, fails at once without waiting on the network, and `FallbackStore` (what
`make_store` returns with a Redis URL) answers from the database meanwhile. Values written during the
outage live in the database only; when Redis returns they are simply not seen again (a user's numbered
choices, a token that is fetched again).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from bureau.models import KeyValue
from bureau.timeutil import utcnow

logger = logging.getLogger("zhanyou.redis")
T = TypeVar("T")


class SharedStore(Protocol):
    """What both backends offer; `ttl` is seconds (None = no expiry)."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, ttl: float | None = None) -> None: ...

    def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        """Set only when the key is absent or expired; True when this call set it."""
        ...

    def delete(self, key: str) -> None: ...

    def delete_if(self, key: str, value: str) -> bool:
        """Delete only when the key still holds `value` (releasing a lock one owns)."""
        ...


class RedisStore:
    """SharedStore on Redis (SET NX PX, a Lua compare-and-delete)."""

    _DELETE_IF = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
    )

    def __init__(self, client: Any, prefix: str = "zhanyou:") -> None:
        self.client = client
        self.prefix = prefix

    def get(self, key: str) -> str | None:
        value = self.client.get(self.prefix + key)
        return value.decode("utf-8") if isinstance(value, bytes) else value

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        self.client.set(self.prefix + key, value, px=int(ttl * 1000) if ttl else None)

    def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        return bool(self.client.set(self.prefix + key, value, nx=True, px=int(ttl * 1000) if ttl else None))

    def delete(self, key: str) -> None:
        self.client.delete(self.prefix + key)

    def delete_if(self, key: str, value: str) -> bool:
        return bool(self.client.eval(self._DELETE_IF, 1, self.prefix + key, value))


class DatabaseStore:
    """SharedStore on the `key_values` table; expiry is checked on read, expired rows are overwritten."""

    def __init__(self, session_factory: sessionmaker) -> None:
        self.factory = session_factory

    @staticmethod
    def _expiry(ttl: float | None) -> dt.datetime | None:
        return utcnow() + dt.timedelta(seconds=ttl) if ttl else None

    def get(self, key: str) -> str | None:
        with self.factory.begin() as session:
            row = session.get(KeyValue, key)
            if row is None or (row.expires_at is not None and row.expires_at <= utcnow()):
                return None
            return row.value

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        expires = self._expiry(ttl)
        for _ in range(3):  # an insert may race with another process's insert of the same key
            try:
                with self.factory.begin() as session:
                    done = session.execute(
                        update(KeyValue).where(KeyValue.key == key).values(value=value, expires_at=expires)
                    )
                    if not getattr(done, "rowcount", 0):
                        session.add(KeyValue(key=key, value=value, expires_at=expires))
                return
            except IntegrityError:
                time.sleep(0.01)
        raise RuntimeError(f"could not store {key}")

    def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        expires = self._expiry(ttl)
        try:
            with self.factory.begin() as session:
                session.add(KeyValue(key=key, value=value, expires_at=expires))
            return True
        except IntegrityError:
            pass
        # Present: take it over only if it has expired (one conditional UPDATE decides between racers).
        with self.factory.begin() as session:
            done = session.execute(
                update(KeyValue)
                .where(KeyValue.key == key, KeyValue.expires_at.is_not(None), KeyValue.expires_at <= utcnow())
                .values(value=value, expires_at=expires)
            )
            return bool(getattr(done, "rowcount", 0))

    def delete(self, key: str) -> None:
        with self.factory.begin() as session:
            session.execute(delete(KeyValue).where(KeyValue.key == key))

    def delete_if(self, key: str, value: str) -> bool:
        with self.factory.begin() as session:
            done = session.execute(delete(KeyValue).where(KeyValue.key == key, KeyValue.value == value))
            return bool(getattr(done, "rowcount", 0))

    def keys_with_prefix(self, prefix: str) -> list[str]:
        """For tests and maintenance."""
        with self.factory.begin() as session:
            return list(session.scalars(select(KeyValue.key).where(KeyValue.key.startswith(prefix))))


class RedisUnavailable(Exception):
    """Redis did not answer (or is known to be down right now): use the fallback."""


def _cooldown_from_env() -> float:
    try:
        return max(0.0, float(os.environ.get("REDIS_COOLDOWN_SECONDS", "5")))
    except ValueError:
        return 5.0


class RedisGuard:
    """Calls into one Redis client that fail fast while it is down (a small circuit breaker).

    The first failure costs at most the client's socket timeout; for `cooldown` seconds after it
    (`REDIS_COOLDOWN_SECONDS`, default 5) every call raises `RedisUnavailable` at once, then the next
    call tries Redis again.
    """

    def __init__(self, client: Any, cooldown: float | None = None) -> None:
        self.client = client
        self.cooldown = cooldown if cooldown is not None else _cooldown_from_env()
        self._down_until = 0.0
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    def call(self, operation: Callable[[Any], T]) -> T:
        if self.down:
            from bureau import metrics

            metrics.DEGRADED.labels("redis", "fallback").inc()
            raise RedisUnavailable("redis marked down")
        import redis

        try:
            result = operation(self.client)
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                was_up = not self.down
                self._down_until = time.monotonic() + self.cooldown
            from bureau import metrics

            metrics.DEGRADED.labels("redis", "fallback").inc()
            if was_up:
                logger.warning(
                    "event=redis_down fallback=database error=%s", " ".join(str(exc).split())[:160]
                )
            raise RedisUnavailable(str(exc)) from exc
        if self._down_until:
            with self._lock:
                if self._down_until and not self.down:
                    self._down_until = 0.0
                    logger.warning("event=redis_back")
        return result


_guards: dict[int, RedisGuard] = {}
_guards_lock = threading.Lock()


def guard_for(client: Any) -> RedisGuard:
    """The one guard of `client` in this process (so every user of a client sees it down together)."""
    with _guards_lock:
        guard = _guards.get(id(client))
        if guard is None or guard.client is not client:
            guard = _guards[id(client)] = RedisGuard(client)
        return guard


class FallbackStore:
    """SharedStore on Redis, answered by the database while Redis is unavailable."""

    def __init__(self, primary: RedisStore, fallback: DatabaseStore) -> None:
        self.primary = primary
        self.fallback = fallback
        self.guard = guard_for(primary.client)

    def _either(self, on_redis: Callable[[RedisStore], T], on_database: Callable[[DatabaseStore], T]) -> T:
        try:
            return self.guard.call(lambda _client: on_redis(self.primary))
        except RedisUnavailable:
            return on_database(self.fallback)

    def get(self, key: str) -> str | None:
        return self._either(lambda s: s.get(key), lambda s: s.get(key))

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        self._either(lambda s: s.set(key, value, ttl), lambda s: s.set(key, value, ttl))

    def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        return self._either(lambda s: s.add(key, value, ttl), lambda s: s.add(key, value, ttl))

    def delete(self, key: str) -> None:
        self._either(lambda s: s.delete(key), lambda s: s.delete(key))

    def delete_if(self, key: str, value: str) -> bool:
        return self._either(lambda s: s.delete_if(key, value), lambda s: s.delete_if(key, value))


_redis_clients: dict[str, Any] = {}


def redis_client(url: str) -> Any:
    """A shared Redis client per URL, created on first use."""
    client = _redis_clients.get(url)
    if client is None:
        import redis

        client = _redis_clients[url] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return client


def make_store(redis_url: str | None = None, database_url: str | None = None) -> SharedStore:
    """Redis when `redis_url` is given (the database while Redis is down), else the database at
    `database_url` (default DATABASE_URL)."""
    from bureau.db import get_session_factory

    database = DatabaseStore(get_session_factory(database_url))
    if redis_url:
        return FallbackStore(RedisStore(redis_client(redis_url)), database)
    return database
