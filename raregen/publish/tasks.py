"""RQ entry points. Each takes ids only, builds (once per process) the app, and runs the
domain function inside an app context. All are safe to run twice; the periodic ones also
take a Redis lock (:func:`raregen.queue.job_lock`) so two copies do not usually run at the
same time (they would only waste work: the domain functions are fenced by database row
locks). A lock lives as long as the RQ timeout of the job it guards
(:data:`PERIODIC_TIMEOUTS`), so it never expires under a job still running; a worker killed
while holding one delays the next run of that job by at most that timeout.

Database connections. ``worker.py`` runs jobs in its own process (RQ's ``SimpleWorker``), so
the app, its SQLAlchemy engine and the engine's connection pool live as long as the worker:
each job checks a pooled connection out and gives it back when its session is removed
(``pool_pre_ping`` tests it first, so a connection PostgreSQL dropped in between is
replaced). A process forked from the worker (RQ's scheduler process, or a work horse with
``worker.py --fork``) must never use the connections it inherited: their sockets are shared
with the parent, and two processes speaking on one PostgreSQL connection corrupt it for
both. :func:`set_app` therefore registers an ``os.register_at_fork`` hook that gives the
child fresh, empty pools (``Engine.dispose(close=False)``: the parent's connections are
left open, untouched, for the parent), as SQLAlchemy's pooling documentation prescribes
for ``os.fork()``."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask
from rq import get_current_job

import raregen.logs as logs
from raregen import create_app
from raregen.account_link import services as account_services
from raregen.audit import chain_deferred
from raregen.db import db, transaction
from raregen.ops import charts
from raregen.publish import batch, confirm, funding, pipeline, reaper
from raregen.queue import job_lock
from raregen.webhooks import delivery

log = logging.getLogger(__name__)

_APP: Flask | None = None

#: RQ job timeout, seconds, of each periodic job that takes a lock, by lock name: the cron
#: scheduler registers the jobs with these (:mod:`raregen.publish.schedule`), and each lock
#: lives as long as its job may run. The start-up sweep takes the reaper's lock.
PERIODIC_TIMEOUTS: dict[str, int] = {
    "confirm": 120,
    "reaper": 300,
    "settle-dirty": 300,
    "replenish": 300,
    "pool-sample": 60,
    "purge-wallet": 300,
}
_FORK_HOOK_INSTALLED = False
T = TypeVar("T")


def set_app(app: Flask) -> None:
    """Use ``app`` for tasks run in this process (the worker entry and tests call it).

    Also makes sure a forked child of this process starts with empty connection pools
    (module docstring; installed once per process)."""
    global _APP
    _APP = app
    _install_fork_hook()


def _app() -> Flask:
    if _APP is None:
        set_app(create_app())
    assert _APP is not None
    return _APP


def _install_fork_hook() -> None:
    global _FORK_HOOK_INSTALLED
    if _FORK_HOOK_INSTALLED or not hasattr(os, "register_at_fork"):
        return
    os.register_at_fork(after_in_child=_fresh_pools_in_child)
    _FORK_HOOK_INSTALLED = True


def _fresh_pools_in_child() -> None:
    """In a forked child: replace every engine's pool of the current app by an empty one,
    without closing the inherited connections (they belong to the parent)."""
    app = _APP
    if app is None:
        return
    try:
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose(close=False)
    except Exception:  # never let a fork fail over this; the child then connects on demand
        log.debug("could not reset the connection pools after fork", exc_info=True)


def _run(fn: Callable[..., T], *args: Any) -> T:
    with _app().app_context():
        try:
            return fn(*args)
        finally:
            db.session.remove()


def _run_locked(name: str, fn: Callable[..., T], default: T) -> T:
    """``fn()`` under the lock ``name`` (timeout: the job's, :data:`PERIODIC_TIMEOUTS`), or
    ``default`` when another holder has it."""
    with _app().app_context(), job_lock(name, PERIODIC_TIMEOUTS[name]) as taken:
        if not taken:
            return default
        try:
            return fn()
        finally:
            db.session.remove()


def process_job(job_id: str) -> str:
    """Publish job ``job_id`` (immediate mode). Returns what was done.

    The job's log lines carry ``job_id`` and the ``request_id`` of the request that stored it
    (the RQ job's ``meta``, :func:`raregen.queue.enqueue_publish`); one line says the outcome.
    """
    rq_job = get_current_job()
    request_id = (rq_job.meta or {}).get("request_id") if rq_job is not None else None
    logs.bind(job_id=job_id, request_id=request_id)
    try:
        action = _run(pipeline.process_job, job_id).action
        log.info("publish job %s: %s", job_id, action, extra={"action": action})
        return action
    finally:
        logs.unbind()


def confirm_sent() -> int:
    """Periodic: mark ``sent`` jobs ``confirmed`` once their transaction is mined."""

    return _run_locked("confirm", confirm.confirm_sent, 0)


def reap() -> dict[str, int]:
    """Periodic: settle jobs left in ``processing`` and re-enqueue forgotten ``queued`` jobs;
    then chain the audit entries still deferred (:func:`raregen.audit.chain_deferred`: the
    accepts' entries on PostgreSQL, which any chained write chains first; this catches the
    ones a quiet service leaves), counted as ``audit_chained``."""

    def run() -> dict[str, int]:
        counts = reaper.reap()
        with transaction():
            chained = chain_deferred()
        if chained:
            counts = {**counts, "audit_chained": chained}
        return counts

    return _run_locked("reaper", run, {})


#: Seconds a queued job must have been due before the start-up sweep re-enqueues it.
START_SWEEP_GRACE_SECONDS = 2


def recover_at_start(pause_seconds: float = 1.0) -> int:
    """At the start of the cron process: re-enqueue at once the ``queued`` jobs no live RQ
    job carries (after a restart the embedded Redis is empty; the periodic sweeper would
    take ``SWEEP_GRACE_SECONDS`` plus a ``REAPER_INTERVAL_SECONDS`` to agree they are lost).

    Two looks of :func:`raregen.publish.reaper.sweep_queued`, ``pause_seconds`` apart, under
    the reaper's Redis lock: the sweeper re-enqueues a job only when two consecutive looks
    found no live delivery for it (a worker popping the job in between is left alone). A job
    is looked at once it has been due for :data:`START_SWEEP_GRACE_SECONDS` (not the periodic
    sweeper's 30 s): the web process enqueues a job right after storing it, and a duplicate
    delivery would be harmless anyway (a job is claimed from the database once). Up to
    10 000 jobs; the periodic sweeper takes any rest. Batch and packed modes: nothing to do
    (0; the collector reads the database).

    Args:
        pause_seconds: seconds between the two looks.

    Returns:
        How many jobs were enqueued again; 0 as well when another process holds the reaper
        lock (that reaper sweeps) or Redis is unreachable (the sweeper logs it; the periodic
        reaper catches up).
    """

    def sweep_twice() -> int:
        grace = START_SWEEP_GRACE_SECONDS
        first = reaper.sweep_queued(grace_seconds=grace, limit=10_000)
        time.sleep(pause_seconds)
        return first + reaper.sweep_queued(grace_seconds=grace, limit=10_000)

    return _run_locked("reaper", sweep_twice, 0)


def settle_dirty() -> int:
    """Periodic: settle dirty UTXOs against the chain."""

    return _run_locked("settle-dirty", reaper.settle_dirty, 0)


def replenish_pool() -> int:
    """Periodic: split funding coins into publish UTXOs under the low-water mark."""

    return _run_locked("replenish", funding.replenish, 0)


def sample_pool() -> dict[str, int]:
    """Periodic: store the pool level for the operator console's chart."""

    return _run_locked("pool-sample", charts.sample_pool, {})


def collect_batches() -> dict[str, int]:
    """Periodic and triggered: batch and packed modes take queued jobs and publish them
    together (docs/PROTOCOL.md §6); in every mode, finish batches left behind."""
    return _run(batch.run_collector)


def collect_auto(slot: int = 0) -> dict[str, int]:
    """Woken (auto mode, docs/PROTOCOL.md §6): take what waits until nothing does
    (:func:`raregen.publish.batch.auto.run_auto`; ``slot`` 0 is the woken run, 1.. a helper
    run under load)."""
    return _run(batch.run_auto, slot)


def deliver_webhooks() -> dict[str, int]:
    """Periodic and nudged after each state change: deliver the due webhook events
    (:mod:`raregen.webhooks.delivery`); several runs may go at once (each claims its
    events). Also drops expired command nonces."""

    def run() -> dict[str, int]:
        counts = delivery.deliver_due()
        delivery.purge_nonces()
        return counts

    return _run(run)


def purge_wallet_challenges() -> dict[str, int]:
    """Periodic: delete wallet one-time codes and key challenges expired over a day ago
    (the wallet's :func:`raregen.wallet.purge.purge_expired`, through
    :func:`raregen.account_link.services`)."""
    return _run_locked("purge-wallet", lambda: account_services().purge_expired(), {})
