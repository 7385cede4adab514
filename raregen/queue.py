"""Redis and RQ access: the publish queue, how jobs are put on it, whether an RQ job still
carries a publish job, and the cross-process counters behind ``/metrics``.

The database is the source of truth; an RQ job only carries a job id. Enqueueing failures
are logged, never raised to the client: the sweeper re-enqueues queued jobs that no RQ job
carries (``raregen.publish.reaper``).

RQ job ids (:func:`rq_job_id`): ``publish-<job id>`` for the first delivery (intake) and
``publish-<job id>-<not_before in ms>`` for a delivery the pipeline schedules itself (a
retry after a backoff). A new id per retry matters: RQ marks the job it is running
``finished`` (with a short result TTL) when it returns, so re-using the running job's own id
for its retry would let the retry's hash expire under the scheduler. The sweeper derives the
id from the database row, so it can ask Redis cheaply whether that delivery is still alive.

Counters (:func:`count_event`, :func:`observe_latency`) live in Redis hashes so every
process (web workers, RQ workers, the cron process) adds to the same numbers; a Redis
flush resets them, which Prometheus reads as a counter reset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from flask import current_app
from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from raregen.logs import current_request_id

log = logging.getLogger(__name__)

_CONNECTIONS: dict[str, Redis] = {}

#: RQ job timeout of a publish job, seconds.
PUBLISH_JOB_TIMEOUT = 120

#: The RQ entry point of a publish job, named by string (RQ imports it in the worker), so this
#: module does not import the tasks module that imports the whole publisher.
PROCESS_JOB_TASK = "raregen.publish.tasks.process_job"

#: How long a ``started`` delivery of a job the database still has ``queued`` counts as
#: alive, seconds (see :func:`live_deliveries`).
_STARTED_GRACE = 30

METRIC_PREFIX = "raregen:metrics:"
#: Upper bounds (seconds) of the submit -> sent latency histogram.
LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)


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


def periodic_queue_name(publish_queue_name: str) -> str:
    """The queue of the periodic jobs (reaper, confirmations, ...): ``<publish>-periodic``.

    Served by a worker of its own (``worker.py --role periodic``), so recovery runs even
    behind a backlog and a periodic job never holds a publishing worker; a ``--role all``
    worker serves it before the publish queue.
    """
    return f"{publish_queue_name}-periodic"


def batch_queue_name(publish_queue_name: str) -> str:
    """The queue of the batch collector (batch and packed modes, docs/PROTOCOL.md §6):
    ``<publish>-batch``.

    Its own queue, listened to first by every worker, so a collector run never waits behind
    a periodic job (a confirmation run over thousands of sent jobs can take a minute) nor
    behind a backlog of publish jobs. Both the triggered run
    (:func:`raregen.publish.batch.enqueue_collector`) and the periodic tick
    (:mod:`raregen.publish.schedule`) go on it.
    """
    return f"{publish_queue_name}-batch"


def worker_queue_names(publish_queue_name: str) -> list[str]:
    """The queues a worker serves, in RQ's priority order (RQ pops from the first non-empty
    queue of the list): the batch collector, the periodic jobs, then the publish jobs.

    Args:
        publish_queue_name: ``QUEUE_NAME`` (default ``publish``).

    Returns:
        ``[<name>-batch, <name>-periodic, <name>]``.
    """
    return [
        batch_queue_name(publish_queue_name),
        periodic_queue_name(publish_queue_name),
        publish_queue_name,
    ]


#: The roles of a worker process (``worker.py --role``) and the queues each serves.
WORKER_ROLES = ("all", "publish", "periodic")


def role_queue_names(publish_queue_name: str, role: str = "all") -> list[str]:
    """The queues a worker of ``role`` serves, in RQ's priority order.

    ``publish``: the batch collector and the publish jobs, never a periodic job, so a long
    confirmation pass, a reaper pass or a pool replenishment never holds a publishing
    worker (``scripts/run`` and the systemd units run their publishing workers so).
    ``periodic``: the periodic jobs only (confirmations, reaper, dirty UTXOs, replenish,
    webhook delivery, ...), served by a worker of its own. ``all``: every queue
    (:func:`worker_queue_names`), for a set-up with one worker process.

    Args:
        publish_queue_name: ``QUEUE_NAME`` (default ``publish``).
        role: one of :data:`WORKER_ROLES`.

    Returns:
        The queue names, first served first.

    Raises:
        ValueError: ``role`` is not one of :data:`WORKER_ROLES`.
    """
    if role == "all":
        return worker_queue_names(publish_queue_name)
    if role == "publish":
        return [batch_queue_name(publish_queue_name), publish_queue_name]
    if role == "periodic":
        return [periodic_queue_name(publish_queue_name)]
    raise ValueError(f"unknown worker role {role!r} (one of {', '.join(WORKER_ROLES)})")


def _ms(value: datetime) -> int:
    return (
        int(value.timestamp() * 1000)
        if value.tzinfo
        else int((value - datetime(1970, 1, 1)).total_seconds() * 1000)
    )


def rq_job_id(job_id: str, not_before: datetime | None = None) -> str:
    """The RQ job id of a delivery of publish job ``job_id``.

    Args:
        job_id: the publish job id.
        not_before: the job's ``not_before`` (naive UTC) for a delivery the pipeline
            scheduled; None for the first delivery.
    """
    if not_before is None:
        return f"publish-{job_id}"
    return f"publish-{job_id}-{_ms(not_before)}"


#: Queue objects :func:`enqueue_publish` reuses, by (Redis client, queue name): a Queue asks
#: the server its version (INFO, a round trip) once per instance, and every enqueue needs it.
_ENQUEUE_QUEUES: dict[tuple[int, str], Queue] = {}


def enqueue_publish(
    job_id: str, delay_seconds: float | None = None, *, not_before: datetime | None = None
) -> bool:
    """Put publish job ``job_id`` on the queue, now or after ``delay_seconds``.

    An immediate enqueue is one Redis round trip: the job's hash, its status and the push
    onto the queue's list go in one ``MULTI``/``EXEC`` pipeline (RQ's own ``pipeline=``
    option), on a Queue object kept per process (see :data:`_ENQUEUE_QUEUES`). The job is in
    Redis when this returns True.

    Args:
        job_id: the publish job id.
        delay_seconds: run no earlier than this many seconds from now.
        not_before: the ``not_before`` stored on the job row for this delivery (names the
            RQ job, see :func:`rq_job_id`); None for the first delivery.

    Returns:
        True if enqueued; False if Redis was unreachable (the sweeper will catch up).
    """
    try:
        conn, name = redis_connection(), current_app.config["QUEUE_NAME"]
        queue = _ENQUEUE_QUEUES.get((id(conn), name))
        if queue is None or queue.connection is not conn:
            queue = _ENQUEUE_QUEUES[(id(conn), name)] = Queue(name, connection=conn)
        kwargs = {
            # the request that stored the job, for the worker's log lines (raregen.logs)
            "meta": {"request_id": current_request_id()},
            "job_id": rq_job_id(job_id, not_before),
            "job_timeout": PUBLISH_JOB_TIMEOUT,
            "result_ttl": 60,
            "failure_ttl": 3600,
            "retry": Retry(max=3, interval=[2, 5, 15]),
        }
        if delay_seconds and delay_seconds > 0:
            queue.enqueue_in(timedelta(seconds=delay_seconds), PROCESS_JOB_TASK, job_id, **kwargs)
        else:
            pipe = queue.connection.pipeline()
            queue.enqueue(PROCESS_JOB_TASK, job_id, pipeline=pipe, **kwargs)
            pipe.execute()
        return True
    except Exception as exc:  # Redis down: the DB row stays queued and the sweeper re-enqueues
        log.warning("could not enqueue job %s: %s", job_id, exc.__class__.__name__)
        return False


def live_deliveries(rq_ids: Sequence[str]) -> set[str]:
    """Which of ``rq_ids`` still stand to run: waiting in the publish queue (or RQ's
    intermediate queue), in its scheduled registry and due less than :data:`_STARTED_GRACE`
    seconds ago, or ``started`` less than that ago. Read through RQ's public queue, registry
    and job API: five Redis round trips however many ids (the job hashes in one pipeline,
    ``Job.fetch_many``).

    The job's status alone is not trusted: a worker killed between popping an id and
    starting it leaves the status ``queued`` with the id in no list, and a work horse killed
    while running leaves ``started`` for good. A scheduled entry long overdue means no RQ
    scheduler runs (the worker holding the scheduler lock was killed; RQ workers try to take
    the lock over only every 2 minutes): the sweeper then enqueues the job itself, and the
    scheduler's late copy, if it comes, finds the job taken. A publish delivery claims its job within
    milliseconds of starting, so the sweeper (which asks only about jobs the database still
    has ``queued``) may treat a delivery started a while ago as dead; a second delivery is
    harmless (the claim is conditional).

    Raises:
        redis.RedisError: Redis unreachable (the caller then enqueues nothing).
    """
    if not rq_ids:
        return set()
    queue = publish_queue()
    cutoff = time.time() - _STARTED_GRACE
    listed = set(queue.get_job_ids()) | set(queue.intermediate_queue.get_job_ids())
    scheduled = queue.scheduled_job_registry
    due = set(scheduled.get_job_ids(cleanup=False))
    if due:
        # entries due at or before the cutoff: long overdue, no scheduler moves them
        due -= set(scheduled.get_jobs_to_schedule(int(cutoff), chunk_size=len(due)))
    live = {rq_id for rq_id in rq_ids if rq_id in listed or rq_id in due}
    rest = [rq_id for rq_id in rq_ids if rq_id not in live]
    for job in _fetch_jobs(rest, queue.connection):
        if job is None or job.get_status(refresh=False) != JobStatus.STARTED:
            continue
        if job.started_at is not None and job.started_at.timestamp() > cutoff:
            live.add(job.id)
    return live


def _fetch_jobs(rq_ids: Sequence[str], conn: Redis) -> list[Job | None]:
    """RQ's ``Job.fetch_many`` (one pipeline); if a stored job cannot be read (a malformed
    field), the jobs one by one, a broken one as None."""
    if not rq_ids:
        return []
    try:
        return Job.fetch_many(rq_ids, connection=conn)
    except (ValueError, TypeError):
        jobs: list[Job | None] = []
        for rq_id in rq_ids:
            try:
                jobs.append(Job.fetch(rq_id, connection=conn))
            except (ValueError, TypeError, NoSuchJobError):
                jobs.append(None)
        return jobs


def queue_depths() -> dict[str, int]:
    """RQ's view of the work: ``{"queued", "scheduled", "started", "failed", "periodic",
    "batch"}`` (jobs; the first four of the publish queue, the last two waiting in the
    periodic and the batch-collector queues).

    Raises:
        redis.RedisError: Redis unreachable.
    """
    queue = publish_queue()
    periodic = Queue(periodic_queue_name(queue.name), connection=queue.connection)
    collector = Queue(batch_queue_name(queue.name), connection=queue.connection)
    return {
        "queued": queue.count,
        "scheduled": queue.scheduled_job_registry.count,
        "started": queue.started_job_registry.count,
        "failed": queue.failed_job_registry.count,
        "periodic": periodic.count,
        "batch": collector.count,
    }


# ---------------------------------------------------------------------------------------
# Cross-process counters for /metrics
# ---------------------------------------------------------------------------------------


def count_event(kind: str, label: str, amount: int = 1) -> None:
    """Add ``amount`` to counter ``kind`` (e.g. ``broadcast``) under ``label`` (e.g.
    ``node|accepted``). Best effort: a Redis failure is logged at debug level and ignored."""
    try:
        redis_connection().hincrby(METRIC_PREFIX + kind, label, amount)
    except Exception as exc:
        log.debug("metric %s not counted: %s", kind, exc.__class__.__name__)


def observe_latency(name: str, seconds: float) -> None:
    """Add one observation (seconds) to histogram ``name`` (cumulative buckets
    :data:`LATENCY_BUCKETS`, plus ``+Inf``, ``sum`` and ``count``). Best effort."""
    try:
        pipe = redis_connection().pipeline(transaction=False)
        key = METRIC_PREFIX + "hist:" + name
        for bound in LATENCY_BUCKETS:
            if seconds <= bound:
                pipe.hincrby(key, repr(float(bound)), 1)
        pipe.hincrby(key, "+Inf", 1)
        pipe.hincrby(key, "count", 1)
        pipe.hincrbyfloat(key, "sum", float(seconds))
        pipe.execute()
    except Exception as exc:
        log.debug("latency %s not observed: %s", name, exc.__class__.__name__)


def read_counters(kinds: Iterable[str]) -> dict[str, dict[str, float]]:
    """Counters and histograms as stored: ``{kind: {label: value}}`` (histograms under
    ``hist:<name>``).

    Raises:
        redis.RedisError: Redis unreachable.
    """
    kinds = list(kinds)
    pipe = redis_connection().pipeline(transaction=False)
    for kind in kinds:
        pipe.hgetall(METRIC_PREFIX + kind)
    out: dict[str, dict[str, float]] = {}
    for kind, raw in zip(kinds, pipe.execute(), strict=True):
        out[kind] = {k.decode(): float(v) for k, v in (raw or {}).items()}
    return out


#: The key prefix of the periodic jobs' locks (:func:`job_lock`).
LOCK_PREFIX = "raregen:lock:"


@contextmanager
def job_lock(name: str, timeout: int) -> Iterator[bool]:
    """Hold the Redis lock ``raregen:lock:<name>`` (redis-py's :class:`redis.lock.Lock`, not
    blocking) for the ``with`` block; yields whether it was taken.

    The lock expires after ``timeout`` seconds if never released (its holder killed): give
    it the RQ timeout of the job it guards, so that it never expires while the job still
    runs (RQ stops a job at its timeout). On leaving the block the lock is released, if this
    holder still has it.

    Args:
        name: the lock's name (``reaper``).
        timeout: seconds the lock lives unreleased; the guarded job's RQ ``job_timeout``.

    Yields:
        True when taken; False when another holder has it. Redis unreachable yields True:
        the work it guards is safe to run twice, only wasteful.
    """
    from redis.exceptions import LockError, RedisError

    lock = redis_connection().lock(
        LOCK_PREFIX + name, timeout=timeout, blocking=False, thread_local=False
    )
    try:
        taken = bool(lock.acquire())
    except RedisError as exc:
        log.warning("lock %s unavailable (%s); running anyway", name, exc.__class__.__name__)
        yield True
        return
    if not taken:
        yield False
        return
    try:
        yield True
    finally:
        try:
            lock.release()
        except (LockError, RedisError):  # expired, taken over, or Redis gone
            log.debug("lock %s not released", name)
