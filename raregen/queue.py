"""Redis and RQ access: the publish queue and how jobs are put on it.

The database is the source of truth; an RQ job only carries a job id. Enqueueing failures
are logged, never raised to the client: the sweeper re-enqueues queued jobs that no RQ job
carries (``raregen.publish.reaper``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from redis import Redis
from rq import Queue, Retry

log = logging.getLogger(__name__)

_CONNECTIONS: dict[str, Redis] = {}


def redis_connection(url: str | None = None) -> Redis:
    """A cached Redis client for ``url`` (default: the app's ``REDIS_URL``)."""
    url = url or current_app.config["REDIS_URL"]
    conn = _CONNECTIONS.get(url)
    if conn is None:
        conn = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
        _CONNECTIONS[url] = conn
    return conn


def publish_queue() -> Queue:
    """The RQ queue publish jobs go on (``QUEUE_NAME``, default ``publish``)."""
    return Queue(current_app.config["QUEUE_NAME"], connection=redis_connection())


def rq_job_id(job_id: str) -> str:
    """The RQ job id that carries publish job ``job_id`` (one per job: enqueueing twice is safe)."""
    return f"publish-{job_id}"


def enqueue_publish(job_id: str, delay_seconds: float | None = None) -> bool:
    """Put publish job ``job_id`` on the queue, now or after ``delay_seconds``.

    Returns:
        True if enqueued; False if Redis was unreachable (the sweeper will catch up).
    """
    from raregen.publish import tasks

    try:
        queue = publish_queue()
        kwargs = dict(
            job_id=rq_job_id(job_id),
            job_timeout=120,
            result_ttl=60,
            failure_ttl=3600,
            retry=Retry(max=3, interval=[2, 5, 15]),
        )
        if delay_seconds:
            queue.enqueue_in(timedelta(seconds=delay_seconds), tasks.process_job, job_id, **kwargs)
        else:
            queue.enqueue(tasks.process_job, job_id, **kwargs)
        return True
    except Exception as exc:  # Redis down: the DB row stays queued and the sweeper re-enqueues
        log.warning("could not enqueue job %s: %s", job_id, exc.__class__.__name__)
        return False
