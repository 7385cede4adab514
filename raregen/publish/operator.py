"""Operator actions on jobs and the pool, shared by the ``flask --app app jobs|pool`` commands
and the operator console (:mod:`raregen.ops`): the rules live here, both front ends only call.

Each function runs its own :func:`raregen.db.transaction` and writes one audit entry
(:func:`raregen.audit.audit`) with the given ``actor`` (``"cli"``, ``"account:<id>"``).

* :func:`retry_failed_job`: a ``failed`` job back to ``queued`` (docs/PROTOCOL.md §2);
* :func:`release_dirty_utxo`: the operator vouches that a dirty UTXO is unspent: it returns to
  the pool at once (should it be spent after all, the next publish with it marks it dirty
  again);
* :func:`settle_dirty_utxo`: ask the chain about one dirty UTXO, as the periodic
  ``settle-dirty`` job does for all (:func:`raregen.publish.reaper.settle_dirty`);
* :func:`replenish_pool`: run the replenishment now (:func:`raregen.publish.funding.replenish`).

Splitting (:func:`raregen.publish.funding.split`), revoking a key
(:func:`raregen.publish.keys.revoke_key`) and granting credits
(:func:`raregen.wallet.credits.grant`) are called as they are.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from raregen.account_link import parse_account_ref
from raregen.audit import audit
from raregen.db import db, transaction
from raregen.errors import NotFound, RequestError, ServiceError
from raregen.publish import credits, funding, pipeline, pool, services
from raregen.publish.broadcasters.base import BroadcasterUnavailable
from raregen.publish.models import FAILED, SPENT, PublishJob, RegisteredKey, Utxo

_OUTPOINT_RE = re.compile(r"([0-9a-fA-F]{64}):([0-9]{1,9})")


def parse_outpoint(text: str) -> tuple[str, int]:
    """``"<txid hex>:<vout>"`` -> ``(txid lowercased, vout)``.

    Raises:
        RequestError: ``BAD_OUTPOINT``.
    """
    match = _OUTPOINT_RE.fullmatch((text or "").strip())
    if match is None:
        raise RequestError("give the UTXO as <txid>:<vout>", code="BAD_OUTPOINT", field="utxo")
    return match.group(1).lower(), int(match.group(2))


def retry_failed_job(job_id: str, *, actor: str = "cli") -> dict[str, Any]:
    """Put the ``failed`` job ``job_id`` back in the queue, without its old transaction.

    Credits: a job paid by a key's ``credits`` column takes one again (it was given back
    when the job failed). A job paid from an account's ledger does not: the ledger holds
    one charge and one refund per job at most, so the retry is on the house and a second
    failure refunds nothing.

    Returns:
        ``{"jobId", "previousErrorCode"}``.

    Raises:
        NotFound: no such job. RequestError: ``JOB_NOT_FAILED`` (the job is not failed).
        NoCredits: the key's credits are used up.
    """
    with transaction():
        job = db.session.scalar(
            select(PublishJob).where(PublishJob.job_id == job_id).with_for_update()
        )
        if job is None:
            raise NotFound("No job has this id.", field="jobId")
        if job.status != FAILED:
            raise RequestError(
                f"Only a failed job can be retried; this one is {job.status}.",
                code="JOB_NOT_FAILED",
                field="jobId",
            )
        key = db.session.get(RegisteredKey, job.key_id) if job.key_id is not None else None
        if key is not None and parse_account_ref(key.account_ref) is None:
            credits.take(key, job.job_id)
        previous = job.error_code
        job.error_code = None
        job.attempts = 0
        pipeline.requeue(job, keep_tx=False, detail=None, delay=0)
        audit(actor, "publish:job:retried", job.job_id, previous_error=previous)
    return {"jobId": job_id, "previousErrorCode": previous}


def _dirty(txid: str, vout: int) -> Utxo:
    utxo = db.session.scalar(
        select(Utxo).where(Utxo.txid == txid, Utxo.vout == vout).with_for_update()
    )
    if utxo is None or not utxo.dirty:
        raise NotFound("No dirty UTXO has this outpoint.", field="utxo")
    return utxo


def release_dirty_utxo(outpoint: str, *, actor: str = "cli") -> None:
    """Return the dirty UTXO ``outpoint`` (``txid:vout``) to the pool as ``available``.

    Raises:
        RequestError: ``BAD_OUTPOINT``. NotFound: no dirty UTXO there.
    """
    txid, vout = parse_outpoint(outpoint)
    with transaction():
        utxo = _dirty(txid, vout)
        reason = utxo.dirty_reason
        pool.release(utxo)
        utxo.dirty = False
        utxo.dirty_reason = None
        audit(actor, "pool:utxo:released", f"{txid}:{vout}", dirty_reason=reason)


def settle_dirty_utxo(outpoint: str, *, actor: str = "cli") -> str:
    """Ask the chain about the dirty UTXO ``outpoint``: unspent -> back in the pool, spent ->
    ``spent``, unknown to the chain -> left dirty.

    Returns:
        ``"available"``, ``"spent"`` or ``"dirty"`` (unchanged).

    Raises:
        RequestError: ``BAD_OUTPOINT``. NotFound: no dirty UTXO there.
        ServiceError: ``UNAVAILABLE``, the chain cannot be asked.
    """
    txid, vout = parse_outpoint(outpoint)
    with transaction():
        _dirty(txid, vout)
    try:
        state = services.broadcaster().output_status(txid, vout)
    except BroadcasterUnavailable:
        raise ServiceError("The chain cannot be asked now; retry.") from None
    with transaction():
        utxo = _dirty(txid, vout)
        result = "dirty"
        if state == "unspent":
            pool.release(utxo)
            utxo.dirty, utxo.dirty_reason, result = False, None, "available"
        elif state == "spent":
            utxo.dirty, utxo.status, utxo.reserved_until, result = False, SPENT, None, "spent"
        audit(actor, "pool:utxo:settled", f"{txid}:{vout}", chain=state, result=result)
    return result


def replenish_pool(*, actor: str = "cli") -> int:
    """Run the pool replenishment now (splits only when under ``POOL_LOW_WATER``).

    Returns:
        How many UTXOs were added (0: the pool was healthy, or no funding coin was left).
    """
    added = funding.replenish(actor=actor)
    with transaction():
        audit(actor, "pool:replenish:run", None, added=added)
    return added
