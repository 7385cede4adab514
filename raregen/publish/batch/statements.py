"""The writes several collector steps share, each one statement in the current transaction
(none opens or commits one): jobs sent, re-queued or failed; pool UTXOs spent, released or
dirty; batch rows closed. Job writes are fenced by :func:`common.ours` (status, batch id,
lease token) unless noted."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, text, update

from raregen.audit import audit
from raregen.db import db, utcnow
from raregen.publish import credits, pool
from raregen.publish.batch.common import DONE, JOB_COLUMNS, PARTIAL, Job, id_in, ours
from raregen.publish.models import (
    AVAILABLE,
    FAILED,
    PROCESSING,
    PURPOSE_PUBLISH,
    QUEUED,
    SENT,
    SPENT,
    PublishBatch,
    PublishJob,
    Utxo,
)
from raregen.webhooks import outbox


def utxo_row(
    txid: str, vout: int, satoshis: int, script: str, depth: int, now: datetime
) -> dict[str, Any]:
    """A new ``available`` publish UTXO as a row for a Core multi-row INSERT (``satoshis``
    in satoshis, ``depth`` unconfirmed ancestors)."""
    return {
        "txid": txid,
        "vout": vout,
        "satoshis": satoshis,
        "script_pub_key": script,
        "purpose": PURPOSE_PUBLISH,
        "status": AVAILABLE,
        "dirty": False,
        "depth": depth,
        "created_at": now,
        "updated_at": now,
    }


def mark_sent(batch_id: str, lease: datetime | None, jobs: list[Job], now: datetime) -> set[int]:
    """``processing -> sent`` for those of ``jobs`` still in this batch; returns their ids."""
    if not jobs:
        return set()
    rows = db.session.execute(
        update(PublishJob)
        .where(id_in(PublishJob.id, [j.id for j in jobs]), *ours(batch_id, lease))
        .values(
            status=SENT,
            sent_at=func.coalesce(PublishJob.sent_at, now),
            lease_until=None,
            error_code=None,
            error_detail=None,
        )
        .returning(PublishJob.id, *outbox.JOB_FIELDS)
        .execution_options(synchronize_session=False)
    ).all()
    outbox.emit(outbox.SENT, rows)
    return {r[0] for r in rows}


def settle_all_sent(
    batch_id: str,
    lease: datetime,
    jobs: list[Job],
    now: datetime,
    wallet_script: str,
) -> list[Any]:
    """PostgreSQL, a batch-mode broadcast every transaction of which was accepted: in ONE
    statement (CTEs, one round trip), those of ``jobs`` this batch still holds (fenced by
    :func:`common.ours`) ``processing -> sent``, their inputs ``spent``, their change
    outputs (to ``wallet_script``, one unconfirmed ancestor more than the input) new
    ``available`` publish UTXOs, and the batch row ``sent`` (``partial`` if a job was taken
    over meanwhile). Every job needs ``built`` and ``coin``.

    Returns:
        The settled jobs' rows: ``id`` and :data:`outbox.JOB_FIELDS`.
    """
    data = []
    for job in jobs:
        assert job.built is not None and job.coin is not None
        change = job.built.change_satoshis if job.built.change_vout is not None else 0
        data.append(
            {
                "job": job.id,
                "coin": job.coin.id,
                "txid": job.built.txid,
                "vout": job.built.change_vout or 0,
                "sats": change or 0,
                "depth": job.coin.depth + 1,
            }
        )
    returned = ", ".join(
        f"publish_jobs.{attr.expression.name} AS {attr.key}"
        for attr in (PublishJob.id, *outbox.JOB_FIELDS)
    )
    query = text(
        f"""
        WITH sent_jobs AS (
            UPDATE publish_jobs
               SET status = :sent, sent_at = COALESCE(sent_at, :now), lease_until = NULL,
                   error_code = NULL, error_detail = NULL
             WHERE id = ANY(:ids) AND status = :processing
               AND processing_batch_id = :batch_id AND lease_until = :lease
            RETURNING {returned}
        ), per_job AS (
            SELECT * FROM json_to_recordset(CAST(:rows AS json))
                AS r(job integer, coin integer, txid text, vout integer, sats bigint,
                     depth integer)
        ), spent_coins AS (
            UPDATE utxos SET status = :spent, reserved_until = NULL
              FROM per_job
             WHERE utxos.id = per_job.coin AND per_job.job IN (SELECT id FROM sent_jobs)
            RETURNING utxos.id
        ), change_coins AS (
            INSERT INTO utxos (txid, vout, satoshis, script_pub_key, purpose, status, dirty,
                               depth, created_at, updated_at)
            SELECT per_job.txid, per_job.vout, per_job.sats, :script, :purpose, :available,
                   false, per_job.depth, :now, :now
              FROM per_job
             WHERE per_job.sats > 0 AND per_job.job IN (SELECT id FROM sent_jobs)
            RETURNING id
        ), closed_batch AS (
            UPDATE publish_batches
               SET status = CASE WHEN (SELECT count(*) FROM sent_jobs) = :n THEN :done
                                 ELSE :partial END,
                   broadcasted_at = :now, completed_at = :now, error_detail = NULL
             WHERE batch_id = :batch_id
            RETURNING batch_id
        )
        SELECT * FROM sent_jobs
        """
    )
    params = {
        "sent": SENT,
        "processing": PROCESSING,
        "now": now,
        "ids": [j.id for j in jobs],
        "batch_id": batch_id,
        "lease": lease,
        "rows": json.dumps(data),
        "spent": SPENT,
        "script": wallet_script,
        "purpose": PURPOSE_PUBLISH,
        "available": AVAILABLE,
        "n": len(jobs),
        "done": DONE,
        "partial": PARTIAL,
    }
    return list(db.session.execute(query, params).all())


def mark_coins_spent(ids: list[int]) -> None:
    """``pool.mark_spent`` for many rows (``spent_by_txid`` was set when the transaction was
    stored)."""
    if ids:
        db.session.execute(
            update(Utxo)
            .where(id_in(Utxo.id, ids))
            .values(status=SPENT, reserved_until=None)
            .execution_options(synchronize_session=False)
        )


def release_coins(ids: list[int]) -> None:
    """``pool.release`` for many rows: ``available`` again, reservation and signer cleared."""
    if ids:
        db.session.execute(
            update(Utxo)
            .where(id_in(Utxo.id, ids))
            .values(**pool.released_values())
            .execution_options(synchronize_session=False)
        )


def mark_coin_dirty(coin_id: int, reason: str) -> None:
    """``pool.mark_dirty``: released, not spent, set aside until the chain says."""
    db.session.execute(
        update(Utxo)
        .where(Utxo.id == coin_id)
        .values(
            **pool.released_values(),
            dirty=True,
            dirty_reason=reason[:500],
        )
        .execution_options(synchronize_session=False)
    )


def requeue(
    batch_id: str,
    lease: datetime | None,
    jobs: list[Job],
    *,
    keep_tx: bool,
    detail: str,
    not_before: datetime | None,
) -> None:
    """``processing -> queued`` for ``jobs`` of this batch, with or without their transaction.

    No RQ job is enqueued: in batch and packed modes the collector takes queued jobs.
    """
    if not jobs:
        return
    values: dict[str, Any] = {
        "status": QUEUED,
        "lease_until": None,
        "processing_batch_id": None,
        "not_before": not_before,
        "error_detail": detail[:2000],
    }
    if not keep_tx:
        values.update(raw_tx=None, txid=None, vout=None, utxo_txid=None, utxo_vout=None)
    db.session.execute(
        update(PublishJob)
        .where(id_in(PublishJob.id, [j.id for j in jobs]), *ours(batch_id, lease))
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def fail_jobs(
    batch_id: str,
    lease: datetime | None,
    jobs: list[Job],
    code: str,
    detail: str,
    *,
    queued: bool = False,
) -> None:
    """``processing -> failed`` with the credit given back, as the pipeline does for one.

    With ``queued`` the jobs are ``queued`` ones this transaction has locked (a record that
    cannot be encoded, found while claiming): ``queued -> failed`` directly, with the batch
    id recorded.
    """
    if not jobs:
        return
    fence: tuple[ColumnElement[bool], ...] = (
        (PublishJob.status == QUEUED,) if queued else ours(batch_id, lease)
    )
    values: dict[str, Any] = {
        "status": FAILED,
        "lease_until": None,
        "error_code": code,
        "error_detail": detail[:2000],
    }
    if queued:
        values["processing_batch_id"] = batch_id
    rows = db.session.execute(
        update(PublishJob)
        .where(id_in(PublishJob.id, [j.id for j in jobs]), *fence)
        .values(**values)
        .returning(*outbox.JOB_FIELDS)
        .execution_options(synchronize_session=False)
    ).all()
    for row in rows:
        credits.refund(row.key_id, row.job_id)
        audit("worker", "publish:job:failed", row.job_id, code=code)
    outbox.emit(outbox.FAILED, rows)


def processing_jobs(batch_id: str, txid: str | None = None) -> list[Job]:
    """The jobs packed batch ``batch_id`` still holds (no lease), found through the txid
    index when ``txid`` is given, else through the claim index (``processing`` rows)."""
    query = select(*JOB_COLUMNS).where(*ours(batch_id, None))
    if txid is not None:
        query = query.where(PublishJob.txid == txid)
    return [Job(*row) for row in db.session.execute(query).all()]


def count_processing(batch_id: str, txid: str | None = None) -> int:
    """How many jobs packed batch ``batch_id`` still holds (see :func:`processing_jobs`)."""
    query = select(func.count()).select_from(PublishJob).where(*ours(batch_id, None))
    if txid is not None:
        query = query.where(PublishJob.txid == txid)
    return int(db.session.scalar(query) or 0)


def close_batch(batch_id: str, status: str, detail: str | None) -> None:
    """End batch row ``batch_id`` with ``status`` and ``error_detail``."""
    db.session.execute(
        update(PublishBatch)
        .where(PublishBatch.batch_id == batch_id)
        .values(status=status, completed_at=utcnow(), error_detail=detail)
    )


def fail_unencodable(batch_id: str, jobs: list[Job]) -> int:
    """Fail ``queued`` jobs (locked by this transaction) whose stored record cannot be
    encoded any more (validated at intake: only a damaged row gets here), with
    ``BAD_RECORD`` and their credit given back. Returns how many were failed."""
    fail_jobs(
        batch_id, None, jobs, "BAD_RECORD", "the stored record cannot be encoded", queued=True
    )
    return len(jobs)
