"""Settling a broadcast batch: every job and UTXO in ONE database transaction, by each
transaction's outcome (docs/PROTOCOL.md §5):

* accepted / already known -> jobs ``sent``, inputs ``spent``, change back in the pool;
* conflict / missing inputs -> input dirty, jobs re-queued without their transaction
  (retried with another UTXO, at most ``MAX_ATTEMPTS``, then ``failed``);
* rejected -> ``failed`` and the credit given back, the input released;
* too-long chain, orphan, transient -> batch mode: jobs re-queued WITH their transaction,
  sent again after a back-off (``not_before``), never re-signed; packed: the batch row keeps
  its transaction for :func:`.recovery.resume_stale`.

One conflicting transaction in a batch only affects its own job.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, insert, update

from raregen.audit import audit
from raregen.db import db, is_postgres, transaction, utcnow
from raregen.publish import pipeline, pool, services
from raregen.publish.batch.common import (
    DONE,
    PARTIAL,
    RETRY,
    UTXOS,
    Coin,
    Job,
    ours,
)
from raregen.publish.batch.statements import (
    close_batch,
    count_processing,
    fail_jobs,
    mark_coin_dirty,
    mark_coins_spent,
    mark_sent,
    processing_jobs,
    release_coins,
    requeue,
    settle_all_sent,
    utxo_row,
)
from raregen.publish.broadcasters.base import BroadcastResult, Outcome
from raregen.publish.funding import FUNDING_THRESHOLD_SATS
from raregen.publish.models import PURPOSE_FUNDING, PURPOSE_PUBLISH, SENT, PublishBatch, PublishJob
from raregen.webhooks import outbox


def settle_batch(
    batch_id: str, lease: datetime, sending: list[Job], results: list[BroadcastResult]
) -> dict[str, int]:
    """Apply every outcome of a batch-mode broadcast in one transaction.

    Args:
        batch_id: the batch.
        lease: the claim's lease, the fencing token of its jobs (a job the reaper took over
            is not touched).
        sending: the jobs broadcast, in the order of ``results``.
        results: one broadcast result per job.

    Returns:
        Counts by outcome: ``sent``, ``dirty``, ``failed``, ``retry``.
    """
    cfg = current_app.config
    now = utcnow()
    groups: dict[str, list[tuple[Job, BroadcastResult]]] = {
        "ok": [],
        "dirty": [],
        "rejected": [],
        "later": [],
    }
    for job, result in zip(sending, results, strict=True):
        if result.ok:
            groups["ok"].append((job, result))
        elif result.outcome.dirties_input:
            groups["dirty"].append((job, result))
        elif result.outcome is Outcome.REJECTED:
            groups["rejected"].append((job, result))
        else:
            groups["later"].append((job, result))
    counts: Counter[str] = Counter()
    ok_jobs = [j for j, _ in groups["ok"]]
    if (
        is_postgres()
        and len(ok_jobs) == len(sending)
        and all(j.built is not None and j.coin is not None for j in ok_jobs)
    ):
        return _settle_all_sent(batch_id, lease, ok_jobs, now)
    with transaction():
        # accepted / already known: jobs sent, inputs spent, change back in the pool
        settled = mark_sent(batch_id, lease, ok_jobs, now)
        wallet_script = services.server_wallet().locking_script_hex
        change_rows: list[dict[str, Any]] = []
        spent_ids: list[int] = []
        for job in ok_jobs:
            if job.id not in settled:
                continue
            if job.coin is not None:
                spent_ids.append(job.coin.id)
            depth = (job.coin.depth if job.coin is not None else 0) + 1
            if job.built is not None:
                if job.built.change_vout is not None and job.built.change_satoshis:
                    change_rows.append(
                        utxo_row(
                            job.built.txid,
                            job.built.change_vout,
                            job.built.change_satoshis,
                            wallet_script,
                            depth,
                            now,
                        )
                    )
            elif job.raw_tx is not None and job.txid is not None:
                # a re-sent transaction: its change may be known already (pool.add_utxo checks)
                for vout, sats in pipeline.outputs_to(job.raw_tx, wallet_script):
                    pool.add_utxo(job.txid, vout, sats, wallet_script, depth=depth)
        mark_coins_spent(spent_ids)
        if change_rows:
            db.session.execute(insert(UTXOS), change_rows)  # Core: no ORM per row
        counts["sent"] += len(settled)

        # conflict / missing inputs: input dirty, job again with another UTXO
        dirty = groups["dirty"]
        for job, result in dirty:
            if job.coin is not None:
                mark_coin_dirty(job.coin.id, f"{result.outcome.name}: {result.detail}")
                audit("worker", "publish:utxo:dirty", job.coin.txid, reason=result.detail[:200])
        over = [j for j, _ in dirty if j.attempts >= cfg["MAX_ATTEMPTS"]]
        again = [j for j, _ in dirty if j.attempts < cfg["MAX_ATTEMPTS"]]
        if over:
            fail_jobs(
                batch_id, lease, over, "BROADCAST_CONFLICT", "gave up after repeated conflicts"
            )
        if again:
            outcome = dirty[0][1].outcome.name
            requeue(
                batch_id,
                lease,
                again,
                keep_tx=False,
                detail=f"retrying: {outcome}",
                not_before=None,
            )
        counts["dirty"] += len(again)
        counts["failed"] += len(over)

        # rejected: permanent for that transaction
        for job, result in groups["rejected"]:
            if job.coin is not None:
                release_coins([job.coin.id])
            fail_jobs(batch_id, lease, [job], "BROADCAST_REJECTED", result.detail)
        counts["failed"] += len(groups["rejected"])

        # transient, too-long chain, orphan: keep the signed transaction, send it later
        for job, result in groups["later"]:
            delay = pipeline.RETRY_DELAYS[
                min(max(job.attempts - 1, 0), len(pipeline.RETRY_DELAYS) - 1)
            ]
            requeue(
                batch_id,
                lease,
                [job],
                keep_tx=True,
                detail=f"will retry: {result.outcome.name}: {result.detail}"[:300],
                not_before=now + timedelta(seconds=delay),
            )
        counts["retry"] += len(groups["later"])

        summary = {k: v for k, v in counts.items() if v}
        db.session.execute(
            update(PublishBatch)
            .where(PublishBatch.batch_id == batch_id)
            .values(
                status=DONE if counts["sent"] == len(sending) else PARTIAL,
                broadcasted_at=now,
                completed_at=utcnow(),
                error_detail=None if counts["sent"] == len(sending) else json.dumps(summary),
            )
        )
        # one entry per batch, listing the jobs it sent (failed jobs have their own)
        sent_jobs = sorted(j.job_id for j in ok_jobs if j.id in settled)
        audit("worker", "publish:batch:settled", batch_id, sent_jobs=sent_jobs, **summary)
    return dict(counts)


def _settle_all_sent(
    batch_id: str, lease: datetime, jobs: list[Job], now: datetime
) -> dict[str, int]:
    """Every transaction of the batch accepted (the common case), PostgreSQL: jobs, inputs,
    change and the batch row in one statement (:func:`.statements.settle_all_sent`), the
    outbox events and the batch's audit entry in the same transaction."""
    with transaction():
        rows = settle_all_sent(
            batch_id, lease, jobs, now, services.server_wallet().locking_script_hex
        )
        outbox.emit(outbox.SENT, rows)
        summary = {"sent": len(rows)} if rows else {}
        if len(rows) != len(jobs):  # some were taken over by the reaper meanwhile
            db.session.execute(
                update(PublishBatch)
                .where(PublishBatch.batch_id == batch_id)
                .values(error_detail=json.dumps(summary))
            )
        audit(
            "worker",
            "publish:batch:settled",
            batch_id,
            sent_jobs=sorted(r.job_id for r in rows),
            **summary,
        )
    return summary


