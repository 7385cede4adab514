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

Pure functions on hex strings; no third-party imports. (bsv-sdk's ``Transaction.to_ef`` needs
every parent transaction in full; the server's pool keeps only each UTXO's satoshis and
locking script, which is all EF needs.)
"""

from __future__ import annotations

from collections.abc import Sequence

from bsv.utils import unsigned_to_varint

from raregen.chain.scan import read_varint

__all__ = ["EF_MARKER", "input_outpoints", "is_extended", "to_extended_format"]

#: The 6 bytes that follow the version in an EF transaction (BRC-30).
EF_MARKER = bytes.fromhex("0000000000ef")


def _varint(raw: bytes, pos: int) -> tuple[int, int]:
    """Read a Bitcoin VarInt at ``pos``; return ``(value, position after it)``.

    Raises:
        ValueError: the transaction ends inside the VarInt.
    """
    try:
        return read_varint(raw, pos)
    except IndexError:
        raise ValueError("transaction ends inside a VarInt") from None


def _take(raw: bytes, pos: int, n: int) -> int:
    """Position after ``n`` more bytes at ``pos``; raises if the transaction ends first."""
    if pos + n > len(raw):
        raise ValueError("transaction ends early")
    return pos + n


def is_extended(raw_hex: str) -> bool:
    """True when ``raw_hex`` already carries the EF marker after its version."""
    try:
        raw = bytes.fromhex(raw_hex[:20])
    except ValueError:
        return False
    return raw[4:10] == EF_MARKER


def _inputs(raw: bytes) -> tuple[list[tuple[int, int, str, int]], int]:
    """Input spans of a raw (not EF) transaction: ``[(start, end, prev txid, prev vout)]``
    (``end`` just after the sequence number), and the position of the output count."""
    count, pos = _varint(raw, _take(raw, 0, 4))
    spans = []
    for _ in range(count):
        start = pos
        outpoint_end = _take(raw, pos, 36)
        txid = raw[pos : pos + 32][::-1].hex()
        vout = int.from_bytes(raw[pos + 32 : outpoint_end], "little")
        script_len, pos = _varint(raw, outpoint_end)
        pos = _take(raw, _take(raw, pos, script_len), 4)
        spans.append((start, pos, txid, vout))
    return spans, pos


def input_outpoints(raw_hex: str) -> list[tuple[str, int]]:
    """The outputs a raw transaction spends, in input order: ``[(txid hex, vout)]`` (txid
    in display order, as everywhere in RareGen).

    Raises:
        ValueError: not hex, already EF, or not a whole transaction's inputs.
    """
    raw = bytes.fromhex(raw_hex)
    if raw[4:10] == EF_MARKER:
        raise ValueError("already in Extended Format")
    spans, _ = _inputs(raw)
    return [(txid, vout) for _, _, txid, vout in spans]


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
    spans, outputs_at = _inputs(raw)
    if not spans:
        raise ValueError("a transaction without inputs has no Extended Format")
    if len(prevouts) != len(spans):
        raise ValueError(f"{len(prevouts)} previous outputs for {len(spans)} inputs")
    n_out, pos = _varint(raw, outputs_at)
    for _ in range(n_out):
        script_len, pos = _varint(raw, _take(raw, pos, 8))
        pos = _take(raw, pos, script_len)
    if _take(raw, pos, 4) != len(raw):
        raise ValueError("bytes after the locktime")
    first_input = spans[0][0]
    parts = [raw[:4], EF_MARKER, raw[4:first_input]]
    for (start, end, _, _), (satoshis, script_hex) in zip(spans, prevouts, strict=True):
        if not isinstance(satoshis, int) or not 0 <= satoshis < 2**63:
            raise ValueError(f"satoshis out of range: {satoshis!r}")
        script = bytes.fromhex(script_hex)
        parts += [raw[start:end], satoshis.to_bytes(8, "little"), unsigned_to_varint(len(script))]
        parts.append(script)
    parts.append(raw[outputs_at:])
    return b"".join(parts).hex()
