"""Merkle proofs stored at confirmation, and the re-check that undoes a confirmation when a
reorganisation takes the block away (docs/PROOFS.md, "How the server gets a proof").

* :func:`capture`: when a transaction is seen confirmed, its BRC-74 merkle path and block
  header are stored in ``tx_proofs`` (one row per txid: a packed transaction's one path
  serves all its records). The path comes from the status answer when the backend gives one
  (ARC's ``merklePath``), else from a backend that can compute it (the SV Node:
  ``getmerkleproof2``); the header from a backend that serves headers (the node). A path is
  stored only once it is checked: it holds the txid, its root is the header's merkle root,
  its height and the header's hash are the block's.
* :func:`capture_many`: the same for all the transactions a confirmation pass found
  confirmed, per block: the block's txid list and header are asked once (a backend with
  ``block_txids``: the node's ``getblock``), every path is computed here
  (:func:`raregen.proofs.merkle.bumps_from_txids`) and checked as above, and the block's
  proofs are stored in one transaction. Transactions whose status carries a path, or whose
  block no backend can list, are captured one by one (:func:`capture`).
* :func:`recheck`: the blocks of the jobs confirmed in the last ``PROOF_RECHECK_BLOCKS``
  blocks are asked whether they are still on the main chain; when one is not (or a backend
  that cannot tell says the transaction is no longer in it), its jobs go back to ``sent``,
  its proofs and the cached headers from its height up are dropped, and the next
  confirmation pass confirms them again with the new block's proof. It also captures the
  proofs of recently confirmed transactions that have none (a capture that failed, a
  confirmation found by the reaper).
* :func:`following_headers`: the headers after a block for a proof file, from the
  ``block_headers`` cache (only headers buried deeper than ``PROOF_RECHECK_BLOCKS``) or the
  chain, always linked by previous-hash to the proof's block.

Backends are duck-typed: a backend of the failover chain offers ``merkle_proof``,
``block_state`` or ``headers_at`` (``SVNodeBroadcaster``) or does not; a backend that raises
``BroadcasterUnavailable`` is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from bsv import MerklePath
from flask import current_app
from sqlalchemy import delete, func, insert, select, update

from raregen.db import db, transaction, utcnow
from raregen.proofs import merkle
from raregen.publish.broadcasters.base import BroadcasterUnavailable, TxStatus
from raregen.publish.models import CONFIRMED, SENT, BlockHeader, PublishJob, TxProof
from raregen.webhooks import outbox

__all__ = ["capture", "capture_many", "following_headers", "recheck", "revert_txids"]

log = logging.getLogger(__name__)


class _NoBackend(Exception):
    """No backend of the chain offers the method, or every one that does is unreachable."""


def _backends(chain: Any) -> list[Any]:
    return list(getattr(chain, "backends", None) or [chain])


def _ask(chain: Any, method: str, *args: Any) -> Any:
    """The answer of the first backend that has ``method`` and can be asked."""
    for backend in _backends(chain):
        fn = getattr(backend, method, None)
        if not callable(fn):
            continue
        try:
            return fn(*args)
        except BroadcasterUnavailable as exc:
            log.info("%s via %s unavailable: %s", method, backend.name, exc)
    raise _NoBackend(method)


def _checked(txid: str, block_hash: str | None, bump_hex: str, header_hex: str) -> int:
    """Check a merkle path and header for ``txid``; return the block height.

    Raises:
        ValueError: the path does not hold the txid, its root is not the header's, or the
            header is not the block's.
    """
    path = MerklePath.from_hex(bump_hex)
    header = merkle.parse_header(header_hex)
    if block_hash and header.hash != block_hash:
        raise ValueError("the header is not the block's")
    if path.compute_root(txid) != header.merkle_root:
        raise ValueError("the merkle path's root is not the header's merkle root")
    return int(path.block_height)


def fetch(txid: str, status: TxStatus, chain: Any) -> tuple[str, str, str, int]:
    """The checked merkle proof of confirmed ``txid``: ``(bump_hex, header_hex, block_hash,
    height)``.

    Raises:
        ValueError: what the backends gave does not check out.
        LookupError: no backend can give it now.
    """
    block_hash = status.block_hash or ""
    try:
        if status.merkle_path:
            height = int(MerklePath.from_hex(status.merkle_path).block_height)
            found = _ask(chain, "headers_at", [height]).get(height)
            if found is None or (block_hash and found[0] != block_hash):
                raise LookupError("the chain's header at that height is another block")
            bump, header = status.merkle_path, found[1]
        else:
            bump, header, height = _ask(chain, "merkle_proof", txid, block_hash)
    except _NoBackend as exc:
        raise LookupError(f"no backend answers {exc}") from None
    checked = _checked(txid, block_hash or None, bump, header)
    if checked != height or (status.block_height is not None and checked != status.block_height):
        raise ValueError("the merkle path's block height is not the block's")
    return bump, header, merkle.parse_header(header).hash, height


def capture(txid: str, status: TxStatus, chain: Any) -> bool:
    """Fetch, check and store the merkle proof of confirmed ``txid`` (replacing an older
    row). Never raises for chain trouble: logs it and returns False (the re-check or the
    proof endpoint tries again)."""
    try:
        bump, header, block_hash, height = fetch(txid, status, chain)
    except (LookupError, ValueError) as exc:
        log.warning("no merkle proof for %s yet: %s", txid, exc)
        return False
    with transaction():
        db.session.execute(delete(TxProof).where(TxProof.txid == txid))
        db.session.add(
            TxProof(
                txid=txid,
                block_hash=block_hash,
                block_height=height,
                merkle_path=bump,
                block_header=header,
            )
        )
    return True


def _store(rows: list[dict[str, Any]]) -> None:
    """Replace the proofs of ``rows`` (``TxProof`` column values) in one transaction."""
    with transaction():
        db.session.execute(delete(TxProof).where(TxProof.txid.in_([r["txid"] for r in rows])))
        db.session.execute(insert(TxProof), rows)


def _capture_block(
    block_hash: str, items: list[tuple[str, TxStatus]], chain: Any, blocks: dict[str, Any]
) -> int:
    """Capture the proofs of ``items`` (all confirmed in block ``block_hash``) from the
    block's txid list: one ask for the list and header, paths computed and checked here,
    one transaction storing them. Raises ``_NoBackend`` when no backend that lists blocks
    answers."""
    try:
        if block_hash not in blocks:
            height, header_hex, txids = _ask(chain, "block_txids", block_hash)
            blocks[block_hash] = (height, header_hex, txids, merkle.tree_levels(txids))
        height, header_hex, txids, levels = blocks[block_hash]
        header = merkle.parse_header(header_hex)
    except ValueError as exc:
        log.warning("no merkle proofs from block %s yet: %s", block_hash, exc)
        return 0
    if header.hash != block_hash:
        log.warning("no merkle proofs from block %s yet: the header is another block's", block_hash)
        return 0
    bumps = merkle.bumps_from_txids(height, txids, [txid for txid, _ in items], levels)
    rows: list[dict[str, Any]] = []
    now = utcnow()
    for txid, status in items:
        bump_hex = bumps.get(txid.lower())
        if bump_hex is None:
            log.warning("no merkle proof for %s yet: not in block %s", txid, block_hash)
            continue
        if status.block_height is not None and status.block_height != height:
            log.warning(
                "no merkle proof for %s yet: the block's height is not %s",
                txid,
                status.block_height,
            )
            continue
        # the SDK reads the path back and computes its root: it must be the header's
        path = MerklePath.from_binary(bytes.fromhex(bump_hex))
        if path.compute_root(txid) != header.merkle_root or int(path.block_height) != height:
            log.warning(
                "no merkle proof for %s yet: the path's root is not block %s's", txid, block_hash
            )
            continue
        rows.append(
            {
                "txid": txid,
                "block_hash": block_hash,
                "block_height": height,
                "merkle_path": bump_hex,
                "block_header": header_hex,
                "created_at": now,
            }
        )
    if rows:
        _store(rows)
    return len(rows)


def capture_many(
    confirmed: Iterable[tuple[str, TxStatus]], chain: Any, blocks: dict[str, Any] | None = None
) -> int:
    """Fetch, check and store the merkle proofs of confirmed transactions, per block (module
    docstring): for each block, one ask for its txid list and header and one database
    transaction, however many of ``confirmed`` it holds. A status that carries a path
    (ARC's ``merklePath``) or has no block hash, and every transaction of a block that no
    backend can list, goes through :func:`capture` one by one, as before. Never raises for
    chain trouble: what cannot be captured now is logged and left to the re-check.

    Args:
        confirmed: ``(txid, status)`` pairs with ``status.state == "confirmed"``.
        chain: the broadcaster (chain) to ask.
        blocks: a cache of the blocks already listed (txids, header, hashed tree), kept by
            a caller that captures in several steps (a confirmation pass), so a block is
            listed once however many steps find transactions in it.

    Returns:
        The number of proofs stored.
    """
    stored = 0
    by_block: dict[str, list[tuple[str, TxStatus]]] = {}
    single: list[tuple[str, TxStatus]] = []
    seen: set[str] = set()
    for txid, status in confirmed:
        if txid in seen:
            continue
        seen.add(txid)
        if status.merkle_path or not status.block_hash:
            single.append((txid, status))
        else:
            by_block.setdefault(status.block_hash, []).append((txid, status))
    listing = any(callable(getattr(b, "block_txids", None)) for b in _backends(chain))
    for block_hash, items in by_block.items():
        if not listing:  # no backend lists blocks: one by one
            single.extend(items)
            continue
        try:
            stored += _capture_block(block_hash, items, chain, {} if blocks is None else blocks)
        except _NoBackend:
            log.warning("no merkle proofs from block %s yet: no backend answers", block_hash)
    for txid, status in single:
        stored += capture(txid, status, chain)
    return stored


def revert_txids(txids: Iterable[str], from_height: int | None = None) -> int:
    """Undo the confirmation of ``txids``: their ``confirmed`` jobs go back to ``sent``
    (block columns cleared), their proofs are dropped, and cached headers from
    ``from_height`` up too (current transaction).

    Returns:
        The number of jobs moved back.
    """
    txids = sorted(set(txids))
    if not txids:
        return 0
    rows = db.session.execute(
        update(PublishJob)
        .where(PublishJob.txid.in_(txids), PublishJob.status == CONFIRMED)
        .values(status=SENT, block_hash=None, block_height=None, confirmed_at=None)
        .returning(*outbox.JOB_FIELDS)
        .execution_options(synchronize_session=False)
    ).all()
    outbox.emit(outbox.REORGED, rows)  # webhook events "job.reorged", same transaction
    db.session.execute(delete(TxProof).where(TxProof.txid.in_(txids)))
    if from_height is not None:
        db.session.execute(delete(BlockHeader).where(BlockHeader.height >= from_height))
    return len(rows)


def recheck(
    chain: Any, *, blocks: int, capture_missing: bool = True, limit: int = 200
) -> dict[str, int]:
    """Re-check the blocks of recent confirmations (module docstring).

    Args:
        chain: the broadcaster (chain) to ask.
        blocks: how many blocks back from the highest confirmation are re-checked.
        capture_missing: also capture missing proofs of those confirmations.
        limit: at most this many txids asked one by one (backends that cannot judge a
            block) and this many proofs captured per call.

    Returns:
        ``{"reverted": jobs moved back to sent, "captured": proofs stored}``.
    """
    out = {"reverted": 0, "captured": 0}
    with transaction():
        top = db.session.scalar(
            select(func.max(PublishJob.block_height)).where(PublishJob.status == CONFIRMED)
        )
        if top is None:
            return out
        recent = db.session.execute(
            select(PublishJob.block_hash, PublishJob.block_height, PublishJob.txid)
            .where(PublishJob.status == CONFIRMED, PublishJob.block_height > top - blocks)
            .distinct()
        ).all()
    by_block: dict[tuple[str, int], set[str]] = {}
    for block_hash, height, txid in recent:
        if block_hash and txid and height is not None:
            by_block.setdefault((block_hash, int(height)), set()).add(txid)
    asked = 0
    for (block_hash, height), txids in sorted(by_block.items(), key=lambda kv: kv[0][1]):
        try:
            state = _ask(chain, "block_state", block_hash)
        except _NoBackend:
            state = None
        gone: set[str] = set()
        if state in ("stale", "unknown"):
            gone = set(txids)
        elif state is None:  # no backend judges blocks: ask for the transactions
            for txid in sorted(txids):
                if asked >= limit:
                    break
                asked += 1
                try:
                    status = chain.tx_status(txid)
                except BroadcasterUnavailable:
                    return out
                if status.state != "confirmed" or (
                    status.block_hash and status.block_hash != block_hash
                ):
                    gone.add(txid)
        if gone:
            log.warning(
                "block %s (%d) left the main chain: %d txids back to sent",
                block_hash,
                height,
                len(gone),
            )
            with transaction():
                out["reverted"] += revert_txids(gone, from_height=height)
    if capture_missing:
        with transaction():
            missing = db.session.execute(
                select(PublishJob.txid, PublishJob.block_hash, PublishJob.block_height)
                .outerjoin(TxProof, TxProof.txid == PublishJob.txid)
                .where(
                    PublishJob.status == CONFIRMED,
                    PublishJob.block_height > top - blocks,
                    TxProof.txid.is_(None),
                )
                .distinct()
                .limit(limit)
            ).all()
        out["captured"] += capture_many(
            (
                (txid, TxStatus(txid, "confirmed", block_hash, height, 1))
                for txid, block_hash, height in missing
                if txid is not None
            ),
            chain,
        )
    return out


def following_headers(block_hash: str, height: int, count: int, chain: Any | None) -> list[str]:
    """Up to ``count`` main-chain headers after block ``block_hash`` at ``height`` (hex, in
    height order), each linked by previous-hash to the one before. Cached headers are used
    when they link; the others are read from ``chain`` (if given and able), and those buried
    deeper than ``PROOF_RECHECK_BLOCKS`` are cached. Stops at the first gap."""
    if count <= 0:
        return []
    heights = list(range(height + 1, height + count + 1))
    with transaction():
        cached = {
            row.height: (row.block_hash, row.header)
            for row in db.session.scalars(
                select(BlockHeader).where(BlockHeader.height.in_(heights))
            )
        }
    out = _linked(block_hash, heights, cached)
    if len(out) == count or chain is None:
        return out
    depth = int(current_app.config.get("PROOF_RECHECK_BLOCKS", 6))
    want = list(range(height + len(out) + 1, height + count + depth + 1))
    try:
        fetched = _ask(chain, "headers_at", want)
    except _NoBackend:
        return out
    merged = {**cached, **fetched}
    result = _linked(block_hash, heights, merged)
    top = max(fetched) if fetched else 0
    keep = [h for h in fetched if h + depth <= top and h in heights]
    if keep:
        with transaction():
            db.session.execute(delete(BlockHeader).where(BlockHeader.height.in_(keep)))
            db.session.add_all(
                BlockHeader(height=h, block_hash=fetched[h][0], header=fetched[h][1]) for h in keep
            )
    return result


def _linked(block_hash: str, heights: list[int], known: dict[int, tuple[str, str]]) -> list[str]:
    out: list[str] = []
    prev = block_hash
    for h in heights:
        entry = known.get(h)
        if entry is None:
            break
        header = merkle.parse_header(entry[1])
        if header.prev_hash != prev:
            break
        out.append(entry[1])
        prev = header.hash
    return out
