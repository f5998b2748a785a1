"""The sending loop: claim a batch from the ledger, choose each recipient's channel, send at the shared
rate, record every outcome. One `Broadcaster.run` is what a Celery task (or the in-process worker) does.

Channel per recipient: a customer-service message when the user wrote to us within the 48-hour window
(less a safety margin) and we have not used up our share of the per-message quota; otherwise the
template message configured for the campaign's kind. 45015 / 45047 on a customer-service message fall
back to the template at once; 43004 marks the user unsubscribed and skips them; -1 / 45009 / network
failures before sending are retried later with exponential backoff; permanent errors are recorded.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import string
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from sqlalchemy.orm import sessionmaker

from bureau.broadcast import ledger
from bureau.broadcast.config import BroadcastConfig
from bureau.broadcast.ratelimit import Pacer, RateLimiter
from bureau.models import DeliveryStatus
from bureau.timeutil import utcnow
from bureau.wechat import WeChatApiError, WeChatClient

logger = logging.getLogger("zhanyou.broadcast")

CUSTOM = "custom"
TEMPLATE = "template"
FALLBACK_CODES = frozenset({45015, 45047})  # outside the window / quota used up → template message
TEXT_LIMIT_BYTES = 2048


def worker_id() -> str:
    """host:pid:random — the pid lets a sweep on the same host see that a claim's owner is dead."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class BroadcastClient(WeChatClient):
    """The gateway's client, keeping the shared access token in memory for a few seconds.

    Reading the shared token store before every request would put a Redis or database round trip
    between recording an attempt and sending it, widening the window in which a killed worker leaves
    an unknown outcome. A refused token still goes through the shared refresh (once for everybody).
    """

    def __init__(self, *args: Any, cache_seconds: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cache_seconds = cache_seconds
        self._cached: tuple[str, float] | None = None
        self._cache_lock = threading.Lock()

    def access_token(self) -> str:
        cached = self._cached
        if cached and cached[1] > time.monotonic():
            return cached[0]
        with self._cache_lock:
            value = super().access_token()
            self._cached = (value, time.monotonic() + self._cache_seconds)
            return value

    def _refresh(self, stale: str | None) -> str:
        self._cached = None
        return super()._refresh(stale)


class NotOurs(Exception):
    """The delivery's claim was lost (paused, cancelled, expired) just before sending: do not send."""


_local = threading.local()


class MarkingAdapter(HTTPAdapter):
    """Runs the thread's pending "attempt" hook right before a message request goes on the wire.

    Recording the attempt here rather than before calling the client leaves only urllib3's socket write
    between "the ledger says a request may have gone out" and "it has": the window in which a killed
    worker loses a message is as small as it can be without WeChat offering idempotent sends.
    """

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        hook = getattr(_local, "before_send", None)
        if hook is not None and "/message/" in str(request.url):
            _local.before_send = None
            hook()  # raises NotOurs when the claim is gone
        return super().send(request, *args, **kwargs)


def make_client(threads: int) -> BroadcastClient:
    """A client with a connection pool sized for the worker's threads; retries are left to the ledger."""
    http = requests.Session()
    adapter = MarkingAdapter(pool_connections=2, pool_maxsize=max(threads, 2))
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return BroadcastClient(http=http, max_attempts=1)


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def template_data(kind: str, payload: dict[str, Any], config: BroadcastConfig) -> dict[str, str]:
    """The template message's fields for a campaign payload (empty values left out)."""
    if kind == "job":
        values = _Blank(payload.get("fields") or {})
        mapping = config.template_fields.get("job", {})
    else:
        given = {str(k): str(v) for k, v in (payload.get("template_fields") or {}).items()}
        values = _Blank({"first": payload.get("text", ""), "text": payload.get("text", ""), **given})
        mapping = config.template_fields.get(kind) or (
            {k: "{" + k + "}" for k in given} if given else config.template_fields["_notification"]
        )
    data: dict[str, str] = {}
    for name, pattern in mapping.items():
        try:
            value = string.Formatter().vformat(pattern, (), values)
        except (KeyError, IndexError, ValueError):
            value = pattern
        if value.strip():
            data[name] = value
    return data


class _OutcomeWriter:
    """Writes successful sends in batches (one commit per ~50 ms instead of one per message).

    A send recorded here but not yet written when the worker dies stays `sending` with its attempt
    marked, and the sweep reconciles it as sent (`unconfirmed`) — which it was: nothing is re-sent.
    Failures and retries are written at once, since their row must not be taken for a send.
    """

    def __init__(
        self, factory: sessionmaker, worker: str, interval: float = 0.05, max_batch: int = 100
    ) -> None:
        self.factory = factory
        self.worker = worker
        self.interval = interval
        self.max_batch = max_batch
        self._rows: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="broadcast-outcomes", daemon=True)
        self._thread.start()

    def add(self, row: dict[str, Any]) -> None:
        with self._cond:
            self._rows.append(row)
            if len(self._rows) >= self.max_batch:
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._rows and not self._closed:
                    self._cond.wait(timeout=self.interval)
                rows, self._rows = self._rows, []
                closed = self._closed
            if rows:
                self._flush(rows)
            if closed and not rows:
                return

    def _flush(self, rows: list[dict[str, Any]]) -> None:
        for attempt in range(5):
            try:
                with self.factory.begin() as session:
                    ledger.record_sent_many(session, self.worker, rows)
                return
            except Exception:
                logger.warning("event=broadcast_outcome_write_retry rows=%s", len(rows), exc_info=True)
                time.sleep(0.2 * (attempt + 1))
        logger.error("event=broadcast_outcomes_unwritten rows=%s (the sweep reconciles them)", len(rows))


