"""State shared by every webhook process: the dedupe claims, the rate limit, the pending choices.

Redis when REDIS_URL is set, else the database (`processed_messages`, `message_log`, `key_values`).
While Redis is down (see `bureau.wechat.store.RedisGuard`) each of them uses the database instead.

Dedupe claims. The first process to see a MsgId (events: OpenID + CreateTime + event) claims it and is
the only one ever to call Rasa for it. The claim's value walks PROCESSING → (passive reply XML | DONE),
or PROCESSING → LATE when a WeChat retry arrives while the first is still working. Each step is one
compare-and-set, so between processes exactly one of these holds:
- the retry comes after the first stored its passive reply: WeChat dropped the first connection before
  the reply arrived (that is why it retried), so the retry gets the same reply again — the user sees it
  once, since WeChat shows only the answer of the try it accepted;
- the retry comes while the first is working: the retry marks LATE and answers `success`; the first then
  fails to store its reply (the connection it would answer on is gone) and sends the answer through the
  customer-service API instead. Rasa is never called twice and exactly one answer reaches the user.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bureau import secrets_box
from bureau.db import run_transaction
from bureau.models import MessageLog, ProcessedMessage
from bureau.services.users import CHOICES_KEY_PREFIX
from bureau.timeutil import utcnow
from bureau.wechat.store import RedisUnavailable, SharedStore, guard_for

PROCESSING = "__processing__"
LATE = "__late__"
DONE = "__done__"
CLAIM_TTL_SECONDS = 2 * 24 * 3600
CHOICES_TTL_SECONDS = 30 * 60

_CAS = "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1 end return 0"


class Claims:
    """Dedupe claims (see the module docstring)."""

    def __init__(self, session_factory: sessionmaker, redis: Any | None = None) -> None:
        self.factory = session_factory
        self.redis = redis
        self.guard = guard_for(redis) if redis is not None else None
        self._last_prune = 0.0
        self._prune_lock = threading.Lock()
        # Keys this process claimed in the database because Redis was down: their later steps go there too.
        self._in_database: dict[str, float] = {}
        self._in_database_lock = threading.Lock()

    @staticmethod
    def _redis_claim(client: Any, key: str) -> str | None:
        rkey = "zhanyou:msg:" + key
        if client.set(rkey, PROCESSING, nx=True, ex=CLAIM_TTL_SECONDS):
            return None
        value = client.get(rkey)
        return value.decode("utf-8") if isinstance(value, bytes) else (value or PROCESSING)

    def _remember_database_claim(self, key: str) -> None:
        now = time.monotonic()
        with self._in_database_lock:
            if len(self._in_database) > 1000:  # a step follows its claim within seconds
                for old in [k for k, at in self._in_database.items() if now - at > 600]:
                    del self._in_database[old]
            self._in_database[key] = now

    def claim(self, key: str, openid: str) -> str | None:
        """None when this call claimed the message; otherwise its current value (PROCESSING, LATE, DONE, XML).

        Redis down: the claim is made in the database instead (degraded: a WeChat retry that reaches a
        process after Redis came back could be taken for a new message)."""
        if self.guard is not None:
            try:
                return self.guard.call(lambda client: self._redis_claim(client, key))
            except RedisUnavailable:
                self._remember_database_claim(key)
        self._prune()
        tag = secrets_box.openid_tag(openid)[:16]
        try:
            run_transaction(
                self.factory,
                lambda session: session.add(ProcessedMessage(key=key, openid_tag=tag, reply=PROCESSING)),
                what="claim",
            )
            return None
        except IntegrityError:
            with self.factory.begin() as session:
                row = session.get(ProcessedMessage, key)
                return (row.reply if row is not None else None) or PROCESSING

    def _swap(self, key: str, old: str, new: str) -> bool:
        if self.guard is not None and key not in self._in_database:
            try:
                return self.guard.call(
                    lambda client: bool(
                        client.eval(_CAS, 1, "zhanyou:msg:" + key, old, new, CLAIM_TTL_SECONDS)
                    )
                )
            except RedisUnavailable:
                # Claimed in Redis, which is gone now: the database knows no such claim, so `finish`
                # says False and the answer goes out through the customer-service API — still once.
                pass

        def swap(session: Session) -> bool:
            done = session.execute(
                update(ProcessedMessage)
                .where(ProcessedMessage.key == key, ProcessedMessage.reply == old)
                .values(reply=new)
            )
            return bool(getattr(done, "rowcount", 0))

        return run_transaction(self.factory, swap, what="claim_swap")

    def finish(self, key: str, reply: str | None) -> bool:
        """Store the passive reply (None: answered otherwise); False when a retry marked it LATE meanwhile."""
        return self._swap(key, PROCESSING, reply or DONE)

    def mark_late(self, key: str) -> bool:
        """A retry while the first is still working: True when it is now LATE (the first will push)."""
        return self._swap(key, PROCESSING, LATE)

    def _prune(self) -> None:
        # Old claims serve no retry (WeChat retries within ~15 s); drop them now and then.
        now = time.monotonic()
        if now - self._last_prune < 600 or not self._prune_lock.acquire(blocking=False):
            return
        try:
            self._last_prune = now
            with self.factory.begin() as session:
                session.execute(
                    delete(ProcessedMessage).where(
                        ProcessedMessage.received_at < utcnow() - dt.timedelta(seconds=CLAIM_TTL_SECONDS)
                    )
                )
        finally:
            self._prune_lock.release()


class RateLimiter:
    """At most `limit` user messages per OpenID per minute (Redis counter, else `message_log` rows)."""

    def __init__(self, session_factory: sessionmaker, limit: int, redis: Any | None = None) -> None:
        self.factory = session_factory
        self.limit = limit
        self.redis = redis
        self.guard = guard_for(redis) if redis is not None else None

    def allow(self, openid: str) -> bool:
        """Count this message; False once the user is over the limit."""
        if self.limit <= 0:
            return True
        if self.guard is not None:
            key = f"zhanyou:rate:{openid}:{int(time.time() // 60)}"

            def count_in_redis(client: Any) -> int:
                pipe = client.pipeline()
                pipe.incr(key)
                pipe.expire(key, 120)
                return int(pipe.execute()[0])

            try:
                return self.guard.call(count_in_redis) <= self.limit
            except RedisUnavailable:
                pass  # Redis down: count the user's logged messages instead
        since = utcnow() - dt.timedelta(seconds=60)
        with self.factory.begin() as session:
            count = session.scalar(
                select(func.count())
                .select_from(MessageLog)
                .where(
                    MessageLog.openid == openid, MessageLog.direction == "in", MessageLog.created_at >= since
                )
            )
        # The current message is logged before this check, hence `<=`.
        return int(count or 0) <= self.limit


class PendingChoices:
    """The numbered choices last shown to a user: "1"/"2"/the tapped title → the button payload."""

    def __init__(self, store: SharedStore) -> None:
        self.store = store

    @staticmethod
    def _key(openid: str) -> str:
        return CHOICES_KEY_PREFIX + openid

    def remember(self, openid: str, choices: list[tuple[str, str]]) -> None:
        if choices:
            self.store.set(
                self._key(openid), json.dumps(choices, ensure_ascii=False), ttl=CHOICES_TTL_SECONDS
            )
        else:
            self.clear(openid)

    def get(self, openid: str) -> list[tuple[str, str]]:
        raw = self.store.get(self._key(openid))
        if not raw:
            return []
        try:
            return [(str(t), str(p)) for t, p in json.loads(raw)]
        except (ValueError, TypeError):
            return []

    def clear(self, openid: str) -> None:
        self.store.delete(self._key(openid))


def prune_claims_now(session_factory: sessionmaker) -> int:
    """Delete every expired claim (maintenance); returns how many."""
    with session_factory.begin() as session:
        result = session.execute(
            delete(ProcessedMessage).where(
                ProcessedMessage.received_at < utcnow() - dt.timedelta(seconds=CLAIM_TTL_SECONDS)
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)
