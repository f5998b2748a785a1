"""`flask jobs …`: publish a job notice and watch or steer its broadcast campaign from a terminal.

flask jobs publish ID          publish job ID and start telling its subscribers
flask jobs campaign ID [--json] [--watch]   the campaign's progress report
flask jobs campaigns           the latest campaigns
flask jobs pause|resume|cancel ID
"""

from __future__ import annotations

import json
import time

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from bureau.broadcast import campaigns
from bureau.broadcast.campaigns import CampaignError
from bureau.db import get_session_factory
from bureau.models import Campaign

jobs = AppGroup("jobs", help="岗位通知与发送任务 (job notices and broadcast campaigns).")


def _factory() -> sessionmaker:
    return get_session_factory(current_app.config["DATABASE_URL"])


def _report_text(campaign_id: int) -> str:
    with _factory().begin() as session:
        return campaigns.format_report(campaigns.report(session, campaign_id))


@jobs.command("publish")
@click.argument("job_id", type=int)
@click.option("--actor", default="cli", show_default=True, help="Who publishes (recorded in the audit log).")
def publish_command(job_id: int, actor: str) -> None:
    """Publish job JOB_ID and start its notice campaign (publishing twice sends nothing twice)."""
    try:
        with _factory().begin() as session:
            campaign = campaigns.publish_job(session, job_id, actor=actor)
            campaign_id = campaign.id
    except CampaignError as err:
        raise click.ClickException(str(err)) from None
    click.echo(_report_text(campaign_id))
    click.echo(f"查看进度：flask jobs campaign {campaign_id} --watch")


@jobs.command("campaign")
@click.argument("campaign_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--watch", is_flag=True, help="Refresh every 2 seconds until the campaign ends (at most 1 hour)."
)
def campaign_command(campaign_id: int, as_json: bool, watch: bool) -> None:
    """Show a campaign's report: recipients, sent, failed by reason, skipped, elapsed time, rate."""
    deadline = time.monotonic() + 3600
    while True:
        try:
            with _factory().begin() as session:
                rep = campaigns.report(session, campaign_id)
        except CampaignError as err:
            raise click.ClickException(str(err)) from None
        if as_json:
            click.echo(json.dumps(rep.to_dict(), ensure_ascii=False, indent=2))
        else:
            click.echo(campaigns.format_report(rep))
        if not watch or rep.status in ("done", "cancelled") or time.monotonic() > deadline:
            return
        time.sleep(2)
        click.echo("")


@jobs.command("campaigns")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
def campaigns_command(limit: int) -> None:
    """List the latest campaigns with their progress."""
    with _factory().begin() as session:
        ids = list(session.scalars(select(Campaign.id).order_by(Campaign.id.desc()).limit(limit)))
        if not ids:
            click.echo("还没有发送任务。")
            return
        for campaign_id in ids:
            rep = campaigns.report(session, campaign_id)
            click.echo(
                f"{rep.id:>6}  {rep.status_label}  {rep.done}/{rep.recipients}  失败 {rep.failed}  "
                f"跳过 {rep.skipped}  {rep.title}"
            )


def _control(action: str, campaign_id: int, actor: str) -> None:
    steps = {"pause": campaigns.pause, "resume": campaigns.resume, "cancel": campaigns.cancel}
    try:
        with _factory().begin() as session:
            steps[action](session, campaign_id, actor=actor)
    except CampaignError as err:
        raise click.ClickException(str(err)) from None
    click.echo(_report_text(campaign_id))


@jobs.command("pause")
@click.argument("campaign_id", type=int)
@click.option("--actor", default="cli", show_default=True)
def pause_command(campaign_id: int, actor: str) -> None:
    """Pause a running campaign (messages already on their way still arrive)."""
    _control("pause", campaign_id, actor)


@jobs.command("resume")
@click.argument("campaign_id", type=int)
@click.option("--actor", default="cli", show_default=True)
def resume_command(campaign_id: int, actor: str) -> None:
    """Resume a paused campaign where it stopped."""
    _control("resume", campaign_id, actor)


@jobs.command("cancel")
@click.argument("campaign_id", type=int)
@click.option("--actor", default="cli", show_default=True)
def cancel_command(campaign_id: int, actor: str) -> None:
    """Cancel a campaign: nobody not yet sent to will be."""
    _control("cancel", campaign_id, actor)


def init_app(app: Flask) -> None:
    app.cli.add_command(jobs)
