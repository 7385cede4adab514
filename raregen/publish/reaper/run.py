"""One reaper pass (the periodic ``reaper`` job): expired reservations, expired ``processing``
jobs, abandoned signed reservations, then the sweep of forgotten ``queued`` jobs."""

from __future__ import annotations

import logging

from sqlalchemy import select

from raregen.db import db, transaction, utcnow
from raregen.publish import pool
from raregen.publish.models import PROCESSING, PublishJob
from raregen.publish.reaper.recover import recover_job
from raregen.publish.reaper.reservations import settle_reservations
from raregen.publish.reaper.sweep import sweep_queued
from raregen.queue import count_event

log = logging.getLogger(__name__)


def reap(*, sweep_grace_seconds: int | None = None, limit: int = 1000) -> dict[str, int]:
    """Settle expired ``processing`` jobs, abandoned reservations, then re-enqueue forgotten
    ``queued`` jobs.

    Args:
        sweep_grace_seconds: see :func:`sweep_queued` (default ``SWEEP_GRACE_SECONDS``, 30).
        limit: at most this many jobs per step.

    Returns:
        Counts: ``released`` (expired unsigned reservations), ``requeued``, ``sent``,
        ``confirmed``, ``rebroadcast`` (re-sent, outcome not yet success), ``dirty``,
        ``deferred`` (chain unreachable: re-queued with the transaction), ``reservations``
        (abandoned signed reservations settled), ``swept``, ``packed`` (packed jobs whose
        lease expired, handed back to their batch and re-sent with it).
    """
    counts = {
        "released": 0,
        "requeued": 0,
        "sent": 0,
        "confirmed": 0,
        "rebroadcast": 0,
        "dirty": 0,
        "deferred": 0,
        "reservations": 0,
        "swept": 0,
        "packed": 0,
    }
    now = utcnow()
    with transaction():
        counts["released"] = pool.release_expired(now)
        stale = list(
            db.session.scalars(
                select(PublishJob.job_id)
                .where(PublishJob.status == PROCESSING, PublishJob.lease_until < now)
                .order_by(PublishJob.lease_until)
                .limit(limit)
            )
        )
    for job_id in stale:
        try:
            action = recover_job(job_id)
        except Exception:
            log.exception("could not recover job %s", job_id)
            continue
        if action in counts:
            counts[action] += 1
    try:
        counts["reservations"] = settle_reservations(limit=limit)
    except Exception:
        log.exception("could not settle abandoned reservations")
    counts["swept"] = sweep_queued(grace_seconds=sweep_grace_seconds, limit=limit)
    for action, n in counts.items():
        if n:
            count_event("reaper", action, n)
    return counts
