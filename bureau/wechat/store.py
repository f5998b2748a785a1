"""Small shared state for every process: Redis when REDIS_URL is set, else the `key_values` table.

Used for the shared access token (and its refresh lock) and the gateway's per-user pending choices.
Each call is its own short unit of work, so it is safe from any thread or process.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from bureau.models import KeyValue
from bureau.timeutil import utcnow


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


_redis_clients: dict[str, Any] = {}


def redis_client(url: str) -> Any:
    """A shared Redis client per URL, created on first use."""
    client = _redis_clients.get(url)
    if client is None:
        import redis

        client = _redis_clients[url] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return client


def make_store(redis_url: str | None = None, database_url: str | None = None) -> SharedStore:
    """Redis when `redis_url` is given, else the database at `database_url` (default DATABASE_URL)."""
    if redis_url:
        return RedisStore(redis_client(redis_url))
    from bureau.db import get_session_factory

    return DatabaseStore(get_session_factory(database_url))
