"""The Flask app: the WeChat gateway (/wechat), the staff console (/admin), health checks and CLI."""

from __future__ import annotations

import logging
import sys
from typing import Any

from flask import Flask

from bureau.settings import get_settings


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app; `test_config` overrides settings read from the environment."""
    settings = get_settings()
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        DATABASE_URL=settings.database_url,
        SETTINGS=settings,
        # WeChat pushes are small; anything bigger is refused before it is read.
        MAX_CONTENT_LENGTH=64 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.production,
    )
    if test_config:
        app.config.update(test_config)
    from webhook.sessions import StaffSessionInterface

    app.session_interface = StaffSessionInterface()
    from bureau import logcontext

    logcontext.install()  # before the first handler formats a record with %(request_id)s
    logging.basicConfig(level=logging.INFO, format=logcontext.LOG_FORMAT)

    from webhook import database, request_id

    request_id.init_app(app)

    database.init_app(app)

    from webhook import health

    app.register_blueprint(health.bp)

    from webhook import gateway

    app.register_blueprint(gateway.bp)
    app.register_blueprint(__import__("webhook.admin", fromlist=["bp"]).bp)

    from webhook import cli

    cli.init_app(app)
    if not app.testing and "gunicorn" in sys.modules:
        # A worker serving traffic (not a test's app, not a CLI command): see webhook.runtime.
        from webhook.runtime import tune_garbage_collector

        tune_garbage_collector()
    return app
