"""The webhook's Prometheus metrics count what an operator on call needs to see."""

from __future__ import annotations

import re
from typing import Any

from tests.gateway.conftest import Pusher


def _value(text: str, metric: str) -> float:
    match = re.search(rf"^{re.escape(metric)} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_pushes_repeats_and_latency_are_counted(make_app: Any, rasa: Any) -> None:
    client = make_app().test_client()
    push = Pusher(client)
    before = client.get("/metrics").get_data(as_text=True)
    requests_metric = 'zhanyou_webhook_requests_total{msg_type="text",outcome="reply"}'
    seen_before = _value(before, requests_metric)
    repeats_before = _value(before, "zhanyou_dedupe_hits_total")

    push.text("oMetrics", "你好", msg_id=987654321)
    push.text("oMetrics", "你好", msg_id=987654321)  # WeChat's retry of the same message

    after = client.get("/metrics").get_data(as_text=True)
    assert _value(after, requests_metric) >= seen_before + 1
    assert _value(after, "zhanyou_dedupe_hits_total") == repeats_before + 1
    assert "zhanyou_webhook_latency_seconds_bucket" in after
    assert len(rasa.calls) == 1
