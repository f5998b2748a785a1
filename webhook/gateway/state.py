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
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bureau import secrets_box
from bureau.db import run_transaction
from bureau.models import MessageLog, ProcessedMessage
from bureau.services.users import CHOICES_KEY_PREFIX
from bureau.timeutil import utcnow
from bureau.wechat.store import FallbackStore, RedisUnavailable, SharedStore, guard_for

PROCESSING = "__processing__"
LATE = "__late__"
DONE = "__done__"
CLAIM_TTL_SECONDS = 2 * 24 * 3600
CHOICES_TTL_SECONDS = 30 * 60

# A push's first round trip: claim it and, for a new user message, count it for the rate limit and read
# the user's pending choices. KEYS: claim, choices[, rate]; ARGV: PROCESSING, claim TTL, rate TTL.
# Returns {1, pending choices or false, count or false} when claimed, else {0, the claim's value}.
_ARRIVE = """
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return {0, redis.call('get', KEYS[1])}
end
local count = false
if #KEYS == 3 then
  count = redis.call('incr', KEYS[3])
  redis.call('expire', KEYS[3], ARGV[3])
end
return {1, redis.call('get', KEYS[2]), count}
"""
RATE_KEY_TTL_SECONDS = 120
# A push's last round trip: the claim's compare-and-set, and the user's pending choices written (or
# deleted: ARGV[4] empty) whatever the claim's fate, since the answer reaches the user either way.
# KEYS: claim, choices; ARGV: old, new, claim TTL, choices JSON or '', choices TTL in ms.
_FINISH_WITH = """
local done = 0
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3])
  done = 1
end
if ARGV[4] == '' then
  redis.call('del', KEYS[2])
else
  redis.call('set', KEYS[2], ARGV[4], 'PX', ARGV[5])
end
return done
"""

_CAS = "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1 end return 0"


@dataclass(frozen=True)
class Arrival:
    """What the first round trip of a push learned: the claim (None: this call claimed it, else the
    claim's value) and, when asked for and Redis answered, the user's message count this minute and
    their pending choices (None: not read here; ask RateLimiter / PendingChoices)."""

    existing: str | None
    rate_count: int | None = None
    choices: list[tuple[str, str]] | None = None


class Claims:
    """Dedupe claims (see the module docstring)."""

    def __init__(self, session_factory: sessionmaker, redis: Any | None = None) -> None:
        self.factory = session_factory
        self.redis = redis
        self.guard = guard_for(redis) if redis is not None else None
        # EVALSHA: the scripts' text crosses the wire (and is hashed by Redis) once, not on every push.
        self._scripts = (
            {
                name: redis.register_script(text)
                for name, text in (("arrive", _ARRIVE), ("cas", _CAS), ("finish", _FINISH_WITH))
            }
            if redis is not None
            else {}
        )
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

    def arrive(
        self, key: str, openid: str, *, choices_key: str | None = None, rate_key: str | None = None
    ) -> Arrival:
        """`claim`, and for a new user message in the same Redis round trip (one script) the rate count
        (`rate_key`, RateLimiter.redis_key) and the pending choices (`choices_key`,
        PendingChoices.redis_key). Without those keys, or with Redis down, it is `claim` alone."""
        if self.guard is None or choices_key is None:
            return Arrival(self.claim(key, openid))
        keys = ["zhanyou:msg:" + key, choices_key] + ([rate_key] if rate_key else [])

        def run(client: Any) -> Any:
            args = [PROCESSING, CLAIM_TTL_SECONDS, RATE_KEY_TTL_SECONDS]
            return self._scripts["arrive"](keys=keys, args=args, client=client)

        try:
            result = self.guard.call(run)
        except RedisUnavailable:
            return Arrival(self.claim(key, openid))

        # Lua's false comes back as None (RESP2) or False (RESP3).
        def text(value: Any) -> str | None:
            if isinstance(value, bytes):
                return value.decode("utf-8")
            return value if isinstance(value, str) else None

        if not int(result[0]):
            return Arrival(text(result[1]) or PROCESSING)
        count = result[2] if len(result) > 2 else None
        return Arrival(
            None,
            rate_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
            choices=PendingChoices.parse(text(result[1])),
        )

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
                        self._scripts["cas"](
                            keys=["zhanyou:msg:" + key], args=[old, new, CLAIM_TTL_SECONDS], client=client
                        )
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

    def finish_with(
        self, key: str, reply: str | None, write: tuple[str, str | None, int]
    ) -> tuple[bool, bool]:
        """`finish`, and `write` (a Redis key, its value or None to delete it, a TTL in seconds; see
        PendingChoices.redis_write) in the same round trip when the claim is in Redis.
        Returns (finished, written); when not written the caller stores it another way."""
        if self.guard is not None and key not in self._in_database:
            other, value, ttl = write

            def run(client: Any) -> bool:
                args = [PROCESSING, reply or DONE, CLAIM_TTL_SECONDS, value or "", int(ttl * 1000)]
                return bool(
                    self._scripts["finish"](keys=["zhanyou:msg:" + key, other], args=args, client=client)
                )

            try:
                return self.guard.call(run), True
            except RedisUnavailable:
                pass
        return self.finish(key, reply), False

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

    def redis_key(self, openid: str) -> str | None:
        """This minute's counter of `openid` in Redis (None: no limit, or no Redis)."""
        if self.limit <= 0 or self.guard is None:
            return None
        return f"zhanyou:rate:{openid}:{int(time.time() // 60)}"

    def allow(self, openid: str, counted: int | None = None) -> bool:
        """Count this message; False once the user is over the limit. `counted`: the count Claims.arrive
        already made in Redis for this message (then nothing is counted again)."""
        if self.limit <= 0:
            return True
        if counted is not None:
            return counted <= self.limit
        key = self.redis_key(openid)
        if self.guard is not None and key is not None:

            def count_in_redis(client: Any) -> int:
                pipe = client.pipeline()
                pipe.incr(key)
                pipe.expire(key, RATE_KEY_TTL_SECONDS)
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

    def redis_key(self, openid: str) -> str | None:
        """The Redis key holding `openid`'s choices, when they live in Redis (for Claims.arrive)."""
        if isinstance(self.store, FallbackStore):
            return self.store.primary.prefix + self._key(openid)
        return None

    def redis_write(self, openid: str, choices: list[tuple[str, str]]) -> tuple[str, str | None, int] | None:
        """What `remember` would write, for Claims.finish_with: (Redis key, JSON or None to delete, TTL);
        None when the choices do not live in Redis."""
        key = self.redis_key(openid)
        if key is None:
            return None
        return key, (json.dumps(choices, ensure_ascii=False) if choices else None), CHOICES_TTL_SECONDS

    def get(self, openid: str) -> list[tuple[str, str]]:
        return self.parse(self.store.get(self._key(openid)))

    @staticmethod
    def parse(raw: str | None) -> list[tuple[str, str]]:
        """Stored choices → [(title, payload)]; [] for nothing or anything unreadable."""
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
