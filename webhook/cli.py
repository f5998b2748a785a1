"""Flask CLI commands: `flask db-upgrade`, `flask seed`, and the commands of each feature."""

from __future__ import annotations

import click
from alembic import command
from alembic.config import Config
from flask import Flask, current_app
from flask.cli import with_appcontext

from bureau.settings import PROJECT_ROOT


def alembic_config(url: str) -> Config:
    """Alembic's configuration for the project's migrations against `url`."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    return config


@click.command("db-upgrade")
@with_appcontext
def db_upgrade_command() -> None:
    """Migrate the database to the newest schema."""
    command.upgrade(alembic_config(current_app.config["DATABASE_URL"]), "head")
    click.echo("数据库已是最新结构 (database at head)")


@click.command("seed")
@with_appcontext
@click.option("--force", is_flag=True, help="Add demo data even when the database already has some.")
def seed_command(force: bool) -> None:
    """Load the clearly-marked demo data of Zherong County (only into an empty database)."""
    from bureau import seed
    from bureau.db import get_session_factory

    with get_session_factory(current_app.config["DATABASE_URL"]).begin() as session:
        summary = seed.seed_demo_data(session, force=force)
    click.echo(summary)


def init_app(app: Flask) -> None:
    app.cli.add_command(db_upgrade_command)
    app.cli.add_command(seed_command)
    __import__("webhook.admin.cli", fromlist=["init_app"]).init_app(app)
    __import__("webhook.jobs_cli", fromlist=["init_app"]).init_app(app)
