"""`GET /wechat` (URL verification) and `POST /wechat` (pushes): protocol checks, dedupe, the answer."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from bureau import metrics
from bureau.db import get_append_engine, get_session_factory
from bureau.logcontext import ContextThreadPool
from bureau.settings import Settings
from bureau.wechat.client import WeChatClient
from bureau.wechat.store import make_store, redis_client
from webhook.gateway import protocol
from webhook.gateway.core import BadPush, Gateway, Inbound
from webhook.gateway.logs import log_event
from webhook.gateway.protocol import ProtocolError
from webhook.gateway.rasa_client import RasaClient
from webhook.gateway.render import Outcome
from webhook.gateway.state import LATE, PROCESSING, Claims, PendingChoices, RateLimiter

EXTENSION = "zhanyou_gateway"


class GatewayContext:
    """Everything the views need, built once per app on first use (engines, pools, clients)."""

    def __init__(self, app: Flask) -> None:
        settings: Settings = app.config["SETTINGS"]
        conf = app.config
        self.token: str = conf.get("WECHAT_TOKEN", settings.wechat_token)
        self.app_id: str = conf.get("WECHAT_APP_ID", settings.wechat_app_id)
        aes_key = conf.get("WECHAT_AES_KEY", settings.wechat_aes_key)
        self.aes: protocol.WeChatAES | None = None
        if aes_key:
            try:
                self.aes = protocol.WeChatAES(aes_key, self.app_id)
            except ValueError:
                # Plaintext pushes keep working; safe-mode pushes are refused (400) until the key is fixed.
                log_event("config_error", level=logging.ERROR, reason="WECHAT_AES_KEY must be 43 characters")
        redis_url = conf.get("REDIS_URL", settings.redis_url)
        database_url = conf.get("DATABASE_URL", settings.database_url)
        factory = get_session_factory(database_url)
        redis = redis_client(redis_url) if redis_url else None
        self.claims = Claims(factory, redis)
        store = make_store(redis_url, database_url)
        action_url = conf.get("ACTION_SERVER_URL", settings.action_server_url)
        rasa = conf.get("GATEWAY_RASA") or RasaClient(
            conf.get("RASA_URL", settings.rasa_url),
            action_health_url=action_url.rsplit("/webhook", 1)[0] + "/health",
        )
        wechat_client: WeChatClient | None = conf.get("WECHAT_CLIENT")

        def wechat() -> WeChatClient:
            nonlocal wechat_client
            if wechat_client is None:
                wechat_client = WeChatClient(
                    api_base=conf.get("WECHAT_API_BASE", settings.wechat_api_base),
                    app_id=self.app_id,
                    app_secret=conf.get("WECHAT_APP_SECRET", settings.wechat_app_secret),
                    store=store,
                    session_factory=factory,
                )
            return wechat_client

        budget = float(conf.get("REPLY_BUDGET_SECONDS", settings.reply_budget_seconds))
        # The pool carries each request's id (and other context) into the turn and the late delivery.
        self.pool = ContextThreadPool(
            max_workers=int(os.environ.get("GATEWAY_THREADS", "48")), thread_name_prefix="gateway"
        )
        self.gateway = Gateway(
            session_factory=factory,
            rasa=rasa,
            wechat=wechat,
            choices=PendingChoices(store),
            limiter=RateLimiter(
                factory, int(conf.get("RATE_LIMIT_PER_MINUTE", settings.rate_limit_per_minute)), redis
            ),
            pool=self.pool,
            budget=budget,
            service_phone=settings.service_phone,
            rasa_timeout=float(conf.get("RASA_TIMEOUT_SECONDS", max(30.0, budget * 5))),
            followup_delay=float(conf.get("FOLLOWUP_DELAY_SECONDS", 1.0)),
            append_engine=get_append_engine(database_url),
        )


_context_lock = threading.Lock()


def context() -> GatewayContext:
    """The app's gateway, built by the first request (after a fork, so pools and pools of connections
    belong to the worker process that uses them)."""
    ctx = current_app.extensions.get(EXTENSION)
    if ctx is None:
        with _context_lock:
            ctx = current_app.extensions.get(EXTENSION)
            if ctx is None:
                app = current_app._get_current_object()  # type: ignore[attr-defined]
                ctx = current_app.extensions[EXTENSION] = GatewayContext(app)
    return ctx


def _plain(text: str, status: int = 200) -> Response:
    return Response(text, status=status, mimetype="text/plain")


def _refuse(err: ProtocolError | BadPush, status: int | None = None) -> Response:
    code: int = status or int(getattr(err, "status", 400))
    log_event(
        "push_refused", level=logging.WARNING, status=code, reason=str(err)[:120], remote=request.remote_addr
    )
    return _plain("forbidden" if code == 403 else "bad request", code)


def verify() -> Response:
    """URL verification: echo `echostr` when the signature is right."""
    ctx = context()
    args = request.args
    try:
        protocol.check_timestamp(args.get("timestamp"))
        protocol.verify_signature(ctx.token, args.get("signature"), args.get("timestamp"), args.get("nonce"))
    except ProtocolError as err:
        return _refuse(err)
    return _plain(args.get("echostr", ""))


def receive() -> Response:
    """A push: verify, decrypt, parse, dedupe, answer (see webhook.gateway.state for retries)."""
    ctx = context()
    args = request.args
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        log_event("push_refused", level=logging.WARNING, status=413, remote=request.remote_addr)
        return _plain("request body too large", 413)
    timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
    encrypted = args.get("encrypt_type", "raw").lower() == "aes"
    try:
        protocol.check_timestamp(timestamp)
        protocol.verify_signature(ctx.token, args.get("signature"), timestamp, nonce)
        if encrypted:
            if ctx.aes is None:
                raise ProtocolError("safe mode push but WECHAT_AES_KEY is not set", 400)
            envelope = protocol.parse_xml(body)
            ciphertext = envelope.get("Encrypt")
            if not isinstance(ciphertext, str) or not ciphertext:
                raise ProtocolError("no Encrypt element")
            protocol.verify_msg_signature(ctx.token, args.get("msg_signature"), timestamp, nonce, ciphertext)
            fields = protocol.parse_xml(ctx.aes.decrypt(ciphertext))
        else:
            fields = protocol.parse_xml(body)
        inbound = Inbound(fields)
        inbound.validate(args.get("openid"))
    except (ProtocolError, BadPush) as err:
        return _refuse(err)

    def answer(reply_xml: str | None) -> Response:
        if not reply_xml:
            return _plain("success")
        if encrypted and ctx.aes is not None:
            reply_xml = protocol.encrypt_reply(ctx.aes, ctx.token, reply_xml)
        return Response(reply_xml, mimetype="text/xml")

    try:
        return _answer_push(ctx, inbound, answer)
    except Exception:
        # The database or another dependency failed: the user still gets a short answer, never a 500.
        logging.getLogger("zhanyou.gateway").exception("event=push_failed")
        return answer(protocol.text_reply(inbound.openid, inbound.account, ctx.gateway.error_reply))


def _answer_push(ctx: GatewayContext, inbound: Inbound, answer: Callable[[str | None], Response]) -> Response:
    started = time.monotonic()
    response = _answer_push_timed(ctx, inbound, answer)
    metrics.WEBHOOK_LATENCY.observe(time.monotonic() - started)
    body = response.get_data(as_text=True)
    metrics.WEBHOOK_REQUESTS.labels(
        inbound.msg_type or "unknown", "success" if body == "success" else "reply"
    ).inc()
    return response


def _answer_push_timed(
    ctx: GatewayContext, inbound: Inbound, answer: Callable[[str | None], Response]
) -> Response:
    key = inbound.dedupe_key
    arrival = ctx.claims.arrive(key, inbound.openid, **ctx.gateway.arrival_keys(inbound))
    existing = arrival.existing
    if existing is not None:
        metrics.DEDUPE_HITS.inc()
        log_event(
            "push_repeat", inbound.openid, state=existing[:14] if existing.startswith("__") else "reply"
        )
        if existing == PROCESSING and ctx.claims.mark_late(key):
            return _plain("success")  # the first try will push the answer through the API
        if existing == PROCESSING:
            existing = ctx.claims.claim(key, inbound.openid) or LATE
        return answer(None if existing.startswith("__") else existing)

    outcome = ctx.gateway.handle(inbound, arrival)
    reply_xml = _reply_xml(inbound, outcome)
    if not _finish(ctx, key, inbound.openid, outcome, reply_xml):
        # A retry gave up on this try's connection: the answer goes out through the API instead.
        if not outcome.empty:
            ctx.gateway.deliver(inbound.openid, outcome)
        return _plain("success")
    ctx.gateway.send_followups(inbound.openid, outcome.followups)
    return answer(reply_xml)


def _finish(ctx: GatewayContext, key: str, openid: str, outcome: Outcome, reply_xml: str | None) -> bool:
    """Store the passive reply on the claim (False: a retry made it late) and, for a fresh Rasa answer,
    the user's pending choices — in one Redis round trip when both live there — before it goes out."""
    choices = ctx.gateway.choices
    write = choices.redis_write(openid, outcome.choices) if outcome.remember_choices else None
    if write is None:
        if outcome.remember_choices:
            choices.remember(openid, outcome.choices)
        return ctx.claims.finish(key, reply_xml)
    finished, written = ctx.claims.finish_with(key, reply_xml, write)
    if not written:
        choices.remember(openid, outcome.choices)
    return finished


def _reply_xml(inbound: Inbound, outcome: Outcome) -> str | None:
    if outcome.article is not None:
        return protocol.news_reply(inbound.openid, inbound.account, [outcome.article])
    if outcome.text:
        return protocol.text_reply(inbound.openid, inbound.account, outcome.text)
    return None


def too_large(_err: Any) -> Response:
    return _plain("request body too large", 413)
