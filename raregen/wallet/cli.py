"""Operator commands: ``flask --app app accounts COMMAND`` with COMMAND one of ``list``,
``plan``, ``grant``, ``operator``, ``ledger``, ``check-balances``, ``purge-expired``."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

import raregen.db
from raregen.db import db, transaction
from raregen.errors import RareGenError
from raregen.wallet import accounts, credits
from raregen.wallet.models import CreditEntry
from raregen.wallet.purge import purge_expired

accounts_cli = AppGroup(
    "accounts", help="Wallet accounts: list them, set plans, grant credits, check balances."
)


def _fail(err: RareGenError) -> click.ClickException:
    return click.ClickException(f"{err.code}: {err.message}")


@accounts_cli.command("list")
def accounts_list() -> None:
    """List accounts: id, email, plan, spendable credits, created."""
    with transaction():
        for account in accounts.list_all():
            click.echo(
                f"{account.id:>6}  {account.email:40}  {account.plan:5}  "
                f"credits={credits.available(account):<6}  since {account.created_at:%Y-%m-%d}"
            )


@accounts_cli.command("plan")
@click.argument("email")
@click.argument("plan", type=click.Choice(["free", "paid"]))
def accounts_plan(email: str, plan: str) -> None:
    """Put the account of EMAIL on PLAN (free or paid)."""
    try:
        with transaction():
            account = accounts.set_plan(email, plan)
            shown = account.email
    except RareGenError as err:
        raise _fail(err) from None
    click.echo(f"{shown}: plan {plan}")


@accounts_cli.command("grant")
@click.argument("email")
@click.argument("amount", type=int)
@click.option("--reason", default=None, help="A note kept in the ledger (grant:<note>).")
def accounts_grant(email: str, amount: int, reason: str | None) -> None:
    """Add AMOUNT credits to the account of EMAIL (negative to correct a mistake)."""
    try:
        with transaction():
            account = accounts.require_by_email(email)
            new_balance = credits.grant(account.id, amount, reason)
            shown = account.email
    except RareGenError as err:
        raise _fail(err) from None
    click.echo(f"{shown}: {amount:+d} credits, balance {new_balance}")


@accounts_cli.command("operator")
@click.argument("email")
@click.option("--revoke", is_flag=True, help="Take the operator role away instead.")
def accounts_operator(email: str, revoke: bool) -> None:
    """Let the account of EMAIL use the operator console at /ops (or, --revoke, stop it)."""
    try:
        with transaction():
            account = accounts.set_operator(email, not revoke)
            shown = account.email
    except RareGenError as err:
        raise _fail(err) from None
    click.echo(f"{shown}: {'no longer an operator' if revoke else 'operator'}")


@accounts_cli.command("ledger")
@click.argument("email")
def accounts_ledger(email: str) -> None:
    """Print the credit ledger of the account of EMAIL, oldest first."""
    from sqlalchemy import select

    try:
        with transaction():
            account = accounts.require_by_email(email)
            rows = list(
                db.session.scalars(
                    select(CreditEntry)
                    .where(CreditEntry.account_id == account.id)
                    .order_by(CreditEntry.id)
                )
            )
            total = 0
            for row in rows:
                total += row.delta
                click.echo(
                    f"{row.created_at:%Y-%m-%d %H:%M:%S}  {row.delta:+5d}  {total:>6}  "
                    f"{row.reason}  {row.job_id or ''}"
                )
    except RareGenError as err:
        raise _fail(err) from None


@accounts_cli.command("check-balances")
@click.option(
    "--repair",
    is_flag=True,
    help="Set each mismatched balance to its ledger's sum (the ledger is the record).",
)
def accounts_check_balances(repair: bool) -> None:
    """Compare each account's balance column with the sum of its ledger.

    Prints one line per mismatch and exits 1 if any is found (0 when all agree, or when
    --repair corrected them).
    """
    with transaction():
        found = credits.repair_balances() if repair else credits.check_balances()
    for m in found:
        click.echo(
            f"{m.account_id:>6}  {m.email:40}  column={m.column:<8}  ledger={m.ledger:<8}  "
            f"diff={m.column - m.ledger:+d}" + ("  repaired" if repair else "")
        )
    if not found:
        click.echo("all account balances match their ledger")
    elif repair:
        click.echo(f"{len(found)} account balance(s) repaired")
    else:
        raise click.ClickException(f"{len(found)} account balance(s) differ from their ledger")


@accounts_cli.command("purge-expired")
@click.option(
    "--grace-hours",
    type=click.FloatRange(min=0),
    default=24.0,
    show_default=True,
    help="Keep rows this long after they expired.",
)
def accounts_purge_expired(grace_hours: float) -> None:
    """Delete expired sign-in codes and key challenges (raregen.wallet.purge)."""
    from datetime import timedelta

    now = raregen.db.utcnow()  # looked up when run: tests set the clock there
    grace = timedelta(hours=grace_hours)
    counts = purge_expired(now, grace, actor="cli")
    click.echo(
        f"purged {counts['otp_challenges']} sign-in codes and {counts['key_challenges']} "
        f"key challenges expired before {now - grace:%Y-%m-%d %H:%M:%S} UTC"
    )


def register(app: Flask) -> None:
    """Add the ``accounts`` command group to ``app``."""
    app.cli.add_command(accounts_cli)
