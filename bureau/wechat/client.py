"""The WeChat server API client (access token, customer-service, template and menu calls).

Used by the webhook (late answers) and by the broadcast worker. No Flask imports. Stable interface:

    client = get_client()                      # or WeChatClient(api_base=..., app_id=..., ...)
    client.send_text(openid, text) -> dict                       # customer-service text (≤ 2048 bytes)
    client.send_menu_text(openid, header, choices, footer) -> dict  # msgmenu: tapping a choice sends its text
    client.send_news(openid, article) -> dict                     # one link article {title, description, url, picurl}
    client.send_template(openid, template_id, data, url=None) -> int   # WeChat's msgid (TEMPLATESENDJOBFINISH)
    client.create_menu(menu) -> dict
    client.access_token() -> str

Every failure is a `WeChatApiError(errcode, errmsg)` whose `kind` tells the caller what to do:
- "retryable": -1 (system busy), 45009 (frequency limit) — already retried here with backoff
  (`max_attempts`, default 3); raised when the attempts are used up; safe to retry later.
- "token": 40001/40014/42001 — the shared token is refreshed once for every process and the call is
  retried once here; raised only if the fresh token fails too.
- "permanent": 43004 (not following; the WechatUser row is marked unsubscribed), 45015 (outside the
  48-hour window), 45047 (customer-service quota used up), 40003 (invalid openid), 40037 (bad template),
  40164 (IP not whitelisted), 40013/40125 (bad appid/secret) … — do not retry; record it.
- "unknown": `UNKNOWN_OUTCOME` (-2, our own code) — the request may have reached WeChat (read timeout,
  connection dropped after sending); not retried so that nobody receives a message twice.

The access token is shared by all processes (Redis when REDIS_URL is set, else the `key_values` table),
fetched with `cgi-bin/stable_token` and refreshed `refresh_margin` seconds before it expires, by one
process at a time under a lock while the others keep using the still-valid token.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from bureau import metrics
from bureau.models import WechatUser
from bureau.settings import get_settings
from bureau.timeutil import utcnow
from bureau.wechat.store import SharedStore, make_store

logger = logging.getLogger("zhanyou.wechat")

UNKNOWN_OUTCOME = -2
RETRYABLE = frozenset({-1, 45009})
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
CUSTOMER_SERVICE_WINDOW = dt.timedelta(hours=48)
TEXT_LIMIT_BYTES = 2048


class WeChatApiError(Exception):
    """An error answer (or no usable answer) from the WeChat server API."""

    def __init__(self, errcode: int, errmsg: str = "") -> None:
        super().__init__(f"WeChat API error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        metrics.WECHAT_API_ERRORS.labels(str(errcode)).inc()

    @property
    def kind(self) -> str:
        """retryable / token / unknown / permanent (see the module docstring)."""
        if self.errcode in RETRYABLE:
            return "retryable"
        if self.errcode in TOKEN_ERRORS:
            return "token"
        if self.errcode == UNKNOWN_OUTCOME:
            return "unknown"
        return "permanent"

    @property
    def retryable(self) -> bool:
        return self.kind == "retryable"


def in_service_window(last_interaction_at: dt.datetime | None, now: dt.datetime | None = None) -> bool:
    """True when a customer-service message is allowed (the user wrote within 48 hours)."""
    if last_interaction_at is None:
        return False
    return (now or utcnow()) - last_interaction_at < CUSTOMER_SERVICE_WINDOW


@dataclass
class _Token:
    value: str
    expires_at: float
    refresh_at: float


class WeChatClient:
    """A client of the WeChat server API with a token shared across processes (see module docstring)."""

    def __init__(
        self,
        *,
        api_base: str | None = None,
        app_id: str | None = None,
        app_secret: str | None = None,
        store: SharedStore | None = None,
        session_factory: sessionmaker | None = None,
        http: requests.Session | None = None,
        max_attempts: int = 3,
        backoff: float = 0.5,
        refresh_margin: float = 300.0,
        timeout: tuple[float, float] = (3.05, 10.0),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        settings = get_settings()
        self.api_base = (api_base or settings.wechat_api_base).rstrip("/") + "/"
        self.app_id = app_id or settings.wechat_app_id
        self.app_secret = app_secret or settings.wechat_app_secret
        self._store = store
        self._session_factory = session_factory
        self.http = http or requests.Session()
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.refresh_margin = refresh_margin
        self.timeout = timeout
        self.sleep = sleep
        self.token_key = f"wechat:access_token:{self.app_id}"
        self.lock_key = f"wechat:access_token_lock:{self.app_id}"

    # ------------------------------------------------------------ shared state

    @property
    def store(self) -> SharedStore:
        if self._store is None:
            settings = get_settings()
            self._store = make_store(settings.redis_url, settings.database_url)
        return self._store

    @property
    def session_factory(self) -> sessionmaker:
        if self._session_factory is None:
            from bureau.db import get_session_factory

            self._session_factory = get_session_factory()
        return self._session_factory

    def _read_token(self) -> _Token | None:
        raw = self.store.get(self.token_key)
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return _Token(str(data["token"]), float(data["expires_at"]), float(data["refresh_at"]))
        except (ValueError, KeyError, TypeError):
            return None

    # ------------------------------------------------------------ access token

    def access_token(self) -> str:
        """A valid access token, refreshed ahead of expiry by one process at a time."""
        cached = self._read_token()
        now = time.time()
        if cached and now < cached.refresh_at and cached.expires_at > now + 1:
            return cached.value
        return self._refresh(stale=None)

    def _refresh(self, stale: str | None) -> str:
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + 15
        while True:
            if self.store.add(self.lock_key, owner, ttl=20):
                try:
                    return self._refresh_locked(stale)
                finally:
                    self.store.delete_if(self.lock_key, owner)
            # Someone else is refreshing: a token that is still valid (and not the one WeChat just
            # refused) serves meanwhile; otherwise wait for theirs.
            latest = self._read_token()
            if latest and latest.value != stale and latest.expires_at > time.time() + 1:
                return latest.value
            if time.monotonic() > deadline:
                raise WeChatApiError(-1, "timed out waiting for the access token refresh")
            time.sleep(0.05)

    def _refresh_locked(self, stale: str | None) -> str:
        cached = self._read_token()
        now = time.time()
        if cached and cached.value != stale and now < cached.refresh_at and cached.expires_at > now + 1:
            return cached.value  # another process refreshed while we waited for the lock
        data = self._fetch_stable_token(force_refresh=False)
        if stale is not None and data["access_token"] == stale:
            # WeChat refused a token that stable_token still hands out: only a forced refresh helps.
            data = self._fetch_stable_token(force_refresh=True)
        now = time.time()
        lifetime = max(1, int(data.get("expires_in", 7200)))
        expires_at = now + lifetime
        refresh_at = expires_at - self.refresh_margin
        if refresh_at <= now:
            # stable_token hands back the same token until it expires: ask again now and then, not per call.
            refresh_at = now + min(60.0, max(1.0, lifetime / 2))
        token = _Token(str(data["access_token"]), expires_at, refresh_at)
        self.store.set(
            self.token_key,
            json.dumps(
                {"token": token.value, "expires_at": token.expires_at, "refresh_at": token.refresh_at}
            ),
            ttl=float(lifetime),
        )
        logger.info("event=wechat_token_refreshed expires_in=%s", lifetime)
        return token.value

    def _fetch_stable_token(self, force_refresh: bool) -> dict[str, Any]:
        body = {
            "grant_type": "client_credential",
            "appid": self.app_id,
            "secret": self.app_secret,
            "force_refresh": force_refresh,
        }
        last: WeChatApiError | None = None
        for attempt in range(self.max_attempts):
            try:
                resp = self.http.post(self.api_base + "cgi-bin/stable_token", json=body, timeout=self.timeout)
                data = resp.json()
            except (requests.RequestException, ValueError) as exc:
                last = WeChatApiError(-1, f"token request failed: {type(exc).__name__}")
            else:
                errcode = int(data.get("errcode", 0) or 0)
                if errcode == 0 and data.get("access_token"):
                    return dict(data)
                last = WeChatApiError(errcode or -1, str(data.get("errmsg", "no access_token")))
                if not last.retryable:
                    raise last
            if attempt + 1 < self.max_attempts:
                self.sleep(self.backoff * 2**attempt)
        assert last is not None
        raise last

    # ------------------------------------------------------------ calls

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        token_retried = False
        attempt = 0
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        while True:
            attempt += 1
            token = self.access_token()
            try:
                resp = self.http.post(
                    self.api_base + path,
                    params={"access_token": token},
                    data=payload,
                    headers={"Content-Type": "application/json; charset=utf-8"},
                    timeout=self.timeout,
                )
            except requests.ConnectionError as exc:
                # Refused before anything was sent is safe to retry; anything later may have been delivered.
                if _never_sent(exc):
                    err = WeChatApiError(-1, "connection refused")
                else:
                    raise WeChatApiError(UNKNOWN_OUTCOME, f"connection lost: {type(exc).__name__}") from None
            except requests.Timeout as exc:
                if isinstance(exc, requests.ConnectTimeout):
                    err = WeChatApiError(-1, "connect timeout")
                else:
                    raise WeChatApiError(UNKNOWN_OUTCOME, "read timeout") from None
            except requests.RequestException as exc:
                raise WeChatApiError(UNKNOWN_OUTCOME, f"request failed: {type(exc).__name__}") from None
            else:
                try:
                    data = resp.json()
                except ValueError:
                    data = {"errcode": -1, "errmsg": f"HTTP {resp.status_code} without JSON"}
                errcode = int(data.get("errcode", 0) or 0)
                if errcode == 0:
                    return dict(data)
                err = WeChatApiError(errcode, str(data.get("errmsg", "")))
            if err.kind == "token" and not token_retried:
                token_retried = True
                self._refresh(stale=token)
                continue
            if err.retryable and attempt < self.max_attempts:
                logger.warning("event=wechat_retry path=%s errcode=%s attempt=%s", path, err.errcode, attempt)
                self.sleep(self.backoff * 2 ** (attempt - 1))
                continue
            logger.warning("event=wechat_error path=%s errcode=%s kind=%s", path, err.errcode, err.kind)
            raise err

    def _send_custom(self, openid: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._call("cgi-bin/message/custom/send", {"touser": openid, **body})
        except WeChatApiError as err:
            if err.errcode == 43004:
                self.mark_unsubscribed(openid)
            raise

    def send_text(self, openid: str, text: str) -> dict[str, Any]:
        """A customer-service text message (WeChat allows ≤ 2048 UTF-8 bytes; split longer text first)."""
        if not text.strip():
            raise ValueError("empty text")
        if len(text.encode("utf-8")) > TEXT_LIMIT_BYTES:
            raise ValueError("text longer than 2048 bytes; split it first")
        return self._send_custom(openid, {"msgtype": "text", "text": {"content": text}})

    def send_menu_text(
        self, openid: str, header: str, choices: Sequence[str], footer: str = ""
    ) -> dict[str, Any]:
        """A msgmenu message: a header, tappable choices (each sends its text back), a footer."""
        items = [{"id": str(i), "content": c} for i, c in enumerate(choices, start=1)]
        return self._send_custom(
            openid,
            {
                "msgtype": "msgmenu",
                "msgmenu": {"head_content": header, "list": items, "tail_content": footer},
            },
        )

    def send_news(self, openid: str, article: dict[str, str]) -> dict[str, Any]:
        """One link article (title, description, url, picurl) as a customer-service message."""
        keys = ("title", "description", "url", "picurl")
        return self._send_custom(
            openid, {"msgtype": "news", "news": {"articles": [{k: article.get(k, "") for k in keys}]}}
        )

    def send_template(
        self, openid: str, template_id: str, data: dict[str, Any], url: str | None = None
    ) -> int:
        """A template message; `data` is {"field": "value"} or {"field": {"value": ...}}. Returns msgid."""
        fields = {k: (v if isinstance(v, dict) else {"value": str(v)}) for k, v in data.items()}
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": fields}
        if url:
            body["url"] = url
        try:
            result = self._call("cgi-bin/message/template/send", body)
        except WeChatApiError as err:
            if err.errcode == 43004:
                self.mark_unsubscribed(openid)
            raise
        return int(result.get("msgid", 0))

    def create_menu(self, menu: dict[str, Any]) -> dict[str, Any]:
        """Publish the custom menu ({"button": [...]})."""
        return self._call("cgi-bin/menu/create", menu)

    def mark_unsubscribed(self, openid: str) -> None:
        """WeChat says the user no longer follows (43004): stop sending to them."""
        try:
            with self.session_factory.begin() as session:
                session.execute(
                    update(WechatUser)
                    .where(WechatUser.openid == openid, WechatUser.subscribed.is_(True))
                    .values(subscribed=False, unsubscribed_at=utcnow())
                )
        except Exception:  # recording is best effort; the error itself still reaches the caller
            logger.exception("event=mark_unsubscribed_failed")


def _never_sent(exc: requests.ConnectionError) -> bool:
    text = repr(exc)
    return "NewConnectionError" in text or "Connection refused" in text or "Failed to establish" in text


_client: WeChatClient | None = None


def get_client() -> WeChatClient:
    """The process's client, configured from settings on first use."""
    global _client
    if _client is None:
        _client = WeChatClient()
    return _client


def reset_client() -> None:
    """Forget the process's client (tests, settings changes)."""
    global _client
    _client = None
