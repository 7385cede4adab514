"""The auto mode's wake (docs/PROTOCOL.md §6): after a commit that left jobs due, make sure one
collector run is awake. A module of its own below the pipeline and the collector, which both
wake it (the loop that the wake starts is :mod:`raregen.publish.batch.auto`).
"""

from __future__ import annotations

import logging
import uuid

from flask import current_app
from rq import Queue

from raregen.queue import batch_queue_name, redis_connection

log = logging.getLogger("raregen.publish.batch")

#: Seconds a wake or helper key lives without its collector renewing it (a killed collector
#: holds no key longer; the periodic run frees it sooner).
WAKE_TTL_SECONDS = 60


def wake_key(slot: int) -> str:
    """The Redis key of collector ``slot`` (0: the wake key, n: helper n)."""
    name = current_app.config["QUEUE_NAME"]
    return f"raregen:{name}:auto-wake" if slot == 0 else f"raregen:{name}:auto-helper:{slot}"


def wake() -> bool:
    """Make sure a collector run is awake to take the jobs just committed (call after the
    commit). One ``SET NX`` in Redis; one RQ enqueue only when no run was awake.

    Never raises: with Redis down the periodic run takes the jobs.

    Returns:
        True if a run was enqueued.
    """
    return start(0)


def start(slot: int) -> bool:
    """``SET NX`` the key of ``slot`` and, only when it was absent, enqueue its run.

    Never raises (Redis down: False; the periodic run takes the jobs).

    Returns:
        True if a run was enqueued.
    """
    try:
        conn = redis_connection()
        if not conn.set(wake_key(slot), "1", nx=True, ex=WAKE_TTL_SECONDS):
            return False
        try:
            _enqueue(slot)
        except Exception:
            conn.delete(wake_key(slot))
            raise
        return True
    except Exception as exc:
        log.warning("auto wake failed: %s", exc.__class__.__name__)
        return False


def _enqueue(slot: int) -> None:
    cfg = current_app.config
    queue = Queue(batch_queue_name(cfg["QUEUE_NAME"]), connection=redis_connection())
    queue.enqueue(
        "raregen.publish.tasks.collect_auto",  # by name: RQ imports it in the worker
        slot,
        job_id=f"{cfg['QUEUE_NAME']}-auto-{slot}-{uuid.uuid4().hex[:12]}",
        job_timeout=int(cfg["BATCH_RUN_SECONDS"]) + 120,
        result_ttl=0,
        failure_ttl=60,
    )
