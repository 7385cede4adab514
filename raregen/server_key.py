"""``flask --app app server-key new``: make the server key file (docs/PROTOCOL.md §4).

A Flask plugin command (entry point ``flask.commands`` in pyproject.toml), so it runs without
building the app: production refuses to build it while no server key exists
(:func:`raregen.config.check_startup`), and this command is how one is made there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from raregen.config import SettingsError, default_instance_path, load_settings, refuse
from raregen.publish.txbuilder import ServerWallet

if TYPE_CHECKING:
    from raregen.publish.txbuilder import ServerWallet


def write_key_file(path: Path, network: str) -> ServerWallet:
    """Generate a server key for ``network`` and write its WIF to ``path``, mode 0600.

    The file is created exclusively (``O_EXCL``): an existing file is never replaced, since
    its address may hold funds.

    Args:
        path: the key file; its folder is created if missing.
        network: ``"mainnet"``, ``"testnet"`` or ``"regtest"``.

    Returns:
        The new wallet (its ``address`` is the one to fund).

    Raises:
        FileExistsError: ``path`` exists.
    """
    wallet = ServerWallet.generate(network)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(wallet.to_wif() + "\n")
    return wallet


@click.group("server-key")
def server_key() -> None:
    """The server's signing key file (RAREGEN_SERVER_KEY_FILE)."""


@server_key.command("new")
@click.option(
    "--receipt",
    is_flag=True,
    help="Make the acceptance-receipt key (RAREGEN_RECEIPT_KEY_FILE) instead of the funds key.",
)
def new_command(receipt: bool) -> None:
    """Generate a server key into RAREGEN_SERVER_KEY_FILE (mode 0600) and print its address;
    with --receipt, the receipt key into RAREGEN_RECEIPT_KEY_FILE and print its public key.

    Refuses (exit status 1) when the file exists: a key is never overwritten.
    """
    try:
        config = load_settings(default_instance_path())
    except SettingsError as exc:
        refuse(exc)
    if receipt:
        _new_receipt_key(Path(config["RECEIPT_KEY_FILE"]))
        return
    path = Path(config["SERVER_KEY_FILE"])
    try:
        wallet = write_key_file(path, config["NETWORK"])
    except FileExistsError:
        click.echo(
            f"raregen: {path} exists; a server key is never overwritten (its address may "
            "hold funds): move it away first if you really mean to replace it",
            err=True,
        )
        raise SystemExit(1) from None
    click.echo(f"new {config['NETWORK']} server key written to {path} (mode 0600)")
    click.echo(f"address: {wallet.address}")
    if config.get("SERVER_WIF"):
        click.echo(
            "raregen: note: RAREGEN_SERVER_WIF is set and takes precedence over this file",
            err=True,
        )


def _new_receipt_key(path: Path) -> None:
    """Write a new receipt key (hex secret, mode 0600) to ``path``; exit 1 if it exists."""
    import coincurve

    key = coincurve.PrivateKey()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        click.echo(
            f"raregen: {path} exists; a receipt key is never overwritten (receipts already "
            "given name its public key)",
            err=True,
        )
        raise SystemExit(1) from None
    with os.fdopen(fd, "w") as fh:
        fh.write(key.secret.hex() + "\n")
    click.echo(f"new receipt key written to {path} (mode 0600)")
    click.echo(f"public key: {key.public_key.format(compressed=True).hex()}")
