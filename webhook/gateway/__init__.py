"""The WeChat gateway: the `/wechat` webhook blueprint and the `flask wechat ...` commands.

`bp` is registered by `webhook.create_app`; its CLI group is `flask wechat` (`flask wechat menu`).
"""

from __future__ import annotations

import json

import click
from flask import Blueprint, current_app

from webhook.gateway import views

bp = Blueprint("gateway", __name__, cli_group="wechat")
bp.add_url_rule("/wechat", "verify", views.verify, methods=["GET"])
bp.add_url_rule("/wechat", "receive", views.receive, methods=["POST"])
bp.register_error_handler(413, views.too_large)


@bp.cli.command("menu")
@click.option("--show", is_flag=True, help="Print the menu instead of publishing it.")
def menu_command(show: bool) -> None:
    """Publish the account's custom menu through the WeChat API."""
    from bureau.wechat.client import WeChatApiError, WeChatClient
    from webhook.gateway.menu import build_menu

    menu = build_menu()
    if show:
        click.echo(json.dumps(menu, ensure_ascii=False, indent=2))
        return
    settings = current_app.config["SETTINGS"]
    client = WeChatClient(api_base=current_app.config.get("WECHAT_API_BASE", settings.wechat_api_base))
    try:
        client.create_menu(menu)
    except WeChatApiError as err:
        raise click.ClickException(
            f"菜单发布失败 (menu not published): errcode {err.errcode} {err.errmsg}"
        ) from None
    click.echo("菜单已发布 (menu published)")
