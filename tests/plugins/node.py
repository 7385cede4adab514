"""Pytest plugin: a real regtest Bitcoin SV node for the whole test session.

Fixtures:

- ``node_binary`` (session): path of ``bitcoind`` (cached in ``<repo>/.cache``, or
  ``$RAREGEN_NODE_CACHE``; ``$RAREGEN_BITCOIND`` names an existing binary).
- ``regtest_node`` (session): a started :class:`~raregen_dev.devnet.RegtestNode` in a
  temporary datadir, with 101+ blocks mined (the node wallet has mature coins); stopped at
  the end of the session.
- ``funded_key`` (function): a fresh :class:`FundedKey`: a ``bsv.PrivateKey`` (regtest) with
  :data:`FUNDED_KEY_UTXO_COUNT` confirmed P2PKH outputs of :data:`FUNDED_KEY_UTXO_SATS`.

If the node cannot be had (no binary: offline, other platform; or it does not start), the
fixtures FAIL when ``$CI`` or ``$RAREGEN_REQUIRE_SERVICES`` is set, and skip with the
reason otherwise.

Helpers for tests: :func:`fund_p2pkh` (re-exported from :mod:`raregen_dev.devnet`),
:func:`p2pkh_spend` (build and sign a P2PKH spend with explicit amounts; never uses the
bsv-sdk's fee model, which could make network calls).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from raregen_dev.devnet import (
    NodeBinaryError,
    NodeStartError,
    RegtestNode,
    ensure_node_binary,
    fund_p2pkh,
)

__all__ = [
    "FUNDED_KEY_UTXO_COUNT",
    "FUNDED_KEY_UTXO_SATS",
    "FundedKey",
    "Utxo",
    "fund_p2pkh",
    "node_unavailable",
    "p2pkh_spend",
    "services_required",
]

REPO = Path(__file__).resolve().parents[2]

#: (txid, vout, satoshis, locking_script_hex)
Utxo = tuple[str, int, int, str]

FUNDED_KEY_UTXO_COUNT = 4
FUNDED_KEY_UTXO_SATS = 100_000


def services_required() -> bool:
    """True when a missing service must fail the tests (``$CI`` or
    ``$RAREGEN_REQUIRE_SERVICES`` set to a non-empty value other than 0/false)."""
    for name in ("CI", "RAREGEN_REQUIRE_SERVICES"):
        value = os.environ.get(name, "").strip().lower()
        if value and value not in ("0", "false", "no"):
            return True
    return False


def node_unavailable(reason: str) -> None:
    """Fail (services required) or skip the current test with ``reason``."""
    message = f"regtest SV node unavailable: {reason}"
    if services_required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _cache_dir() -> Path:
    env = os.environ.get("RAREGEN_NODE_CACHE")
    return Path(env).expanduser() if env else REPO / ".cache"


@pytest.fixture(scope="session")
def node_binary() -> Path:
    """Path of the regtest ``bitcoind`` (downloaded once into the cache)."""
    try:
        return ensure_node_binary(_cache_dir())
    except NodeBinaryError as exc:
        node_unavailable(str(exc))
        raise  # unreachable: node_unavailable fails or skips


@pytest.fixture(scope="session")
def regtest_node(
    node_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegtestNode]:
    """One regtest node for the session, wallet funded (101+ blocks), stopped at the end."""
    node = RegtestNode(tmp_path_factory.mktemp("regtest-node"), binary=node_binary)
    try:
        node.start()
    except NodeStartError as exc:
        node_unavailable(str(exc))
    try:
        node.ensure_wallet_funds(10 * 100_000_000)
        yield node
    finally:
        node.stop()


@dataclass
class FundedKey:
    """A fresh regtest key and its confirmed P2PKH outputs.

    Attributes:
        key: ``bsv.PrivateKey`` (network TESTNET, i.e. regtest addresses ``m…``/``n…``).
        address: its P2PKH address.
        script_hex: its P2PKH locking script.
        utxos: ``[(txid, vout, satoshis, script_hex), ...]`` confirmed, unspent.
    """

    key: object
    address: str
    script_hex: str
    utxos: list[Utxo] = field(default_factory=list)


@pytest.fixture
def funded_key(regtest_node: RegtestNode) -> FundedKey:
    """A fresh key with :data:`FUNDED_KEY_UTXO_COUNT` confirmed outputs of
    :data:`FUNDED_KEY_UTXO_SATS` satoshis."""
    from bsv import PrivateKey
    from bsv.constants import Network

    key = PrivateKey(network=Network.TESTNET)
    address = key.address()
    utxos = fund_p2pkh(regtest_node, address, FUNDED_KEY_UTXO_SATS, count=FUNDED_KEY_UTXO_COUNT)
    return FundedKey(key=key, address=address, script_hex=utxos[0][3], utxos=list(utxos))


def p2pkh_spend(utxos: Sequence[Utxo], key: object, outputs: Sequence[tuple[str, int]]):
    """Build and sign a transaction spending P2PKH ``utxos`` with ``key`` to ``outputs``
    ``[(locking_script_hex, satoshis), ...]``. The fee is whatever is left over (inputs
    minus outputs): nothing is computed by the bsv-sdk's fee model.

    Returns:
        the signed ``bsv.Transaction`` (``.hex()``, ``.txid()``, ``.byte_length()``).
    """
    from bsv import P2PKH, Script, Transaction, TransactionInput, TransactionOutput

    inputs = []
    for txid, vout, sats, script_hex in utxos:
        tx_in = TransactionInput(
            source_txid=txid,
            source_output_index=vout,
            unlocking_script_template=P2PKH().unlock(key),
        )
        tx_in.satoshis = sats
        tx_in.locking_script = Script(script_hex)
        inputs.append(tx_in)
    tx = Transaction(inputs, [TransactionOutput(Script(s), v) for s, v in outputs])
    tx.sign()
    return tx
