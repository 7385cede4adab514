"""``/healthz`` (liveness, pool health, recovery backlog) and a trivial JSON endpoint used as a
ceiling. Both read the database (the source of truth) and, for the queue, Redis; neither
calls the chain."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/v1/ping")
def ping():  # type: ignore[no-untyped-def]
    """Trivial JSON endpoint: the ceiling the ingest benchmark compares against."""
    return jsonify({"ok": True})


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    """Database reachability, pool counts, jobs waiting for the reaper, queue depth, workers.

    ``200 {"ok": true, "pool": {...}, "poolHealthy", "jobs": {"processingOverdue",
    "queued"}, "queue": {...} | null, "workers": int | null}``.

    * ``workers``: live RQ workers listening on the publish queue (``QUEUE_NAME``): RQ's
      worker registry of that queue, counting only workers whose Redis hash still exists
      (a worker refreshes it with its heartbeat; one killed with ``kill -9`` drops out once
      its hash expires, within minutes: RQ's worker TTL, 420 s by default; one stopped
      cleanly at once). Null when Redis is unreachable.
    * 503, same shape with ``"ok": false`` and ``"reason": "no workers"``, when jobs are
      ``queued`` in the database and ``workers`` is 0 (nothing will publish them; in every
      publish mode: the batch collector runs on the workers too).
    * 503 ``{"ok": false, "database": "unreachable"}`` when the database is down.

    ``poolHealthy`` is false when no publish UTXO is available or the pool is under
    ``POOL_LOW_WATER`` (replenishment then splits funding coins); it does not make ``ok``
    false. ``queue`` is null in batch and packed modes, and when Redis is unreachable
    (publishing waits; nothing is lost).
    """
    from sqlalchemy import func, select

    from raregen.db import db, utcnow
    from raregen.publish import pool
    from raregen.publish.models import PROCESSING, QUEUED, PublishJob

    try:
        summary = pool.status_summary()
        overdue = db.session.scalar(
            select(func.count()).where(
                PublishJob.status == PROCESSING, PublishJob.lease_until < utcnow()
            )
        )
        queued = db.session.scalar(select(func.count()).where(PublishJob.status == QUEUED))
    except Exception:
        return jsonify({"ok": False, "database": "unreachable"}), 503
    queue = None
    if current_app.config.get("PUBLISH_MODE", "immediate") == "immediate":
        try:
            from raregen.queue import queue_depths

            queue = queue_depths()
        except Exception:
            queue = None
    try:
        workers: int | None = live_workers()
    except Exception:
        workers = None
    healthy = summary["available_count"] > 0 and not summary["below_low_water"]
    n_queued = int(queued or 0)
    stalled = n_queued > 0 and workers == 0
    body = {
        "ok": not stalled,
        "pool": summary,
        "poolHealthy": healthy,
        "jobs": {"processingOverdue": int(overdue or 0), "queued": n_queued},
        "queue": queue,
        "workers": workers,
    }
    if stalled:
        body["reason"] = "no workers"
        return jsonify(body), 503
    return jsonify(body)


def live_workers() -> int:
    """How many RQ workers listen on the publish queue (``QUEUE_NAME``) and are alive: in
    the queue's worker registry with their Redis hash still present (two round trips).

    Call in an app context.

    Returns:
        The number of workers (0 or more).

    Raises:
        redis.RedisError: Redis unreachable.
    """
    from rq import Worker

    from raregen.queue import publish_queue

    queue = publish_queue()
    keys = Worker.all_keys(queue=queue)
    if not keys:
        return 0
    pipe = queue.connection.pipeline(transaction=False)
    for key in keys:
        pipe.exists(key)
    return sum(1 for found in pipe.execute() if found)
