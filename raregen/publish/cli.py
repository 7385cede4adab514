"""Operator commands: ``flask --app app keys ...``, ``flask --app app pool ...`` and
``flask --app app jobs ...``. The operator console (:mod:`raregen.ops`) calls the same
service functions."""

from __future__ import annotations

import json

import click
from flask import Flask
from flask.cli import AppGroup

from raregen.errors import InsufficientFunds, RareGenError
from raregen.publish import funding, keys, operator, pool, services

keys_cli = AppGroup("keys", help="Register, list and revoke publishing keys.")
pool_cli = AppGroup("pool", help="Inspect, fund and split the server's UTXO pool.")
jobs_cli = AppGroup("jobs", help="Act on publish jobs.")


@keys_cli.command("add")
@click.argument("pubkey_hex")
@click.option("--credits", type=int, default=None, help="Publishing credits (default: unlimited).")
@click.option("--label", default=None, help="A note to recognise the key by.")
@click.option("--account", default=None, help="Account reference the key belongs to.")
def keys_add(pubkey_hex: str, credits: int | None, label: str | None, account: str | None) -> None:
    """Register PUBKEY_HEX (compressed or uncompressed secp256k1, hex)."""
    try:
        key = keys.register_key(pubkey_hex, credits=credits, label=label, account_ref=account)
    except RareGenError as err:
        raise click.ClickException(f"{err.code}: {err.message}") from None
    shown = "unlimited" if key["credits"] is None else key["credits"]
    click.echo(f"registered {key['pubkey']} (credits: {shown})")


@keys_cli.command("list")
def keys_list() -> None:
    """List registered keys."""
    for key in keys.list_keys():
        credits = "unlimited" if key["credits"] is None else key["credits"]
        click.echo(f"{key['pubkey']}  {key['status']:8}  credits={credits}  {key['label'] or ''}")


@keys_cli.command("revoke")
@click.argument("pubkey_hex")
def keys_revoke(pubkey_hex: str) -> None:
    """Revoke PUBKEY_HEX: its requests are refused with KEY_REVOKED from now on."""
    try:
        keys.revoke_key(pubkey_hex)
    except RareGenError as err:
        raise click.ClickException(f"{err.code}: {err.message}") from None
    click.echo(f"revoked {pubkey_hex}")


@pool_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def pool_status(as_json: bool) -> None:
    """Counts and satoshis by status, dirty count, reservations past their timeout."""
    summary = pool.status_summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for status, row in sorted(summary["by_status"].items()):
        click.echo(f"{status:10} {row['count']:8} UTXOs  {row['satoshis']:>16} satoshis")
    click.echo(
        f"available for publishing: {summary['available_count']}"
        f" ({summary['usable_now']} under the unconfirmed-depth limit)"
    )
    low = " (UNDER the low-water mark)" if summary["below_low_water"] else ""
    click.echo(f"low-water mark: {summary['low_water']}{low}")
    click.echo(f"dirty: {summary['dirty_count']}")
    click.echo(f"reserved with a signed transaction: {summary['reserved_signed']}")
    click.echo(f"reserved past timeout: {summary['reserved_past_timeout']}")


@pool_cli.command("split")
@click.option("--count", type=int, required=True, help="How many UTXOs to make.")
@click.option("--sats", type=int, default=None, help="Satoshis each (default: derived).")
def pool_split(count: int, sats: int | None) -> None:
    """Split a funding UTXO into COUNT publish UTXOs of SATS satoshis."""
    try:
        result = funding.split(count, sats or funding.default_utxo_sats())
    except (InsufficientFunds, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"split into {result['count']} x {result['satoshis_each']} sats: {result['txid']}")


@pool_cli.command("fund")
@click.option("--sats", type=int, default=1_000_000_000, help="Satoshis to fund (regtest).")
def pool_fund(sats: int) -> None:
    """Development: mine regtest coins to the server address and import them."""
    try:
        result = funding.fund_dev(sats)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"funded {result['satoshis']} sats in {result['txid']} ({result['added']} new)")


@pool_cli.command("sync")
@click.option("--no-rescan", is_flag=True, help="Do not rescan the chain for the address.")
def pool_sync(no_rescan: bool) -> None:
    """Import the server address's UTXOs known to the node."""
    click.echo(f"imported {funding.sync_from_node(rescan=not no_rescan)} UTXOs")


@pool_cli.command("address")
def pool_address() -> None:
    """Print the server's funding address."""
    click.echo(services.server_wallet().address)


@pool_cli.command("release-dirty")
@click.argument("outpoint")
def pool_release_dirty(outpoint: str) -> None:
    """Return the dirty UTXO OUTPOINT (txid:vout) to the pool: you vouch it is unspent."""
    try:
        operator.release_dirty_utxo(outpoint)
    except RareGenError as err:
        raise click.ClickException(f"{err.code}: {err.message}") from None
    click.echo(f"released {outpoint}")


@pool_cli.command("settle-dirty")
@click.argument("outpoint")
def pool_settle_dirty(outpoint: str) -> None:
    """Ask the chain about the dirty UTXO OUTPOINT (txid:vout) and settle it."""
    try:
        result = operator.settle_dirty_utxo(outpoint)
    except RareGenError as err:
        raise click.ClickException(f"{err.code}: {err.message}") from None
    click.echo(f"{outpoint}: {result}")


@pool_cli.command("replenish")
def pool_replenish() -> None:
    """Split new publish UTXOs now if the pool is under its low-water mark."""
    click.echo(f"added {operator.replenish_pool()} UTXOs")


@jobs_cli.command("retry")
@click.argument("job_id")
def jobs_retry(job_id: str) -> None:
    """Put the failed job JOB_ID back in the queue."""
    try:
        result = operator.retry_failed_job(job_id)
    except RareGenError as err:
        raise click.ClickException(f"{err.code}: {err.message}") from None
    click.echo(f"re-queued {job_id} (was {result['previousErrorCode'] or 'failed'})")


def register(app: Flask) -> None:
    """Attach the command groups to ``app``."""
    app.cli.add_command(keys_cli)
    app.cli.add_command(pool_cli)
    app.cli.add_command(jobs_cli)
