"""Recovery of batches left behind by a crash or a transient failure (run at the start of
every collector run, in every mode), and the stored raw transaction of a packed txid.

Batch-mode jobs carry a lease like immediate-mode jobs, so the reaper settles them as
single jobs (``reaper.recover_job``: re-sends the stored transaction); their batch row is
only closed here. Packed-mode jobs keep ``lease_until`` NULL (out of the reaper's job
recovery: it would re-queue them without their transaction and publish them twice); their
batch row is their lease, and :func:`resume_stale` sends a stale packed batch's stored
transaction again and settles it by the outcome.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

import raregen.publish.batch.settle as settle
from raregen.db import db, rows_matched, transaction, utcnow
from raregen.publish import pipeline, services
from raregen.publish.batch.common import (
    ABANDONED,
    COLLECTING,
    RESUMING,
    RETRY,
    SIGNED,
    Coin,
    broadcast_many,
    log,
    ours,
)
from raregen.publish.batch.statements import close_batch, processing_jobs, requeue
from raregen.publish.broadcasters.base import txid_of
from raregen.publish.models import AVAILABLE, RESERVED, PublishBatch, PublishJob, Utxo


def packed_raw_tx(txid: str) -> str | None:
    """The raw hex of packed transaction ``txid``, stored once on its batch row (its jobs
    keep ``raw_tx`` NULL), or None. For code that re-sends or re-reads a job's transaction
    from ``publish_jobs.raw_tx`` (confirmation poller, reaper) and finds none. Current
    transaction; one read of ``publish_batches`` by ``txids`` (no index: the poller asks for
    a few txids a run).
    """
    return db.session.scalar(
        select(PublishBatch.raw_tx).where(
            PublishBatch.mode == "packed",
            PublishBatch.txids == json.dumps([txid]),
            PublishBatch.raw_tx.is_not(None),
        )
    )


def resume_stale(now: datetime | None = None) -> int:
    """Finish batches a crash or a transient failure left behind.

    * packed, ``retry`` for ``BATCH_WINDOW_SECONDS``, or ``signed``/``resuming`` past the
      reservation timeout: its stored transaction is sent again (never re-signed) and
      settled by the outcome ("already known" is success);
    * ``collecting`` past the reservation timeout (rows of earlier versions, never signed):
      packed jobs go back to ``queued`` and the input is released; batch-mode jobs are the
      reaper's (they have leases), so the batch row is only closed;
    * batch mode ``signed`` past the timeout: closed (the reaper settles its jobs).

    Each stale batch is taken with a conditional UPDATE of its status, so two collectors
    never resume the same batch.

    Args:
        now: the time to judge staleness by (default: now).

    Returns:
        How many batches were resumed or closed.
    """
    cfg = current_app.config
    now = now or utcnow()
    timeout = timedelta(seconds=int(cfg["RESERVATION_TIMEOUT_SECONDS"]))
    backoff = timedelta(seconds=int(cfg["BATCH_WINDOW_SECONDS"]))
    with transaction():
        rows = db.session.execute(
            select(
                PublishBatch.batch_id,
                PublishBatch.status,
                PublishBatch.mode,
                PublishBatch.created_at,
                PublishBatch.broadcasted_at,
            )
            .where(PublishBatch.status.in_((COLLECTING, SIGNED, RESUMING, RETRY)))
            .order_by(PublishBatch.created_at)
            .limit(100)
        ).all()
    done = 0
    for batch_id, status, mode, created_at, broadcasted_at in rows:
        last = broadcasted_at or created_at
        if status == RETRY and last > now - backoff:
            continue
        if status in (COLLECTING, SIGNED) and created_at > now - timeout:
            continue
        if status == RESUMING and last > now - timeout:
            continue
        try:
            if _resume_one(batch_id, status, mode, now):
                done += 1
        except Exception:
            log.exception("could not resume batch %s", batch_id)
    return done


def _take_batch(batch_id: str, status: str, new_status: str, now: datetime) -> bool:
    result = db.session.execute(
        update(PublishBatch)
        .where(PublishBatch.batch_id == batch_id, PublishBatch.status == status)
        .values(status=new_status, broadcasted_at=now)
    )
    return rows_matched(result) == 1


def _resume_one(batch_id: str, status: str, mode: str | None, now: datetime) -> bool:
    if mode != "packed":
        with transaction():
            return _take_batch(batch_id, status, ABANDONED, now)
    if status == COLLECTING:
        with transaction():
            if not _take_batch(batch_id, status, ABANDONED, now):
                return False
            jobs = [j for j in processing_jobs(batch_id) if j.txid is None]
            requeue(
                batch_id,
                None,
                jobs,
                keep_tx=False,
                detail="recovered: never signed",
                not_before=None,
            )
            db.session.execute(
                update(Utxo)
                .where(
                    Utxo.reserved_by == batch_id,
                    Utxo.status == RESERVED,
                    Utxo.spent_by_txid.is_(None),
                )
                .values(status=AVAILABLE, reserved_at=None, reserved_until=None, reserved_by=None)
                .execution_options(synchronize_session=False)
            )
        return True
    with transaction():
        if not _take_batch(batch_id, status, RESUMING, now):
            return False
    _resend(batch_id)
    return True


def resend_packed(batch_id: str, now: datetime | None = None) -> bool:
    """Send packed batch ``batch_id``'s stored transaction again now and settle its jobs by
    the outcome, whatever the batch row's status (the reaper hands back a packed job whose
    lease expired: its transaction lives on the batch row, and only the batch settles it).

    The batch is taken (status ``resuming``) with a conditional UPDATE, so a collector's
    :func:`resume_stale` running at the same time does not send it too.

    Returns:
        False if the batch is not a packed batch with a stored transaction, or another run
        is resuming it right now.
    """
    now = now or utcnow()
    with transaction():
        result = db.session.execute(
            update(PublishBatch)
            .where(
                PublishBatch.batch_id == batch_id,
                PublishBatch.mode == "packed",
                PublishBatch.raw_tx.is_not(None),
                PublishBatch.status != RESUMING,
            )
            .values(status=RESUMING, broadcasted_at=now, completed_at=None)
        )
        if rows_matched(result) != 1:
            return False
    _resend(batch_id)
    return True


def _resend(batch_id: str) -> None:
    """Send the stored transaction of packed batch ``batch_id`` (taken: ``resuming``) again
    and settle it, or close the batch when nothing is left to send."""
    with transaction():
        raw_tx = db.session.scalar(
            select(PublishBatch.raw_tx).where(PublishBatch.batch_id == batch_id)
        )
        txid = txid_of(raw_tx) if raw_tx else None
        query = select(PublishJob.utxo_txid, PublishJob.utxo_vout).where(*ours(batch_id, None))
        if txid:
            query = query.where(PublishJob.txid == txid)
        first = db.session.execute(query.limit(1)).first()
        coin = None
        if first is not None:
            row = db.session.execute(
                select(
                    Utxo.id, Utxo.txid, Utxo.vout, Utxo.satoshis, Utxo.script_pub_key, Utxo.depth
                ).where(Utxo.txid == first[0], Utxo.vout == first[1])
            ).first()
            coin = Coin(*row) if row is not None else None
    if raw_tx is None or first is None:
        with transaction():
            close_batch(batch_id, ABANDONED, "no stored transaction or no job left")
        return
    result = broadcast_many([raw_tx])[0]
    wallet_script = services.server_wallet().locking_script_hex
    change = pipeline.outputs_to(raw_tx, wallet_script)
    change_vout, change_sats = change[-1] if change else (None, None)
    settle.settle_packed(batch_id, txid, result, coin, change_vout, change_sats)
