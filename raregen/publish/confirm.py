"""Confirmation tracking: ``sent -> confirmed`` with block hash and height (docs/PROTOCOL.md §1, 4),
and the unconfirmed-chain depth of pool outputs reset once their transaction is mined.

When a transaction is seen confirmed, its merkle proof (BRC-74 path and block header) is
stored for proof files (``PROOF_CAPTURE``, on by default; :mod:`raregen.proofs.capture`):
per block, right after the block's confirmations are recorded.

Confirmations are recorded per block: the jobs of all the block's transactions that the pass
found, their webhook events, their pool outputs' depths and their audit entries in one
transaction of a few set-based statements (:func:`mark_block_confirmed`); the chain is asked
about many txids per call (:func:`raregen.publish.broadcasters.base.statuses_of`).
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
import time

from flask import current_app
from sqlalchemy import func, select, update

from raregen.audit import audit
from raregen.db import db, transaction, utcnow
from raregen.proofs import capture as proofs
from raregen.publish import batch, pool, services
from raregen.publish.broadcasters.base import TxStatus, statuses_of
from raregen.publish.models import CONFIRMED, SENT, PublishJob
from raregen.webhooks import outbox

log = logging.getLogger(__name__)


#: at most this many txids per set-based statement (``IN`` list) when recording a block.
RECORD_CHUNK = 1000
#: at most this many txids per status query to the chain (one batch call where the backend
#: has one, :func:`raregen.publish.broadcasters.base.statuses_of`).
STATUS_CHUNK = 500


def mark_confirmed(txid: str, status: TxStatus) -> int:
    """Mark every ``sent`` job of ``txid`` confirmed with the block of ``status`` and reset the
    depth of the pool outputs it made (current transaction), audited as one
    ``publish:tx:confirmed`` entry listing the jobs.

    Returns:
        The number of jobs marked.
    """
    return mark_block_confirmed([txid], status)


def mark_block_confirmed(txids: list[str], status: TxStatus) -> int:
    """Record the confirmation of ``txids``, all mined in the block of ``status``
    (``block_hash``, ``block_height``), with set-based statements in the current
    transaction: one ``UPDATE ... RETURNING`` of their ``sent`` jobs (per
    :data:`RECORD_CHUNK` txids), the ``job.confirmed`` webhook events of the jobs that notify
    (:func:`raregen.webhooks.outbox.emit`, one call), one ``UPDATE`` resetting the depth of
    the pool outputs they made, and one ``publish:tx:confirmed`` audit entry per transaction
    listing its jobs (written together at commit, :mod:`raregen.audit`). All of it commits
    or rolls back with the caller's transaction, as one job's confirmation did.

    Args:
        txids: transaction ids (duplicates ignored).
        status: the block they are in (``state`` ``confirmed``).

    Returns:
        The number of jobs marked.
    """
    unique = sorted(set(txids))
    if not unique:
        return 0
    now = utcnow()
    rows: list = []  # type: ignore[type-arg]
    for i in range(0, len(unique), RECORD_CHUNK):
        chunk = unique[i : i + RECORD_CHUNK]
        rows.extend(
            db.session.execute(
                update(PublishJob)
                .where(PublishJob.txid.in_(chunk), PublishJob.status == SENT)
                .values(
                    status=CONFIRMED,
                    block_hash=status.block_hash,
                    block_height=status.block_height,
                    confirmed_at=now,
                )
                .returning(*outbox.JOB_FIELDS)
                .execution_options(synchronize_session=False)
            ).all()
        )
        pool.mark_confirmed_outputs_many(chunk)
    outbox.emit(outbox.CONFIRMED, rows)  # webhook events, same transaction
    jobs_by_txid: dict[str, list[str]] = {}
    for row in rows:
        jobs_by_txid.setdefault(row.txid, []).append(row.job_id)
    for txid in sorted(jobs_by_txid):
        # one entry per transaction, listing its jobs (a packed one carries many)
        audit(
            "worker",
            "publish:tx:confirmed",
            txid,
            jobs=sorted(jobs_by_txid[txid]),
            block_hash=status.block_hash,
            block_height=status.block_height,
        )
    return len(rows)


def confirm_sent(limit: int = 10_000) -> int:
    """Ask the chain about the transactions of ``sent`` jobs and settle the mined ones; then
    about pool outputs still counted as unconfirmed (split transactions, change of jobs
    confirmed earlier) and reset the depth of mined ones.

    The chain is asked in batches of :data:`STATUS_CHUNK` txids (one batch call on a backend
    that has one); then the confirmations found are recorded per block, one transaction per
    block with a few set-based statements (:func:`mark_block_confirmed`), not one
    transaction per transaction; each block's proofs are captured right after it
    (:mod:`raregen.proofs.capture`, one transaction per block). A chain that stops
    answering midway: what was found until then is recorded, the rest waits for the next
    pass. The pass logs one line:
    jobs, transactions and blocks recorded, and the seconds spent recording and asking.

    A transaction the chain does not know any more is sent again from its stored raw
    transaction: the job's ``raw_tx``, or for a packed transaction (whose jobs keep none)
    the batch row's (``batch.packed_raw_tx``).

    Args:
        limit: at most this many distinct txids per call, oldest ``sent_at`` first (a packed
            transaction counts once however many jobs it carries).

    Returns:
        The number of jobs marked ``confirmed``.
    """
    started = time.monotonic()
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
    recorded_txids = 0
    blocks_seen: set[str] = set()
    asking = recording = 0.0
    blocks: dict[str, object] = {}  # the blocks listed by this pass's captures
    by_block: dict[tuple[str | None, int | None], list[tuple[str, TxStatus]]] = {}
    unknown: list[str] = []
    for i in range(0, len(txids), STATUS_CHUNK):
        chunk = txids[i : i + STATUS_CHUNK]
        t0 = time.monotonic()
        try:
            statuses = statuses_of(chain, chunk)
        except Exception as exc:
            log.warning("status of %d txids unavailable: %s", len(chunk), exc.__class__.__name__)
            break  # the chain is unreachable: record what was found, try the rest next round
        finally:
            asking += time.monotonic() - t0
        seen.update(chunk)
        for txid, status in zip(chunk, statuses, strict=True):
            if status.state == "confirmed":
                by_block.setdefault((status.block_hash, status.block_height), []).append(
                    (txid, status)
                )
            elif status.state == "unknown":
                unknown.append(txid)
    for items in by_block.values():
        t0 = time.monotonic()
        with transaction():  # the whole block together
            confirmed += mark_block_confirmed([t for t, _ in items], items[0][1])
        recording += time.monotonic() - t0
        recorded_txids += len(items)
        blocks_seen.add(str(items[0][1].block_hash))
        if capture_on:
            _capture(list(items), chain, blocks)
    for txid in unknown:
        with transaction():
            raw_tx = stored_raw_tx(txid)
        if not raw_tx:
            continue
        try:
            chain.broadcast(raw_tx)
        except Exception as exc:
            log.warning("re-broadcast of %s failed: %s", txid, exc.__class__.__name__)
    if confirmed:
        log.info(
            "confirmation pass: %d jobs of %d transactions in %d block(s) recorded in %.3f s "
            "(chain asked in %.3f s, pass %.3f s)",
            confirmed,
            recorded_txids,
            len(blocks_seen),
            recording,
            asking,
            time.monotonic() - started,
            extra={"confirmed": confirmed, "record_seconds": round(recording, 4)},
        )
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
    for i in range(0, len(txids), STATUS_CHUNK):
        chunk = txids[i : i + STATUS_CHUNK]
        try:
            statuses = statuses_of(chain, chunk)
        except Exception:
            return mined
        done = [t for t, s in zip(chunk, statuses, strict=True) if s.state == "confirmed"]
        if done:
            with transaction():
                pool.mark_confirmed_outputs_many(done)
            mined += len(done)
    return mined