@dataclass
class RunStats:
    claimed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    stopped_by_budget: bool = False
    seconds: float = 0.0


class Broadcaster:
    """Sends claimed deliveries; any number of these, in any number of processes, share the ledger."""

    def __init__(
        self,
        factory: sessionmaker,
        config: BroadcastConfig,
        limiter: RateLimiter | None,
        client: WeChatClient | None = None,
        worker: str | None = None,
    ) -> None:
        self.factory = factory
        self.config = config
        self.pacer = Pacer(limiter)
        self.client = client or make_client(config.threads)
        self.worker = worker or worker_id()
        self._writer: _OutcomeWriter | None = None

    # ------------------------------------------------------------ the loop

    def run(
        self,
        campaign_id: int | None = None,
        budget_seconds: float | None = None,
        stop: threading.Event | None = None,
    ) -> RunStats:
        """Send until nothing is due, the time budget is spent, or `stop` is set."""
        stats = RunStats()
        started = time.monotonic()
        deadline = started + (budget_seconds if budget_seconds is not None else self.config.task_seconds)
        stop = stop or threading.Event()
        batch = max(1, self.config.batch_size)
        threads = max(1, self.config.threads)
        in_flight: set[Future[str]] = set()
        self._writer = _OutcomeWriter(self.factory, self.worker)
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="broadcast") as pool:
            try:
                while not stop.is_set():
                    if time.monotonic() >= deadline:
                        stats.stopped_by_budget = True
                        break
                    # Keep about two batches in the pipeline so threads never idle while we claim.
                    while len(in_flight) > batch:
                        done, in_flight = wait(in_flight, timeout=1.0, return_when=FIRST_COMPLETED)
                        self._collect(done, stats)
                    with self.factory.begin() as session:
                        claimed = ledger.claim_batch(session, self.worker, batch, campaign_id)
                    if not claimed:
                        break
                    stats.claimed += len(claimed)
                    in_flight |= {pool.submit(self._deliver, c, stop) for c in claimed}
            finally:
                while in_flight:
                    done, in_flight = wait(in_flight, timeout=1.0)
                    self._collect(done, stats)
                writer, self._writer = self._writer, None
                writer.close()
        stats.seconds = time.monotonic() - started
        return stats

    @staticmethod
    def _collect(done: set[Future[str]], stats: RunStats) -> None:
        for future in done:
            try:
                stats.outcomes[future.result()] += 1
            except Exception:  # recorded by _deliver's caller as a crash of that one delivery
                logger.exception("event=broadcast_delivery_crashed")
                stats.outcomes["crashed"] += 1

    # ------------------------------------------------------------ one delivery

    def _in_window(self, c: ledger.Claimed, now: dt.datetime) -> bool:
        if c.last_interaction_at is None:
            return False
        window = dt.timedelta(hours=self.config.window_hours) - dt.timedelta(
            minutes=self.config.window_margin_minutes
        )
        return now - c.last_interaction_at < window

    def choose_channel(self, c: ledger.Claimed, now: dt.datetime | None = None) -> str:
        """Customer-service message inside the window with quota left, else the template message."""
        text = str(c.payload.get("text") or "")
        fits = bool(text.strip()) and len(text.encode("utf-8")) <= TEXT_LIMIT_BYTES
        if fits and self._in_window(c, now or utcnow()) and c.custom_used < self.config.cs_quota:
            return CUSTOM
        return TEMPLATE

    def _mark(self, c: ledger.Claimed, channel: str) -> None:
        with self.factory.begin() as session:
            if not ledger.mark_attempt(session, c.id, self.worker, channel):
                raise NotOurs(c.id)

    def _deliver(self, c: ledger.Claimed, stop: threading.Event) -> str:
        if not c.subscribed:
            return self._finish(c, DeliveryStatus.SKIPPED, reason="unsubscribed")
        channel = self.choose_channel(c)
        if not self.pacer.wait(stop):
            self._release(c)
            return "released"
        attempt = c.attempts + 1
        late = isinstance(getattr(self.client, "http", None), requests.Session) and isinstance(
            self.client.http.get_adapter(self.client.api_base), MarkingAdapter
        )
        try:
            if late:
                _local.before_send = lambda: self._mark(c, channel)
            else:
                self._mark(c, channel)
            if channel == CUSTOM:
                try:
                    self.client.send_text(c.openid, str(c.payload["text"]))
                    return self._finish(c, DeliveryStatus.SENT, channel=CUSTOM)
                except WeChatApiError as err:
                    if err.errcode not in FALLBACK_CODES:
                        raise
                    logger.info("event=broadcast_fallback delivery=%s errcode=%s", c.id, err.errcode)
                    channel = TEMPLATE
                    with self.factory.begin() as session:
                        ledger.set_channel(session, c.id, self.worker, TEMPLATE)
                    if not self.pacer.wait(stop):
                        return self._finish(
                            c, DeliveryStatus.FAILED, channel=CUSTOM, code=err.errcode, reason=err.errmsg
                        )
            msgid = self.client.send_template(
                c.openid,
                self.config.template_id(c.kind),
                template_data(c.kind, c.payload, self.config),
                url=c.payload.get("url") or self.config.template_url,
            )
            return self._finish(c, DeliveryStatus.SENT, channel=TEMPLATE, msgid=str(msgid) if msgid else None)
        except NotOurs:  # paused, cancelled, or our claim expired and someone else has it
            self._release(c)
            return "released"
        except WeChatApiError as err:
            return self._handle_error(c, channel, attempt, err)
        except Exception as exc:  # a bug or bad data must not stall the campaign: record it
            logger.exception("event=broadcast_send_crashed delivery=%s", c.id)
            return self._finish(
                c, DeliveryStatus.FAILED, channel=channel, reason=f"error: {type(exc).__name__}"
            )
        finally:
            _local.before_send = None

    def _handle_error(self, c: ledger.Claimed, channel: str, attempt: int, err: WeChatApiError) -> str:
        kind = err.kind
        if err.errcode == 43004:
            with self.factory.begin() as session:
                ledger.mark_unsubscribed(session, c.openid)
                ledger.record_outcome(
                    session, c.id, self.worker, DeliveryStatus.SKIPPED, channel, 43004, "unsubscribed"
                )
            return "skipped"
        if kind == "unknown":
            # The request may have reached WeChat: not re-sent blindly. A template message waits for its
            # TEMPLATESENDJOBFINISH (ledger.record_template_event) and is sent again only if none comes
            # (ledger.expire_claims); a customer-service message has no receipt: `unconfirmed`.
            if channel == TEMPLATE and self.config.template_grace_seconds > 0:
                logger.warning("event=broadcast_unknown_outcome delivery=%s channel=template", c.id)
                return "unknown"
            return self._finish(
                c, DeliveryStatus.SENT, channel=channel, code=err.errcode, reason=ledger.UNCONFIRMED
            )
        if kind in ("retryable", "token"):
            if attempt >= self.config.max_attempts:
                return self._finish(
                    c, DeliveryStatus.FAILED, channel=channel, code=err.errcode, reason="too_many_attempts"
                )
            delay = min(self.config.backoff_max_seconds, self.config.backoff_seconds * 2 ** (attempt - 1))
            delay *= random.uniform(0.8, 1.2)  # spread retries so a busy WeChat is not hit in waves
            with self.factory.begin() as session:
                ledger.reschedule(session, c.id, self.worker, delay, err.errcode, err.errmsg or kind, attempt)
            return "retry"
        return self._finish(c, DeliveryStatus.FAILED, channel=channel, code=err.errcode, reason=err.errmsg)

    def _finish(
        self,
        c: ledger.Claimed,
        status: str,
        channel: str | None = None,
        code: int | None = None,
        reason: str | None = None,
        msgid: str | None = None,
    ) -> str:
        writer = self._writer
        if writer is not None and status == DeliveryStatus.SENT and reason is None and code is None:
            writer.add({"id": c.id, "channel": channel, "msgid": msgid, "finished_at": utcnow()})
            return status
        for attempt in range(5):  # the request went out: its result must be written, even past a busy DB
            try:
                with self.factory.begin() as session:
                    ledger.record_outcome(session, c.id, self.worker, status, channel, code, reason, msgid)
                break
            except Exception:
                if attempt == 4:
                    raise
                logger.warning("event=broadcast_record_retry delivery=%s", c.id, exc_info=True)
                time.sleep(0.2 * (attempt + 1))
        return status if reason != ledger.UNCONFIRMED else "unconfirmed"

    def _release(self, c: ledger.Claimed) -> None:
        with self.factory.begin() as session:
            ledger.release(session, self.worker, [c.id])
