"""The sweeper: the database, not Redis, is the source of truth for ``queued`` jobs.

:func:`sweep_queued` re-enqueues ``queued`` jobs that are due and that no live RQ job carries
(checked with pipelined Redis round trips, :func:`raregen.queue.live_deliveries`, and
confirmed by a second sweep): after a Redis flush or restart every queued job is enqueued
again within two sweeps.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import cast

from flask import current_app
from sqlalchemy import or_, select

from raregen.db import db, transaction, utcnow
from raregen.publish import pipeline
from raregen.publish.models import QUEUED, PublishJob
from raregen.queue import enqueue_publish, live_deliveries, redis_connection, rq_job_id

log = logging.getLogger(__name__)


def sweep_queued(
    *, grace_seconds: int | None = None, limit: int = 1000, confirm_dead: bool = True
) -> int:
    """Re-enqueue ``queued`` jobs that are due since ``grace_seconds`` and that no live RQ job
    carries (lost to a Redis flush or restart, to a worker killed between popping a job and
    starting it, or to an enqueue that failed).

    Args:
        grace_seconds: a job is looked at only once it has been due (``not_before``, else
            its last update) for this long (default ``SWEEP_GRACE_SECONDS``, 30).
        limit: at most this many jobs, oldest first.
        confirm_dead: re-enqueue a job only when two consecutive sweeps found no live
            delivery for it (remembered in Redis). A worker pops a job a moment before it
            marks it started; the second look keeps that moment from causing a duplicate
            delivery (which would be harmless, only wasteful).

    Returns:
        How many were enqueued again (0 in batch mode: the collector reads the database).
    """
    if current_app.config["PUBLISH_MODE"] != "immediate":
        return 0
    if grace_seconds is None:
        grace_seconds = int(pipeline.setting("SWEEP_GRACE_SECONDS", 30))
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    with transaction():
        rows = db.session.execute(
            select(PublishJob.job_id, PublishJob.not_before)
            .where(
                PublishJob.status == QUEUED,
                PublishJob.processing_batch_id.is_(None),
                PublishJob.updated_at < cutoff,
                or_(PublishJob.not_before.is_(None), PublishJob.not_before < cutoff),
            )
            .order_by(PublishJob.created_at)
            .limit(limit)
        ).all()
    if not rows:
        return 0
    ids = [rq_job_id(job_id, not_before) for job_id, not_before in rows]
    try:
        live = live_deliveries(ids)
        dead = [rq_id for rq_id in ids if rq_id not in live]
        if confirm_dead:
            confirmed = _confirm_suspects(dead)
        else:
            confirmed = set(dead)
    except Exception as exc:
        log.warning("sweeper cannot reach Redis: %s", exc.__class__.__name__)
        return 0
    swept = 0
    for (job_id, not_before), rq_id in zip(rows, ids, strict=True):
        if rq_id in confirmed and enqueue_publish(job_id, None, not_before=not_before):
            swept += 1
    if swept:
        log.info("sweeper re-enqueued %d queued jobs no RQ job carried", swept)
    return swept


_SUSPECTS = "raregen:sweeper:suspects"


def _confirm_suspects(dead: list[str]) -> set[str]:
    """The deliveries of ``dead`` that the previous sweep found dead too; remember the rest
    for the next sweep (Redis set, expires after 10 minutes)."""
    conn = redis_connection()
    previous = {x.decode() for x in cast("set[bytes]", conn.smembers(_SUSPECTS))}
    confirmed = {rq_id for rq_id in dead if rq_id in previous}
    pipe = conn.pipeline()
    pipe.delete(_SUSPECTS)
    fresh = [rq_id for rq_id in dead if rq_id not in confirmed]
    if fresh:
        pipe.sadd(_SUSPECTS, *fresh)
        pipe.expire(_SUSPECTS, 600)
    pipe.execute()
    return confirmed


def services_mode_is_immediate() -> bool:
    """True when jobs are published one RQ job each (not by the batch collector)."""
    return bool(current_app.config["PUBLISH_MODE"] == "immediate")
