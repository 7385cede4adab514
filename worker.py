"""RQ worker entry: ``python worker.py`` (the batch-collector queue, then the periodic queue,
then the publish queue, with RQ's scheduler for delayed retries) or ``python worker.py
--cron`` (the scheduler of the periodic jobs: confirmations, reaper and sweeper, dirty UTXOs,
pool replenishment, the batch collector's tick).

``--role publish`` serves the batch-collector and publish queues only, ``--role periodic``
the periodic queue only (:func:`raregen.queue.role_queue_names`): run the publishing
workers with the first and one worker with the second (``scripts/run``, the systemd units
``raregen-worker@`` and ``raregen-periodic``), and no periodic job (a confirmation pass, the
reaper, a pool replenishment) ever holds a publishing worker. The default, ``--role all``,
serves every queue (a set-up with one worker process).

The worker runs every job in its own process and main thread (RQ's ``SimpleWorker``): no
fork per job, one app, one SQLAlchemy engine and one connection pool for the worker's whole
life (a job checks a pooled connection out and gives it back; ``pool_pre_ping`` replaces one
PostgreSQL dropped). ``--fork`` brings back RQ's forking ``Worker`` (a new work horse process,
and so a new database connection, per job: ~150-200 ms more per job on a small machine;
docs/PERFORMANCE.md). Either way a process forked from the worker (RQ's scheduler process, a
work horse) starts with empty connection pools and never touches the parent's connections
(:mod:`raregen.publish.tasks`).

Job timeouts: RQ's death penalty (``SIGALRM`` in the main thread, the job's ``job_timeout``:
120 s for a publish job) raises ``JobTimeoutException`` inside the running job; its database
transaction is rolled back, RQ records the failure (and retries the delivery as enqueued),
and the worker takes the next job. With ``--fork`` the horse gets the same alarm, and the
parent kills a horse that outlives it.

Shutdown (RQ 3.0 behaviour, the same with and without ``--fork``):

* SIGTERM or SIGINT once: warm shutdown. The worker takes no new job, finishes the job it
  runs (a publish job takes well under a second, bounded by its 120 s RQ timeout), then exits
  0. Jobs still queued stay in Redis and in the database (``queued``); a restart goes on.
  Give the worker a stop timeout of at least 130 s.
* a second SIGTERM/SIGINT (at least 1 s after the first; RQ ignores a repeat within a
  second): cold shutdown. The running job is abandoned at once (without ``--fork`` RQ raises
  ``SystemExit`` inside it: its open database transaction is rolled back; with ``--fork`` the
  horse is killed); the job stays ``processing`` with a lease, and the reaper settles it once
  the lease (``RESERVATION_TIMEOUT_SECONDS``) has expired: re-sends its stored transaction,
  or marks it sent, or re-queues it. Nothing is lost; nothing is published twice.
* ``kill -9``: as the cold shutdown. Kill the worker's whole process group (what systemd,
  Docker and Kubernetes do): a worker holding RQ's scheduler lock has a scheduler child
  process, which would otherwise outlive it. (With ``--fork`` the horse runs in its own
  process group: killing only the worker's group leaves the horse to finish its job.)

Only one cron process schedules at a time: each takes the Redis lock ``<QUEUE_NAME>:cron-leader``
(TTL :data:`CRON_LOCK_SECONDS`, renewed every third of it) before anything else; a second one
waits as a hot standby, trying the lock every :data:`CRON_STANDBY_POLL_SECONDS`, and takes over
within a TTL when the leader dies. A leader that loses its lock (Redis flushed, a pause longer
than the TTL) stops as on SIGTERM, and its supervisor restarts it as a standby. (Without the
lock two schedulers each enqueued every periodic job: no harm, since the periodic jobs take
locks of their own, but twice the work and twice the batch collector's ticks.)

The cron process then re-enqueues the ``queued`` jobs that no RQ job carries (after a
restart of Redis; :func:`raregen.publish.tasks.recover_at_start`), then runs the scheduler. It
exits 0 on the first SIGTERM or SIGINT after its current tick, and ignores further ones while
it unregisters from Redis.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from raregen import create_app
from raregen.config import SettingsError, refuse
from raregen.publish import tasks
from raregen.queue import WORKER_ROLES, redis_connection, role_queue_names

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

    from flask import Flask
    from redis.lock import Lock
    from rq.cron import CronScheduler
    from rq.worker import BaseWorker

log = logging.getLogger("raregen.cron")

#: Seconds the cron leader's Redis lock lives without renewal (renewed every third of it).
CRON_LOCK_SECONDS = 30
#: Seconds between a standby cron process's tries of the lock.
CRON_STANDBY_POLL_SECONDS = 5.0


def build_worker(app: Flask, *, fork: bool = False, role: str = "all") -> BaseWorker:
    """The RQ worker of ``app``'s queues for ``role`` (:func:`raregen.queue.role_queue_names`;
    ``all``: batch collector first, then periodic, then publish).

    Args:
        app: the app; its config names the queues (``QUEUE_NAME``) and Redis (``REDIS_URL``).
        fork: RQ's forking ``Worker`` (a work horse process per job) instead of its
            ``SimpleWorker`` (jobs in this process's main thread).
        role: ``all``, ``publish`` or ``periodic`` (:data:`raregen.queue.WORKER_ROLES`).

    Returns:
        The worker, not started. Its job timeouts are RQ's death penalty
        (``UnixSignalDeathPenalty``), which needs the main thread: call ``work()`` there.
    """
    from rq import Queue, SimpleWorker, Worker

    tasks.set_app(app)
    with app.app_context():
        conn = redis_connection()
        queues = [
            Queue(name, connection=conn)
            for name in role_queue_names(app.config["QUEUE_NAME"], role)
        ]
    worker_class = Worker if fork else SimpleWorker
    return worker_class(queues, connection=conn)


def run_worker(
    burst: bool = False, fork: bool = False, app: Flask | None = None, role: str = "all"
) -> None:
    """Serve the queues of ``role`` of ``app`` (default: a new one) until stopped (module
    docstring)."""
    worker = build_worker(app or create_app(), fork=fork, role=role)
    worker.work(with_scheduler=True, burst=burst, logging_level="WARNING")


def run_scheduler(scheduler: CronScheduler, stop: threading.Event) -> None:
    """Run ``scheduler``'s periodic jobs until ``stop`` is set, with RQ's public
    :class:`~rq.cron.CronScheduler` methods (what its ``start()`` loop does, but waiting on
    ``stop`` instead of sleeping).

    Each tick enqueues the jobs that are due (and saves their times), sends the scheduler's
    heartbeat, then waits until the next job is due (at most 60 s) or ``stop`` is set. On
    leaving, the scheduler unregisters (``register_death``), even after an error.

    ``start()`` is not used: it installs signal handlers that raise ``StopRequested``
    from any point of the loop, so a second signal (Ctrl-C reaching the whole process
    group and a supervisor's SIGTERM) interrupted the clean-up. Here signals only set
    ``stop`` (:func:`_lead`): the first one ends the loop after its tick, the ones after it
    change nothing, and the clean-up runs to its end.

    Args:
        scheduler: the scheduler with its jobs registered, not started.
        stop: set to end the loop.
    """
    scheduler.register_birth()
    try:
        while not stop.is_set():
            if scheduler.enqueue_jobs():
                scheduler.save()  # the jobs' enqueue times, for the next look
            scheduler.heartbeat()
            stop.wait(scheduler.calculate_sleep_interval())
    finally:
        scheduler.register_death()


def cron_lock_name(app: Flask) -> str:
    """The Redis key of the cron leader's lock (per ``QUEUE_NAME``)."""
    return f"{app.config['QUEUE_NAME']}:cron-leader"


def wait_for_lead(
    lock: Lock, stop: threading.Event, poll: float = CRON_STANDBY_POLL_SECONDS
) -> bool:
    """Take ``lock`` (a redis-py ``Lock``), trying every ``poll`` seconds until it is free or
    ``stop`` is set.

    Returns:
        True once this process holds the lock; False if stopped first.
    """
    said = False
    while not stop.is_set():
        try:
            if lock.acquire(blocking=False):
                if said:
                    log.info("cron: took the lead")
                return True
        except Exception as exc:  # Redis unreachable: keep trying
            log.warning("cron: lock unavailable: %s", exc.__class__.__name__)
        if not said:
            log.info("cron: another cron process leads; standing by")
            said = True
        stop.wait(poll)
    return False


def keep_lead(lock: Lock, stop: threading.Event, on_lost: Callable[[], object]) -> threading.Thread:
    """Renew ``lock`` every third of its timeout in a daemon thread until ``stop`` is set;
    call ``on_lost()`` once if a renewal finds the lock gone or taken (or Redis unreachable
    for longer than the lock lives).

    Raises:
        ValueError: ``lock`` has no timeout (there would be nothing to renew).
    """
    if lock.timeout is None:
        raise ValueError("keep_lead needs a lock with a timeout")
    timeout = float(lock.timeout)

    def renew() -> None:
        period = max(timeout / 3, 0.1)
        failing_since: float | None = None
        import time

        while not stop.wait(period):
            try:
                lock.reacquire()
                failing_since = None
            except Exception as exc:
                from redis.exceptions import LockError

                now = time.monotonic()
                failing_since = failing_since or now
                if isinstance(exc, LockError) or now - failing_since >= timeout:
                    log.error("cron: lost the leader lock (%s); stopping", exc.__class__.__name__)
                    on_lost()
                    return

    thread = threading.Thread(target=renew, name="cron-lock", daemon=True)
    thread.start()
    return thread


def _setter(event: threading.Event) -> Callable[[int, FrameType | None], None]:
    """A signal handler that sets ``event`` from a short thread: the handler runs in the main
    thread, which may be inside ``event.wait()`` holding the event's lock at that instant;
    setting it there directly could then wait on that lock for ever."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if not event.is_set():
            threading.Thread(target=event.set, name="cron-stop", daemon=True).start()

    return handler


def run_cron(app: Flask | None = None) -> None:
    """With ``app`` (default: a new one), re-enqueue the ``queued`` jobs a restart left without an RQ job
    (:func:`raregen.publish.tasks.recover_at_start`, about a second), then run the
    periodic-job scheduler (:mod:`raregen.publish.schedule`) until SIGINT/SIGTERM.

    A failure of the start-up sweep (Redis or the database unreachable) is logged and the
    scheduler starts anyway: its reaper sweeps every ``REAPER_INTERVAL_SECONDS``.
    """
    app = app or create_app()
    tasks.set_app(app)
    from raregen.publish.schedule import build_cron_scheduler

    # SIGINT/SIGTERM (any number of them) only set `stop`: standing by, during the start-up
    # sweep and between the scheduler's ticks alike
    stop = threading.Event()
    previous = {s: signal.signal(s, _setter(stop)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with app.app_context():
            lock = redis_connection().lock(
                cron_lock_name(app), timeout=CRON_LOCK_SECONDS, thread_local=False
            )
        if not wait_for_lead(lock, stop):
            return
        renewing = threading.Event()
        keep_lead(lock, renewing, stop.set)
        try:
            _lead(app, build_cron_scheduler, stop)
        finally:
            renewing.set()
            try:
                lock.release()
            except Exception:  # expired or Redis gone: the next leader takes it after the TTL
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _lead(app: Flask, build_cron_scheduler: Callable[..., Any], stop: threading.Event) -> None:
    with app.app_context():
        scheduler = build_cron_scheduler(app, logging_level="WARNING")
    try:
        swept = tasks.recover_at_start()
    except Exception as exc:
        log.warning("start-up sweep failed: %s", exc.__class__.__name__)
    else:
        if swept:
            log.info("start-up sweep re-enqueued %d queued jobs", swept)
    run_scheduler(scheduler, stop)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cron", action="store_true", help="run the periodic-job scheduler")
    parser.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    parser.add_argument(
        "--role",
        choices=WORKER_ROLES,
        default="all",
        help="the queues to serve: all (default), publish (batch collector and publish "
        "jobs, no periodic job) or periodic (the periodic jobs only)",
    )
    parser.add_argument(
        "--fork",
        action="store_true",
        help="fork a work horse per job (RQ's Worker) instead of running jobs in-process",
    )
    args = parser.parse_args()
    from raregen import logs

    logs.set_process_kind("cron" if args.cron else "worker")
    try:  # before logging is set up: a refusal is its one line on stderr
        app = create_app()
    except SettingsError as exc:  # invalid settings: one line, exit status 78
        refuse(exc)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("rq.cron").setLevel(logging.WARNING)
    if args.cron:
        try:
            run_cron(app)
        except KeyboardInterrupt:  # Ctrl-C during the start-up sweep, before RQ's handler
            pass
    else:
        run_worker(burst=args.burst, fork=args.fork, app=app, role=args.role)


if __name__ == "__main__":
    main()
