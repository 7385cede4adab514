"""Reading the chain back: every raw transaction mined above a height, and the mempool.

Used by the checks that compare the chain with the database (the fault-injection runs in
``bench/fault_lib.py`` and the recovery tests): they read whole blocks (``getblock`` with
verbosity 0, one round trip per block instead of one per transaction) and split them here.
Pure parsing plus :class:`raregen.chain.rpc.NodeRPC` calls; no Flask, no database.
"""

from __future__ import annotations

from typing import Any

from bsv.utils import Reader, unsigned_to_varint  # type: ignore[import-untyped]

from raregen.rawtx import TxParseError, read_transaction

#: Bytes of a serialized block header (version, previous hash, merkle root, time, bits,
#: nonce); the transaction count (a varint) follows it.
BLOCK_HEADER_BYTES = 80


#: Bytes of the first window a transaction is read from (doubled until it fits): bsv-sdk's
#: reader copies everything after its position, so reading from the whole block would cost
#: the block's size for every transaction (quadratic in the block).
FIRST_WINDOW_BYTES = 1024


def block_transactions(block: bytes) -> list[bytes]:
    """Split a serialized block (80-byte header, varint count, transactions) into its raw
    transactions, in block order (the coinbase first). Each is read by
    :func:`raregen.rawtx.read_transaction` (bsv-sdk), the one transaction parser.

    Raises:
        IndexError: ``block`` is truncated or not a block (a transaction does not parse, or
            the count varint is cut short or not minimal).
    """
    block = bytes(block)
    reader = Reader(block[BLOCK_HEADER_BYTES : BLOCK_HEADER_BYTES + 9])
    count = reader.read_var_int_num()
    if count is None or reader.tell() != len(unsigned_to_varint(count)):
        raise IndexError("block ends inside its transaction count")
    pos = BLOCK_HEADER_BYTES + reader.tell()
    txs = []
    for _ in range(count):
        raw = _transaction_at(block, pos)
        txs.append(raw)
        pos += len(raw)
    return txs


def _transaction_at(block: bytes, pos: int) -> bytes:
    """The raw transaction starting at byte ``pos`` of ``block``, read from a window of the
    block that doubles until the transaction fits (see :data:`FIRST_WINDOW_BYTES`). A
    transaction read exactly from a window is the one the whole block holds there: the
    reader's result depends only on the bytes it consumed."""
    window = FIRST_WINDOW_BYTES
    while True:
        try:
            return read_transaction(block[pos : pos + window])[1]
        except TxParseError as exc:
            if pos + window >= len(block):
                raise IndexError(f"block ends inside the transaction at byte {pos}") from exc
            window *= 2


def transactions_since(rpc: Any, since_height: int, *, mempool: bool = True) -> list[bytes]:
    """Every raw transaction in the blocks above ``since_height`` up to the tip, then (if
    ``mempool``) every transaction in the node's mempool.

    Args:
        rpc: a :class:`raregen.chain.rpc.NodeRPC` (anything with ``call(method, *params)``).
        since_height: blocks at this height and below are not read.
        mempool: also read the mempool (one ``getrawtransaction`` per transaction).

    Raises:
        raregen.chain.rpc.RPCError, raregen.chain.rpc.RPCTransportError: the node refused or
            could not be reached.
    """
    raws: list[bytes] = []
    tip = int(rpc.call("getblockcount"))
    for height in range(since_height + 1, tip + 1):
        block = rpc.call("getblock", rpc.call("getblockhash", height), 0)
        raws += block_transactions(bytes.fromhex(block))
    if mempool:
        for txid in rpc.call("getrawmempool"):
            raws.append(bytes.fromhex(rpc.call("getrawtransaction", txid, 0)))
    return raws
