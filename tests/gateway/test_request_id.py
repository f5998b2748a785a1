"""Request IDs: every webhook request has one, on every log line it causes, and in its response header.

The id travels into the gateway's thread pool: a late answer sent through the customer-service API
seconds after the request ended still logs under the id of the request that asked for it.
"""

from __future__ import annotations

import io
import logging
import re
import time
from typing import Any

import pytest

from bureau import logcontext
from tests.gateway.conftest import Pusher
from tests.gateway.test_http import interact
from wechatsim.client import build_xml


def _records_of(caplog: pytest.LogCaptureFixture, rid: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "request_id", None) == rid]


def _gateway_events(records: list[logging.LogRecord]) -> list[str]:
    return [m.group(1) for r in records if (m := re.match(r"event=(\w+)", r.getMessage()))]


def test_the_callers_request_id_is_echoed_and_on_every_line_of_the_request(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    push = Pusher(make_app().test_client())
    params, body = push.wechat.signed_request(
        build_xml(push.fields("oRid1", "text", Content="你好")), "oRid1"
    )
    response = push.client.post(
        "/wechat",
        query_string=params,
        data=body,
        content_type="text/xml",
        headers={"X-Request-ID": "lb-4f2a.77"},
    )
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "lb-4f2a.77"
    gateway_lines = [r for r in caplog.records if r.name == "zhanyou.gateway"]
    assert gateway_lines, "the gateway logged nothing for a message"
    assert {getattr(r, "request_id", None) for r in gateway_lines} == {"lb-4f2a.77"}
    assert "reply" in _gateway_events(gateway_lines)
    assert logcontext.current() == logcontext.NO_REQUEST  # nothing leaks out of the request


def test_without_a_usable_header_each_request_gets_a_new_id(client: Any) -> None:
    ids = [client.get("/healthz").headers["X-Request-ID"] for _ in range(3)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids) and len(set(ids)) == 3
    for bad in ("a b", "x" * 65, "<script>", ""):
        rid = client.get("/healthz", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid), bad


def test_a_late_answer_logs_under_the_id_of_the_request_that_asked(
    make_app: Any, rasa: Any, sim: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rasa.delay = 1.2
    push = Pusher(make_app(budget=0.3).test_client())
    interact(sim, "oRidLate")
    params, body = push.wechat.signed_request(
        build_xml(push.fields("oRidLate", "text", Content="附近有工作吗")), "oRidLate"
    )
    other = push.client.get("/healthz", headers={"X-Request-ID": "someone-else"})
    response = push.client.post(
        "/wechat", query_string=params, data=body, content_type="text/xml", headers={"X-Request-ID": "late-1"}
    )
    assert response.get_data(as_text=True) == "success" and response.headers["X-Request-ID"] == "late-1"
    assert other.headers["X-Request-ID"] == "someone-else"
    deadline = time.monotonic() + 8
    while "cs_sent" not in _gateway_events(_records_of(caplog, "late-1")) and time.monotonic() < deadline:
        time.sleep(0.05)
    events = _gateway_events(_records_of(caplog, "late-1"))
    assert "reply_late" in events and "cs_sent" in events, events
    # The pool thread that sent it logged nothing under another id or none at all.
    sent = [r for r in caplog.records if r.getMessage().startswith("event=cs_sent")]
    assert [r.request_id for r in sent] == ["late-1"]  # type: ignore[attr-defined]
    assert sent[0].threadName.startswith("gateway")


def test_the_log_format_shows_the_id() -> None:
    logcontext.install()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(logcontext.LOG_FORMAT))
    logger = logging.getLogger("zhanyou.test_request_id")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        token = logcontext.request_id.set("abc123")
        logger.warning("inside")
        logcontext.request_id.reset(token)
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    inside, outside = stream.getvalue().splitlines()
    assert "rid=abc123 inside" in inside and "rid=- outside" in outside
