"""Publishing one job (immediate mode): claim, reserve, build and sign, store, broadcast, settle.

Every step is its own short database transaction, so a crash anywhere leaves a state the
reaper can settle (``raregen.publish.reaper``):

1. claim: ``queued -> processing`` only if still queued (a second delivery does nothing);
2. reserve a pool UTXO (or reuse the stored transaction of an earlier attempt);
3. build and sign; store the raw transaction and txid on the job *before* broadcasting;
4. broadcast; 5. settle by the outcome class (DESIGN.md §5):

* accepted / already known -> job ``sent``, UTXO ``spent``, change ``available``;
* conflict / missing inputs -> UTXO dirty, job back to ``queued`` without its transaction,
  retried with another UTXO (at most ``MAX_ATTEMPTS`` times, then ``failed``);
* too-long chain, orphan, transient -> job back to ``queued`` *with* its transaction, which a
  later attempt re-sends (never re-signed), after a backoff;
* rejected (fee, policy, script) -> UTXO released, job ``failed``, credit given back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from raregen import protocol
from raregen.audit import audit
from raregen.db import after_commit, db, transaction, utcnow
from raregen.errors import InsufficientFunds
from raregen.publish import credits, pool, services
from raregen.publish.broadcasters.base import BroadcastResult, Outcome
from raregen.publish.models import (
    FAILED,
    PROCESSING,
    QUEUED,
    SENT,
    PublishJob,
    Utxo,
)
from raregen.publish.txbuilder import SpendableUtxo, build_publish_tx, required_satoshis
from raregen.queue import enqueue_publish
from raregen.signing import decode_signature, parse_pubkey

log = logging.getLogger(__name__)

RETRY_DELAYS = (1, 2, 5, 10, 20, 30, 60)  # seconds, for transient outcomes


@dataclass(frozen=True)
class StepResult:
    """What one call of :func:`process_job` did: ``outcome`` and the job's new status."""

    job_id: str
    action: str
    status: str | None = None
    detail: str | None = None


def record_script_for(job: PublishJob) -> bytes:
    """The OP_RETURN locking script of ``job``'s record (DESIGN.md §3)."""
    return protocol.record_script(
        job.signed_payload.encode("utf-8"),
        decode_signature(job.signature),
        parse_pubkey(job.pubkey),
    )


def _retry_delay(attempts: int) -> int:
    return RETRY_DELAYS[min(max(attempts - 1, 0), len(RETRY_DELAYS) - 1)]


