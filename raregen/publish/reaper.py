"""Recovery of in-flight states (DESIGN.md §2: no job stays in ``processing`` past the
reservation timeout) and settlement of dirty UTXOs (DESIGN.md §4).

For a job whose lease expired:

* no signed transaction stored -> its reservation is released and the job re-queued;
* a stored transaction the network knows (mempool or block) -> the job is ``sent``;
* a stored transaction whose input is still unspent -> the same transaction is sent again
  and settled by its outcome (never re-signed with another input);
* the input spent by another transaction -> the UTXO is dirty and the job re-queued without
  its transaction.

The sweeper re-enqueues ``queued`` jobs that have waited past a grace period: the database,
not Redis, is the source of truth, so a lost RQ job costs only a delay.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from raregen.db import db, transaction, utcnow
from raregen.publish import pipeline, pool, services
from raregen.publish.broadcasters.base import BroadcastResult, Outcome
from raregen.publish.models import PROCESSING, QUEUED, RESERVED, SPENT, PublishJob, Utxo
from raregen.queue import enqueue_publish

log = logging.getLogger(__name__)


def reap(*, sweep_grace_seconds: int = 30, limit: int = 1000) -> dict[str, int]:
    """Settle expired ``processing`` jobs, then re-enqueue stale ``queued`` jobs.

    Returns:
        Counts: ``requeued``, ``sent``, ``rebroadcast``, ``dirty``, ``swept``.
    """
    counts = {"requeued": 0, "sent": 0, "rebroadcast": 0, "dirty": 0, "swept": 0}
    now = utcnow()
    with transaction():
        pool.release_expired(now)
        stale = list(
            db.session.scalars(
                select(PublishJob.job_id)
                .where(PublishJob.status == PROCESSING, PublishJob.lease_until < now)
                .limit(limit)
            )
        )
    for job_id in stale:
        try:
            action = recover_job(job_id)
        except Exception:
            log.exception("could not recover job %s", job_id)
            continue
        if action in counts:
            counts[action] += 1
    counts["swept"] = sweep_queued(grace_seconds=sweep_grace_seconds, limit=limit)
    return counts


def recover_job(job_id: str) -> str:
    """Settle one ``processing`` job whose lease expired. Returns the action taken."""
    with transaction():
        job = db.session.scalar(
            select(PublishJob)
            .where(PublishJob.job_id == job_id, PublishJob.status == PROCESSING)
            .with_for_update()
        )
        if job is None or job.lease_until is None or job.lease_until >= utcnow():
            return "skipped"
        if job.raw_tx is None:
            for utxo in db.session.scalars(
                select(Utxo).where(
                    Utxo.reserved_by == job_id,
                    Utxo.status == RESERVED,
                    Utxo.spent_by_txid.is_(None),
                )
            ):
                pool.release(utxo)
            pipeline._requeue(job, keep_tx=False, detail="recovered by the reaper", delay=None)
            return "requeued"
        txid, raw_tx = job.txid, job.raw_tx
        utxo_txid, utxo_vout = job.utxo_txid, job.utxo_vout
    chain = services.broadcaster()
    status = chain.tx_status(txid or "")
    if status.state in ("mempool", "confirmed"):
        pipeline.settle(job_id, BroadcastResult(txid or "", Outcome.ALREADY_KNOWN, "", "reaper"))
        return "sent"
    spent = chain.output_status(utxo_txid or "", utxo_vout or 0)
    if spent == "spent":
        # spent by a transaction that is not ours (ours is unknown to the network)
        pipeline.settle(
            job_id,
            BroadcastResult(txid or "", Outcome.CONFLICT, "input spent elsewhere", "reaper"),
        )
        return "dirty"
    result = chain.broadcast(raw_tx)
    pipeline.settle(job_id, result)
    return "sent" if result.ok else "rebroadcast"


def sweep_queued(*, grace_seconds: int = 30, limit: int = 1000) -> int:
    """Re-enqueue ``queued`` jobs not touched for ``grace_seconds`` (lost RQ jobs).

    Returns:
        How many were enqueued again.
    """
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    with transaction():
        ids = list(
            db.session.scalars(
                select(PublishJob.job_id)
                .where(
                    PublishJob.status == QUEUED,
                    PublishJob.updated_at < cutoff,
                    PublishJob.processing_batch_id.is_(None),
                )
                .order_by(PublishJob.created_at)
                .limit(limit)
            )
        )
        if ids:
            # touch them so the next sweep leaves them alone for another grace period
            db.session.execute(
                update(PublishJob)
                .where(PublishJob.job_id.in_(ids), PublishJob.status == QUEUED)
                .values(updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
    if services_mode_is_immediate():
        for job_id in ids:
            enqueue_publish(job_id)
    return len(ids)


def services_mode_is_immediate() -> bool:
    """True when jobs are published one RQ job each (not by the batch collector)."""
    from flask import current_app

    return current_app.config["PUBLISH_MODE"] == "immediate"


def settle_dirty(limit: int = 500) -> int:
    """Ask the chain about dirty UTXOs: unspent ones return to the pool, spent ones are spent.

    Returns:
        How many dirty UTXOs were settled.
    """
    with transaction():
        rows = db.session.execute(
            select(Utxo.id, Utxo.txid, Utxo.vout).where(Utxo.dirty.is_(True)).limit(limit)
        ).all()
    chain = services.broadcaster()
    settled = 0
    for utxo_id, txid, vout in rows:
        try:
            state = chain.output_status(txid, vout)
        except Exception:
            continue
        if state == "unknown":
            continue
        with transaction():
            utxo = db.session.get(Utxo, utxo_id)
            if utxo is None or not utxo.dirty:
                continue
            utxo.dirty = False
            if state == "spent":
                utxo.status = SPENT
            settled += 1
    return settled
