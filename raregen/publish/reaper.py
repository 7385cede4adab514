"""Recovery of in-flight states (docs/PROTOCOL.md §2: no job stays in ``processing`` past the
reservation timeout), the sweeper (the database, not Redis, is the source of truth), and
settlement of dirty UTXOs and abandoned reservations (docs/PROTOCOL.md §4).

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

:func:`sweep_queued` re-enqueues ``queued`` jobs that are due and that no live RQ job carries
(checked with pipelined Redis round trips, :func:`raregen.queue.live_deliveries`, and
confirmed by a second sweep): after a Redis flush or restart every queued job is enqueued
again within two sweeps.

:func:`settle_reservations` ends reservations that outlived their timeout while holding a
signed transaction that no live (``queued``/``processing``) job owns, either by txid or as
the reservation's holder (a crash inside :func:`raregen.publish.funding.split`, say): spent
if the chain knows the spender (its outputs to us are imported), released if the input is
still unspent, dirty otherwise.

Packed-batch jobs (``raregen.publish.batch``) keep ``lease_until`` NULL, so the job recovery
here does not find them; their batch recovers them. Should one carry an expired lease anyway,
it is not re-queued (its transaction is on its batch row, not on the job): it goes back to its
batch, whose stored transaction is sent again and settled (``batch.resend_packed``).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import cast

from flask import current_app
from sqlalchemy import or_, select, update

from raregen.db import db, transaction, utcnow
from raregen.publish import batch, confirm, pipeline, pool, services
from raregen.publish.broadcasters.base import BroadcasterUnavailable, BroadcastResult, Outcome
from raregen.publish.models import (
    PROCESSING,
    QUEUED,
    RESERVED,
    SPENT,
    PublishJob,
    Utxo,
)
from raregen.queue import count_event, enqueue_publish, live_deliveries, redis_connection, rq_job_id

log = logging.getLogger(__name__)


def reap(*, sweep_grace_seconds: int | None = None, limit: int = 1000) -> dict[str, int]:
    """Settle expired ``processing`` jobs, abandoned reservations, then re-enqueue forgotten
    ``queued`` jobs.

    Args:
        sweep_grace_seconds: see :func:`sweep_queued` (default ``SWEEP_GRACE_SECONDS``, 30).
        limit: at most this many jobs per step.

    Returns:
        Counts: ``released`` (expired unsigned reservations), ``requeued``, ``sent``,
        ``confirmed``, ``rebroadcast`` (re-sent, outcome not yet success), ``dirty``,
        ``deferred`` (chain unreachable: re-queued with the transaction), ``reservations``
        (abandoned signed reservations settled), ``swept``, ``packed`` (packed jobs whose
        lease expired, handed back to their batch and re-sent with it).
    """
    counts = {
        "released": 0,
        "requeued": 0,
        "sent": 0,
        "confirmed": 0,
        "rebroadcast": 0,
        "dirty": 0,
        "deferred": 0,
        "reservations": 0,
        "swept": 0,
        "packed": 0,
    }
    now = utcnow()
    with transaction():
        counts["released"] = pool.release_expired(now)
        stale = list(
            db.session.scalars(
                select(PublishJob.job_id)
                .where(PublishJob.status == PROCESSING, PublishJob.lease_until < now)
                .order_by(PublishJob.lease_until)
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
    try:
        counts["reservations"] = settle_reservations(limit=limit)
    except Exception:
        log.exception("could not settle abandoned reservations")
    counts["swept"] = sweep_queued(grace_seconds=sweep_grace_seconds, limit=limit)
    for action, n in counts.items():
        if n:
            count_event("reaper", action, n)
    return counts


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


def _defer(job_id: str, lease, detail: str) -> str:  # type: ignore[no-untyped-def]
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


def sweep_queued(
    *, grace_seconds: int | None = None, limit: int = 1000, confirm_dead: bool = True
) -> int:
    """Re-enqueue ``queued`` jobs that are due since ``grace_seconds`` and that no live RQ job
    carries (lost to a Redis flush or restart, to a worker killed between popping a job and
    starting it, or to an enqueue that failed).

    Args:
        grace_seconds: a job is looked at only once it has been due (``not_before``, else
            its last update) for this long (default ``SWEEP_GRACE_SECONDS``, 30).
        limit: at most this many jobs, oldest first.
        confirm_dead: re-enqueue a job only when two consecutive sweeps found no live
            delivery for it (remembered in Redis). A worker pops a job a moment before it
            marks it started; the second look keeps that moment from causing a duplicate
            delivery (which would be harmless, only wasteful).

    Returns:
        How many were enqueued again (0 in batch mode: the collector reads the database).
    """
    if current_app.config["PUBLISH_MODE"] != "immediate":
        return 0
    if grace_seconds is None:
        grace_seconds = int(pipeline.setting("SWEEP_GRACE_SECONDS", 30))
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    with transaction():
        rows = db.session.execute(
            select(PublishJob.job_id, PublishJob.not_before)
            .where(
                PublishJob.status == QUEUED,
                PublishJob.processing_batch_id.is_(None),
                PublishJob.updated_at < cutoff,
                or_(PublishJob.not_before.is_(None), PublishJob.not_before < cutoff),
            )
            .order_by(PublishJob.created_at)
            .limit(limit)
        ).all()
    if not rows:
        return 0
    ids = [rq_job_id(job_id, not_before) for job_id, not_before in rows]
    try:
        live = live_deliveries(ids)
        dead = [rq_id for rq_id in ids if rq_id not in live]
        if confirm_dead:
            confirmed = _confirm_suspects(dead)
        else:
            confirmed = set(dead)
    except Exception as exc:
        log.warning("sweeper cannot reach Redis: %s", exc.__class__.__name__)
        return 0
    swept = 0
    for (job_id, not_before), rq_id in zip(rows, ids):
        if rq_id in confirmed and enqueue_publish(job_id, None, not_before=not_before):
            swept += 1
    if swept:
        log.info("sweeper re-enqueued %d queued jobs no RQ job carried", swept)
    return swept


_SUSPECTS = "raregen:sweeper:suspects"


def _confirm_suspects(dead: list[str]) -> set[str]:
    """The deliveries of ``dead`` that the previous sweep found dead too; remember the rest
    for the next sweep (Redis set, expires after 10 minutes)."""
    conn = redis_connection()
    previous = {x.decode() for x in cast("set[bytes]", conn.smembers(_SUSPECTS))}
    confirmed = {rq_id for rq_id in dead if rq_id in previous}
    pipe = conn.pipeline()
    pipe.delete(_SUSPECTS)
    fresh = [rq_id for rq_id in dead if rq_id not in confirmed]
    if fresh:
        pipe.sadd(_SUSPECTS, *fresh)
        pipe.expire(_SUSPECTS, 600)
    pipe.execute()
    return confirmed


def services_mode_is_immediate() -> bool:
    """True when jobs are published one RQ job each (not by the batch collector)."""
    return bool(current_app.config["PUBLISH_MODE"] == "immediate")


def settle_reservations(limit: int = 500) -> int:
    """End reservations past their timeout that hold a signed transaction no ``queued`` or
    ``processing`` job owns (see the module docstring).

    Returns:
        How many were settled.
    """
    now = utcnow()
    with transaction():
        rows = db.session.execute(
            select(Utxo.id, Utxo.txid, Utxo.vout, Utxo.spent_by_txid, Utxo.reserved_by)
            .where(
                Utxo.status == RESERVED,
                Utxo.reserved_until < now,
                Utxo.spent_by_txid.is_not(None),
            )
            .limit(limit)
        ).all()
        live = (QUEUED, PROCESSING)
        owned = set(
            db.session.scalars(
                select(PublishJob.txid).where(
                    PublishJob.txid.in_([r.spent_by_txid for r in rows] or [""]),
                    PublishJob.status.in_(live),
                )
            )
        )
        # a live job holding the reservation owns it even when the transaction is kept
        # elsewhere (packed batches store it on the batch row)
        holders = set(
            db.session.scalars(
                select(PublishJob.job_id).where(
                    PublishJob.job_id.in_([r.reserved_by for r in rows if r.reserved_by] or [""]),
                    PublishJob.status.in_(live),
                )
            )
        )
    chain = services.broadcaster()
    settled = 0
    for utxo_id, txid, vout, spender_or_none, holder in rows:
        spender = str(spender_or_none)
        if spender in owned or holder in holders:
            continue
        try:
            known = chain.tx_status(spender).state != "unknown"
            state = "spent" if known else chain.output_status(txid, vout)
        except BroadcasterUnavailable:
            continue
        with transaction():
            utxo = db.session.get(Utxo, utxo_id, populate_existing=True)
            if utxo is None or utxo.status != RESERVED or utxo.spent_by_txid != spender:
                continue
            if known:
                pool.mark_spent(utxo, spender)
                _import_outputs(spender, utxo.depth + 1)
            elif state == "unspent":
                pool.release(utxo)
            else:
                pool.mark_dirty(utxo, f"abandoned reservation, input {state}")
            settled += 1
    return settled


def _import_outputs(txid: str, depth: int) -> None:
    """Add the outputs of ``txid`` that pay the server key to the pool (from a job's stored
    transaction, else from the node). Logs and returns if the raw transaction is not at hand
    (``pool sync`` imports it later)."""
    raw = confirm.stored_raw_tx(txid)
    if raw is None:
        try:
            raw = services.node_rpc().call("getrawtransaction", txid, 0)
        except Exception as exc:
            log.warning(
                "outputs of %s not imported (%s); run `pool sync`", txid, exc.__class__.__name__
            )
            return
    wallet = services.server_wallet()
    for vout, sats in pipeline.outputs_to(str(raw), wallet.locking_script_hex):
        purpose = "funding" if sats >= 1_000_000 else "publish"
        pool.add_utxo(txid, vout, sats, wallet.locking_script_hex, purpose=purpose, depth=depth)


def settle_dirty(limit: int = 500) -> int:
    """Ask the chain about dirty UTXOs: unspent ones return to the pool, spent ones are spent;
    ones the chain does not know (their parent dropped) stay dirty until it does.

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
        except BroadcasterUnavailable:
            continue
        if state == "unknown":
            continue
        with transaction():
            utxo = db.session.get(Utxo, utxo_id, populate_existing=True)
            if utxo is None or not utxo.dirty:
                continue
            utxo.dirty = False
            if state == "spent":
                utxo.status = SPENT
                utxo.reserved_until = None
            settled += 1
    if settled:
        count_event("reaper", "dirty_settled", settled)
    return settled
