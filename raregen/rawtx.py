"""Raw transactions: RareGen's one transaction parser, bsv-sdk's ``Transaction.from_reader``
held to the exact standard serialization.

Layout (the standard serialization BSV uses): version (4 bytes LE), VarInt input count,
inputs (previous txid 32 bytes, vout uint32, VarInt-length unlocking script, sequence
uint32), VarInt output count, outputs (satoshis int64 LE, VarInt-length locking script),
locktime (uint32). VarInts are Bitcoin's CompactSize.

bsv-sdk (package ``bsv``) does the reading, with its native extension when loaded. It is
lenient where RareGen must not be: a script cut short by the end of the data is kept as
far as it goes, a field cut short is read from the bytes left, a VarInt need not be minimal,
and its native reader refuses some inputs its Python reader accepts. So every transaction
read here is serialized back with bsv-sdk (which writes minimal VarInts) and compared with
the bytes it was read from: equal means those bytes were exactly one transaction in the
standard form. What this module adds is that check, the Extended Format refusal, and one
exception type.

bsv-sdk is imported on first use, not with this module: importing it takes about a second
and loads its HTTP clients, and ``import raregen.client`` (which imports
:mod:`raregen.protocol`, a user of this module) must not load it.

Used by :mod:`raregen.protocol` (record outputs), :mod:`raregen.chain.scan` (blocks) and
:mod:`raregen.publish.broadcasters.ef` (Extended Format). Pure: no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from bsv.transaction import Transaction  # type: ignore[import-untyped]

__all__ = ["EF_MARKER", "TxParseError", "parse_raw", "read_transaction"]

EF_MARKER: Final = bytes.fromhex("0000000000ef")
"""The 6 bytes that follow the version in an Extended Format transaction (BRC-30)."""


class TxParseError(ValueError):
    """The bytes are not one transaction in the standard serialization."""


def read_transaction(data: bytes) -> tuple[Transaction, bytes]:
    """Read the standard-form transaction at the start of ``data`` (more may follow it).

    Returns:
        ``(tx, raw)``: the ``bsv.transaction.Transaction`` (scripts as bsv-sdk ``Script``,
        ``source_txid`` in display order, version, satoshis and locktime unsigned as read)
        and its exact bytes, ``data[:len(raw)]``.

    Raises:
        TxParseError: the data ends inside the transaction, a VarInt is not minimal, or
            bsv-sdk refuses the bytes.
    """
    from bsv.transaction import Transaction  # first use: see the module docstring
    from bsv.utils import Reader

    reader = Reader(bytes(data))
    try:
        tx = Transaction.from_reader(reader)
        raw = reader.getvalue()[: reader.tell()]
        exact = tx.serialize() == raw
    except Exception as exc:  # noqa: BLE001 - any refusal by bsv-sdk means "not a transaction"
        raise TxParseError(f"not a transaction: {exc}") from exc
    if not exact:
        raise TxParseError("not a transaction: the data ends inside it or a VarInt is not minimal")
    return tx, raw


def parse_raw(raw_tx: bytes) -> Transaction:
    """Parse a whole raw transaction: exactly one standard-form transaction, nothing after.

    Returns:
        the ``bsv.transaction.Transaction`` (see :func:`read_transaction`).

    Raises:
        TxParseError: Extended Format (BRC-30), trailing bytes after the locktime, or any
            reason of :func:`read_transaction`.
    """
    data = bytes(raw_tx)
    if data[4:10] == EF_MARKER:
        raise TxParseError("Extended Format (BRC-30) transactions are not supported")
    tx, raw = read_transaction(data)
    if len(raw) != len(data):
        raise TxParseError(f"{len(data) - len(raw)} trailing bytes after the locktime")
    return tx
