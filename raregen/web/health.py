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
    """Database reachability, pool counts, jobs waiting for the reaper, queue depth.

    ``200 {"ok": true, "pool": {...}, "poolHealthy", "jobs": {"processingOverdue",
    "queued"}, "queue": {...} | null}``; 503 ``{"ok": false, "database": "unreachable"}``
    when the database is down. ``poolHealthy`` is false when no publish UTXO is available or
    the pool is under ``POOL_LOW_WATER`` (replenishment then splits funding coins).
    ``queue`` is null when Redis is unreachable (publishing waits; nothing is lost).
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
    healthy = summary["available_count"] > 0 and not summary["below_low_water"]
    return jsonify(
        {
            "ok": True,
            "pool": summary,
            "poolHealthy": healthy,
            "jobs": {"processingOverdue": int(overdue or 0), "queued": int(queued or 0)},
            "queue": queue,
        }
    )