def claim(job_id: str) -> PublishJob | None:
    """Move ``job_id`` from ``queued`` to ``processing`` (lease = reservation timeout).

    Returns:
        The claimed job, or None if it was not queued (already taken, ended or unknown).
    """
    cfg = current_app.config
    now = utcnow()
    with transaction():
        result = db.session.execute(
            update(PublishJob)
            .where(PublishJob.job_id == job_id, PublishJob.status == QUEUED)
            .values(
                status=PROCESSING,
                attempts=PublishJob.attempts + 1,
                lease_until=now + timedelta(seconds=cfg["RESERVATION_TIMEOUT_SECONDS"]),
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            return None
    return db.session.scalar(
        select(PublishJob)
        .where(PublishJob.job_id == job_id)
        .execution_options(populate_existing=True)
    )


def _requeue(job: PublishJob, *, keep_tx: bool, detail: str | None, delay: float | None) -> None:
    job.status = QUEUED
    job.lease_until = None
    job.error_detail = detail
    if not keep_tx:
        job.raw_tx = job.txid = None
        job.vout = job.utxo_txid = job.utxo_vout = None
    job_id = job.job_id
    after_commit(lambda: enqueue_publish(job_id, delay))


def _fail(job: PublishJob, code: str, detail: str) -> None:
    job.status = FAILED
    job.lease_until = None
    job.error_code = code
    job.error_detail = detail[:2000]
    credits.refund(job.key_id, job.job_id)
    audit("worker", "publish:job:failed", job.job_id, code=code)


def _input_utxo(job: PublishJob) -> Utxo | None:
    if job.utxo_txid is None:
        return None
    return db.session.scalar(
        select(Utxo).where(Utxo.txid == job.utxo_txid, Utxo.vout == job.utxo_vout)
    )


def process_job(job_id: str) -> StepResult:
    """Run one publishing attempt of ``job_id``; safe to call twice (RQ may deliver twice).

    Returns:
        A :class:`StepResult` naming what happened (``skipped``, ``waiting``, ``sent``,
        ``retry``, ``failed``).
    """
    job = claim(job_id)
    if job is None:
        return StepResult(job_id, "skipped")
    cfg = current_app.config
    if job.raw_tx is None:
        step = _sign(job)
        if step is not None:
            return step
    else:
        with transaction():
            utxo = _input_utxo(job)
            if utxo is not None:
                utxo.reserved_until = utcnow() + timedelta(
                    seconds=cfg["RESERVATION_TIMEOUT_SECONDS"]
                )
    assert job.raw_tx is not None
    try:
        result = services.broadcaster().broadcast(job.raw_tx)
    except Exception as exc:  # a backend bug must not strand the job: treat as transient
        log.warning("broadcast of job %s raised %s", job_id, exc.__class__.__name__)
        result = BroadcastResult(job.txid or "", Outcome.TRANSIENT, str(exc)[:300], "unknown")
    return settle(job_id, result)


def _sign(job: PublishJob) -> StepResult | None:
    """Reserve a UTXO, build and sign, store the transaction on the job. None means go on."""
    cfg = current_app.config
    rate = services.fee_rate()
    script = record_script_for(job)
    need = required_satoshis([script], rate)
    with transaction():
        utxo = pool.reserve(
            need,
            job.job_id,
            timeout_seconds=cfg["RESERVATION_TIMEOUT_SECONDS"],
            max_depth=cfg["MAX_UNCONFIRMED_DEPTH"],
        )
        if utxo is None:
            job = db.session.merge(job)
            job.attempts = max(job.attempts - 1, 0)  # waiting for the pool is not an attempt
            _requeue(job, keep_tx=False, detail="waiting for a pool UTXO", delay=3)
            return StepResult(job.job_id, "waiting", QUEUED, "no pool UTXO")
        spendable = SpendableUtxo(utxo.txid, utxo.vout, utxo.satoshis, utxo.script_pub_key)
        utxo_id = utxo.id
    try:
        built = build_publish_tx(services.server_wallet(), spendable, [script], rate)
    except (InsufficientFunds, ValueError) as exc:
        with transaction():
            utxo = db.session.get(Utxo, utxo_id)
            if utxo is not None:
                pool.release(utxo)
            job = db.session.merge(job)
            _requeue(job, keep_tx=False, detail=f"build failed: {exc}"[:300], delay=2)
        return StepResult(job.job_id, "retry", QUEUED, "build failed")
    with transaction():
        job = db.session.merge(job)
        job.raw_tx = built.raw_hex
        job.txid = built.txid
        job.vout = built.record_vouts[0]
        job.utxo_txid, job.utxo_vout = spendable.txid, spendable.vout
        utxo = db.session.get(Utxo, utxo_id)
        assert utxo is not None
        pool.mark_signed(utxo, built.txid)
    return None


def settle(job_id: str, result: BroadcastResult) -> StepResult:
    """Apply a broadcast outcome to the job and its UTXOs in one transaction."""
    cfg = current_app.config
    with transaction():
        job = db.session.scalar(
            select(PublishJob)
            .where(PublishJob.job_id == job_id)
            .execution_options(populate_existing=True)
        )
        if job is None or job.status != PROCESSING:
            return StepResult(job_id, "skipped", job.status if job else None)
        utxo = _input_utxo(job)
        if result.ok:
            mark_job_sent(job, utxo)
            return StepResult(job_id, "sent", SENT)
        outcome = result.outcome
        if outcome in (Outcome.CONFLICT, Outcome.MISSING_INPUTS):
            if utxo is not None:
                pool.mark_dirty(utxo, f"{outcome.name}: {result.detail}")
            audit("worker", "publish:utxo:dirty", job.utxo_txid, reason=result.detail[:200])
            if job.attempts >= cfg["MAX_ATTEMPTS"]:
                _fail(job, "BROADCAST_CONFLICT", f"gave up after {job.attempts} attempts")
                return StepResult(job_id, "failed", FAILED)
            _requeue(job, keep_tx=False, detail=f"retrying: {outcome.name}", delay=None)
            return StepResult(job_id, "retry", QUEUED, outcome.name)
        if outcome == Outcome.REJECTED:
            if utxo is not None:
                pool.release(utxo)
            _fail(job, "BROADCAST_REJECTED", result.detail)
            return StepResult(job_id, "failed", FAILED, result.detail)
        # TOO_LONG_CHAIN, ORPHAN, TRANSIENT: keep the signed transaction and send it again
        _requeue(
            job,
            keep_tx=True,
            detail=f"will retry: {outcome.name}: {result.detail}"[:300],
            delay=_retry_delay(job.attempts),
        )
        return StepResult(job_id, "retry", QUEUED, outcome.name)


def mark_job_sent(job: PublishJob, utxo: Utxo | None) -> None:
    """The job's stored transaction is known to the network: job ``sent``, input spent, change
    back in the pool (current transaction)."""
    now = utcnow()
    job.status = SENT
    job.sent_at = job.sent_at or now
    job.lease_until = None
    job.error_code = job.error_detail = None
    depth = 1
    if utxo is not None:
        pool.mark_spent(utxo, job.txid or "")
        depth = utxo.depth + 1
    assert job.raw_tx is not None and job.txid is not None
    wallet = services.server_wallet()
    for vout, sats in outputs_to(job.raw_tx, wallet.locking_script_hex):
        pool.add_utxo(job.txid, vout, sats, wallet.locking_script_hex, depth=depth)
    audit("worker", "publish:job:sent", job.job_id, txid=job.txid)


def outputs_to(raw_tx_hex: str, script_hex: str) -> list[tuple[int, int]]:
    """The outputs of a raw transaction paying ``script_hex``: ``[(vout, satoshis)]``."""
    script = bytes.fromhex(script_hex)
    tx = protocol.parse_transaction(bytes.fromhex(raw_tx_hex))
    return [(i, out.satoshis) for i, out in enumerate(tx.outputs) if out.script == script]
