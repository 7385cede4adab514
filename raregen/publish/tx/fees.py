"""Sizes and fees of the server's transactions (docs/PROTOCOL.md §4): the size bound of a
signed transaction spending P2PKH inputs and ``fee = ceil(size * rate / 1000)``; the rule
is in the docstring of :mod:`raregen.publish.txbuilder`. Pure: no bsv-sdk, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from raregen.publish.tx.values import check_rate

DUST_LIMIT = 1
"""Smallest spendable output value on BSV, satoshis. A change below it is left as fee."""

P2PKH_SCRIPT_SIZE = 25
"""``OP_DUP OP_HASH160 <20> OP_EQUALVERIFY OP_CHECKSIG``, bytes."""

MAX_P2PKH_UNLOCKING_SCRIPT_SIZE = 1 + 72 + 1 + 1 + 33
"""Largest P2PKH unlocking script for a compressed key, bytes (108).

``<push 1> <DER signature, at most 72> <sighash byte 1>`` then ``<push 1> <pubkey 33>``.
A DER signature is 72 bytes at most (r and s each 33 with a sign pad); a low-S signature,
which is what libsecp256k1 makes, is at most 71, so a real script is 105..107 bytes. Using
108 rather than bsv-sdk's estimate of 107 keeps the bound safe even against a high-S
signature (docs/PROTOCOL.md §4, Fees: the estimate must never fall short).
"""

P2PKH_INPUT_MAX_SIZE = 32 + 4 + 1 + MAX_P2PKH_UNLOCKING_SCRIPT_SIZE + 4
"""Largest serialized P2PKH input, bytes (149): outpoint, script varint, script, sequence."""


def varint_size(n: int) -> int:
    """Bytes of Bitcoin's CompactSize encoding of ``n`` (1, 3, 5 or 9)."""
    if n < 0xFD:
        return 1
    if n <= 0xFFFF:
        return 3
    if n <= 0xFFFFFFFF:
        return 5
    return 9


def fee_for_size(size_bytes: int, rate_sat_per_kb: int) -> int:
    """Fee for a transaction of ``size_bytes`` bytes at ``rate_sat_per_kb`` sat/kB, satoshis.

    ``ceil(size_bytes * rate_sat_per_kb / 1000)`` in integer arithmetic, the rounding the
    SV Node and ARC apply (a fraction of a satoshi is paid as a whole one). There is no
    separate minimum: any size > 0 at a rate > 0 already costs at least 1 satoshi, and a
    rate of 0 (regtest set-ups) costs 0.

    Raises:
        ValueError: a negative size or rate.
        TypeError: a size or rate that is not an int.
    """
    if not isinstance(size_bytes, int) or isinstance(size_bytes, bool):
        raise TypeError(f"size_bytes must be an int, got {type(size_bytes).__name__}")
    if size_bytes < 0:
        raise ValueError(f"size_bytes must be >= 0, got {size_bytes}")
    rate = check_rate(rate_sat_per_kb)
    return (size_bytes * rate + 999) // 1000


def estimate_size(
    n_inputs: int,
    output_scripts: Sequence[bytes],
    with_change: bool,
    *,
    change_script_size: int = P2PKH_SCRIPT_SIZE,
) -> int:
    """Upper bound of the signed size of a transaction spending P2PKH inputs, bytes.

    Exact for everything but the signatures: version (4), input count varint, ``n_inputs``
    inputs of :data:`P2PKH_INPUT_MAX_SIZE` (149) bytes each, output count varint, each output
    as value (8) + script length varint + script, and locktime (4). A real signed transaction
    is 1 to 3 bytes shorter per input (DER signatures are 70 to 72 bytes with the hashtype).

    Args:
        n_inputs: number of P2PKH inputs (compressed key), >= 1.
        output_scripts: the locking scripts of the outputs other than change, in order.
        with_change: add one change output after them.
        change_script_size: the change output's script length, bytes (P2PKH: 25).

    Raises:
        ValueError: ``n_inputs`` < 1.
    """
    if n_inputs < 1:
        raise ValueError("a transaction needs at least one input")
    n_outputs = len(output_scripts) + (1 if with_change else 0)
    size = 4 + varint_size(n_inputs) + n_inputs * P2PKH_INPUT_MAX_SIZE
    size += varint_size(n_outputs)
    for script in output_scripts:
        length = len(script)
        size += 8 + varint_size(length) + length
    if with_change:
        size += 8 + varint_size(change_script_size) + change_script_size
    return size + 4


def required_satoshis(output_scripts: Sequence[bytes], rate_sat_per_kb: int) -> int:
    """Smallest UTXO value that pays for one input, these 0-sat outputs and no change, sat.

    ``fee_for_size(estimate_size(1, output_scripts, with_change=False), rate)``: a pool UTXO
    worth exactly this is spent entirely as fee (no change output); one satoshi less raises
    :class:`~raregen.errors.InsufficientFunds` in :func:`build_publish_tx`. The pool's
    reservation uses it as the lower bound of the UTXO to take (docs/PROTOCOL.md §4).

    Raises:
        ValueError: negative rate.
        TypeError: a rate that is not an int.
    """
    return fee_for_size(estimate_size(1, output_scripts, with_change=False), rate_sat_per_kb)
