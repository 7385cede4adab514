"""``/healthz`` (liveness; pool health and recovery backlog for operators) and a trivial JSON
endpoint used as a ceiling. Both read the database (the source of truth) and, for the queue,
Redis; neither calls the chain."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from flask.typing import ResponseReturnValue

from raregen.db import db, utcnow
from raregen.publish import pool
from raregen.publish.models import PROCESSING, QUEUED, PublishJob
from raregen.queue import publish_queue, queue_depths
from raregen.web.metrics import operator_client

bp = Blueprint("health", __name__)


@bp.get("/v1/ping")
def ping() -> ResponseReturnValue:
    """Trivial JSON endpoint: the ceiling the ingest benchmark compares against."""
    return jsonify({"ok": True})


#: The words of ``reasons`` (stable: monitors may match them).
DATABASE_UNREACHABLE = "database unreachable"
NO_WORKERS = "no live workers while jobs wait"


def _answer(status: int, reasons: list[str], details: dict[str, Any] | None) -> Response:
    body: dict[str, Any] = {"status": "ok" if status == 200 else "unavailable"}
    if reasons:
        body["reasons"] = reasons
    if details is not None:
        body["details"] = details
    resp = jsonify(body)
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Whether this publisher can do its work; the numbers behind it for operators only.

    Everyone (load balancers, uptime checks): ``200 {"status": "ok"}`` or ``503 {"status":
    "unavailable", "reasons": [...]}``, the reasons in words: ``"database unreachable"``
    (:data:`DATABASE_UNREACHABLE`), ``"no live workers while jobs wait"``
    (:data:`NO_WORKERS`: jobs are ``queued`` in the database and ``workers`` is 0, so nothing
    would publish them; in every publish mode, the batch collector runs on the workers too).

    Clients that may read ``/metrics`` (:func:`raregen.web.metrics.operator_client`: the
    ``METRICS_TOKEN`` bearer token when one is set, else direct loopback clients) also get
    ``"details": {"pool": {...}, "poolHealthy", "jobs": {"processingOverdue", "queued"},
    "queue": {...} | null, "workers": int | null}`` (absent when the database is down). A
    missing or wrong token is not refused: the answer is the public one.

    * ``workers``: live RQ workers listening on the publish queue (``QUEUE_NAME``): RQ's
      worker registry of that queue, counting only workers whose Redis hash still exists
      (a worker refreshes it with its heartbeat; one killed with ``kill -9`` drops out once
      its hash expires, within minutes: RQ's worker TTL, 420 s by default; one stopped
      cleanly at once). Null when Redis is unreachable (unknown is not zero: no reason).
    * ``poolHealthy`` is false when no publish UTXO is available or the pool is under
      ``POOL_LOW_WATER`` (replenishment then splits funding coins); it does not make the
      status unavailable. ``queue`` is null in batch and packed modes, and when Redis is
      unreachable (publishing waits; nothing is lost).
    """
    from sqlalchemy import func, select

    operator = operator_client()
    try:
        queued = int(
            db.session.scalar(select(func.count()).where(PublishJob.status == QUEUED)) or 0
        )
        if operator:
            summary = pool.status_summary()
            overdue = db.session.scalar(
                select(func.count()).where(
                    PublishJob.status == PROCESSING, PublishJob.lease_until < utcnow()
                )
            )
    except Exception:
        return _answer(503, [DATABASE_UNREACHABLE], None)
    workers: int | None = None
    if queued or operator:  # the public answer needs the workers only when jobs wait
        try:
            workers = live_workers()
        except Exception:
            workers = None
    reasons = [NO_WORKERS] if queued > 0 and workers == 0 else []
    if not operator:
        return _answer(503 if reasons else 200, reasons, None)
    queue = None
    if current_app.config.get("PUBLISH_MODE", "immediate") == "immediate":
        try:
            queue = queue_depths()
        except Exception:
            queue = None
    details = {
        "pool": summary,
        "poolHealthy": summary["available_count"] > 0 and not summary["below_low_water"],
        "jobs": {"processingOverdue": int(overdue or 0), "queued": queued},
        "queue": queue,
        "workers": workers,
    }
    return _answer(503 if reasons else 200, reasons, details)


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

    queue = publish_queue()
    keys = Worker.all_keys(queue=queue)
    if not keys:
        return 0
    pipe = queue.connection.pipeline(transaction=False)
    for key in keys:
        pipe.exists(key)
    return sum(1 for found in pipe.execute() if found)
