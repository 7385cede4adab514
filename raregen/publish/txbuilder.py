"""Build and sign the server's BSV transactions (docs/PROTOCOL.md §3, §4).

A pure module: no Flask, no database, no network. Transaction objects, serialization, the
BIP143/FORKID signature hash and ECDSA signing all come from bsv-sdk (package ``bsv``);
this module only decides the outputs, sizes and fees, and keeps bsv-sdk away from the
parts of it that could reach the network (its default ``LivePolicy`` fee model, which a
bare ``Transaction.fee()`` fetches, and its chain trackers, which ``Transaction.verify()``
uses): fees are computed here from sizes and a configured rate, never by the library.

Units used throughout:

* amounts are integer **satoshis**;
* sizes are **bytes** of the serialized transaction;
* fee rates are integer **satoshis per kilobyte** (1 kB = 1000 bytes), as in ARC's
  ``/v1/policy`` ``miningFee`` and the SV Node's ``-minminingtxfee`` (docs/PROTOCOL.md §4).

Shapes:

* a *record script* is the complete locking script of one record output, ``OP_FALSE
  OP_RETURN <pushes...>`` (bytes starting ``00 6a``), built elsewhere from the layout of
  docs/PROTOCOL.md §3; it is published with 0 satoshis;
* the server wallet pays with P2PKH UTXOs locked to its own compressed public key, and takes
  change back to the same script, so the pool lives on (docs/PROTOCOL.md §4).

Fee rule: ``fee = ceil(size * rate / 1000)`` where ``size`` is an upper bound of the signed
transaction's size: every P2PKH input is counted with the largest unlocking script a
signature can make (``MAX_P2PKH_UNLOCKING_SCRIPT_SIZE``), so the real size is never larger
than the estimate and the fee is never below the rate (checked after signing).

Errors raised:

* :class:`raregen.errors.InsufficientFunds` when the inputs cannot pay the outputs and fee;
* ``ValueError`` for malformed arguments (bad hex, negative amounts, a UTXO that is not the
  wallet's, a record script that is not ``OP_FALSE OP_RETURN``, a bad WIF), ``TypeError`` for
  an amount, count or rate that is not an ``int``;
* :class:`TxInvariantError` if a signed transaction breaks the size or fee bound (a bug; it
  is raised instead of returning a transaction a broadcaster would reject).

Speed: with bsv-sdk's native extension (``_bsv_native``, libsecp256k1, shipped in the
manylinux wheel) one ``build_publish_tx`` takes about 80-125 µs on a development VM, of
which the ECDSA signature is about 40 µs (``bench/bench_txbuilder.py``). Without it bsv-sdk
falls back to pure-Python elliptic-curve arithmetic, about 30 ms a signature, far too slow
for batch mode; :func:`native_crypto_available` tells which backend is loaded.

Modules: the values (:class:`SpendableUtxo`, :class:`BuiltTx`), sizes and fees, and the
server wallet live in :mod:`raregen.publish.tx`; this module builds and signs, and
re-exports their public names.
"""

from __future__ import annotations

from collections.abc import Sequence

from bsv.constants import SIGHASH  # type: ignore[import-untyped]
from bsv.hash import hash256  # type: ignore[import-untyped]
from bsv.native import NATIVE_AVAILABLE as _NATIVE_AVAILABLE  # type: ignore[import-untyped]
from bsv.script.script import Script  # type: ignore[import-untyped]
from bsv.transaction import Transaction  # type: ignore[import-untyped]
from bsv.transaction_input import TransactionInput  # type: ignore[import-untyped]
from bsv.transaction_output import TransactionOutput  # type: ignore[import-untyped]

from raregen.errors import InsufficientFunds
from raregen.publish.tx.fees import (
    DUST_LIMIT,
    MAX_P2PKH_UNLOCKING_SCRIPT_SIZE,
    P2PKH_INPUT_MAX_SIZE,
    P2PKH_SCRIPT_SIZE,
    estimate_size,
    fee_for_size,
    required_satoshis,
    varint_size,
)
from raregen.publish.tx.keys import NetworkName, ServerWallet
from raregen.publish.tx.values import (
    BuiltTx,
    SpendableUtxo,
    TxInvariantError,
    check_rate,
    check_satoshis,
)

__all__ = [
    "DUST_LIMIT",
    "MAX_P2PKH_UNLOCKING_SCRIPT_SIZE",
    "P2PKH_INPUT_MAX_SIZE",
    "P2PKH_SCRIPT_SIZE",
    "BuiltTx",
    "NetworkName",
    "ServerWallet",
    "SpendableUtxo",
    "TxInvariantError",
    "build_packed_tx",
    "build_publish_tx",
    "build_split_tx",
    "estimate_size",
    "fee_for_size",
    "native_crypto_available",
    "required_satoshis",
    "varint_size",
]

