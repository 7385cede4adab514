"""Batch mode (docs/PROTOCOL.md §6): one transaction per job, all broadcast in one call.

One batch, step by step:

1. claim, sign and store, in ONE database transaction: the oldest due ``queued`` jobs and
   the pool UTXOs they need are locked (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
   :mod:`.claim`), every job's transaction is built and signed, then each job is written
   once (``processing``, batch id, lease, raw transaction, txid, input) and each input once
   (``reserved`` by its job and signed by its txid), and the batch row is inserted
   ``signed``. A crash before the commit leaves everything as it was (jobs ``queued``,
   UTXOs free); after it, every job holds its signed transaction under a lease, which the
   reaper settles if the collector dies (``reaper.recover_job``: the stored transaction is
   sent again, never re-signed);
2. broadcast them all in one call (``broadcast_many``, no database transaction open);
3. settle every job and UTXO in ONE transaction, per transaction outcome
   (:func:`.settle.settle_batch`).

Each job row is written twice (claim, settle) instead of three times (claim, store,
settle), and each input twice (reserve+sign, spend).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta

from flask import current_app

import raregen.publish.batch.claim as claim
import raregen.publish.batch.settle as settle
from raregen.db import db, transaction, utcnow
from raregen.errors import InsufficientFunds
from raregen.publish import pool, services
from raregen.publish.batch.common import (
    POOL_WAIT_SECONDS,
    SIGNED,
    Job,
    Rollback,
    RunReport,
    broadcast_many,
    log,
    new_batch_id,
    record_script,
)
from raregen.publish.batch.statements import fail_unencodable
from raregen.publish.models import PURPOSE_PUBLISH, PublishBatch
from raregen.publish.txbuilder import TxInvariantError, build_publish_tx, required_satoshis


def collect_batch(*, with_tx: bool | None = None, limit: int | None = None) -> RunReport:
    """Claim, sign, store, broadcast and settle one batch (batch mode; see the module doc).

    Args:
        with_tx: only jobs that already hold a signed transaction (True), only jobs that do
            not (False), or both (None).
        limit: at most this many jobs (default ``BATCH_SIZE``).

    Returns:
        A :class:`RunReport`; ``more`` is True when a full batch was taken.
    """
    cfg = current_app.config
    limit = int(limit or cfg["BATCH_SIZE"])
    timeout = int(cfg["RESERVATION_TIMEOUT_SECONDS"])
    max_depth = int(cfg["MAX_UNCONFIRMED_DEPTH"])
    rate = services.fee_rate()
    batch_id = new_batch_id("batch")
    now = utcnow()
    lease = now + timedelta(seconds=timeout)  # the fencing token of every job of the batch
    counts: Counter[str] = Counter()
    try:
        with transaction():
            jobs = claim.lock_queued(limit, now, with_tx=with_tx)
            if not jobs:
                raise Rollback({})
            broken, fresh, resend = _split(jobs, rate)
            waiting = _match_coins(fresh, now, max_depth)
            fresh = [j for j in fresh if j.coin is not None]
            if not fresh and not resend and not broken:
                raise Rollback({"waiting": len(waiting)})

            # build and sign inside the claim transaction: the rows are written once, signed
            wallet = services.server_wallet()
            unbuilt: list[Job] = []
            for job in fresh:
                assert job.coin is not None
                try:
                    job.built = build_publish_tx(wallet, job.coin.spendable(), [job.script], rate)
                except (InsufficientFunds, ValueError, TxInvariantError) as exc:
                    log.warning("batch %s: build of job %s failed: %s", batch_id, job.job_id, exc)
                    unbuilt.append(job)
            built = [j for j in fresh if j.built is not None]

            sending = built + resend
            batch_row = {
                "batch_id": batch_id,
                "job_count": len(sending) + len(broken),
                "status": SIGNED,
                "mode": "batch",
                "created_at": now,
                "txids": _txids_json(sending),
            }
            if built and not resend:
                # the common case: jobs, inputs and the batch row in one statement
                claim.store_signed(
                    batch_id,
                    built,
                    now=now,
                    lease_until=lease,
                    timeout=timeout,
                    batch_row=batch_row,
                )
            else:
                _store(batch_id, built, resend, now=now, lease=lease, timeout=timeout)
                db.session.add(PublishBatch(**batch_row))
            wait_until = now + timedelta(seconds=POOL_WAIT_SECONDS)
            claim.defer(waiting, detail="waiting for a pool UTXO", not_before=wait_until)
            claim.defer(unbuilt, detail="build failed", not_before=wait_until, attempt=True)
            if broken:
                counts["failed"] += fail_unencodable(batch_id, broken)
    except Rollback as stop:
        return RunReport(None, 0, False, stop.counts)

    # broadcast everything in one call, then settle all of it in one transaction
    raws = [j.built.raw_hex if j.built is not None else str(j.raw_tx) for j in sending]
    results = broadcast_many(raws)
    counts.update(settle.settle_batch(batch_id, lease, sending, results))
    if waiting:
        counts["waiting"] += len(waiting)
    if unbuilt:
        counts["retry"] += len(unbuilt)
    return RunReport(batch_id, len(jobs), len(jobs) >= limit, dict(counts))


def _txids_json(sending: list[Job]) -> str:
    return json.dumps([j.built.txid if j.built is not None else j.txid for j in sending])


def _split(jobs: list[Job], rate: int) -> tuple[list[Job], list[Job], list[Job]]:
    """``(broken, fresh, resend)``: jobs whose stored record cannot be encoded, jobs to sign
    (with their record script and the satoshis they need at ``rate`` sat/kB), and jobs that
    hold a signed transaction already."""
    broken: list[Job] = []
    fresh: list[Job] = []
    resend: list[Job] = []
    for job in jobs:
        if job.raw_tx is not None:
            resend.append(job)
            continue
        try:
            job.script = record_script(job)
        except Exception:  # validated at intake; a damaged row must not stop the batch
            broken.append(job)
            continue
        job.need = required_satoshis([job.script], rate)
        fresh.append(job)
    return broken, fresh, resend


def _match_coins(fresh: list[Job], now: datetime, max_depth: int) -> list[Job]:
    """Give each job to sign a locked pool UTXO (sets ``job.coin``): up to one per job in one
    statement with the smallest need of the batch, matched biggest need to biggest UTXO; a
    job none of them covers (a large payload) gets its own. Expired reservations are
    released (docs/PROTOCOL.md §4) only when the free UTXOs do not suffice (one statement
    fewer per batch: the reaper releases them too), then the lock is tried again.

    Returns:
        The jobs no UTXO was free for.
    """
    if not fresh:
        return []
    least = min(j.need for j in fresh)
    coins = claim.lock_coins(len(fresh), least, max_depth=max_depth, purpose=PURPOSE_PUBLISH)
    if len(coins) < len(fresh) and pool.release_expired(now):
        coins += claim.lock_coins(
            len(fresh) - len(coins),
            least,
            max_depth=max_depth,
            purpose=PURPOSE_PUBLISH,
            exclude=[c.id for c in coins],
        )
    coins.sort(key=lambda c: c.satoshis, reverse=True)
    held = [c.id for c in coins]
    unmatched: list[Job] = []
    ci = 0
    for job in sorted(fresh, key=lambda j: j.need, reverse=True):
        if ci < len(coins) and coins[ci].satoshis >= job.need:
            job.coin = coins[ci]
            ci += 1
        else:
            unmatched.append(job)
    # the UTXOs left over stay untouched (they were only locked); the unmatched jobs need
    # bigger ones
    waiting: list[Job] = []
    for job in unmatched:
        more = claim.lock_coins(
            1, job.need, max_depth=max_depth, purpose=PURPOSE_PUBLISH, exclude=held
        )
        if more:
            job.coin = more[0]
            held.append(more[0].id)
        else:
            waiting.append(job)
    return waiting


def _store(
    batch_id: str,
    built: list[Job],
    resend: list[Job],
    *,
    now: datetime,
    lease: datetime,
    timeout: int,
) -> None:
    """Write the claim of signed jobs (raw transaction, txid, vout 0, input) and their inputs
    (reserved by the job, signed by its txid), and of jobs re-sending their stored
    transaction (inputs' reservations extended), before anything is broadcast."""
    if built:
        coins = [j.coin for j in built if j.coin is not None]
        claim.write_claims(
            batch_id,
            built,
            now=now,
            lease_until=lease,
            per_job={
                "raw_tx": [j.built.raw_hex for j in built if j.built is not None],
                "txid": [j.built.txid for j in built if j.built is not None],
                "utxo_txid": [c.txid for c in coins],
                "utxo_vout": [c.vout for c in coins],
            },
            fixed={"vout": 0},
        )
        for job in built:
            job.attempts += 1  # as written: settling compares it with MAX_ATTEMPTS
        claim.reserve_signed(
            coins,
            [j.job_id for j in built],
            [j.built.txid for j in built if j.built is not None],
            now,
            timeout,
        )
    if resend:
        # attempts counts signed transactions, as pipeline.claim does: a re-send is not one
        claim.write_claims(batch_id, resend, now=now, lease_until=lease, attempt=False)
        claim.extend_reservations(resend, now, timeout)
