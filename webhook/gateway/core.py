"""The gateway's logic, independent of Flask: one inbound push in, one passive answer out, on time.

`Gateway.handle(inbound)` answers within the reply budget: Rasa's answer rendered as a passive reply,
or — when Rasa is slower — an empty Outcome (the view replies `success`) while the turn keeps running
in the thread pool and delivers its answer through the customer-service API when it comes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Engine, Table, insert, update
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session, sessionmaker

from bureau import idcard, metrics
from bureau.db import append_returning, append_row, run_transaction
from bureau.models import CaseStatus, HandoffTicket, MessageLog
from bureau.services import users
from bureau.timeutil import utcnow
from bureau.wechat.client import WeChatApiError, WeChatClient
from webhook.gateway import texts
from webhook.gateway.logs import log_event
from webhook.gateway.nearby import nearby_answer
from webhook.gateway.rasa_client import RasaAnswer, RasaLike, RasaSilent, RasaUnavailable
from webhook.gateway.render import Outcome, choices_block, render, resolve_choice, split_utf8
from webhook.gateway.state import Arrival, PendingChoices, RateLimiter
from webhook.gateway.understanding import UnderstandingWriter

CRISIS_HOTLINE = "12356"
_MESSAGE_LOG = cast(Table, MessageLog.__table__)
# Built once: the hottest statement of the webhook (a user message in, its id back).
_LOG_IN = insert(_MESSAGE_LOG).values(direction="in").returning(_MESSAGE_LOG.c.id)
# The same, with the follower row's once-a-minute touch (users.note_message) in one statement on
# PostgreSQL: a data-modifying CTE, so the touch costs no round trips of its own. The second column
# counts the rows touched: 0 means no follower row yet (first contact without a subscribe push).
_LOG_IN_TOUCHING = sql_text(
    f"WITH touched AS ({users.NOTE_MESSAGE_SQL} RETURNING 1)"
    " INSERT INTO message_log (openid, direction, msg_type, content, unanswered, created_at)"
    " VALUES (:openid, 'in', :msg_type, :content, :unanswered, :created_at)"
    " RETURNING id, (SELECT count(*) FROM touched)"
)
TOUCH_EVERY_SECONDS = 60.0
MAX_OPENID = 64


class BadPush(ValueError):
    """A push whose fields make no sense (missing sender, unknown shape)."""


@dataclass
class Inbound:
    """One decoded push."""

    fields: dict[str, Any]
    # WeChat's 5 s run from the push, not from the Rasa call: time spent before it (a database that
    # needed a reconnect, say) comes off the reply budget.
    received: float = field(default_factory=time.monotonic)

    def _str(self, name: str) -> str:
        value = self.fields.get(name)
        return value.strip() if isinstance(value, str) else ""

    @property
    def openid(self) -> str:
        return self._str("FromUserName")

    @property
    def account(self) -> str:
        return self._str("ToUserName")

    @property
    def msg_type(self) -> str:
        return self._str("MsgType").lower()

    @property
    def event(self) -> str:
        return self._str("Event")

    @property
    def create_time(self) -> str:
        return self._str("CreateTime")

    @property
    def dedupe_key(self) -> str:
        msg_id = self._str("MsgId")
        if msg_id:
            return f"msg:{msg_id}"[:128]
        # OpenID + CreateTime as WeChat documents; event and key so two taps in one second both count.
        key = f"ev:{self.openid}:{self.create_time}:{self.event.lower()}:{self._str('EventKey')}"
        if self._str("MsgID"):  # TEMPLATESENDJOBFINISH carries the template message's id
            key += ":" + self._str("MsgID")
        return key[:128]

    def validate(self, query_openid: str | None) -> None:
        """Refuse pushes without a plausible sender or type (BadPush)."""
        if not self.openid or len(self.openid) > MAX_OPENID or not self.msg_type:
            raise BadPush("missing FromUserName or MsgType")
        if not self.create_time.isdigit():
            raise BadPush("bad CreateTime")
        if query_openid and query_openid != self.openid:
            raise BadPush("openid parameter does not match FromUserName")


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class _Turn:
    """One conversation turn running in the pool; `lock` decides between "on time" and "late"."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.late = False
        self.outcome = Outcome()