# Fixed here, not taken from bsv-sdk's defaults, which read BSV_PY_SDK_* environment variables.
_TX_VERSION = 1
_TX_LOCKTIME = 0
_INPUT_SEQUENCE = 0xFFFFFFFF
_SIGHASH_ALL_FORKID = SIGHASH.ALL_FORKID  # 0x41


def native_crypto_available() -> bool:
    """Whether bsv-sdk loaded its libsecp256k1 extension (fast signing); see the module doc."""
    return bool(_NATIVE_AVAILABLE)


def build_publish_tx(
    wallet: ServerWallet,
    utxo: SpendableUtxo,
    record_scripts: Sequence[bytes],
    rate_sat_per_kb: int,
    change_script_hex: str | None = None,
) -> BuiltTx:
    """Spend one pool UTXO into record outputs (0 sat each) and change (docs/PROTOCOL.md §3, §4).

    Outputs: ``record_scripts[i]`` at vout ``i`` with 0 satoshis, then, if it is at least
    :data:`DUST_LIMIT` (1 sat), a change output of ``utxo.satoshis - fee_with_change`` to
    ``change_script_hex`` (default: the wallet's own P2PKH, back into the pool). If the change
    would be below 1 satoshi there is no change output and the whole UTXO is the fee, which
    must still reach the fee of the smaller transaction without change. The input is signed
    with SIGHASH_ALL|FORKID (0x41). Many records (a packed batch, 1000+) are fine.

    Args:
        wallet: the server wallet; ``utxo`` must be locked to its P2PKH script.
        utxo: the pool UTXO to spend.
        record_scripts: complete ``OP_FALSE OP_RETURN ...`` locking scripts, at least one.
        rate_sat_per_kb: fee rate, satoshis per 1000 bytes, >= 0.
        change_script_hex: locking script for the change, hex; None for the wallet's.

    Returns:
        The signed :class:`BuiltTx`, with ``record_vouts == [0, 1, ..., n-1]``.

    Raises:
        InsufficientFunds: ``utxo.satoshis < required_satoshis(record_scripts, rate)``.
        ValueError: no records, a record script not starting ``00 6a``, a UTXO not locked to
            the wallet, bad change script hex, or a negative rate.
        TypeError: a rate that is not an int.
        TxInvariantError: the signed transaction broke the size or fee bound (a bug).
    """
    if not record_scripts:
        raise ValueError("a publish transaction needs at least one record script")
    outputs: list[tuple[bytes, int]] = []
    for i, script in enumerate(record_scripts):
        if not isinstance(script, (bytes, bytearray)) or script[:2] != b"\x00\x6a":
            raise ValueError(f"record script {i} must be bytes starting OP_FALSE OP_RETURN")
        outputs.append((bytes(script), 0))
    if change_script_hex is None:
        change_script = wallet.locking_script
    else:
        try:
            change_script = bytes.fromhex(change_script_hex)
        except (TypeError, ValueError):
            raise ValueError("change_script_hex must be hex") from None
        if not change_script:
            raise ValueError("change_script_hex must not be empty")
    built = _build(wallet, [utxo], outputs, change_script, rate_sat_per_kb)
    return BuiltTx(
        txid=built.txid,
        raw_hex=built.raw_hex,
        size=built.size,
        fee=built.fee,
        change_satoshis=built.change_satoshis,
        change_vout=built.change_vout,
        record_vouts=list(range(len(outputs))),
        inputs=built.inputs,
    )


def build_packed_tx(
    wallet: ServerWallet,
    utxo: SpendableUtxo,
    record_scripts: Sequence[bytes],
    rate_sat_per_kb: int,
    change_script_hex: str | None = None,
) -> BuiltTx:
    """Packed batch mode (docs/PROTOCOL.md §6): many records in one transaction.

    The same as :func:`build_publish_tx` (which accepts any number of records); record ``i``
    is at vout ``i``. Same arguments, result and errors.
    """
    return build_publish_tx(wallet, utxo, record_scripts, rate_sat_per_kb, change_script_hex)


