"""Extended Format (EF) transactions: BRC-30 (https://bsv.brc.dev/transactions/0030), the
same as BIP-239 "Transaction Extended Format" in bitcoin-sv/arc's docs.

EF is the raw transaction with, after the version, the marker ``0000000000EF`` (6 bytes),
and, after each input's sequence number, the satoshis (8 bytes, little-endian) and the
locking script (VarInt length, then the script) of the output the input spends::

    version(4) 0000000000EF nIn(VarInt)
      [prev txid(32) prev vout(4) unlocking script(VarInt+bytes) sequence(4)
       prev satoshis(8) prev locking script(VarInt+bytes)] x nIn
    nOut(VarInt) outputs locktime(4)

ARC prefers it (its README, "Extended Format (EF)"): with each input's value and script in
the request, ARC validates scripts and fees without fetching the parent transactions from a
node; a raw transaction whose parents ARC cannot find is refused with 460 "Not extended
format". The transaction's id and signatures are those of the raw form: EF only adds data.

Pure functions on hex strings. The transaction is read by :func:`raregen.rawtx.parse_raw`
(bsv-sdk, held to the exact standard form), so the inputs and outputs written back are the
bytes received. (bsv-sdk's ``Transaction.to_ef`` is not used: it needs every parent
transaction in full; the server's pool keeps only each UTXO's satoshis and locking script,
which is all EF needs.)
"""

from __future__ import annotations

from collections.abc import Sequence

from bsv.utils import unsigned_to_varint

from raregen.rawtx import EF_MARKER, parse_raw

__all__ = ["EF_MARKER", "input_outpoints", "is_extended", "to_extended_format"]


def is_extended(raw_hex: str) -> bool:
    """True when ``raw_hex`` already carries the EF marker after its version."""
    try:
        raw = bytes.fromhex(raw_hex[:20])
    except ValueError:
        return False
    return raw[4:10] == EF_MARKER


def input_outpoints(raw_hex: str) -> list[tuple[str, int]]:
    """The outputs a raw transaction spends, in input order: ``[(txid hex, vout)]`` (txid
    in display order, as everywhere in RareGen).

    Raises:
        ValueError: not hex, already EF, or not a whole transaction's inputs.
    """
    raw = bytes.fromhex(raw_hex)
    if raw[4:10] == EF_MARKER:
        raise ValueError("already in Extended Format")
    return [(i.source_txid, i.source_output_index) for i in parse_raw(raw).inputs]


def to_extended_format(raw_hex: str, prevouts: Sequence[tuple[int, str]]) -> str:
    """The EF form (BRC-30) of a raw transaction.

    Args:
        raw_hex: the signed raw transaction (standard format), hex.
        prevouts: for each input, in input order, the spent output's ``(satoshis,
            locking script hex)``: satoshis an int in ``0 .. 2**63 - 1``.

    Returns:
        The EF transaction, lowercase hex. Its txid (of the standard form) is unchanged.

    Raises:
        ValueError: ``raw_hex`` is not hex, is already EF, has no input, is cut short or
            has bytes after its locktime; ``prevouts`` has not one entry per input; a
            satoshi value is out of range or a script is not hex.
    """
    raw = bytes.fromhex(raw_hex)
    if raw[4:10] == EF_MARKER:
        raise ValueError("already in Extended Format")
    tx = parse_raw(raw)
    if not tx.inputs:
        raise ValueError("a transaction without inputs has no Extended Format")
    if len(prevouts) != len(tx.inputs):
        raise ValueError(f"{len(prevouts)} previous outputs for {len(tx.inputs)} inputs")
    parts = [raw[:4], EF_MARKER, unsigned_to_varint(len(tx.inputs))]
    for tx_input, (satoshis, script_hex) in zip(tx.inputs, prevouts, strict=True):
        if not isinstance(satoshis, int) or not 0 <= satoshis < 2**63:
            raise ValueError(f"satoshis out of range: {satoshis!r}")
        script = bytes.fromhex(script_hex)
        parts += [
            tx_input.serialize(),
            satoshis.to_bytes(8, "little"),
            unsigned_to_varint(len(script)),
        ]
        parts.append(script)
    parts.append(unsigned_to_varint(len(tx.outputs)))
    parts += [output.serialize() for output in tx.outputs]
    parts.append(raw[-4:])  # locktime
    return b"".join(parts).hex()
