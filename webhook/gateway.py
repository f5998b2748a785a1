"""Placeholder of the WeChat gateway; replaced by webhook/gateway/ (issue 3)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("gateway", __name__)
