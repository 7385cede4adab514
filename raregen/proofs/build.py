"""Building ``raregen-proof`` v1 files for jobs and records (docs/PROOFS.md).

A proof is built from the database (the job's request as published, its stored raw
transaction, its acceptance receipt, the stored merkle proof) and the headers after its
block (cache, else the chain). A confirmed job whose merkle proof was not captured yet is
captured on demand; if the chain cannot give it now the file is served ``pending``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import current_app
from sqlalchemy import select

from raregen.db import db, transaction
from raregen.errors import NotFound, RareGenError, RequestError
from raregen.proofs import capture
from raregen.publish import confirm, services
from raregen.publish.broadcasters.base import TxStatus
from raregen.publish.models import CONFIRMED, FAILED, PublishJob, TxProof

__all__ = ["ProofUnavailable", "file_name", "proof_for_job", "proof_for_record"]

FORMAT = "raregen-proof"
VERSION = 1
_TXID = re.compile(r"\A[0-9a-fA-F]{64}\Z")
#: the largest ``publish_jobs.vout`` (a 32-bit INTEGER column): no record of ours is past it
_MAX_VOUT = 2**31 - 1


class ProofUnavailable(RareGenError):
    """409: no proof file for this job: it failed (``JOB_FAILED``), or it is not in a
    transaction yet (``PROOF_NOT_READY``: queued or processing; ask again once ``sent``)."""

    status = 409
    default_code = "JOB_FAILED"


def file_name(doc: dict[str, Any]) -> str:
    """The download name of a proof: ``raregen-proof-<txid>-<vout>.json``."""
    return f"raregen-proof-{doc['txid']}-{doc['vout']}.json"


def _detached(job: PublishJob) -> PublishJob:
    db.session.expunge(job)
    return job


def proof_for_job(job_id: str) -> dict[str, Any]:
    """The proof file of job ``job_id``.

    Raises:
        NotFound: no such job (also an id with a NUL character).
        ProofUnavailable: JOB_FAILED, PROOF_NOT_READY.
    """
    if "\x00" in job_id:  # no id has one, and PostgreSQL text cannot hold it
        raise NotFound("No publish job with this id.", field="jobId")
    with transaction():
        job = db.session.scalar(select(PublishJob).where(PublishJob.job_id == job_id[:36]))
        if job is None:
            raise NotFound("No publish job with this id.", field="jobId")
        job = _detached(job)
    return _proof(job)


def proof_for_record(txid: str, vout: int) -> dict[str, Any]:
    """The proof file of record output ``txid:vout`` published by this server.

    Raises:
        RequestError: MALFORMED_JSON (field txid) for a txid that is not 64 hex characters.
        NotFound: no record of ours at that output (also a vout past 2^31 - 1, the largest
            one stored).
        ProofUnavailable: JOB_FAILED (a job of that transaction failed before it confirmed),
            PROOF_NOT_READY (its job is not sent yet).
    """
    if not _TXID.match(txid):
        raise RequestError(
            "A txid is 64 hexadecimal characters.", code="MALFORMED_JSON", field="txid"
        )
    if not 0 <= vout <= _MAX_VOUT:  # out of the column's range: the database would refuse it
        raise NotFound("No record published by this server at this output.", field="vout")
    with transaction():
        job = db.session.scalar(
            select(PublishJob)
            .where(PublishJob.txid == txid.lower(), PublishJob.vout == int(vout))
            .order_by(PublishJob.id.desc())
            .limit(1)
        )
        if job is None:
            raise NotFound("No record published by this server at this output.", field="txid")
        job = _detached(job)
    return _proof(job)


def _proof(job: PublishJob) -> dict[str, Any]:
    if job.status == FAILED:
        raise ProofUnavailable(
            f"The job failed ({job.error_code}); its record is not on the chain.",
            code="JOB_FAILED",
        )
    if job.txid is None or job.vout is None or job.status not in ("sent", CONFIRMED):
        raise ProofUnavailable(
            "The record is not in a transaction yet; ask again once the job is sent.",
            code="PROOF_NOT_READY",
        )
    with transaction():
        raw_tx = confirm.stored_raw_tx(job.txid)
        row = db.session.get(TxProof, job.txid) if job.status == CONFIRMED else None
        if row is not None:
            db.session.expunge(row)
    if raw_tx is None:  # pragma: no cover - every sent job keeps its transaction
        raise NotFound("The transaction of this record is not stored.", field="txid")
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "record": {
            "signedPayload": job.signed_payload,
            "signature": job.signature,
            "pubkey": job.pubkey,
        },
        "txid": job.txid,
        "vout": int(job.vout),
        "rawTx": raw_tx,
        "status": "pending",
        "jobId": job.job_id,
    }
    chain = None
    if job.status == CONFIRMED and (row is None or row.block_hash != job.block_hash):
        chain = services.broadcaster()
        status = TxStatus(job.txid, "confirmed", job.block_hash, job.block_height, 1)
        if capture.capture(job.txid, status, chain):
            with transaction():
                row = db.session.get(TxProof, job.txid)
                if row is not None:
                    db.session.expunge(row)
    if row is not None and job.status == CONFIRMED and row.block_hash == job.block_hash:
        count = int(current_app.config.get("PROOF_HEADERS_COUNT", 6))
        doc.update(
            status="complete",
            merklePath=row.merkle_path,
            blockHeader=row.block_header,
            blockHeight=int(row.block_height),
            blockHash=row.block_hash,
            headers=capture.following_headers(
                row.block_hash, int(row.block_height), count, chain or services.broadcaster()
            ),
        )
    if job.receipt:
        doc["acceptance"] = json.loads(job.receipt)
    return doc