def build_split_tx(
    wallet: ServerWallet,
    utxos: Sequence[SpendableUtxo],
    count: int,
    satoshis_each: int,
    rate_sat_per_kb: int,
) -> BuiltTx:
    """Split/merge wallet UTXOs into ``count`` pool UTXOs of ``satoshis_each``, docs/PROTOCOL.md §4.

    Inputs: ``utxos`` in the given order, all locked to the wallet. Outputs: vouts
    ``0..count-1`` pay ``satoshis_each`` to the wallet's P2PKH (the new pool UTXOs), then a
    change output to the wallet at vout ``count`` if the rest after the fee is at least
    1 satoshi. Thousands of outputs fit in one transaction (BSV has no small size limit;
    3000 outputs are about 100 kB).

    Args:
        wallet: the server wallet.
        utxos: the UTXOs to spend, at least one, no outpoint twice.
        count: number of pool outputs, >= 1.
        satoshis_each: value of each, satoshis, >= 1 (BSV dust).
        rate_sat_per_kb: fee rate, satoshis per 1000 bytes, >= 0.

    Returns:
        The signed :class:`BuiltTx`; its ``record_vouts`` is empty.

    Raises:
        InsufficientFunds: the inputs do not cover ``count * satoshis_each`` plus the fee.
        ValueError: no UTXOs, a duplicate outpoint, a UTXO not locked to the wallet, or a
            count, amount or rate out of range.
        TypeError: a count, amount or rate that is not an int.
        TxInvariantError: the signed transaction broke the size or fee bound (a bug).
    """
    if not utxos:
        raise ValueError("a split transaction needs at least one UTXO")
    if not isinstance(count, int) or isinstance(count, bool):
        raise TypeError(f"count must be an int, got {type(count).__name__}")
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    check_satoshis(satoshis_each, "satoshis_each")
    if satoshis_each < DUST_LIMIT:
        raise ValueError(f"satoshis_each must be >= {DUST_LIMIT} (dust)")
    if len({u.outpoint for u in utxos}) != len(utxos):
        raise ValueError("the same UTXO is given twice")
    outputs = [(wallet.locking_script, satoshis_each)] * count
    return _build(wallet, list(utxos), outputs, wallet.locking_script, rate_sat_per_kb)


def _build(
    wallet: ServerWallet,
    utxos: list[SpendableUtxo],
    outputs: list[tuple[bytes, int]],
    change_script: bytes,
    rate_sat_per_kb: int,
) -> BuiltTx:
    """Choose change and fee, then build, sign and check the transaction (bsv-sdk)."""
    rate = check_rate(rate_sat_per_kb)
    wallet_script_hex = wallet.locking_script_hex
    for u in utxos:
        if u.script_pub_key.lower() != wallet_script_hex:
            raise ValueError(
                f"UTXO {u.txid}:{u.vout} is not locked to the server wallet's P2PKH script"
            )
    total_in = sum(u.satoshis for u in utxos)
    total_out = sum(value for _, value in outputs)
    scripts = [script for script, _ in outputs]
    n_in = len(utxos)

    fee_with_change = fee_for_size(
        estimate_size(n_in, scripts, True, change_script_size=len(change_script)), rate
    )
    change = total_in - total_out - fee_with_change
    if change >= DUST_LIMIT:
        fee = fee_with_change
        change_value: int | None = change
    else:
        fee_no_change = fee_for_size(estimate_size(n_in, scripts, False), rate)
        available = total_in - total_out
        if available < fee_no_change:
            raise InsufficientFunds(
                f"inputs hold {total_in} sat; outputs need {total_out} sat plus a fee of "
                f"{fee_no_change} sat at {rate} sat/kB"
            )
        # Less than one satoshi of change: no change output, the remainder goes to the miner.
        fee = available
        change_value = None

    signer = wallet.unlocking_template
    lock_obj = wallet.locking_script_object
    tx_inputs = []
    for u in utxos:
        tx_input = TransactionInput(
            source_txid=u.txid,
            source_output_index=u.vout,
            unlocking_script_template=signer,
            sequence=_INPUT_SEQUENCE,
            sighash=_SIGHASH_ALL_FORKID,
        )
        # What the FORKID sighash commits to; set directly so no parent transaction is needed.
        tx_input.satoshis = u.satoshis
        tx_input.locking_script = lock_obj
        tx_inputs.append(tx_input)

    # Outputs sharing one script share one Script object (split: thousands of them).
    script_objs: dict[bytes, Script] = {}
    tx_outputs = []
    for script, value in outputs:
        obj = script_objs.get(script)
        if obj is None:
            obj = script_objs[script] = Script(script)
        tx_outputs.append(TransactionOutput(obj, value))
    change_vout: int | None = None
    if change_value is not None:
        change_vout = len(tx_outputs)
        tx_outputs.append(TransactionOutput(Script(change_script), change_value))

    tx = Transaction(tx_inputs, tx_outputs, version=_TX_VERSION, locktime=_TX_LOCKTIME)
    tx.sign()
    raw = tx.serialize()

    size = len(raw)
    estimate = estimate_size(
        n_in, scripts, change_value is not None, change_script_size=len(change_script)
    )
    if size > estimate:
        raise TxInvariantError(f"signed size {size} B exceeds the estimate {estimate} B")
    if fee < fee_for_size(size, rate) or total_in - total_out - (change_value or 0) != fee:
        raise TxInvariantError(f"fee {fee} sat does not pay {rate} sat/kB for {size} B")

    return BuiltTx(
        txid=hash256(raw)[::-1].hex(),
        raw_hex=raw.hex(),
        size=size,
        fee=fee,
        change_satoshis=change_value,
        change_vout=change_vout,
        record_vouts=[],
        inputs=[u.outpoint for u in utxos],
    )
