"""Migrations build the same schema as the models, from empty, and come down cleanly."""

from __future__ import annotations

import os
import uuid

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from bureau import db
from webhook.cli import alembic_config


def _fresh_database(kind: str, tmp_path) -> tuple[str, object]:  # type: ignore[no-untyped-def]
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'migrate.db'}", None
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL not set")
    schema = f"zm_{uuid.uuid4().hex[:8]}"
    admin = db.make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", (admin, schema)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_upgrade_from_empty_matches_models_and_downgrade_removes_everything(kind, tmp_path):
    url, cleanup = _fresh_database(kind, tmp_path)
    engine = db.make_engine(url)
    try:
        config = alembic_config(url)
        command.upgrade(config, "head")
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        assert "veterans" in inspect(engine).get_table_names()
        if kind == "postgresql":
            # Room on each page for the intent update to stay in place (migration 0003).
            with engine.connect() as conn:
                options = conn.execute(
                    text("SELECT reloptions FROM pg_class WHERE oid = 'message_log'::regclass")
                ).scalar_one()
            assert options == ["fillfactor=85"]

        command.downgrade(config, "base")
        engine.dispose()
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

        command.upgrade(config, "head")  # and up again: downgrade left nothing behind
    finally:
        engine.dispose()
        if cleanup is not None:
            admin, schema = cleanup
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