class Gateway:
    """Handles decoded pushes (see the module docstring). Thread-safe; one per app."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker,
        rasa: RasaLike,
        wechat: Callable[[], WeChatClient],
        choices: PendingChoices,
        limiter: RateLimiter,
        pool: ThreadPoolExecutor,
        budget: float,
        service_phone: str,
        rasa_timeout: float = 60.0,
        followup_delay: float = 1.0,
        understanding: UnderstandingWriter | None = None,
        append_engine: Engine | None = None,
    ) -> None:
        self.factory = session_factory
        # Where the message log is appended (bureau.db.get_append_engine); default: the session's engine.
        self.append_engine: Engine = append_engine or session_factory.kw["bind"]
        self.rasa = rasa
        self.wechat = wechat
        self.choices = choices
        self.limiter = limiter
        self.pool = pool
        self.budget = budget
        self.rasa_timeout = rasa_timeout
        self.followup_delay = followup_delay
        self.understanding = understanding or UnderstandingWriter(session_factory)
        self._touched: dict[str, float] = {}  # openid → when this process last updated the follower row
        self._touched_lock = threading.Lock()
        self.apology = texts.APOLOGY.format(phone=service_phone)
        self.error_reply = texts.ERROR_REPLY.format(phone=service_phone)

    # ------------------------------------------------------------ dispatch

    def arrival_keys(self, inbound: Inbound) -> dict[str, str | None]:
        """For Claims.arrive: the Redis keys a user message needs read with its claim (empty for events
        and media, which use neither the rate limit nor the pending choices)."""
        if inbound.msg_type not in ("text", "voice"):
            return {}
        openid = inbound.openid
        return {"choices_key": self.choices.redis_key(openid), "rate_key": self.limiter.redis_key(openid)}

    def handle(self, inbound: Inbound, arrival: Arrival | None = None) -> Outcome:
        """The answer to one push (an empty Outcome means `success`: nothing to show now). `arrival`:
        what the push's claim already read (Claims.arrive)."""
        kind = inbound.msg_type
        try:
            if kind == "text":
                return self.handle_text(inbound, inbound._str("Content"), "text", arrival)
            if kind == "voice":
                recognition = inbound._str("Recognition").rstrip("。")
                if not recognition:
                    self._log_in(inbound.openid, "voice", "（语音，未识别）")
                    return Outcome(text=texts.VOICE_UNCLEAR)
                return self.handle_text(inbound, recognition, "voice", arrival)
            if kind == "location":
                return self.handle_location(inbound)
            if kind == "event":
                return self.handle_event(inbound)
            self._log_in(inbound.openid, kind[:20], f"（{kind}）")
            return Outcome(text=texts.MEDIA_REPLY)
        except Exception:
            logging.getLogger("zhanyou.gateway").exception("event=handler_error type=%s", kind)
            return Outcome(text=self.error_reply)

    def handle_text(
        self, inbound: Inbound, text: str, msg_type: str, arrival: Arrival | None = None
    ) -> Outcome:
        openid = inbound.openid
        if not text.strip():
            self._log_in(openid, msg_type, "")
            return Outcome(text=texts.EMPTY_TEXT)
        from bureau.safety import looks_like_crisis  # lazily: bureau.safety is another feature's module

        crisis = looks_like_crisis(text)
        log_id = self._log_in(openid, msg_type, text)
        if not crisis and not self.limiter.allow(openid, arrival.rate_count if arrival else None):
            log_event("rate_limited", openid)
            return Outcome(text=texts.RATE_LIMITED)
        pending = arrival.choices if arrival is not None else None
        message = resolve_choice(text, self.choices.get(openid) if pending is None else pending)
        return self.converse(
            openid, message, user_text=text, crisis=crisis, log_id=log_id, received=inbound.received
        )

    def handle_location(self, inbound: Inbound) -> Outcome:
        openid = inbound.openid
        lat, lng = _float(inbound.fields.get("Location_X")), _float(inbound.fields.get("Location_Y"))
        label = inbound._str("Label")
        self._log_in(openid, "location", label or "（位置）")
        if lat is None or lng is None:
            return Outcome(text="没能识别您发的位置，请重新发送一次位置。")
        with self.factory.begin() as session:
            users.set_last_location(session, openid, lat, lng)
            answer = nearby_answer(session, lat, lng)
        return Outcome(text=split_utf8(answer)[0])

    def handle_event(self, inbound: Inbound) -> Outcome:
        openid = inbound.openid
        event = inbound.event.lower()
        key = inbound._str("EventKey")
        log_event("wechat_event", openid, wechat_event=event)
        if event == "subscribe":
            scene = key[len("qrscene_") :] if key.startswith("qrscene_") else None
            self._forget_touch(openid)
            with self.factory.begin() as session:
                users.record_subscribe(session, openid, scene)
            self.choices.remember(openid, texts.MAIN_MENU_CHOICES)
            return Outcome(
                text=texts.WELCOME + "\n" + choices_block(texts.MAIN_MENU_CHOICES, header="我可以帮您：")
            )
        if event == "unsubscribe":
            self._forget_touch(openid)
            with self.factory.begin() as session:
                users.forget_user(session, openid)
            self.choices.clear(openid)
            return Outcome()
        if event == "scan":
            with self.factory.begin() as session:
                users.touch_user(session, openid)
            return Outcome(text=texts.WELCOME_BACK)
        if event == "click":
            from webhook.gateway.menu import payload_for_key

            with self.factory.begin() as session:
                users.touch_user(session, openid)
            return self.converse(
                openid,
                payload_for_key(key),
                user_text=None,
                crisis=False,
                log_id=None,
                received=inbound.received,
            )
        if event == "location":
            lat, lng = _float(inbound.fields.get("Latitude")), _float(inbound.fields.get("Longitude"))
            if lat is not None and lng is not None:
                with self.factory.begin() as session:
                    users.set_last_location(session, openid, lat, lng)
            return Outcome()
        if event == "templatesendjobfinish":
            self._record_template_result(openid, inbound._str("MsgID"), inbound._str("Status"))
            return Outcome()
        return Outcome()  # VIEW, MASSSENDJOBFINISH and events we do not act on

    # ------------------------------------------------------------ the Rasa turn and its deadline

    def converse(
        self,
        openid: str,
        message: str,
        *,
        user_text: str | None,
        crisis: bool,
        log_id: int | None,
        received: float | None = None,
    ) -> Outcome:
        """Ask Rasa; answer within the budget (counted from `received`, when the push came in), or return
        empty and deliver the answer later."""
        turn = _Turn()
        started = time.monotonic()
        self.pool.submit(self._run_turn, turn, openid, message, user_text, crisis, log_id)
        spent = started - received if received is not None else 0.0
        turn.done.wait(max(0.0, self.budget - spent))
        with turn.lock:
            if turn.done.is_set():
                log_event("reply", openid, ms=int((time.monotonic() - started) * 1000))
                return turn.outcome
            turn.late = True
        metrics.DEADLINE_MISSES.inc()
        log_event("reply_late", openid, budget=self.budget)
        if crisis and user_text is not None:
            # A person in crisis must not wait for a slow assistant: the hotline goes out now.
            self._raise_crisis(openid, user_text)
            from bureau.safety import CRISIS_REPLY

            return Outcome(text=CRISIS_REPLY)
        return Outcome()

    def _run_turn(
        self, turn: _Turn, openid: str, message: str, user_text: str | None, crisis: bool, log_id: int | None
    ) -> None:
        unavailable = False
        answer: RasaAnswer | None = None
        fresh = False  # Rasa answered: its choices replace the pending ones
        try:
            answer = self.rasa.send(openid, message, timeout=self.rasa_timeout)
            outcome = render(answer.messages)
            fresh = True
        except RasaSilent:
            # Every part is up; the dialogue just had no answer for this message (e.g. a bare ID
            # number outside any form). Say so kindly; nothing for staff to pick up.
            log_event("rasa_silent", openid)
            outcome = Outcome(text=texts.NOT_UNDERSTOOD)
            if log_id is not None:
                self._mark_unanswered(log_id)
        except RasaUnavailable as exc:
            log_event("rasa_unavailable", openid, logging.WARNING, reason=exc.reason)
            outcome, unavailable = Outcome(text=self.apology), True
        except Exception:
            logging.getLogger("zhanyou.gateway").exception("event=turn_error")
            outcome, unavailable = Outcome(text=self.apology), True
        if unavailable and user_text is not None:
            self._keep_for_staff(openid, user_text, log_id)
        needs_net = crisis and CRISIS_HOTLINE not in "\n".join(outcome.all_texts())
        if needs_net and user_text is not None and not turn.late:
            self._raise_crisis(openid, user_text)  # recorded before the answer goes out
        with turn.lock:
            late = turn.late
            if not late and needs_net:
                from bureau.safety import CRISIS_REPLY

                pieces = split_utf8((CRISIS_REPLY + "\n\n" + outcome.text).strip())
                outcome = Outcome(
                    text=pieces[0], followups=pieces[1:] + outcome.followups, choices=outcome.choices
                )
            # On time, the view stores the choices with the reply (one Redis round trip for both).
            outcome.remember_choices = fresh and not late
            turn.outcome = outcome
            turn.done.set()
        if late:
            if fresh:
                self.choices.remember(openid, outcome.choices)
            self.deliver(openid, outcome, delay=0.0, in_pool=False)
        if answer is not None and answer.intent and log_id is not None:
            self.understanding.record(log_id, answer.intent, answer.confidence)

    # ------------------------------------------------------------ customer-service delivery

    def deliver(self, openid: str, outcome: Outcome, delay: float = 0.0, in_pool: bool = True) -> None:
        """Send an answer through the customer-service API (≤ 5 messages), in the pool by default."""
        if in_pool:
            self.pool.submit(self.deliver, openid, outcome, delay, False)
            return
        if delay:
            time.sleep(delay)
        messages: list[tuple[str, Any]] = []
        if outcome.article:
            messages.append(("news", outcome.article))
        for text in outcome.all_texts():
            messages.extend(("text", piece) for piece in split_utf8(text))
        client = self.wechat()
        for kind, content in messages[:5]:
            try:
                if kind == "news":
                    client.send_news(openid, content)
                else:
                    client.send_text(openid, content)
                log_event("cs_sent", openid, kind=kind)
            except WeChatApiError as err:
                log_event("cs_send_failed", openid, logging.WARNING, errcode=err.errcode, kind=err.kind)
                if err.kind != "retryable":
                    return
            except Exception:
                logging.getLogger("zhanyou.gateway").exception("event=cs_send_error")
                return

    def send_followups(self, openid: str, followups: list[str]) -> None:
        """The rest of a long passive answer, a moment after it so they arrive in order."""
        if followups:
            self.deliver(
                openid, Outcome(text=followups[0], followups=followups[1:]), delay=self.followup_delay
            )

    # ------------------------------------------------------------ records

    def _log_in(self, openid: str, msg_type: str, text: str) -> int:
        """Touch the user (48-hour window) and keep what they wrote, ID numbers masked; a connection cut
        mid-way is retried, so the message is not lost to a brief database outage."""
        content = idcard.redact(text)[:4000]
        # Every column given, the defaults too: the INSERT then runs straight on the driver (append_row).
        row = {
            "openid": openid,
            "msg_type": msg_type,
            "content": content,
            "unanswered": False,
            "created_at": utcnow(),
        }
        if not self._needs_touch(openid):
            # Most messages: one self-committing INSERT (bureau.db.append_row; a retry after a connection
            # lost mid-statement may log the message twice, never lose it).
            return int(append_row(self.append_engine, _LOG_IN, row, what="message_log"))

        if self.append_engine.dialect.name == "postgresql":
            touching = {**row, "now": row["created_at"]}
            logged = append_returning(self.append_engine, _LOG_IN_TOUCHING, touching, what="message_log")
            assert logged is not None  # INSERT … RETURNING returns its row
            log_id, touched = int(logged[0]), int(logged[1])
            if not touched:
                run_transaction(
                    self.factory, lambda session: users.touch_user(session, openid), what="follower"
                )
        else:

            def keep(session: Session) -> int:
                users.note_message(session, openid)
                return int(session.execute(_LOG_IN, row).scalar_one())

            log_id = run_transaction(self.factory, keep, what="message_log")
        with self._touched_lock:
            if len(self._touched) > 10_000:
                self._touched.clear()
            self._touched[openid] = time.monotonic()
        return log_id

    def _needs_touch(self, openid: str) -> bool:
        """Whether the follower row needs its UPDATE now: once per TOUCH_EVERY_SECONDS per user.

        Someone in a conversation writes every few seconds; one UPDATE a minute keeps the 48-hour window
        (and the customer-service quota count of broadcasts, which starts from it) right to within a
        minute, on the safe side: the window is taken to start up to a minute earlier than it did."""
        with self._touched_lock:
            last = self._touched.get(openid)
        return last is None or time.monotonic() - last >= TOUCH_EVERY_SECONDS

    def _forget_touch(self, openid: str) -> None:
        with self._touched_lock:
            self._touched.pop(openid, None)

    def _mark_unanswered(self, log_id: int) -> None:
        with self.factory.begin() as session:
            session.execute(update(MessageLog).where(MessageLog.id == log_id).values(unanswered=True))

    def _keep_for_staff(self, openid: str, text: str, log_id: int | None) -> None:
        def keep(session: Session) -> None:
            if log_id is not None:
                session.execute(update(MessageLog).where(MessageLog.id == log_id).values(unanswered=True))
            session.add(
                HandoffTicket(
                    openid=openid,
                    message=idcard.redact(text)[:4000],
                    reason="bot_unavailable",
                    status=CaseStatus.OPEN,
                )
            )

        run_transaction(self.factory, keep, what="handoff_ticket")

    def _raise_crisis(self, openid: str, text: str) -> None:
        from bureau.safety import raise_crisis_alert

        try:
            with self.factory.begin() as session:
                raise_crisis_alert(session, openid, text, source="keyword")
            log_event("crisis_alert", openid, logging.WARNING)
        except Exception:
            logging.getLogger("zhanyou.gateway").exception("event=crisis_alert_failed")

    def _record_template_result(self, openid: str, msgid: str, status: str) -> None:
        """TEMPLATESENDJOBFINISH: a template message's final fate goes into the broadcast ledger."""
        from bureau.broadcast.ledger import record_template_event  # the ledger's owner decides the rules

        with self.factory.begin() as session:
            changed = record_template_event(session, openid, msgid or None, status)
        log_event("template_result", openid, status=status, changed=changed)
