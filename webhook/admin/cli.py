"""Console commands: `flask staff create`, `flask veterans import FILE`, `flask veterans export`."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy.exc import IntegrityError

from bureau import audit, roster
from bureau.db import get_session_factory
from bureau.models import Counselor, StaffUser
from bureau.timeutil import local_today
from webhook.admin import security

staff_cli = AppGroup("staff", help="Staff accounts of the console (/admin).")
veterans_cli = AppGroup("veterans", help="The veteran roster: import and export.")


@staff_cli.command("create")
@click.option("--username", prompt="用户名 (username)")
@click.option("--display-name", prompt="姓名 (display name)")
@click.option(
    "--role",
    type=click.Choice(list(security.ROLES)),
    default="admin",
    show_default=True,
    prompt="角色 (admin / clerk / counselor)",
)
@click.option(
    "--counselor-id", type=int, default=None, help="For a counselor account: the counselors.id it acts as."
)
@click.password_option(
    "--password", prompt="密码 (password, 8+ characters)", confirmation_prompt="再输一次 (repeat)"
)
def staff_create(
    username: str, display_name: str, role: str, counselor_id: int | None, password: str
) -> None:
    """Create a staff account (the first one is the admin who then adds the others in the console)."""
    username = username.strip()
    if not username or not username.replace("_", "").replace(".", "").isalnum():
        raise click.ClickException("用户名只能用字母、数字、下划线")
    try:
        password_hash = security.hash_password(password)
    except security.PasswordTooWeak as exc:
        raise click.ClickException(str(exc)) from None
    with get_session_factory(current_app.config["DATABASE_URL"]).begin() as session:
        if security.find_staff(session, username) is not None:
            raise click.ClickException(f"用户名 {username} 已经存在")
        if role == "counselor" and (counselor_id is None or session.get(Counselor, counselor_id) is None):
            raise click.ClickException("辅导员账号要用 --counselor-id 关联一位已有的辅导员")
        user = StaffUser(
            username=username,
            display_name=display_name.strip() or username,
            password_hash=password_hash,
            role=role,
            counselor_id=counselor_id if role == "counselor" else None,
        )
        session.add(user)
        session.flush()
        audit.record(
            session,
            "cli",
            "create",
            "staff_user",
            user.id,
            None,
            audit.snapshot(user, ("username", "display_name", "role")),
        )
    click.echo(f"已创建{security.ROLES[role]}账号 {username}，请用它登录 /admin/login")


@veterans_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def veterans_import(file: Path) -> None:
    """Import the roster from FILE (.xlsx or .csv): every row is checked; nothing is saved if one is wrong."""
    try:
        rows = roster.read_rows(file)
    except roster.RosterError as exc:
        raise click.ClickException(str(exc)) from None
    factory = get_session_factory(current_app.config["DATABASE_URL"])
    session = factory()
    try:
        # Twice the rows: one pass checks every row, the second adds them.
        with click.progressbar(length=len(rows) * 2, label="检查并导入", show_pos=True) as bar:
            report = roster.import_roster(session, rows, "cli", progress=bar.update, source_name=file.name)
            if report.ok:
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    raise click.ClickException("没有导入：同时有人导入了相同的人员，请重新导入") from None
            else:
                session.rollback()
    finally:
        session.close()
    if not report.ok:
        for error in report.errors:
            click.echo(str(error), err=True)
        raise click.ClickException(report.summary())
    click.echo(report.summary())


@veterans_cli.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--name", default="")
@click.option("--township", default="")
@click.option("--category", default="")
def veterans_export(output: Path | None, name: str, township: str, category: str) -> None:
    """Export the (filtered) roster to an .xlsx file; ID numbers are masked."""
    output = output or Path(f"veterans-{local_today():%Y%m%d}.xlsx")
    factory = get_session_factory(current_app.config["DATABASE_URL"])
    with factory.begin() as session:
        query = roster.search_query(name=name, township=township, category=category)
        output.write_bytes(roster.export_xlsx(session, query))
        audit.record(
            session, "cli", "export", "veteran", None, None, {"file": output.name, "township": township}
        )
    click.echo(f"已导出到 {output}")


def init_app(app: Flask) -> None:
    app.cli.add_command(staff_cli)
    app.cli.add_command(veterans_cli)
