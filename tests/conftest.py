"""Shared fixtures: a real database on SQLite and on PostgreSQL, the Flask app, its client and CLI runner.

Database tests take the `db_url` fixture (or one built on it) and run once per backend. PostgreSQL runs
when TEST_DATABASE_URL is set (CI sets it); each pytest process works in a schema of its own, so parallel
runs on one server never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from bureau import db, models  # noqa: F401  (registers the tables)
from bureau.settings import get_settings

TEST_DATA_KEY = "test-data-key-for-pytest-only"


def _pg_url_with_schema(base_url: str, schema: str) -> str:
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def _sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'zhanyou-test.db'}"
    engine = db.get_engine(url)
    db.Base.metadata.create_all(engine)
    yield url


@pytest.fixture(scope="session")
def _postgresql_url() -> Iterator[str]:
    base_url = os.environ.get("TEST_DATABASE_URL")
    if not base_url:
        pytest.skip("TEST_DATABASE_URL not set: PostgreSQL tests skipped")
    schema = f"zt_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = db.make_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = _pg_url_with_schema(base_url, schema)
    db.Base.metadata.create_all(db.get_engine(url))
    yield url
    db.get_engine(url).dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _empty_all_tables(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(db.Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A clean database per test, on each backend; DATABASE_URL points at it for code that reads settings."""
    url: str = request.getfixturevalue(f"_{request.param}_url")
    _empty_all_tables(db.get_engine(url))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("DATA_KEY", TEST_DATA_KEY)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


@pytest.fixture
def pg_url(monkeypatch: pytest.MonkeyPatch, _postgresql_url: str) -> Iterator[str]:
    """PostgreSQL only, for what SQLite cannot show (row locks, real concurrency)."""
    _empty_all_tables(db.get_engine(_postgresql_url))
    monkeypatch.setenv("DATABASE_URL", _postgresql_url)
    monkeypatch.setenv("DATA_KEY", TEST_DATA_KEY)
    get_settings.cache_clear()
    yield _postgresql_url
    get_settings.cache_clear()


@pytest.fixture
def session_factory(db_url: str) -> sessionmaker:
    return db.get_session_factory(db_url)


@pytest.fixture
def app(db_url: str):  # type: ignore[no-untyped-def]
    from webhook import create_app

    return create_app(
        {"TESTING": True, "DATABASE_URL": db_url, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True}
    )


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def runner(app):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()
