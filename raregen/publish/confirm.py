"""Confirmation tracking: ``sent -> confirmed`` with block hash and height (docs/PROTOCOL.md §1, 4),
and the unconfirmed-chain depth of pool outputs reset once their transaction is mined.

When a transaction is seen confirmed, its merkle proof (BRC-74 path and block header) is
stored for proof files (``PROOF_CAPTURE``, on by default; :mod:`raregen.proofs.capture`):
per block for the transactions the pass found confirmed in it, every ``CAPTURE_EVERY``
confirmed transactions and at the end of the pass.
Each pass first re-checks the blocks of the last ``PROOF_RECHECK_BLOCKS`` confirmations: a
block a reorganisation took away sends its jobs back to ``sent`` (and drops their proofs),
so this same pass confirms them again in their new block.

A ``sent`` transaction that the network no longer knows (dropped from the mempool, or lost by
a node restarted without its mempool) is sent again from the stored raw transaction; it is
never re-signed. Parents are sent before children (oldest ``sent_at`` first), so a chain of
change outputs comes back whole.
"""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import func, select, update

from raregen.audit import audit
from raregen.db import db, transaction, utcnow
from raregen.proofs import capture as proofs
from raregen.publish import batch, pool, services
from raregen.publish.broadcasters.base import TxStatus
from raregen.publish.models import CONFIRMED, SENT, PublishJob
from raregen.webhooks import outbox

log = logging.getLogger(__name__)

#: proofs are captured every this many confirmed txids of a pass (and at its end), so a long
#: pass stores proofs as it goes (a block is listed once per pass all the same).
CAPTURE_EVERY = 100


def mark_confirmed(txid: str, status: TxStatus) -> int:
    """Mark every ``sent`` job of ``txid`` confirmed with the block of ``status`` and reset the
    depth of the pool outputs it made (current transaction), audited as one
    ``publish:tx:confirmed`` entry listing the jobs.

    Returns:
        The number of jobs marked.
    """
    rows = db.session.execute(
        update(PublishJob)
        .where(PublishJob.txid == txid, PublishJob.status == SENT)
        .values(
            status=CONFIRMED,
            block_hash=status.block_hash,
            block_height=status.block_height,
            confirmed_at=utcnow(),
        )
        .returning(*outbox.JOB_FIELDS)
        .execution_options(synchronize_session=False)
    ).all()
    outbox.emit(outbox.CONFIRMED, rows)  # webhook events, same transaction
    jobs = sorted(row.job_id for row in rows)
    pool.mark_confirmed_outputs(txid)
    if jobs:
        # one entry per transaction, listing its jobs (a packed one carries many)
        audit(
            "worker",
            "publish:tx:confirmed",
            txid,
            jobs=jobs,
            block_hash=status.block_hash,
            block_height=status.block_height,
        )
    return len(jobs)


def confirm_sent(limit: int = 2000) -> int:
    """Ask the chain about the transactions of ``sent`` jobs and settle the mined ones; then
    about pool outputs still counted as unconfirmed (split transactions, change of jobs
    confirmed earlier) and reset the depth of mined ones.

    A transaction the chain does not know any more is sent again from its stored raw
    transaction: the job's ``raw_tx``, or for a packed transaction (whose jobs keep none)
    the batch row's (``batch.packed_raw_tx``).

    Args:
        limit: at most this many distinct txids per call, oldest ``sent_at`` first (a packed
            transaction counts once however many jobs it carries).

    Returns:
        The number of jobs marked ``confirmed``.
    """
    with transaction():
        txids = _sent_txids(limit)
    seen: set[str] = set()
    chain = services.broadcaster()
    cfg = current_app.config
    capture_on = bool(cfg.get("PROOF_CAPTURE", True))
    recheck_blocks = int(cfg.get("PROOF_RECHECK_BLOCKS", 6))
    if recheck_blocks > 0:
        if proofs.recheck(chain, blocks=recheck_blocks, capture_missing=capture_on)["reverted"]:
            with transaction():  # the jobs sent back are asked about in this pass
                txids = _sent_txids(limit)
    confirmed = 0
    mined: list[tuple[str, TxStatus]] = []
    blocks: dict[str, object] = {}  # the blocks listed by this pass's captures
    try:
        for txid in txids:
            seen.add(txid)
            try:
                status = chain.tx_status(txid)
            except Exception as exc:
                log.warning("status of %s unavailable: %s", txid, exc.__class__.__name__)
                return confirmed  # the chain is unreachable: try again next round
            if status.state == "confirmed":
                with transaction():
                    confirmed += mark_confirmed(txid, status)
                mined.append((txid, status))
                if capture_on and len(mined) >= CAPTURE_EVERY:
                    _capture(mined, chain, blocks)
            elif status.state == "unknown":
                with transaction():
                    raw_tx = stored_raw_tx(txid)
                if not raw_tx:
                    continue
                try:
                    chain.broadcast(raw_tx)
                except Exception as exc:
                    log.warning("re-broadcast of %s failed: %s", txid, exc.__class__.__name__)
    finally:
        if capture_on and mined:
            _capture(mined, chain, blocks)
    reset_depths(limit=limit, skip=seen)
    return confirmed


def _capture(mined: list[tuple[str, TxStatus]], chain: object, blocks: dict) -> None:  # type: ignore[type-arg]
    """Capture the proofs of ``mined`` per block (one txid list and header per block and
    pass, kept in ``blocks``; one transaction for a block's proofs) and empty the list."""
    proofs.capture_many(mined, chain, blocks)
    mined.clear()


def _sent_txids(limit: int) -> list[str]:
    """Distinct txids of ``sent`` jobs, oldest ``sent_at`` first (current transaction)."""
    return [
        txid
        for txid, _ in db.session.execute(
            select(PublishJob.txid, func.min(PublishJob.sent_at))
            .where(PublishJob.status == SENT, PublishJob.txid.is_not(None))
            .group_by(PublishJob.txid)
            .order_by(func.min(PublishJob.sent_at), PublishJob.txid)
            .limit(limit)
        ).all()
        if txid
    ]


def stored_raw_tx(txid: str) -> str | None:
    """The raw hex of our transaction ``txid`` as stored before it was broadcast: on one of
    its jobs (immediate and batch modes) or on its packed batch row; None if neither keeps
    it (current transaction)."""
    raw = db.session.scalar(
        select(PublishJob.raw_tx)
        .where(PublishJob.txid == txid, PublishJob.raw_tx.is_not(None))
        .limit(1)
    )
    return raw if raw is not None else batch.packed_raw_tx(txid)


def reset_depths(limit: int = 500, skip: set[str] | None = None) -> int:
    """Reset to 0 the depth of pool outputs whose transaction is mined.

    Returns:
        How many transactions were found mined.
    """
    with transaction():
        txids = [t for t in pool.unconfirmed_txids(limit) if not skip or t not in skip]
    chain = services.broadcaster()
    mined = 0
    for txid in txids:
        try:
            status = chain.tx_status(txid)
        except Exception:
            return mined
        if status.state == "confirmed":
            with transaction():
                pool.mark_confirmed_outputs(txid)
            mined += 1
    return mined
