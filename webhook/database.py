"""One database session per request, closed at teardown (the flaskr pattern)."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from bureau.db import get_session_factory


def get_db() -> Session:
    """The request's session; commit explicitly where a view changes something."""
    if "db_session" not in g:
        g.db_session = get_session_factory(current_app.config["DATABASE_URL"])()
    return g.db_session


def close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
