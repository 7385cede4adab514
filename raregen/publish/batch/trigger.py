"""When the collector runs (docs/PROTOCOL.md §6): the trigger intake pulls after its commit and the
one RQ job id a triggered run is enqueued under.

Every ``BATCH_WINDOW_SECONDS`` the periodic job ``batch-collector``
(``raregen.publish.schedule``) runs the collector; besides, intake calls :func:`notify_queued`
after its commit, which counts accepted jobs in Redis and, past a full batch, enqueues the
collector under one fixed RQ job id (``unique``), so triggers never stack.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import cast

from flask import current_app

from raregen.publish.wake import wake
from raregen.queue import batch_queue_name, redis_connection

log = logging.getLogger("raregen.publish.batch")

#: A process adds its accepted jobs to the Redis count at most every this many jobs (cut to
#: a twentieth of a full batch, so small batches keep an exact count) ...
_FLUSH_JOBS = 25
#: ... or on its first acceptance this many seconds after its last addition (seconds).
_FLUSH_SECONDS = 1.0
#: per count (its Redis key): [jobs this process accepted and has not added yet,
#: time.monotonic() of this process's last addition]
_unsent: dict[str, list[float]] = {}
_unsent_lock = threading.Lock()


def trigger_job_id() -> str:
    """The fixed RQ job id of a triggered collector run, ``<QUEUE_NAME>-batch-collector``:
    one at a time (enqueued ``unique``), never stacked. Named after the queue because RQ job
    ids are global to the Redis database."""
    return f"{current_app.config['QUEUE_NAME']}-batch-collector"


def _pending_key() -> str:
    return f"raregen:{current_app.config['QUEUE_NAME']}:batch-pending"


def _full_batch() -> int:
    cfg = current_app.config
    return int(cfg["PACKED_MAX_RECORDS"] if cfg["PUBLISH_MODE"] == "packed" else cfg["BATCH_SIZE"])


def notify_queued(count: int = 1) -> None:
    """Count ``count`` newly queued jobs; when the count passes a full batch, enqueue a
    collector run now.

    Intake calls this after its commit in auto, batch and packed modes. In auto mode it
    is :func:`raregen.publish.wake.wake` (``count`` does not matter). The count lives in Redis
    (``INCRBY``, cheaper than counting queued rows on every request); only the call that
    crosses a multiple of the batch size tries to enqueue, so a backlog waiting for a busy
    collector does not cost every request an enqueue attempt.

    Under load a process adds its jobs to the Redis count in steps of
    ``min(_FLUSH_JOBS, full batch / 20)`` (at least 1), or at its first acceptance
    ``_FLUSH_SECONDS`` after its last addition: one Redis round trip per step instead of per
    request (about 0.1 ms of web-worker CPU and a round trip per publish). A triggered run
    thus starts at most ``step - 1`` jobs per web process late, and when traffic stops
    a process may keep up to ``step - 1`` uncounted. The count is only a trigger: the
    periodic run every ``BATCH_WINDOW_SECONDS`` is the guarantee, and takes every queued job
    from the database. Never raises: with Redis down, the periodic run still takes the jobs
    (the jobs of a failed addition are not counted again).
    """
    if current_app.config["PUBLISH_MODE"] == "auto":
        wake()  # one SET NX; enqueues a run only when none is awake
        return
    try:
        full = max(_full_batch(), 1)
        step = max(1, min(_FLUSH_JOBS, full // 20))
        key = _pending_key()
        now = time.monotonic()
        with _unsent_lock:
            local = _unsent.setdefault(key, [0, 0.0])
            local[0] += count
            if local[0] < step and now - local[1] < _FLUSH_SECONDS:
                return
            count, local[0], local[1] = int(local[0]), 0, now
        pending = int(cast(int, redis_connection().incr(key, count)))
        if pending // full > (pending - count) // full:
            enqueue_collector()
    except Exception as exc:
        log.warning("batch trigger failed: %s", exc.__class__.__name__)


def enqueue_collector() -> bool:
    """Enqueue one collector run under :func:`trigger_job_id` unless one is already queued
    or running.

    Returns:
        True if enqueued, False if a triggered run was already waiting or running.
    """
    from rq import Queue
    from rq.exceptions import DuplicateJobError

    queue = Queue(batch_queue_name(current_app.config["QUEUE_NAME"]), connection=redis_connection())
    try:
        queue.enqueue(
            "raregen.publish.tasks.collect_batches",  # by name: RQ imports it in the worker
            job_id=trigger_job_id(),
            unique=True,
            job_timeout=int(current_app.config["BATCH_RUN_SECONDS"]) + 120,
            result_ttl=0,
            failure_ttl=60,
        )
    except DuplicateJobError:
        return False
    return True


def reset_pending() -> None:
    """Zero the trigger's count of queued jobs (the collector calls it as it starts a run).
    Best effort: a Redis failure is ignored (the periodic run does not need the count)."""
    try:
        redis_connection().set(_pending_key(), 0)
    except Exception:  # only the trigger's counter; the periodic run does not need it
        pass
