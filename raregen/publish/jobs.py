"""Reading publish jobs for clients (docs/PROTOCOL.md §2 ``GET /v1/jobs/<jobId>``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from raregen.db import db
from raregen.errors import NotFound
from raregen.publish.models import PublishJob


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def job_view(job: PublishJob) -> dict[str, Any]:
    """The public shape of a job: jobId, status, txid, vout, blockHash, blockHeight, errorCode,
    errorDetail, attempts, createdAt, updatedAt, sentAt, confirmedAt (ISO 8601 UTC)."""
    return {
        "jobId": job.job_id,
        "status": job.status,
        "txid": job.txid if job.status in ("sent", "confirmed") else None,
        "vout": job.vout if job.status in ("sent", "confirmed") else None,
        "blockHash": job.block_hash,
        "blockHeight": job.block_height,
        "errorCode": job.error_code,
        "errorDetail": job.error_detail,
        "attempts": job.attempts,
        "createdAt": _iso(job.created_at),
        "updatedAt": _iso(job.updated_at),
        "sentAt": _iso(job.sent_at),
        "confirmedAt": _iso(job.confirmed_at),
    }


def get_job_view(job_id: str) -> dict[str, Any]:
    """The job ``job_id`` as :func:`job_view` shows it.

    Raises:
        NotFound: no such job (also for ids that are not UUIDs).
    """
    if "\x00" in job_id:  # PostgreSQL text cannot hold NUL: no job has one
        raise NotFound("No publish job with this id.", field="jobId")
    job = db.session.scalar(select(PublishJob).where(PublishJob.job_id == job_id[:36]))
    if job is None:
        raise NotFound("No publish job with this id.", field="jobId")
    return job_view(job)
