"""Publishing one job (immediate mode): claim, reserve, build and sign, store, broadcast, settle.

Every step is its own short database transaction, so a crash anywhere leaves a state the
reaper can settle (``raregen.publish.reaper``):

1. claim: ``queued -> processing`` only if still queued (a second delivery does nothing);
   the claim sets a lease (``lease_until`` = now + ``RESERVATION_TIMEOUT_SECONDS``);
2. reserve a pool UTXO (or reuse the stored transaction of an earlier attempt);
3. build and sign; store the raw transaction and txid on the job *before* broadcasting;
4. broadcast; 5. settle by the outcome class (docs/PROTOCOL.md §5):

* accepted / already known -> job ``sent``, UTXO ``spent``, change ``available``;
* conflict / missing inputs -> UTXO dirty, job back to ``queued`` without its transaction,
  retried with another UTXO (at most ``MAX_ATTEMPTS`` signed transactions, then ``failed``);
* too-long chain, orphan, transient -> job back to ``queued`` *with* its transaction, which a
  later attempt re-sends (never re-signed), after a backoff; the UTXO stays reserved and is
  not dirty;
* rejected (fee, policy, script) -> UTXO released, job ``failed``, credit given back; but
  first the txid is looked up: a transaction some backend already knows is ``sent``.

Fencing. The ``lease_until`` value a claim writes is the claimant's token: every later write
of that attempt (store the signed transaction, settle) is conditional on the job still being
``processing`` with that very token, under a row lock. When a lease expires the reaper takes
the job over by writing a new token, so a slow or paused worker that wakes up afterwards
finds its token gone and changes nothing: it cannot store a second transaction for the job,
nor settle it with a stale outcome. Its UTXO reservation is conditional the same way
(:func:`raregen.publish.pool.mark_signed_if_held`). This is what keeps a record from being
published twice when a worker and the reaper race.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import case, select, update

import raregen.protocol as protocol
from raregen.audit import audit
from raregen.db import after_commit, db, rows_matched, transaction, utcnow
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
from raregen.publish.wake import wake
from raregen.queue import count_event, enqueue_publish, observe_latency
from raregen.signing import decode_stored_signature, parse_pubkey
from raregen.webhooks import outbox

log = logging.getLogger(__name__)

RETRY_DELAYS = (1, 2, 5, 10, 20, 30, 60)  # seconds, for transient outcomes


def setting(name: str, default: Any) -> Any:
    """A publisher setting not (yet) in ``raregen.config``: the app's config if it has
    ``name``, else the environment variable ``RAREGEN_<name>``, else ``default`` (converted to
    ``default``'s type)."""
    cfg = current_app.config
    if name in cfg and cfg[name] is not None:
        return cfg[name]
    raw = os.environ.get(f"RAREGEN_{name}")
    if raw in (None, ""):
        return default
    return type(default)(raw) if default is not None else raw


@dataclass(frozen=True)
class StepResult:
    """What one call of :func:`process_job` did: ``action`` and the job's new status."""

    job_id: str
    action: str
    status: str | None = None
    detail: str | None = None


def record_script_for(job: PublishJob) -> bytes:
    """The OP_RETURN locking script of ``job``'s record (docs/PROTOCOL.md §3)."""
    return protocol.record_script(
        job.signed_payload.encode("utf-8"),
        decode_stored_signature(job.signature)[1],
        parse_pubkey(job.pubkey),
    )


def _retry_delay(attempts: int) -> int:
    return RETRY_DELAYS[min(max(attempts - 1, 0), len(RETRY_DELAYS) - 1)]


def claim(job_id: str) -> PublishJob | None:
    """Move ``job_id`` from ``queued`` to ``processing`` with a new lease (its fencing token).

    ``attempts`` counts signed transactions: it grows when the job has no stored transaction
    (a re-send of a kept transaction is not a new attempt).

    Returns:
        The claimed job (``lease_until`` is this attempt's token), or None if it was not
        queued (already taken, ended or unknown).
    """
    cfg = current_app.config
    now = utcnow()
    with transaction():
        result = db.session.execute(
            update(PublishJob)
            .where(PublishJob.job_id == job_id, PublishJob.status == QUEUED)
            .values(
                status=PROCESSING,
                attempts=PublishJob.attempts + case((PublishJob.raw_tx.is_(None), 1), else_=0),
                lease_until=now + timedelta(seconds=cfg["RESERVATION_TIMEOUT_SECONDS"]),
                not_before=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if rows_matched(result) != 1:
            return None
    return db.session.scalar(
        select(PublishJob)
        .where(PublishJob.job_id == job_id)
        .execution_options(populate_existing=True)
    )


def locked_job(job_id: str, lease: datetime | None) -> PublishJob | None:
    """The job row, locked for this transaction, if it is still ``processing`` under
    ``lease`` (None: any lease). Call inside :func:`raregen.db.transaction`."""
    query = select(PublishJob).where(PublishJob.job_id == job_id, PublishJob.status == PROCESSING)
    if lease is not None:
        query = query.where(PublishJob.lease_until == lease)
    return db.session.scalar(query.with_for_update().execution_options(populate_existing=True))


def requeue(
    job: PublishJob,
    *,
    keep_tx: bool,
    detail: str | None,
    delay: float | None,
    utxo: Utxo | None = None,
) -> None:
    """Hand ``job`` back to the queue (current transaction).

    In immediate mode an RQ delivery is enqueued after the commit (after ``delay``). In batch
    and packed modes (``PUBLISH_MODE``, docs/PROTOCOL.md §6) nothing is enqueued: the row is only
    set back to ``queued`` (due at ``not_before``), and the batch collector, which takes
    queued rows from the database, picks it up (a kept transaction is sent again as it is,
    :func:`raregen.publish.batch.run_collector`). An RQ publish job there would publish the
    record outside its batch. In auto mode the collector is woken after the commit
    (:func:`raregen.publish.wake.wake`; a job due later waits for a later run).

    Args:
        keep_tx: keep the stored transaction (a later attempt re-sends it; its input stays
            reserved for it, the reservation extended past the delay) or drop it (its
            input was released or marked dirty by the caller).
        detail: shown to the client as ``errorDetail`` while it waits.
        delay: seconds before the next attempt (stored as ``not_before``).
        utxo: the input of the kept transaction, to extend its reservation.
    """
    now = utcnow()
    job.status = QUEUED
    job.lease_until = None
    job.error_detail = detail
    job.processing_batch_id = None
    job.not_before = now + timedelta(seconds=delay or 0)
    if keep_tx and utxo is not None:
        timeout = current_app.config["RESERVATION_TIMEOUT_SECONDS"]
        pool.extend_reservation(utxo, now + timedelta(seconds=(delay or 0) + timeout))
    if not keep_tx:
        job.raw_tx = job.txid = None
        job.vout = job.utxo_txid = job.utxo_vout = None
    mode = current_app.config["PUBLISH_MODE"]
    if mode == "auto":
        after_commit(wake)  # due now or after the back-off: the collector or its periodic run
        return
    if mode != "immediate":
        return  # batch / packed: the collector reads queued rows from the database
    job_id, not_before = job.job_id, job.not_before
    after_commit(lambda: enqueue_publish(job_id, delay, not_before=not_before))


# kept for callers of the earlier private name
_requeue = requeue


def _fail(job: PublishJob, code: str, detail: str) -> None:
    job.status = FAILED
    job.lease_until = None
    job.error_code = code
    job.error_detail = detail[:2000]
    credits.refund(job.key_id, job.job_id)
    audit("worker", "publish:job:failed", job.job_id, code=code)
    outbox.emit(outbox.FAILED, [job])


def _input_utxo(job: PublishJob) -> Utxo | None:
    if job.utxo_txid is None:
        return None
    return db.session.scalar(
        select(Utxo).where(Utxo.txid == job.utxo_txid, Utxo.vout == job.utxo_vout)
    )


def broadcast_checked(raw_tx: str, txid: str) -> BroadcastResult:
    """Broadcast ``raw_tx`` through the configured chain and count the outcome.

    A backend bug (an exception) counts as TRANSIENT. A REJECTED answer is double-checked:
    if some backend already knows the txid (an earlier backend of the failover took it before
    timing out), the answer becomes ALREADY_KNOWN, so a job whose record may be on its way is
    never failed.
    """
    chain = services.broadcaster()
    try:
        result = chain.broadcast(raw_tx)
    except Exception as exc:  # a backend bug must not strand the job: treat as transient
        log.warning("broadcast of %s raised %s", txid, exc.__class__.__name__)
        result = BroadcastResult(txid, Outcome.TRANSIENT, str(exc)[:300], "unknown")
    if result.outcome is Outcome.REJECTED and txid:
        try:
            status = chain.tx_status(txid)
        except Exception:
            status = None
        if status is not None and status.state != "unknown":
            result = BroadcastResult(
                txid,
                Outcome.ALREADY_KNOWN,
                f"{result.detail} (yet known: {status.state})",
                result.backend,
            )
    count_event("broadcast", f"{result.backend}|{result.outcome.value}")
    return result


def process_job(job_id: str) -> StepResult:
    """Run one publishing attempt of ``job_id``; safe to call twice (RQ may deliver twice).

    Returns:
        A :class:`StepResult` naming what happened (``skipped``, ``waiting``, ``sent``,
        ``retry``, ``failed``).
    """
    job = claim(job_id)
    if job is None:
        return StepResult(job_id, "skipped")
    lease = job.lease_until
    if job.raw_tx is None:
        signed = _sign(job_id, lease)
        if isinstance(signed, StepResult):
            return signed
        raw_tx, txid = signed
    else:
        with transaction():
            job = locked_job(job_id, lease)
            if job is None:
                return StepResult(job_id, "skipped", detail="lease lost")
            # the claim saw a stored transaction; nothing clears it while we hold the lease
            raw_tx, txid = str(job.raw_tx), job.txid or ""
            utxo = _input_utxo(job)
            if utxo is not None:
                pool.extend_reservation(
                    utxo,
                    utcnow() + timedelta(seconds=current_app.config["RESERVATION_TIMEOUT_SECONDS"]),
                )
    assert raw_tx is not None
    result = broadcast_checked(raw_tx, txid)
    return settle(job_id, result, lease=lease)


def _sign(job_id: str, lease: datetime | None) -> StepResult | tuple[str, str]:
    """Reserve a UTXO, build and sign, store the transaction on the job.

    Returns:
        ``(raw_tx, txid)`` stored (go on and broadcast), or the :class:`StepResult` of an
        attempt that ends here (waiting for the pool, lease lost, reservation lost).
    """
    cfg = current_app.config
    rate = services.fee_rate()
    with transaction():
        job = locked_job(job_id, lease)
        if job is None:
            return StepResult(job_id, "skipped", detail="lease lost")
        script = record_script_for(job)
        need = required_satoshis([script], rate)
        utxo = pool.reserve(
            need,
            job_id,
            timeout_seconds=cfg["RESERVATION_TIMEOUT_SECONDS"],
            max_depth=cfg["MAX_UNCONFIRMED_DEPTH"],
        )
        if utxo is None:
            job.attempts = max(job.attempts - 1, 0)  # waiting for the pool is not an attempt
            requeue(job, keep_tx=False, detail="waiting for a pool UTXO", delay=3)
            return StepResult(job_id, "waiting", QUEUED, "no pool UTXO")
        spendable = SpendableUtxo(utxo.txid, utxo.vout, utxo.satoshis, utxo.script_pub_key)
        utxo_id = utxo.id
    try:
        built = build_publish_tx(services.server_wallet(), spendable, [script], rate)
    except (InsufficientFunds, ValueError) as exc:
        with transaction():
            pool.release_if_held(utxo_id, job_id)
            job = locked_job(job_id, lease)
            if job is None:
                return StepResult(job_id, "skipped", detail="lease lost")
            requeue(job, keep_tx=False, detail=f"build failed: {exc}"[:300], delay=2)
        return StepResult(job_id, "retry", QUEUED, "build failed")
    with transaction():
        job = locked_job(job_id, lease)
        if job is None:
            # the reaper took the job over while we were signing: hand the UTXO back and
            # broadcast nothing
            pool.release_if_held(utxo_id, job_id)
            return StepResult(job_id, "skipped", detail="lease lost")
        if not pool.mark_signed_if_held(utxo_id, job_id, built.txid):
            requeue(
                job, keep_tx=False, detail="the UTXO reservation was lost; retrying", delay=None
            )
            return StepResult(job_id, "retry", QUEUED, "reservation lost")
        job.raw_tx = built.raw_hex
        job.txid = built.txid
        job.vout = built.record_vouts[0]
        job.utxo_txid, job.utxo_vout = spendable.txid, spendable.vout
    return built.raw_hex, built.txid


def settle(job_id: str, result: BroadcastResult, *, lease: datetime | None = None) -> StepResult:
    """Apply a broadcast outcome to the job and its UTXOs in one transaction.

    Args:
        job_id: the job.
        result: the outcome for the job's stored transaction.
        lease: the settling attempt's token (see the module docstring); None skips the
            token check (batch mode settles jobs it holds by ``processing_batch_id``).

    A result for another txid than the job's stored one, or for a job no longer
    ``processing`` (under ``lease``), changes nothing (``skipped``).
    """
    cfg = current_app.config
    with transaction():
        job = locked_job(job_id, lease)
        if job is None:
            current = db.session.scalar(
                select(PublishJob.status).where(PublishJob.job_id == job_id)
            )
            return StepResult(job_id, "skipped", current)
        if result.txid and job.txid and result.txid != job.txid:
            return StepResult(job_id, "skipped", job.status, "stale result")
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
            requeue(job, keep_tx=False, detail=f"retrying: {outcome.name}", delay=None)
            return StepResult(job_id, "retry", QUEUED, outcome.name)
        if outcome == Outcome.REJECTED:
            if utxo is not None:
                pool.release(utxo)
            _fail(job, "BROADCAST_REJECTED", result.detail)
            return StepResult(job_id, "failed", FAILED, result.detail)
        # TOO_LONG_CHAIN, ORPHAN, TRANSIENT: keep the signed transaction and send it again
        resends = _resends(job)
        requeue(
            job,
            keep_tx=True,
            detail=f"will retry #{resends}: {outcome.name}: {result.detail}"[:300],
            delay=_retry_delay(resends),
            utxo=utxo,
        )
        return StepResult(job_id, "retry", QUEUED, outcome.name)


def _resends(job: PublishJob) -> int:
    """How many times in a row the stored transaction came back for a retry: the ``#n`` that
    :func:`settle` writes into ``errorDetail`` ("will retry #n: ..."), plus one. Drives the
    backoff of :data:`RETRY_DELAYS`."""
    detail = job.error_detail or ""
    prefix = "will retry #"
    if not detail.startswith(prefix):
        return 1
    digits = detail[len(prefix) :].split(":", 1)[0].strip()
    return int(digits) + 1 if digits.isdigit() else 1


def mark_job_sent(job: PublishJob, utxo: Utxo | None) -> None:
    """The job's stored transaction is known to the network: job ``sent``, input spent, change
    back in the pool (current transaction). The submit -> sent latency is observed after the
    commit."""
    now = utcnow()
    job.status = SENT
    job.sent_at = job.sent_at or now
    job.lease_until = None
    job.not_before = None
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
    outbox.emit(outbox.SENT, [job])
    if job.created_at is not None:
        seconds = max((job.sent_at - job.created_at).total_seconds(), 0.0)
        after_commit(lambda: observe_latency("submit_to_sent", seconds))


def outputs_to(raw_tx_hex: str, script_hex: str) -> list[tuple[int, int]]:
    """The outputs of a raw transaction paying ``script_hex``: ``[(vout, satoshis)]``."""
    script = bytes.fromhex(script_hex)
    tx = protocol.parse_transaction(bytes.fromhex(raw_tx_hex))
    return [(i, out.satoshis) for i, out in enumerate(tx.outputs) if out.script == script]
