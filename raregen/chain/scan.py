"""Reading the chain back: every raw transaction mined above a height, and the mempool.

Used by the checks that compare the chain with the database (the fault-injection runs in
``bench/fault_lib.py`` and the recovery tests): they read whole blocks (``getblock`` with
verbosity 0, one round trip per block instead of one per transaction) and split them here.
Pure parsing plus :class:`raregen.chain.rpc.NodeRPC` calls; no Flask, no database.
"""

from __future__ import annotations

from typing import Any

#: Bytes of a serialized block header (version, previous hash, merkle root, time, bits,
#: nonce); the transaction count (a varint) follows it.
BLOCK_HEADER_BYTES = 80


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Read a Bitcoin varint (CompactSize) at ``pos``.

    Returns:
        ``(value, position after it)``.

    Raises:
        IndexError: ``data`` ends inside the varint.
    """
    first = data[pos]
    if first < 0xFD:
        return first, pos + 1
    width = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
    if pos + 1 + width > len(data):
        raise IndexError("varint runs past the end of the data")
    return int.from_bytes(data[pos + 1 : pos + 1 + width], "little"), pos + 1 + width


def block_transactions(block: bytes) -> list[bytes]:
    """Split a serialized block (80-byte header, varint count, transactions) into its raw
    transactions, in block order (the coinbase first).

    Raises:
        IndexError, KeyError: ``block`` is truncated or not a block.
    """
    pos = BLOCK_HEADER_BYTES
    count, pos = read_varint(block, pos)
    txs = []
    for _ in range(count):
        start = pos
        pos += 4  # version
        n_in, pos = read_varint(block, pos)
        for _ in range(n_in):
            pos += 36  # previous txid and vout
            size, pos = read_varint(block, pos)
            pos += size + 4  # unlocking script, sequence
        n_out, pos = read_varint(block, pos)
        for _ in range(n_out):
            pos += 8  # satoshis
            size, pos = read_varint(block, pos)
            pos += size
        pos += 4  # locktime
        if pos > len(block):
            raise IndexError("block ends inside a transaction")
        txs.append(block[start:pos])
    return txs


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
