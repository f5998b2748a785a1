"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

import requests
from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from bureau import metrics
from webhook.database import get_db
from webhook.gateway.rasa_client import split_urls

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[str, int, dict[str, str]]:
    return "ok", 200, {"Content-Type": "text/plain; charset=utf-8"}


def _reachable(url: str) -> bool:
    try:
        return requests.get(url, timeout=1.5).status_code < 500
    except requests.RequestException:
        return False


@bp.get("/readyz")
def readyz() -> Any:
    settings = current_app.config["SETTINGS"]
    checks: dict[str, bool] = {}
    try:
        get_db().execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:  # any driver error means "not ready", never a 500
        checks["database"] = False
    # Several Rasa servers may share the work (RASA_URL with commas): one answering is enough to serve.
    checks["rasa"] = any(_reachable(url + "/") for url in split_urls(settings.rasa_url))
    action_base = settings.action_server_url.rsplit("/webhook", 1)[0]
    checks["action_server"] = _reachable(action_base + "/health")
    ready = all(checks.values())
    return jsonify(ready=ready, checks=checks), (200 if ready else 503)


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)
