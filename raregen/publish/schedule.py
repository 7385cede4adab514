"""The periodic jobs, registered with RQ's own cron scheduler under fixed names (``confirm-sent``,
``reaper``, ``settle-dirty``, ``replenish``, ``pool-sample``, ``purge-wallet``, ``webhooks``,
``batch-collector``), so starting the scheduler again never duplicates them. The first four go
on the periodic queue
(``<QUEUE_NAME>-periodic``), served by a worker of its own (``worker.py --role periodic``;
a ``--role all`` worker serves it before the publish queue): recovery runs even behind a
backlog of thousands of publish jobs, and no periodic job holds a publishing worker. The batch collector's tick goes on the
collector's own queue (``<QUEUE_NAME>-batch``, served first of all), so it never waits behind
a long confirmation run or a reaper pass.

Intervals (seconds): ``CONFIRM_INTERVAL_SECONDS`` (5), ``REAPER_INTERVAL_SECONDS`` (30),
``SETTLE_DIRTY_INTERVAL_SECONDS`` (60), ``REPLENISH_INTERVAL_SECONDS`` (30),
``BATCH_WINDOW_SECONDS`` (5); from the app config, else the environment (``RAREGEN_...``),
else these defaults (:func:`raregen.publish.pipeline.setting`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask
from rq.cron import CronScheduler

from raregen.publish import tasks
from raregen.publish.pipeline import setting
from raregen.queue import batch_queue_name, periodic_queue_name, redis_connection


@dataclass(frozen=True)
class PeriodicJob:
    """One row of :data:`PERIODIC_JOBS`.

    Attributes:
        name: the fixed cron name (RQ registers a name once, however often it is started).
        func: the RQ entry point in :mod:`raregen.publish.tasks`.
        interval_setting: the setting holding the interval, seconds.
        default_interval: seconds, when the setting is not configured.
        job_timeout: RQ job timeout, seconds; or None to take it from
            ``BATCH_RUN_SECONDS`` + 120 (the collector keeps taking batches that long).
        queue: ``"periodic"`` (``<QUEUE_NAME>-periodic``) or ``"batch"``
            (``<QUEUE_NAME>-batch``).
    """

    name: str
    func: Callable[[], object]
    interval_setting: str
    default_interval: int
    job_timeout: int | None
    queue: str = "periodic"


#: The RQ timeouts of the jobs that take a lock: the locks live exactly as long
#: (:data:`raregen.publish.tasks.PERIODIC_TIMEOUTS`).
_LOCKED = tasks.PERIODIC_TIMEOUTS

#: The periodic jobs, in registration order.
PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob(
        "confirm-sent",
        tasks.confirm_sent,
        "CONFIRM_INTERVAL_SECONDS",
        5,
        _LOCKED["confirm"],
    ),
    PeriodicJob("reaper", tasks.reap, "REAPER_INTERVAL_SECONDS", 30, _LOCKED["reaper"]),
    PeriodicJob(
        "settle-dirty",
        tasks.settle_dirty,
        "SETTLE_DIRTY_INTERVAL_SECONDS",
        60,
        _LOCKED["settle-dirty"],
    ),
    PeriodicJob(
        "replenish", tasks.replenish_pool, "REPLENISH_INTERVAL_SECONDS", 30, _LOCKED["replenish"]
    ),
    # the operator console's pool chart (raregen.ops.charts): every 60 s (the name is only
    # looked up by `setting`; it is not one of the documented settings)
    PeriodicJob(
        "pool-sample",
        tasks.sample_pool,
        "POOL_SAMPLE_INTERVAL_SECONDS",
        60,
        _LOCKED["pool-sample"],
    ),
    PeriodicJob(
        "purge-wallet",
        tasks.purge_wallet_challenges,
        "PURGE_INTERVAL_SECONDS",
        3600,
        _LOCKED["purge-wallet"],
    ),
    # webhook events (raregen.webhooks.delivery): what a nudge after a state change missed
    PeriodicJob("webhooks", tasks.deliver_webhooks, "WEBHOOK_INTERVAL_SECONDS", 2, 120),
    # batch and packed modes (docs/PROTOCOL.md §6); in immediate mode it only finishes old batches
    PeriodicJob(
        "batch-collector", tasks.collect_batches, "BATCH_WINDOW_SECONDS", 5, None, queue="batch"
    ),
)

#: Seconds RQ keeps a periodic job's result.
RESULT_TTL = 60


def _queue_for(row: PeriodicJob, queue_name: str) -> str:
    if row.queue == "batch":
        return batch_queue_name(queue_name)
    return periodic_queue_name(queue_name)


def build_cron_scheduler(app: Flask, logging_level: str = "INFO") -> CronScheduler:
    """A :class:`rq.cron.CronScheduler` with RareGen's periodic jobs (:data:`PERIODIC_JOBS`).

    Call in an app context (the Redis connection and the settings come from it).

    Args:
        app: the Flask app whose config names the queues (``QUEUE_NAME``) and intervals.
        logging_level: the scheduler's log level.

    Returns:
        The scheduler, not started (``scheduler.start()`` blocks).
    """
    cfg = app.config
    scheduler = CronScheduler(
        connection=redis_connection(), name="raregen-cron", logging_level=logging_level
    )
    for row in PERIODIC_JOBS:
        timeout = row.job_timeout
        if timeout is None:
            timeout = int(cfg["BATCH_RUN_SECONDS"]) + 120
        scheduler.register(
            row.func,
            _queue_for(row, cfg["QUEUE_NAME"]),
            interval=int(setting(row.interval_setting, row.default_interval)),
            name=row.name,
            job_timeout=timeout,
            result_ttl=RESULT_TTL,
        )
    return scheduler
