"""What the operator console shows: read-only look-ups over the pool, the publish jobs, the
batches and the RQ queues and workers (RQ's public API: ``Queue``, its registries,
``Worker.all``). Call in an app context; nothing here writes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from raregen.db import db, utcnow
from raregen.publish import pool
from raregen.publish.models import FAILED, RESERVED, PublishBatch, PublishJob, Utxo
from raregen.queue import redis_connection, worker_queue_names

#: Rows shown per table (the newest).
LIMIT = 25


def _iso(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def pool_state() -> dict[str, Any]:
    """:func:`raregen.publish.pool.status_summary` (as ``flask pool status --json``)."""
    return pool.status_summary()


def job_counts() -> dict[str, int]:
    """Publish jobs by status: ``{status: count}``."""
    return {
        str(status): int(n)
        for status, n in db.session.execute(
            select(PublishJob.status, func.count()).group_by(PublishJob.status)
        )
    }


def queues_and_workers() -> dict[str, Any]:
    """The RQ queues this deployment uses (``QUEUE_NAME`` and its periodic and batch queues)
    and the workers serving any of them.

    Returns:
        ``{"queues": [{"name", "queued", "started", "failed", "scheduled"}], "workers":
        [{"name", "state", "queues", "job", "heartbeat"}], "error": str | None}`` (error:
        Redis unreachable; the lists are then empty).
    """
    from redis.exceptions import RedisError
    from rq import Queue, Worker

    names = worker_queue_names(current_app.config["QUEUE_NAME"])
    try:
        conn = redis_connection()
        queues = []
        for name in names:
            q = Queue(name, connection=conn)
            queues.append(
                {
                    "name": name,
                    "queued": q.count,
                    "started": q.started_job_registry.count,
                    "failed": q.failed_job_registry.count,
                    "scheduled": q.scheduled_job_registry.count,
                }
            )
        workers = []
        for worker in Worker.all(connection=conn):
            served = worker.queue_names()
            if not set(served) & set(names):
                continue
            workers.append(
                {
                    "name": worker.name,
                    "state": str(worker.get_state()),
                    "queues": ", ".join(served),
                    "job": worker.get_current_job_id() or "—",
                    "heartbeat": _iso(worker.last_heartbeat),
                }
            )
        return {"queues": queues, "workers": workers, "error": None}
    except RedisError as exc:
        return {"queues": [], "workers": [], "error": exc.__class__.__name__}


def recent_batches(limit: int = LIMIT) -> list[dict[str, Any]]:
    """The newest batches: ``[{"id", "status", "mode", "jobs", "created", "broadcast",
    "completed", "error"}]``."""
    rows = db.session.scalars(
        select(PublishBatch).order_by(PublishBatch.created_at.desc()).limit(limit)
    )
    return [
        {
            "id": b.batch_id,
            "status": b.status,
            "mode": b.mode or "—",
            "jobs": b.job_count,
            "created": _iso(b.created_at),
            "broadcast": _iso(b.broadcasted_at),
            "completed": _iso(b.completed_at),
            "error": (b.error_detail or "")[:200],
        }
        for b in rows
    ]


def recent_failures(limit: int = LIMIT) -> list[dict[str, Any]]:
    """The newest failed jobs: ``[{"job_id", "code", "detail", "at"}]``."""
    rows = db.session.scalars(
        select(PublishJob)
        .where(PublishJob.status == FAILED)
        .order_by(PublishJob.updated_at.desc())
        .limit(limit)
    )
    return [
        {
            "job_id": j.job_id,
            "code": j.error_code or "—",
            "detail": (j.error_detail or "")[:200],
            "at": _iso(j.updated_at),
        }
        for j in rows
    ]


def failure_codes(since: timedelta = timedelta(days=1)) -> list[tuple[str, int]]:
    """Failed jobs of the last ``since`` by error code, most frequent first."""
    rows = db.session.execute(
        select(PublishJob.error_code, func.count())
        .where(PublishJob.status == FAILED, PublishJob.updated_at >= utcnow() - since)
        .group_by(PublishJob.error_code)
    ).all()
    return sorted(((code or "—", int(n)) for code, n in rows), key=lambda r: -r[1])


def dirty_utxos(limit: int = LIMIT) -> list[dict[str, Any]]:
    """Dirty UTXOs: ``[{"outpoint", "satoshis", "reason", "since"}]``."""
    rows = db.session.scalars(
        select(Utxo).where(Utxo.dirty.is_(True)).order_by(Utxo.updated_at.desc()).limit(limit)
    )
    return [
        {
            "outpoint": f"{u.txid}:{u.vout}",
            "satoshis": u.satoshis,
            "reason": (u.dirty_reason or "")[:200],
            "since": _iso(u.updated_at),
        }
        for u in rows
    ]


def overdue_reservations(limit: int = LIMIT) -> list[dict[str, Any]]:
    """Reservations past their timeout: ``[{"outpoint", "satoshis", "holder", "until",
    "signed"}]`` (``signed``: the spending txid, or "—"; the reaper settles them)."""
    rows = db.session.scalars(
        select(Utxo)
        .where(Utxo.status == RESERVED, Utxo.reserved_until < utcnow())
        .order_by(Utxo.reserved_until)
        .limit(limit)
    )
    return [
        {
            "outpoint": f"{u.txid}:{u.vout}",
            "satoshis": u.satoshis,
            "holder": u.reserved_by or "—",
            "until": _iso(u.reserved_until),
            "signed": u.spent_by_txid or "—",
        }
        for u in rows
    ]
