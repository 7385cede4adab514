"""The periodic jobs, registered with RQ's own cron scheduler under fixed names, so starting
the scheduler again never duplicates them."""

from __future__ import annotations

from flask import Flask
from rq.cron import CronScheduler

from raregen.publish import tasks
from raregen.queue import redis_connection


def build_cron_scheduler(app: Flask, logging_level: str = "INFO") -> CronScheduler:
    """A :class:`rq.cron.CronScheduler` with RareGen's periodic jobs (call in an app context).

    Intervals (seconds) come from ``CONFIRM_INTERVAL_SECONDS`` and ``REAPER_INTERVAL_SECONDS``.
    """
    cfg = app.config
    queue = cfg["QUEUE_NAME"]
    scheduler = CronScheduler(
        connection=redis_connection(), name="raregen-cron", logging_level=logging_level
    )
    scheduler.register(
        tasks.confirm_sent, queue, interval=cfg["CONFIRM_INTERVAL_SECONDS"], name="confirm-sent",
        job_timeout=120,
    )
    scheduler.register(
        tasks.reap, queue, interval=cfg["REAPER_INTERVAL_SECONDS"], name="reaper", job_timeout=300
    )
    scheduler.register(tasks.settle_dirty, queue, interval=60, name="settle-dirty", job_timeout=300)
    scheduler.register(tasks.replenish_pool, queue, interval=30, name="replenish", job_timeout=300)
    return scheduler
