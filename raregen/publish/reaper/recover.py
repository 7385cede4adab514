"""Recovery of one ``processing`` job whose lease expired (docs/PROTOCOL.md §2: no job stays in
``processing`` past the reservation timeout).

For a job whose lease expired, :func:`recover_job` first takes the job over (writes a new
lease token, so the worker that held it, if it is only slow, can no longer write), then:

* no signed transaction stored -> the job's unsigned reservations are released and the job
  re-queued;
* a stored transaction the network knows (mempool or block) -> the job is ``sent`` (and
  ``confirmed`` at once if mined), without a broadcast;
* its input is spent, and the network does not know our transaction -> spent by another
  transaction: the UTXO is dirty and the job re-queued without its transaction (the input is
  asked about *before* the txid, so our own transaction arriving in between is never taken
  for a stranger);
* otherwise (input unspent) -> the same stored transaction is sent again and settled by its
  outcome; it is never re-signed with another input;
* the chain cannot be asked (node down) -> the job is re-queued *with* its transaction:
  a worker re-sends it when the node is back, so no job waits in ``processing``.

Packed-batch jobs (``raregen.publish.batch``) keep ``lease_until`` NULL, so the job recovery
here does not find them; their batch recovers them. Should one carry an expired lease anyway,
it is not re-queued (its transaction is on its batch row, not on the job): it goes back to its
batch, whose stored transaction is sent again and settled (``batch.resend_packed``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from raregen.db import db, transaction, utcnow
from raregen.publish import batch, confirm, pipeline, pool, services
from raregen.publish.broadcasters.base import BroadcasterUnavailable, BroadcastResult, Outcome
from raregen.publish.models import PROCESSING, RESERVED, PublishJob, Utxo


def recover_job(job_id: str) -> str:
    """Settle one ``processing`` job whose lease expired (see the module docstring).

    Returns:
        The action taken: ``skipped`` (not expired any more, or not processing),
        ``requeued``, ``sent``, ``confirmed``, ``dirty``, ``rebroadcast``, ``deferred``,
        ``packed`` (a packed job: handed back to its batch, whose stored transaction was
        sent again and settled, ``batch.resend_packed``).
    """
    timeout = current_app.config["RESERVATION_TIMEOUT_SECONDS"]
    with transaction():
        job = pipeline.locked_job(job_id, None)
        now = utcnow()
        if job is None or job.lease_until is None or job.lease_until >= now:
            return "skipped"
        # take the job over: the previous holder's token is void from now on
        lease = now + timedelta(seconds=timeout)
        job.lease_until = lease
        packed_batch = _packed_batch_of(job)
        if packed_batch is not None:
            # a packed job: its signed transaction is kept once, on its batch row, and only
            # the batch settles it (re-queueing it would publish the record twice); give
            # the batch's jobs back to the batch (no lease: the batch row is their lease)
            job.lease_until = None
            db.session.flush()
            db.session.execute(
                update(PublishJob)
                .where(
                    PublishJob.processing_batch_id == packed_batch,
                    PublishJob.status == PROCESSING,
                    PublishJob.txid == job.txid,
                    PublishJob.raw_tx.is_(None),
                )
                .values(lease_until=None)
                .execution_options(synchronize_session=False)
            )
        elif job.raw_tx is None:
            for utxo in db.session.scalars(
                select(Utxo).where(
                    Utxo.reserved_by == job_id,
                    Utxo.status == RESERVED,
                    Utxo.spent_by_txid.is_(None),
                )
            ):
                pool.release(utxo)
            pipeline.requeue(job, keep_tx=False, detail="recovered by the reaper", delay=None)
            return "requeued"
        else:
            txid, raw_tx = job.txid or "", job.raw_tx
            utxo_txid, utxo_vout = job.utxo_txid, job.utxo_vout
    if packed_batch is not None:
        batch.resend_packed(packed_batch)
        return "packed"
    chain = services.broadcaster()
    try:
        # the input first, then our txid: if our transaction spends the input, it is known
        # by the time we ask for it
        spent = chain.output_status(utxo_txid, int(utxo_vout or 0)) if utxo_txid else "unknown"
        status = chain.tx_status(txid)
    except BroadcasterUnavailable as exc:
        return _defer(job_id, lease, f"chain unreachable: {exc}")
    if status.state in ("mempool", "confirmed"):
        pipeline.settle(
            job_id,
            BroadcastResult(txid, Outcome.ALREADY_KNOWN, f"reaper: {status.state}", "reaper"),
            lease=lease,
        )
        if status.state == "confirmed":
            with transaction():
                confirm.mark_confirmed(txid, status)
            return "confirmed"
        return "sent"
    if spent == "spent":
        pipeline.settle(
            job_id,
            BroadcastResult(
                txid, Outcome.CONFLICT, "reaper: input spent by another transaction", "reaper"
            ),
            lease=lease,
        )
        return "dirty"
    result = pipeline.broadcast_checked(raw_tx, txid)
    step = pipeline.settle(job_id, result, lease=lease)
    if step.action == "sent":
        return "sent"
    if result.outcome.dirties_input:
        return "dirty"
    return "rebroadcast"


def _packed_batch_of(job: PublishJob) -> str | None:
    """The packed batch holding ``job``'s signed transaction (the job keeps no ``raw_tx``,
    its batch row does), or None."""
    if job.raw_tx is not None or job.txid is None or job.processing_batch_id is None:
        return None
    if batch.packed_raw_tx(job.txid) is None:
        return None
    return job.processing_batch_id


def _defer(job_id: str, lease: datetime | None, detail: str) -> str:
    with transaction():
        job = pipeline.locked_job(job_id, lease)
        if job is None:
            return "skipped"
        utxo = None
        if job.utxo_txid is not None:
            utxo = db.session.scalar(
                select(Utxo).where(Utxo.txid == job.utxo_txid, Utxo.vout == job.utxo_vout)
            )
        pipeline.requeue(job, keep_tx=True, detail=detail[:300], delay=5, utxo=utxo)
    return "deferred"
