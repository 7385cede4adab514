"""Operator commands: ``flask --app app webhooks add|list|remove|enable|deliveries|deliver``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click
from flask import Flask
from flask.cli import AppGroup

from raregen.db import db, transaction
from raregen.errors import RareGenError
from raregen.publish.models import RegisteredKey
from raregen.signing import parse_pubkey
from raregen.webhooks import delivery, service
from raregen.webhooks.service import Owner

if TYPE_CHECKING:
    from raregen.webhooks.service import Owner

webhooks_cli = AppGroup("webhooks", help="Webhook endpoints of keys and wallet accounts.")


def _owner(key: str | None, account: str | None) -> Owner:
    from sqlalchemy import select

    if (key is None) == (account is None):
        raise click.UsageError("give exactly one of --key PUBKEY_HEX or --account acct:<id>")
    if account is not None:
        return Owner(account_ref=account)
    try:
        pubkey = parse_pubkey(str(key)).hex()
    except RareGenError as err:
        raise click.ClickException(f"{err.code}: {err.message}") from None
    with transaction():
        key_id = db.session.scalar(select(RegisteredKey.id).where(RegisteredKey.pubkey == pubkey))
    if key_id is None:
        raise click.ClickException("KEY_NOT_REGISTERED: this key is not registered")
    return Owner(key_id=key_id)


def _fail(err: RareGenError) -> click.ClickException:
    return click.ClickException(f"{err.code}: {err.message}")


@webhooks_cli.command("add")
@click.argument("url")
@click.option("--key", default=None, help="Owner: a registered key (hex).")
@click.option("--account", default=None, help="Owner: a wallet account (acct:<id>).")
@click.option("--description", default=None, help="A note to recognise the endpoint by.")
def add(url: str, key: str | None, account: str | None, description: str | None) -> None:
    """Register URL; prints the endpoint and its secret (shown once)."""
    try:
        view = service.create_endpoint(_owner(key, account), url, description, actor="cli")
    except RareGenError as err:
        raise _fail(err) from None
    click.echo(json.dumps(view, indent=2))


@webhooks_cli.command("list")
@click.option("--key", default=None, help="Only this key's endpoints.")
@click.option("--account", default=None, help="Only this account's endpoints.")
def list_(key: str | None, account: str | None) -> None:
    """List endpoints (all by default)."""
    owner = None if key is None and account is None else _owner(key, account)
    for view in service.list_endpoints(owner):
        who = view.get("owner", "")
        click.echo(
            f"{view['id']:>5}  {view['status']:8}  failures={view['failures']:<3} "
            f"{who}  {view['url']}"
        )


@webhooks_cli.command("remove")
@click.argument("endpoint_id", type=int)
def remove(endpoint_id: int) -> None:
    """Remove endpoint ENDPOINT_ID with its pending events and history."""
    try:
        service.remove_endpoint(None, endpoint_id, actor="cli")
    except RareGenError as err:
        raise _fail(err) from None
    click.echo(f"removed {endpoint_id}")


@webhooks_cli.command("enable")
@click.argument("endpoint_id", type=int)
def enable(endpoint_id: int) -> None:
    """Enable a disabled endpoint again."""
    try:
        service.enable_endpoint(None, endpoint_id, actor="cli")
    except RareGenError as err:
        raise _fail(err) from None
    click.echo(f"enabled {endpoint_id}")


@webhooks_cli.command("deliveries")
@click.option("--endpoint", "endpoint_id", type=int, default=None, help="Only this endpoint.")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with every attempt).")
def deliveries(endpoint_id: int | None, limit: int, as_json: bool) -> None:
    """The latest events and their delivery attempts, newest first."""
    try:
        events = service.deliveries(None, endpoint_id, limit=limit)
    except RareGenError as err:
        raise _fail(err) from None
    if as_json:
        click.echo(json.dumps(events, indent=2))
        return
    for e in events:
        last = e["history"][-1] if e["history"] else None
        answer = "" if last is None else (last["statusCode"] or last["error"] or "")
        click.echo(
            f"{e['msgId']}  ep={e['endpointId']}  {e['type']:14} {e['status']:9} "
            f"attempts={e['attempts']}  job={e['jobId']}  {answer}"
        )


@webhooks_cli.command("deliver")
@click.option("--budget", type=float, default=30.0, show_default=True, help="Seconds.")
def deliver(budget: float) -> None:
    """Deliver the due events now (what the workers do)."""
    click.echo(json.dumps(delivery.deliver_due(budget_seconds=budget)))


def register(app: Flask) -> None:
    """Add the ``webhooks`` command group to ``app``."""
    app.cli.add_command(webhooks_cli)
