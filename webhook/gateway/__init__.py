"""The WeChat gateway: the `/wechat` webhook blueprint and the `flask wechat ...` commands."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("gateway", __name__, cli_group="wechat")