def settle_packed(
    batch_id: str,
    txid: str | None,
    result: BroadcastResult,
    coin: Coin | None,
    change_vout: int | None,
    change_satoshis: int | None,
) -> dict[str, int]:
    """Apply the outcome ``result`` of packed transaction ``txid`` (None: not known, the
    batch id alone finds the jobs) to all its jobs and its input ``coin`` at once (one
    transaction); the change output ``change_vout`` of
    ``change_satoshis`` satoshis goes back to the pool (a funding coin from 1 000 000 sat).

    Returns:
        Counts by outcome: ``sent``, ``retry``, ``dirty``, ``failed`` (jobs).
    """
    cfg = current_app.config
    now = utcnow()
    counts: Counter[str] = Counter()
    sent_jobs: list[str] = []
    with transaction():
        if result.ok:
            # found through the txid index; the batch id and the NULL lease fence the write
            query = update(PublishJob).where(*ours(batch_id, None))
            if txid:
                query = query.where(PublishJob.txid == txid)
            rows = db.session.execute(
                query.values(
                    status=SENT,
                    sent_at=func.coalesce(PublishJob.sent_at, now),
                    lease_until=None,
                    error_code=None,
                    error_detail=None,
                )
                .returning(*outbox.JOB_FIELDS)
                .execution_options(synchronize_session=False)
            ).all()
            outbox.emit(outbox.SENT, rows)
            sent_jobs = sorted(row.job_id for row in rows)
            settled = len(sent_jobs)
            if settled and coin is not None:
                mark_coins_spent([coin.id])
                if change_vout is not None and change_satoshis:
                    purpose = (
                        PURPOSE_FUNDING
                        if change_satoshis >= FUNDING_THRESHOLD_SATS
                        else PURPOSE_PUBLISH
                    )
                    pool.add_utxo(
                        txid or result.txid,
                        change_vout,
                        change_satoshis,
                        services.server_wallet().locking_script_hex,
                        purpose=purpose,
                        depth=coin.depth + 1,
                    )
            counts["sent"] += settled
            close_batch(batch_id, DONE, None)
        elif result.outcome.retry_later:
            # the batch keeps its signed transaction; resume_stale sends it again
            db.session.execute(
                update(PublishBatch)
                .where(PublishBatch.batch_id == batch_id)
                .values(
                    status=RETRY,
                    broadcasted_at=now,
                    error_detail=f"{result.outcome.name}: {result.detail}"[:2000],
                )
            )
            counts["retry"] += count_processing(batch_id, txid)
        else:
            jobs = processing_jobs(batch_id, txid)
            if coin is not None:
                if result.outcome.dirties_input:
                    mark_coin_dirty(coin.id, f"{result.outcome.name}: {result.detail}")
                    audit("worker", "publish:utxo:dirty", coin.txid, reason=result.detail[:200])
                else:
                    release_coins([coin.id])
            if result.outcome.dirties_input:
                over = [j for j in jobs if j.attempts >= cfg["MAX_ATTEMPTS"]]
                again = [j for j in jobs if j.attempts < cfg["MAX_ATTEMPTS"]]
                fail_jobs(
                    batch_id, None, over, "BROADCAST_CONFLICT", "gave up after repeated conflicts"
                )
                requeue(
                    batch_id,
                    None,
                    again,
                    keep_tx=False,
                    detail=f"retrying: {result.outcome.name}",
                    not_before=None,
                )
                counts["dirty"] += len(again)
                counts["failed"] += len(over)
            else:
                fail_jobs(batch_id, None, jobs, "BROADCAST_REJECTED", result.detail)
                counts["failed"] += len(jobs)
            close_batch(batch_id, PARTIAL, f"{result.outcome.name}: {result.detail}"[:2000])
        summary = {k: v for k, v in counts.items() if v}
        audit(
            "worker",
            "publish:batch:settled",
            batch_id,
            txid=result.txid,
            sent_jobs=sent_jobs,
            **summary,
        )
    return dict(counts)
