"""Block headers and merkle paths: the pure chain arithmetic of proof files.

* 80-byte block headers (Bitcoin header serialization: version, previous block hash, merkle
  root, time, bits, nonce, integers little endian); a block's hash is the double SHA-256 of
  its header, shown byte-reversed (display order), like txids.
* Proof of work: the hash read as a 256-bit little-endian integer must not exceed the
  target encoded by the header's own ``bits`` (compact form: exponent byte, 23-bit mantissa;
  a set sign bit or a zero mantissa is no valid target).
* BRC-74 merkle paths (BUMP), built and read with the bsv-sdk's ``MerklePath``: from a
  branch as the SV Node's ``getmerkleproof2`` answers it (``index`` and ``nodes``, ``"*"``
  for "the same hash again"), or from a block's whole txid list (one txid, or many at once
  with the tree's levels hashed only once).

Imports neither Flask nor SQLAlchemy, does no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bsv import MerklePath
from bsv.utils import unsigned_to_varint

__all__ = [
    "HEADER_BYTES",
    "Header",
    "branch_from_txids",
    "bump_from_branch",
    "bump_from_txids",
    "bumps_from_txids",
    "parse_header",
    "target_from_bits",
    "tree_levels",
]

HEADER_BYTES = 80


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


@dataclass(frozen=True)
class Header:
    """A parsed 80-byte block header. Hashes are hex in display order (byte-reversed).

    Attributes:
        raw: the 80 bytes.
        version, time, bits, nonce: the header's integers.
        prev_hash: hash of the block before.
        merkle_root: the root of the block's transaction tree.
        hash: this block's hash.
    """

    raw: bytes
    version: int
    prev_hash: str
    merkle_root: str
    time: int
    bits: int
    nonce: int
    hash: str

    @property
    def pow_ok(self) -> bool:
        """True when the hash does not exceed the target of ``bits``."""
        target = target_from_bits(self.bits)
        return target > 0 and int(self.hash, 16) <= target


def parse_header(header: bytes | str) -> Header:
    """Parse an 80-byte block header (bytes, or 160 hex characters).

    Raises:
        ValueError: not hex, or not exactly 80 bytes.
    """
    raw = bytes.fromhex(header) if isinstance(header, str) else bytes(header)
    if len(raw) != HEADER_BYTES:
        raise ValueError(f"a block header is {HEADER_BYTES} bytes, not {len(raw)}")
    return Header(
        raw=raw,
        version=int.from_bytes(raw[0:4], "little"),
        prev_hash=raw[4:36][::-1].hex(),
        merkle_root=raw[36:68][::-1].hex(),
        time=int.from_bytes(raw[68:72], "little"),
        bits=int.from_bytes(raw[72:76], "little"),
        nonce=int.from_bytes(raw[76:80], "little"),
        hash=_sha256d(raw)[::-1].hex(),
    )


def target_from_bits(bits: int) -> int:
    """The proof-of-work target of a header's compact ``bits``; 0 when the encoding is not a
    valid positive target (sign bit set, zero mantissa, or past 256 bits)."""
    exponent, mantissa = bits >> 24, bits & 0x007FFFFF
    if bits & 0x00800000 or mantissa == 0:
        return 0
    target = mantissa >> (8 * (3 - exponent)) if exponent <= 3 else mantissa << (8 * (exponent - 3))
    return target if target < 1 << 256 else 0


def _leaf(offset: int, node: str) -> dict[str, Any]:
    if node == "*":
        return {"offset": offset, "duplicate": True}
    return {"offset": offset, "hash_str": node.lower()}


def bump_from_branch(block_height: int, index: int, txid: str, nodes: Sequence[str]) -> str:
    """A BRC-74 merkle path (hex) for one transaction from its merkle branch.

    Args:
        block_height: height of the block.
        index: the transaction's position in the block (0 is the coinbase).
        txid: the transaction id (display order hex).
        nodes: the sibling hashes from the leaves up (display order hex), ``"*"`` where the
            sibling is the working hash itself (an odd level's last node): the
            ``getmerkleproof2`` form.

    Raises:
        ValueError: the path is inconsistent (bsv-sdk's ``MerklePath`` checks).
    """
    path: list[list[dict[str, Any]]] = []
    for level, node in enumerate(nodes):
        sibling = _leaf((index >> level) ^ 1, node)
        if level == 0:
            mine = {"offset": index, "hash_str": txid.lower(), "txid": True}
            path.append(sorted([mine, sibling], key=lambda leaf: leaf["offset"]))
        else:
            path.append([sibling])
    if not path:  # a block of one transaction: the txid is the root
        path = [[{"offset": 0, "hash_str": txid.lower(), "txid": True}]]
    return MerklePath(int(block_height), path).to_hex()  # type: ignore[arg-type]


def branch_from_txids(txids: Sequence[str], index: int) -> list[str]:
    """The merkle branch of ``txids[index]`` in a block whose transactions are ``txids`` (in
    block order, display-order hex): the sibling at each level, ``"*"`` where a level's last
    node is paired with itself.

    Raises:
        IndexError: ``index`` is outside the list.
    """
    if not 0 <= index < len(txids):
        raise IndexError("transaction index outside the block")
    level = [bytes.fromhex(t)[::-1] for t in txids]
    nodes: list[str] = []
    pos = index
    while len(level) > 1:
        sibling = pos ^ 1
        nodes.append("*" if sibling >= len(level) else level[sibling][::-1].hex())
        if len(level) % 2:
            level.append(level[-1])
        level = [_sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        pos >>= 1
    return nodes


def bump_from_txids(block_height: int, txids: Sequence[str], txid: str) -> str:
    """A BRC-74 merkle path (hex) for ``txid`` from the block's whole txid list.

    Raises:
        ValueError: ``txid`` is not in the list.
    """
    lowered = [t.lower() for t in txids]
    index = lowered.index(txid.lower())
    return bump_from_branch(block_height, index, txid, branch_from_txids(lowered, index))


def tree_levels(txids: Sequence[str]) -> list[list[bytes]]:
    """Every level of the merkle tree of ``txids`` (internal byte order), leaves first, root
    last. A level of odd length is paired with a copy of its last node when hashed (the
    Bitcoin rule), but the copy is not kept in the level."""
    level = [bytes.fromhex(t)[::-1] for t in txids]
    levels = [level]
    while len(level) > 1:
        padded = level + [level[-1]] if len(level) % 2 else level
        level = [_sha256d(padded[i] + padded[i + 1]) for i in range(0, len(padded), 2)]
        levels.append(level)
    return levels


def bumps_from_txids(
    block_height: int,
    txids: Sequence[str],
    wanted: Sequence[str],
    levels: list[list[bytes]] | None = None,
) -> dict[str, str]:
    """BRC-74 merkle paths (hex) for several transactions of one block from the block's whole
    txid list: the tree is hashed once (``len(txids)`` hashes), then each path takes the
    sibling at every level (``"*"`` where a level's last node is paired with itself), as
    :func:`branch_from_txids` would one by one. Each path is a one-transaction BUMP, the
    same as :func:`bump_from_txids` gives.

    Args:
        block_height: height of the block.
        txids: the block's txids in block order (display-order hex).
        wanted: the txids to make paths for.
        levels: :func:`tree_levels` of ``txids`` when already computed (kept by a caller
            that asks about the same block again).

    Returns:
        ``{txid: bump_hex}`` for each of ``wanted`` found in the block (lower-case keys);
        those not in the block are left out.

    Raises:
        ValueError: a path is inconsistent (bsv-sdk's ``MerklePath`` checks).
    """
    lowered = [t.lower() for t in txids]
    position = {t: i for i, t in enumerate(lowered)}
    levels = levels if levels is not None else tree_levels(lowered)
    out: dict[str, str] = {}
    for txid in wanted:
        index = position.get(txid.lower())
        if index is None:
            continue
        out[txid.lower()] = _encode_bump(block_height, index, levels).hex()
    return out


def _encode_bump(block_height: int, index: int, levels: list[list[bytes]]) -> bytes:
    """The BRC-74 binary form of the path of leaf ``index`` through ``levels`` (from
    :func:`tree_levels`, a tree of two leaves or more).

    BRC-74: block height (VarInt), tree height (one byte), then per level from the leaves
    up: the number of leaves (VarInt) and each leaf as offset (VarInt), flags (one byte:
    0 a hash, 1 "duplicate the working hash", 2 the client's txid) and, unless flag 1, the
    32-byte hash in internal byte order. Level 0 holds the txid and its sibling in offset
    order; every higher level holds the sibling only. This is what bsv-sdk's
    ``MerklePath(...).to_binary()`` writes for the same path (the unit tests compare them),
    written here because the SDK's encoder costs about 1 ms a path, too much for a block
    with thousands of our transactions.
    """
    tree = levels[:-1]
    out = bytearray(unsigned_to_varint(int(block_height)))
    out.append(len(tree))
    pos = index
    for height, level in enumerate(tree):
        sibling = pos ^ 1
        leaf = (
            unsigned_to_varint(sibling) + b"\x01"
            if sibling >= len(level)
            else unsigned_to_varint(sibling) + b"\x00" + level[sibling]
        )
        if height == 0:
            mine = unsigned_to_varint(pos) + b"\x02" + level[pos]
            out += unsigned_to_varint(2) + (mine + leaf if pos < sibling else leaf + mine)
        else:
            out += unsigned_to_varint(1) + leaf
        pos >>= 1
    return bytes(out)


def merkle_root(txids: Sequence[str]) -> str:
    """The merkle root (display order hex) of a block whose txids are ``txids``."""
    level = [bytes.fromhex(t)[::-1] for t in txids]
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [_sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0][::-1].hex()
