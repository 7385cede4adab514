"""The periodic jobs, registered with RQ's own cron scheduler under fixed names (``confirm-sent``,
``reaper``, ``settle-dirty``, ``replenish``), so starting the scheduler again never duplicates
them. They go on their own queue (``<QUEUE_NAME>-periodic``), which workers serve before the
publish queue: recovery runs even behind a backlog of thousands of publish jobs.

Intervals (seconds): ``CONFIRM_INTERVAL_SECONDS`` (5), ``REAPER_INTERVAL_SECONDS`` (30),
``SETTLE_DIRTY_INTERVAL_SECONDS`` (60), ``REPLENISH_INTERVAL_SECONDS`` (30); the last two
from the app config or the environment (``RAREGEN_...``).
"""

from __future__ import annotations

from flask import Flask
from rq.cron import CronScheduler

from raregen.publish import tasks
from raregen.publish.pipeline import setting
from raregen.queue import periodic_queue_name, redis_connection


def build_cron_scheduler(app: Flask, logging_level: str = "INFO") -> CronScheduler:
    """A :class:`rq.cron.CronScheduler` with RareGen's periodic jobs (call in an app context)."""
    cfg = app.config
    queue = periodic_queue_name(cfg["QUEUE_NAME"])
    scheduler = CronScheduler(
        connection=redis_connection(), name="raregen-cron", logging_level=logging_level
    )
    scheduler.register(
        tasks.confirm_sent,
        queue,
        interval=int(cfg["CONFIRM_INTERVAL_SECONDS"]),
        name="confirm-sent",
        job_timeout=120,
        result_ttl=60,
    )
    scheduler.register(
        tasks.reap,
        queue,
        interval=int(cfg["REAPER_INTERVAL_SECONDS"]),
        name="reaper",
        job_timeout=300,
        result_ttl=60,
    )
    scheduler.register(
        tasks.settle_dirty,
        queue,
        interval=int(setting("SETTLE_DIRTY_INTERVAL_SECONDS", 60)),
        name="settle-dirty",
        job_timeout=300,
        result_ttl=60,
    )
    scheduler.register(
        tasks.replenish_pool,
        queue,
        interval=int(setting("REPLENISH_INTERVAL_SECONDS", 30)),
        name="replenish",
        job_timeout=300,
        result_ttl=60,
    )
    # batch and packed modes (DESIGN.md §6); in immediate mode it only finishes old batches
    scheduler.register(
        tasks.collect_batches,
        queue,
        interval=int(cfg["BATCH_WINDOW_SECONDS"]),
        name="batch-collector",
        job_timeout=int(cfg["BATCH_RUN_SECONDS"]) + 120,
        result_ttl=60,
    )
    return scheduler
