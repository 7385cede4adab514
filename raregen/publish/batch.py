"""Batch and packed publishing (DESIGN.md §6): the collector.

``PUBLISH_MODE`` chooses how accepted jobs reach the chain; the API answers the same in
every mode (DESIGN.md §2):

* ``immediate`` (default): one RQ job per record (``raregen.publish.pipeline``);
* ``batch``: a collector takes up to ``BATCH_SIZE`` queued jobs at once, gives each its own
  transaction, and broadcasts them in one call (node ``sendrawtransactions``, ARC
  ``/v1/txs``);
* ``packed``: a collector puts up to ``PACKED_MAX_RECORDS`` records (at most
  ``PACKED_MAX_BYTES``) into ONE transaction, one record output per job (DESIGN.md §3);
  job ``i`` of the batch is at vout ``i``.

When the collector runs: every ``BATCH_WINDOW_SECONDS`` (periodic job ``batch-collector``,
``raregen.publish.schedule``), and as soon as a full batch is waiting: intake calls
:func:`notify_queued` after its commit, which counts accepted jobs in Redis and, past a full
batch, enqueues the collector under one fixed RQ job id (``unique``), so triggers never
stack. One run keeps taking batches while full ones wait (at most ``BATCH_RUN_SECONDS``), so
a job waits at most the window plus processing.

One batch (batch mode), step by step, each step its own short transaction as in the
pipeline:

1. claim: one statement, ``WITH c AS MATERIALIZED (SELECT ... FOR UPDATE SKIP LOCKED)
   UPDATE ... RETURNING`` on PostgreSQL (SQLite serializes writers with ``BEGIN
   IMMEDIATE``), moves up to ``BATCH_SIZE`` jobs to ``processing`` with the batch id and a
   lease; the ``publish_batches`` row is inserted and the inputs are reserved (one statement
   too, :func:`_reserve_coins`) in the same transaction;
2. build and sign every transaction (no database transaction open);
3. store the raw transactions and txids on the jobs and mark the inputs signed, in one
   transaction, before anything is broadcast;
4. broadcast them all in one call (``broadcast_many``);
5. settle every job and UTXO in ONE transaction, per transaction outcome (DESIGN.md §5):
   accepted / already known -> ``sent`` and change back in the pool; conflict / missing
   inputs -> UTXO dirty and job re-queued without its transaction (retried with another
   UTXO, at most ``MAX_ATTEMPTS``); too-long chain, orphan, transient -> job re-queued WITH
   its transaction, sent again after a back-off (``not_before``), never re-signed;
   rejected -> ``failed`` and the credit given back.

Packed mode writes each job only once before broadcasting: the jobs are locked (``SELECT
... FOR UPDATE SKIP LOCKED``), the one transaction is built and signed, and the jobs
(``processing``, batch id, txid, their vouts), the input's reservation and the raw
transaction (on the batch row) are written in one database transaction. A transient
failure keeps the batch's transaction for the next run (:func:`resume_stale`).

Recovery: batch-mode jobs carry a lease like immediate-mode jobs, so the reaper settles them
as single jobs (``reaper.recover_job``: re-sends the stored transaction, or re-queues a job
that was never signed). Packed-mode jobs do not keep the raw transaction themselves (1000
copies of a 500 kB transaction), so their lease is the batch row: they stay ``processing``
with ``lease_until`` NULL (out of the reaper's reach: it would re-queue them without their
transaction and publish them twice) and :func:`resume_stale`, run at the start of every
collector run in every mode, sends a stale packed batch's stored transaction again and
settles it by the outcome.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from flask import current_app
from sqlalchemy import (
    CTE,
    ColumnElement,
    CursorResult,
    Select,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from raregen import protocol
from raregen.audit import audit
from raregen.db import db, is_postgres, transaction, utcnow
from raregen.errors import InsufficientFunds
from raregen.publish import credits, pipeline, pool, services
from raregen.publish.broadcasters.base import BroadcastResult, Outcome, txid_of
from raregen.publish.funding import FUNDING_THRESHOLD_SATS
from raregen.publish.models import (
    AVAILABLE,
    FAILED,
    PROCESSING,
    PURPOSE_FUNDING,
    PURPOSE_PUBLISH,
    QUEUED,
    RESERVED,
    SENT,
    SPENT,
    PublishBatch,
    PublishJob,
    Utxo,
)
from raregen.publish.txbuilder import (
    DUST_LIMIT,
    BuiltTx,
    SpendableUtxo,
    TxInvariantError,
    build_packed_tx,
    build_publish_tx,
    estimate_size,
    fee_for_size,
    required_satoshis,
)
from raregen.queue import periodic_queue_name, redis_connection
from raregen.signing import decode_signature, parse_pubkey

log = logging.getLogger(__name__)

MODES = ("immediate", "batch", "packed")
#: Seconds a job waits before its next try when no pool UTXO was free for it.
POOL_WAIT_SECONDS = 3

# batch statuses (publish_batches.status)
COLLECTING, SIGNED, RESUMING, RETRY = "collecting", "signed", "resuming", "retry"
DONE, PARTIAL, ABANDONED = "sent", "partial", "abandoned"

_JOBS = PublishJob.__table__
_UTXOS = Utxo.__table__


# --------------------------------------------------------------------------------------------
# Triggering


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

    Intake calls this after its commit in batch and packed modes. One Redis ``INCR`` per
    call (cheaper than counting queued rows on every request); only the call that crosses a
    multiple of the batch size tries to enqueue, so a backlog waiting for a busy collector
    does not cost every request an enqueue attempt. The count is only a trigger: the
    periodic run every ``BATCH_WINDOW_SECONDS`` is the guarantee. Never raises: with Redis
    down, the periodic run still takes the jobs.
    """
    try:
        full = max(_full_batch(), 1)
        pending = int(cast(int, redis_connection().incr(_pending_key(), count)))
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

    from raregen.publish import tasks

    queue = Queue(
        periodic_queue_name(current_app.config["QUEUE_NAME"]), connection=redis_connection()
    )
    try:
        queue.enqueue(
            tasks.collect_batches,
            job_id=trigger_job_id(),
            unique=True,
            job_timeout=int(current_app.config["BATCH_RUN_SECONDS"]) + 120,
            result_ttl=0,
            failure_ttl=60,
        )
    except DuplicateJobError:
        return False
    return True


def _reset_pending() -> None:
    try:
        redis_connection().set(_pending_key(), 0)
    except Exception:  # only the trigger's counter; the periodic run does not need it
        pass


# --------------------------------------------------------------------------------------------
# The collector run


# the columns a claimed job is read with, in :class:`_Job`'s field order
_JOB_COLUMNS = (
    PublishJob.id,
    PublishJob.job_id,
    PublishJob.key_id,
    PublishJob.signed_payload,
    PublishJob.signature,
    PublishJob.pubkey,
    PublishJob.attempts,
    PublishJob.raw_tx,
    PublishJob.txid,
    PublishJob.utxo_txid,
    PublishJob.utxo_vout,
)


@dataclass
class _Job:
    """A claimed job: what building, storing and settling need (no ORM object)."""

    id: int
    job_id: str
    key_id: int | None
    signed_payload: str
    signature: str
    pubkey: str
    attempts: int
    raw_tx: str | None
    txid: str | None
    utxo_txid: str | None
    utxo_vout: int | None
    script: bytes = b""
    need: int = 0
    coin: _Coin | None = None
    built: BuiltTx | None = None


@dataclass(frozen=True)
class _Coin:
    id: int
    txid: str
    vout: int
    satoshis: int
    script_pub_key: str
    depth: int

    @classmethod
    def of(cls, utxo: Utxo) -> _Coin:
        return cls(utxo.id, utxo.txid, utxo.vout, utxo.satoshis, utxo.script_pub_key, utxo.depth)

    def spendable(self) -> SpendableUtxo:
        return SpendableUtxo(self.txid, self.vout, self.satoshis, self.script_pub_key)


@dataclass(frozen=True)
class RunReport:
    """What one collector step did: ``batch_id`` (None if nothing was claimed), ``claimed``
    jobs, whether a full load was taken (``more``: run again), and counts by outcome."""

    batch_id: str | None
    claimed: int
    more: bool
    counts: dict[str, int]


def run_collector(*, budget_seconds: float | None = None) -> dict[str, int]:
    """One collector run (the RQ job ``batch-collector``): recover stale batches, then take
    batches while full ones wait, for at most ``budget_seconds`` (``BATCH_RUN_SECONDS``).

    In immediate mode only the recovery runs (packed batches left by an earlier mode).

    Returns:
        Counts: ``batches``, ``claimed``, ``resumed`` and one per outcome (``sent``,
        ``retry``, ``dirty``, ``failed``, ``waiting``).
    """
    cfg = current_app.config
    mode = cfg["PUBLISH_MODE"]
    budget = float(cfg["BATCH_RUN_SECONDS"] if budget_seconds is None else budget_seconds)
    deadline = time.monotonic() + budget
    totals: Counter[str] = Counter()
    totals["resumed"] = resume_stale()
    if mode not in ("batch", "packed"):
        return dict(totals)
    if mode == "packed":
        # jobs that kept a signed transaction (a transient failure in batch or immediate
        # mode) are sent again as they are, never re-signed into a packed transaction
        while True:
            report = collect_batch(with_tx=True)
            _add(totals, report)
            if not report.more or time.monotonic() > deadline:
                break
    while True:
        _reset_pending()
        report = collect_packed() if mode == "packed" else collect_batch()
        _add(totals, report)
        if not report.more or time.monotonic() > deadline:
            break
    return dict(totals)


def _add(totals: Counter[str], report: RunReport) -> None:
    if report.batch_id is not None:
        totals["batches"] += 1
    totals["claimed"] += report.claimed
    totals.update(report.counts)


def _new_batch_id(mode: str) -> str:
    return f"{'pk' if mode == 'packed' else 'bt'}-{uuid.uuid4().hex}"


class _Rollback(Exception):
    """Leave the claim transaction without committing (nothing could be done)."""

    def __init__(self, counts: dict[str, int]):
        super().__init__("rollback")
        self.counts = counts


def _claim(
    batch_id: str,
    limit: int,
    *,
    now: datetime,
    lease_until: datetime | None,
    with_tx: bool | None = None,
) -> list[_Job]:
    """Claim up to ``limit`` queued jobs (oldest first) in one statement (current transaction).

    PostgreSQL: the candidates are locked ``FOR UPDATE SKIP LOCKED``, so concurrent
    collectors (and immediate-mode workers) never take the same job; SQLite: the
    transaction's ``BEGIN IMMEDIATE`` serializes writers. A job whose ``not_before`` is in
    the future (a back-off) is left alone.
    """
    cand = select(PublishJob.id).where(
        PublishJob.status == QUEUED,
        or_(PublishJob.not_before.is_(None), PublishJob.not_before <= now),
    )
    if with_tx is True:
        cand = cand.where(PublishJob.raw_tx.is_not(None))
    elif with_tx is False:
        cand = cand.where(PublishJob.raw_tx.is_(None))
    cand = cand.order_by(PublishJob.created_at).limit(limit)
    picked = _once(cand, "claimable")
    rows = db.session.execute(
        update(PublishJob)
        .where(PublishJob.id == picked.c.id, PublishJob.status == QUEUED)
        .values(
            status=PROCESSING,
            processing_batch_id=batch_id,
            lease_until=lease_until,
            # attempts counts signed transactions, as pipeline.claim does
            attempts=PublishJob.attempts + case((PublishJob.raw_tx.is_(None), 1), else_=0),
            not_before=None,
            updated_at=now,
        )
        .returning(*_JOB_COLUMNS)
        .execution_options(synchronize_session=False)
    ).all()
    jobs = [_Job(**row._mapping) for row in rows]
    jobs.sort(key=lambda j: j.id)
    return jobs


def _ours(batch_id: str, lease: datetime | None) -> tuple[ColumnElement[bool], ...]:
    """The rows this batch still holds: ``processing``, its batch id, and its lease token.

    Batch-mode jobs share the claim's ``lease_until`` as their fencing token (as
    ``pipeline.claim`` does for one job): once the reaper takes a job over it writes a new
    lease, and every later write of this batch to that job matches nothing. Packed jobs have
    no lease (NULL): their batch row is the lease (see the module doc).
    """
    token = PublishJob.lease_until.is_(None) if lease is None else PublishJob.lease_until == lease
    return (
        PublishJob.status == PROCESSING,
        PublishJob.processing_batch_id == batch_id,
        token,
    )


def _once(candidates: Select[Any], name: str) -> CTE:
    """``candidates`` (a ``SELECT id ... LIMIT n``) as a CTE evaluated exactly once, locked
    ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, to ``UPDATE ... FROM`` it.

    Not ``UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)``: PostgreSQL
    may run such a subquery again for each row of a nested-loop semi-join, and with SKIP
    LOCKED every new run skips the rows the earlier runs just locked and returns others, so
    the statement updates more than ``n`` rows (seen: 24 UTXOs reserved for a batch of 4,
    ``tests/integration/test_batch.py``). A ``MATERIALIZED`` CTE runs once.
    """
    if is_postgres():
        candidates = candidates.with_for_update(skip_locked=True)
        return candidates.cte(name).prefix_with("MATERIALIZED", dialect="postgresql")
    return candidates.cte(name)


def _record_script(job: _Job) -> bytes:
    # the same bytes as pipeline.record_script_for (DESIGN.md §3), from the claimed columns
    return protocol.record_script(
        job.signed_payload.encode("utf-8"),
        decode_signature(job.signature),
        parse_pubkey(job.pubkey),
    )


def _unclaim(
    batch_id: str,
    lease: datetime | None,
    jobs: list[_Job],
    *,
    detail: str | None,
    not_before: datetime | None,
) -> None:
    """Give claimed jobs back to ``queued`` untouched (the claim was not an attempt)."""
    if not jobs:
        return
    db.session.execute(
        update(PublishJob)
        .where(PublishJob.id.in_([j.id for j in jobs]), *_ours(batch_id, lease))
        .values(
            status=QUEUED,
            # the claim added one (for a job without a stored transaction, the only kind
            # given back this way)
            attempts=PublishJob.attempts - case((PublishJob.raw_tx.is_(None), 1), else_=0),
            lease_until=None,
            processing_batch_id=None,
            not_before=not_before,
            error_detail=detail,
        )
        .execution_options(synchronize_session=False)
    )


# --------------------------------------------------------------------------------------------
# Batch mode: one transaction per job, broadcast together


def collect_batch(*, with_tx: bool | None = None, limit: int | None = None) -> RunReport:
    """Claim, sign, store, broadcast and settle one batch (batch mode; see the module doc).

    Args:
        with_tx: only jobs that already hold a signed transaction (True), only jobs that do
            not (False), or both (None).
        limit: at most this many jobs (default ``BATCH_SIZE``).

    Returns:
        A :class:`RunReport`; ``more`` is True when a full batch was taken.
    """
    cfg = current_app.config
    limit = int(limit or cfg["BATCH_SIZE"])
    timeout = int(cfg["RESERVATION_TIMEOUT_SECONDS"])
    rate = services.fee_rate()
    batch_id = _new_batch_id("batch")
    now = utcnow()
    lease = now + timedelta(seconds=timeout)  # the fencing token of every job of the batch
    try:
        with transaction():
            jobs = _claim(batch_id, limit, now=now, lease_until=lease, with_tx=with_tx)
            if not jobs:
                raise _Rollback({})
            broken, waiting = _reserve_for(batch_id, jobs, rate, now)
            fresh = [j for j in jobs if j.raw_tx is None and j.coin is not None]
            resend = [j for j in jobs if j.raw_tx is not None]
            if not fresh and not resend and not broken:
                raise _Rollback({"waiting": len(waiting)})
            _unclaim(
                batch_id,
                lease,
                waiting,
                detail="waiting for a pool UTXO",
                not_before=now + timedelta(seconds=POOL_WAIT_SECONDS),
            )
            db.session.add(
                PublishBatch(
                    batch_id=batch_id,
                    job_count=len(jobs) - len(waiting),
                    status=COLLECTING,
                    mode="batch",
                    created_at=now,
                )
            )
            if broken:
                _fail_jobs(
                    batch_id, lease, broken, "BAD_RECORD", "the stored record cannot be encoded"
                )
    except _Rollback as stop:
        return RunReport(None, 0, False, stop.counts)

    # 2. build and sign, outside any database transaction
    wallet = services.server_wallet()
    unbuilt: list[_Job] = []
    for job in fresh:
        assert job.coin is not None
        try:
            job.built = build_publish_tx(wallet, job.coin.spendable(), [job.script], rate)
        except (InsufficientFunds, ValueError, TxInvariantError) as exc:
            log.warning("batch %s: build of job %s failed: %s", batch_id, job.job_id, exc)
            unbuilt.append(job)
    built = [j for j in fresh if j.built is not None]

    # 3. store the transactions before broadcasting them
    with transaction():
        pairs = [(j, j.built, j.coin) for j in built if j.built is not None and j.coin]
        if pairs:
            _update_rows(
                _JOBS,
                {
                    "id": [j.id for j, _, _ in pairs],
                    "raw_tx": [b.raw_hex for _, b, _ in pairs],
                    "txid": [b.txid for _, b, _ in pairs],
                    "utxo_txid": [c.txid for _, _, c in pairs],
                    "utxo_vout": [c.vout for _, _, c in pairs],
                },
                fixed={"vout": 0},
                where=(
                    _JOBS.c.status == PROCESSING,
                    _JOBS.c.processing_batch_id == batch_id,
                    _JOBS.c.lease_until == lease,
                ),
            )
            # pool.mark_signed for every input, and the job (not the batch) as holder
            _update_rows(
                _UTXOS,
                {
                    "id": [c.id for _, _, c in pairs],
                    "spent_by_txid": [b.txid for _, b, _ in pairs],
                    "reserved_by": [j.job_id for j, _, _ in pairs],
                },
            )
        if unbuilt:
            _release_coins([j.coin.id for j in unbuilt if j.coin is not None])
            _requeue(
                batch_id, lease, unbuilt, keep_tx=False, detail="build failed", not_before=None
            )
        db.session.execute(
            update(PublishBatch)
            .where(PublishBatch.batch_id == batch_id)
            .values(
                status=SIGNED,
                txids=json.dumps(
                    [j.built.txid for j in built if j.built] + [j.txid for j in resend if j.txid]
                ),
            )
        )

    # 4. broadcast everything in one call
    sending = built + resend
    raws = [j.built.raw_hex if j.built is not None else str(j.raw_tx) for j in sending]
    results = _broadcast_many(raws)

    # 5. settle all of it in one transaction
    counts = _settle_batch(batch_id, lease, sending, results)
    counts["waiting"] = counts.get("waiting", 0) + len(waiting)
    if unbuilt:
        counts["retry"] = counts.get("retry", 0) + len(unbuilt)
    return RunReport(batch_id, len(jobs), len(jobs) >= limit, counts)


def _reserve_for(
    batch_id: str, jobs: list[_Job], rate: int, now: datetime
) -> tuple[list[_Job], list[_Job]]:
    """Give each claimed job its input (current transaction).

    Jobs that already hold a signed transaction keep its input (its reservation is extended).
    The others get pool UTXOs reserved in one statement (:func:`pool.reserve_many` with the
    smallest need of the batch), matched biggest need to biggest UTXO; a job none of them
    covers (a large payload) gets its own :func:`pool.reserve`.

    Returns:
        ``(broken, waiting)``: jobs whose stored record cannot be encoded, and jobs no UTXO
        was free for.
    """
    cfg = current_app.config
    timeout = int(cfg["RESERVATION_TIMEOUT_SECONDS"])
    max_depth = int(cfg["MAX_UNCONFIRMED_DEPTH"])
    broken: list[_Job] = []
    fresh: list[_Job] = []
    resend: list[_Job] = []
    for job in jobs:
        if job.raw_tx is not None:
            resend.append(job)
            continue
        try:
            job.script = _record_script(job)
        except Exception:  # validated at intake; a damaged row must not stop the batch
            broken.append(job)
            continue
        job.need = required_satoshis([job.script], rate)
        fresh.append(job)
    if resend:
        pairs = [(j.utxo_txid, j.utxo_vout) for j in resend]
        rows = db.session.scalars(select(Utxo).where(tuple_(Utxo.txid, Utxo.vout).in_(pairs))).all()
        by_outpoint = {(u.txid, u.vout): u for u in rows}
        for job in resend:
            utxo = by_outpoint.get((job.utxo_txid or "", job.utxo_vout or 0))
            if utxo is not None:
                job.coin = _Coin.of(utxo)
        if rows:
            db.session.execute(
                update(Utxo)
                .where(Utxo.id.in_([u.id for u in rows]))
                .values(reserved_until=now + timedelta(seconds=timeout))
                .execution_options(synchronize_session=False)
            )
    if not fresh:
        return broken, []
    coins = _reserve_coins(
        len(fresh),
        min(j.need for j in fresh),
        batch_id,
        timeout=timeout,
        max_depth=max_depth,
        now=now,
    )
    coins.sort(key=lambda c: c.satoshis, reverse=True)
    unmatched: list[_Job] = []
    ci = 0
    for job in sorted(fresh, key=lambda j: j.need, reverse=True):
        if ci < len(coins) and coins[ci].satoshis >= job.need:
            job.coin = coins[ci]
            ci += 1
        else:
            unmatched.append(job)
    if ci < len(coins):
        _release_coins([c.id for c in coins[ci:]])
    waiting: list[_Job] = []
    for job in unmatched:
        utxo = pool.reserve(
            job.need, batch_id, timeout_seconds=timeout, max_depth=max_depth, now=now
        )
        if utxo is None:
            waiting.append(job)
        else:
            job.coin = _Coin.of(utxo)
    return broken, waiting


def _reserve_coins(
    count: int, min_satoshis: int, holder: str, *, timeout: int, max_depth: int, now: datetime
) -> list[_Coin]:
    """Reserve up to ``count`` pool UTXOs worth at least ``min_satoshis`` in ONE statement.

    The same rule as :func:`pool.reserve_many` (the smallest available, clean publish UTXOs
    under the depth limit, ``pool._candidates``; expired reservations released first), as
    ``WITH picked AS MATERIALIZED (SELECT ... FOR UPDATE SKIP LOCKED) UPDATE ... RETURNING``
    (see :func:`_once`): no second SELECT and no ORM objects for 500 rows.
    """
    pool.release_expired(now)
    picked = _once(
        pool._candidates(min_satoshis, max_depth, PURPOSE_PUBLISH).limit(count), "reservable"
    )
    rows = db.session.execute(
        update(Utxo)
        .where(Utxo.id == picked.c.id, Utxo.status == AVAILABLE)
        .values(**pool.reservation_values(holder, now, timeout))
        .returning(Utxo.id, Utxo.txid, Utxo.vout, Utxo.satoshis, Utxo.script_pub_key, Utxo.depth)
        .execution_options(synchronize_session=False)
    ).all()
    return [_Coin(*row) for row in rows]


def _broadcast_many(raws: list[str]) -> list[BroadcastResult]:
    if not raws:
        return []
    try:
        results = services.broadcaster().broadcast_many(raws)
        if len(results) == len(raws):
            return results
        detail = f"backend returned {len(results)} results for {len(raws)}"
    except Exception as exc:  # a backend bug must not strand the batch: treat as transient
        detail = f"broadcast raised {exc.__class__.__name__}"
    log.warning("batch broadcast failed: %s", detail)
    return [BroadcastResult(txid_of(r), Outcome.TRANSIENT, detail, "unknown") for r in raws]


def _settle_batch(
    batch_id: str, lease: datetime, sending: list[_Job], results: list[BroadcastResult]
) -> dict[str, int]:
    """Apply every outcome of a batch-mode broadcast in one transaction."""
    cfg = current_app.config
    now = utcnow()
    groups: dict[str, list[tuple[_Job, BroadcastResult]]] = {
        "ok": [],
        "dirty": [],
        "rejected": [],
        "later": [],
    }
    for job, result in zip(sending, results, strict=True):
        if result.ok:
            groups["ok"].append((job, result))
        elif result.outcome.dirties_input:
            groups["dirty"].append((job, result))
        elif result.outcome is Outcome.REJECTED:
            groups["rejected"].append((job, result))
        else:
            groups["later"].append((job, result))
    counts: Counter[str] = Counter()
    with transaction():
        # accepted / already known: jobs sent, inputs spent, change back in the pool
        ok_jobs = [j for j, _ in groups["ok"]]
        settled = _mark_sent(batch_id, lease, ok_jobs, now)
        wallet_script = services.server_wallet().locking_script_hex
        change_rows: list[dict[str, Any]] = []
        spent_ids: list[int] = []
        for job in ok_jobs:
            if job.id not in settled:
                continue
            if job.coin is not None:
                spent_ids.append(job.coin.id)
            depth = (job.coin.depth if job.coin is not None else 0) + 1
            if job.built is not None:
                if job.built.change_vout is not None and job.built.change_satoshis:
                    change_rows.append(
                        _utxo_row(
                            job.built.txid,
                            job.built.change_vout,
                            job.built.change_satoshis,
                            wallet_script,
                            depth,
                            now,
                        )
                    )
            elif job.raw_tx is not None and job.txid is not None:
                # a re-sent transaction: its change may be known already (pool.add_utxo checks)
                for vout, sats in pipeline.outputs_to(job.raw_tx, wallet_script):
                    pool.add_utxo(job.txid, vout, sats, wallet_script, depth=depth)
        _mark_coins_spent(spent_ids)
        if change_rows:
            db.session.execute(insert(_UTXOS), change_rows)  # Core: no ORM per row
        counts["sent"] += len(settled)

        # conflict / missing inputs: input dirty, job again with another UTXO
        dirty = [(j, r) for j, r in groups["dirty"]]
        for job, result in dirty:
            if job.coin is not None:
                _mark_coin_dirty(job.coin.id, f"{result.outcome.name}: {result.detail}")
                audit("worker", "publish:utxo:dirty", job.coin.txid, reason=result.detail[:200])
        over = [j for j, _ in dirty if j.attempts >= cfg["MAX_ATTEMPTS"]]
        again = [j for j, _ in dirty if j.attempts < cfg["MAX_ATTEMPTS"]]
        if over:
            _fail_jobs(
                batch_id, lease, over, "BROADCAST_CONFLICT", "gave up after repeated conflicts"
            )
        if again:
            outcome = dirty[0][1].outcome.name
            _requeue(
                batch_id,
                lease,
                again,
                keep_tx=False,
                detail=f"retrying: {outcome}",
                not_before=None,
            )
        counts["dirty"] += len(again)
        counts["failed"] += len(over)

        # rejected: permanent for that transaction
        for job, result in groups["rejected"]:
            if job.coin is not None:
                _release_coins([job.coin.id])
            _fail_jobs(batch_id, lease, [job], "BROADCAST_REJECTED", result.detail)
        counts["failed"] += len(groups["rejected"])

        # transient, too-long chain, orphan: keep the signed transaction, send it later
        for job, result in groups["later"]:
            delay = pipeline.RETRY_DELAYS[
                min(max(job.attempts - 1, 0), len(pipeline.RETRY_DELAYS) - 1)
            ]
            _requeue(
                batch_id,
                lease,
                [job],
                keep_tx=True,
                detail=f"will retry: {result.outcome.name}: {result.detail}"[:300],
                not_before=now + timedelta(seconds=delay),
            )
        counts["retry"] += len(groups["later"])

        summary = {k: v for k, v in counts.items() if v}
        db.session.execute(
            update(PublishBatch)
            .where(PublishBatch.batch_id == batch_id)
            .values(
                status=DONE if counts["sent"] == len(sending) else PARTIAL,
                broadcasted_at=now,
                completed_at=utcnow(),
                error_detail=None if counts["sent"] == len(sending) else json.dumps(summary),
            )
        )
        audit("worker", "publish:batch:settled", batch_id, **summary)
    return dict(counts)


# --------------------------------------------------------------------------------------------
# Packed mode: many records in one transaction


def _packed_prefix(jobs: list[_Job], max_bytes: int) -> int:
    """How many of ``jobs`` (in order) fit one transaction of at most ``max_bytes`` (>= 1)."""
    # estimate_size without the records, then each record output's exact size
    size = estimate_size(1, [], with_change=True) + 2  # output count varint may grow to 3
    for i, job in enumerate(jobs):
        n = len(job.script)
        size += 8 + (1 if n < 0xFD else 3 if n <= 0xFFFF else 5) + n
        if size > max_bytes and i > 0:
            return i
    return len(jobs)


def _lock_queued(limit: int, now: datetime) -> list[_Job]:
    """The oldest ``limit`` due ``queued`` jobs without a stored transaction, locked for this
    transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE``
    serializes writers) but not written: packed mode writes each job once, after signing."""
    query = (
        select(*_JOB_COLUMNS)
        .where(
            PublishJob.status == QUEUED,
            PublishJob.raw_tx.is_(None),
            or_(PublishJob.not_before.is_(None), PublishJob.not_before <= now),
        )
        .order_by(PublishJob.created_at)
        .limit(limit)
    )
    if is_postgres():
        query = query.with_for_update(skip_locked=True)
    jobs = [_Job(**row._mapping) for row in db.session.execute(query)]
    jobs.sort(key=lambda j: j.id)
    return jobs


def collect_packed(*, limit: int | None = None) -> RunReport:
    """Publish up to ``PACKED_MAX_RECORDS`` queued jobs (at most ``PACKED_MAX_BYTES``) in ONE
    transaction; job ``i`` of the batch (by job row id) gets vout ``i``.

    The input is one pool UTXO (or, when the pool has none big enough, a funding coin) whose
    value covers the fee of the whole transaction with a change output: the fee grows with
    the records (``fee = ceil(size * rate / 1000)``), so the reservation asks for at least
    that much.

    Unlike batch mode, the jobs are claimed by locking them (one ``SELECT ... FOR UPDATE
    SKIP LOCKED``), the transaction is built and signed, and only then is each job written,
    once: ``processing`` with the batch id, the txid and its vout, in the same database
    transaction that reserves the input and stores the raw transaction on the batch row. A
    crash before that commit leaves the jobs ``queued`` and the input free; after it, the
    batch row holds everything :func:`resume_stale` needs. Each job row is rewritten twice
    (here and when settled) instead of three times.

    Returns:
        A :class:`RunReport`; ``more`` is True when the transaction was full.
    """
    cfg = current_app.config
    limit = int(limit or cfg["PACKED_MAX_RECORDS"])
    max_bytes = int(cfg["PACKED_MAX_BYTES"])
    timeout = int(cfg["RESERVATION_TIMEOUT_SECONDS"])
    max_depth = int(cfg["MAX_UNCONFIRMED_DEPTH"])
    rate = services.fee_rate()
    batch_id = _new_batch_id("packed")
    now = utcnow()
    counts: Counter[str] = Counter()
    try:
        with transaction():
            jobs = _lock_queued(limit, now)
            if not jobs:
                raise _Rollback({})
            broken: list[_Job] = []
            good: list[_Job] = []
            for job in jobs:
                try:
                    job.script = _record_script(job)
                    good.append(job)
                except Exception:  # validated at intake; a damaged row must not stop the rest
                    broken.append(job)
            # the records that fit PACKED_MAX_BYTES; the others stay queued, untouched
            keep = _packed_prefix(good, max_bytes)
            overflow, good = good[keep:], good[:keep]
            if broken:
                _claim_locked(batch_id, broken, now)
                _fail_jobs(
                    batch_id, None, broken, "BAD_RECORD", "the stored record cannot be encoded"
                )
                counts["failed"] += len(broken)
            if not good:
                if not broken:
                    raise _Rollback({})
                return RunReport(None, len(broken), bool(overflow), dict(counts))  # commits
            scripts = [j.script for j in good]
            need = fee_for_size(estimate_size(1, scripts, with_change=True), rate) + DUST_LIMIT
            coin = None
            for purpose in (PURPOSE_PUBLISH, PURPOSE_FUNDING):
                utxo = pool.reserve(
                    need,
                    batch_id,
                    timeout_seconds=timeout,
                    max_depth=max_depth,
                    purpose=purpose,
                    now=now,
                )
                if utxo is not None:
                    coin = _Coin.of(utxo)
                    break
            if coin is None:
                if broken:  # keep the failures; the others stay queued
                    return RunReport(None, len(broken), False, dict(counts))  # commits
                raise _Rollback({"waiting": len(good)})
            try:
                built = build_packed_tx(services.server_wallet(), coin.spendable(), scripts, rate)
            except (InsufficientFunds, ValueError, TxInvariantError) as exc:
                log.warning("packed batch %s: build failed: %s", batch_id, exc)
                raise _Rollback({"waiting": len(good)}) from exc
            # each job written once: processing, this batch, the txid and its own vout
            _claim_locked(batch_id, good, now, txid=built.txid, vouts=built.record_vouts, coin=coin)
            db.session.execute(
                update(Utxo)
                .where(Utxo.id == coin.id, Utxo.reserved_by == batch_id)
                .values(spent_by_txid=built.txid)  # pool.mark_signed
                .execution_options(synchronize_session=False)
            )
            db.session.add(
                PublishBatch(
                    batch_id=batch_id,
                    job_count=len(good),
                    status=SIGNED,
                    mode="packed",
                    created_at=now,
                    raw_tx=built.raw_hex,
                    txids=json.dumps([built.txid]),
                )
            )
    except _Rollback as stop:
        return RunReport(None, 0, False, stop.counts)
    more = len(jobs) >= limit or bool(overflow)

    # broadcast, then settle every job and the input at once
    result = _broadcast_many([built.raw_hex])[0]
    counts.update(_settle_packed(batch_id, result, coin, built.change_vout, built.change_satoshis))
    return RunReport(batch_id, len(good) + len(broken), more, dict(counts))


def _claim_locked(
    batch_id: str,
    jobs: list[_Job],
    now: datetime,
    *,
    txid: str | None = None,
    vouts: list[int] | None = None,
    coin: _Coin | None = None,
) -> None:
    """``queued -> processing`` for jobs locked by :func:`_lock_queued` (current
    transaction), with the packed transaction's txid, each job's vout and the input."""
    values: dict[str, Any] = {
        "status": PROCESSING,
        "processing_batch_id": batch_id,
        "lease_until": None,  # packed: the batch row is the lease (module doc)
        "attempts": _JOBS.c.attempts + 1,
        "not_before": None,
        "updated_at": now,
        "vout": bindparam("b_vout"),
    }
    if txid is not None and coin is not None:
        values.update(txid=txid, utxo_txid=coin.txid, utxo_vout=coin.vout)
    vouts = vouts if vouts is not None else [None] * len(jobs)  # type: ignore[list-item]
    values.pop("vout")
    _update_rows(
        _JOBS,
        {"id": [j.id for j in jobs], "vout": list(vouts)},
        fixed=values,
        where=(_JOBS.c.status == QUEUED,),
    )


def _update_rows(
    table: Any,
    columns: dict[str, list[Any]],
    *,
    fixed: dict[str, Any] | None = None,
    where: tuple[Any, ...] = (),
) -> None:
    """Update many rows of ``table`` by ``id`` in the current transaction: row ``i`` gets
    ``columns[name][i]`` for every name, and every row gets ``fixed``; only rows matching
    ``where`` change.

    PostgreSQL: ONE statement, the per-row values sent as arrays and unnested side by side
    (``UPDATE ... FROM (SELECT unnest(:ids), unnest(:values)) ...``); three times less time
    than an ``executemany`` of 1000 rows here (``bench/bench_e2e.py``). SQLite: one
    ``executemany``.
    """
    fixed = dict(fixed or {})
    names = list(columns)
    if is_postgres():
        rows = select(
            *(
                func.unnest(bindparam(f"a_{n}", type_=ARRAY(table.c[n].type))).label(n)
                for n in names
            )
        ).subquery("rows")
        db.session.execute(
            update(table)
            .where(table.c.id == rows.c.id, *where)
            .values({**fixed, **{n: rows.c[n] for n in names if n != "id"}}),
            {f"a_{n}": columns[n] for n in names},
        )
        return
    params = [{f"b_{n}": columns[n][i] for n in names} for i in range(len(columns["id"]))]
    db.session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"), *where)
        .values({**fixed, **{n: bindparam(f"b_{n}") for n in names if n != "id"}}),
        params,
    )


def _settle_packed(
    batch_id: str,
    result: BroadcastResult,
    coin: _Coin | None,
    change_vout: int | None,
    change_satoshis: int | None,
) -> dict[str, int]:
    """Apply the outcome of a packed transaction to all its jobs and its input at once."""
    cfg = current_app.config
    now = utcnow()
    counts: Counter[str] = Counter()
    with transaction():
        if result.ok:
            settled = _rowcount(
                db.session.execute(
                    update(PublishJob)
                    .where(*_ours(batch_id, None))
                    .values(
                        status=SENT,
                        sent_at=func.coalesce(PublishJob.sent_at, now),
                        lease_until=None,
                        error_code=None,
                        error_detail=None,
                    )
                    .execution_options(synchronize_session=False)
                )
            )
            if settled and coin is not None:
                _mark_coins_spent([coin.id])
                if change_vout is not None and change_satoshis:
                    purpose = (
                        PURPOSE_FUNDING
                        if change_satoshis >= FUNDING_THRESHOLD_SATS
                        else PURPOSE_PUBLISH
                    )
                    pool.add_utxo(
                        result.txid,
                        change_vout,
                        change_satoshis,
                        services.server_wallet().locking_script_hex,
                        purpose=purpose,
                        depth=coin.depth + 1,
                    )
            counts["sent"] += int(settled or 0)
            _close_batch(batch_id, DONE, None)
        elif result.outcome.retry_later:
            # the batch keeps its signed transaction; resume_stale sends it again
            db.session.execute(
                update(PublishBatch)
                .where(PublishBatch.batch_id == batch_id)
                .values(
                    status=RETRY,
                    broadcasted_at=now,
                    error_detail=f"{result.outcome.name}: {result.detail}"[:2000],
                )
            )
            counts["retry"] += _count_processing(batch_id)
        else:
            jobs = _processing_jobs(batch_id)
            if coin is not None:
                if result.outcome.dirties_input:
                    _mark_coin_dirty(coin.id, f"{result.outcome.name}: {result.detail}")
                    audit("worker", "publish:utxo:dirty", coin.txid, reason=result.detail[:200])
                else:
                    _release_coins([coin.id])
            if result.outcome.dirties_input:
                over = [j for j in jobs if j.attempts >= cfg["MAX_ATTEMPTS"]]
                again = [j for j in jobs if j.attempts < cfg["MAX_ATTEMPTS"]]
                _fail_jobs(
                    batch_id, None, over, "BROADCAST_CONFLICT", "gave up after repeated conflicts"
                )
                _requeue(
                    batch_id,
                    None,
                    again,
                    keep_tx=False,
                    detail=f"retrying: {result.outcome.name}",
                    not_before=None,
                )
                counts["dirty"] += len(again)
                counts["failed"] += len(over)
            else:
                _fail_jobs(batch_id, None, jobs, "BROADCAST_REJECTED", result.detail)
                counts["failed"] += len(jobs)
            _close_batch(batch_id, PARTIAL, f"{result.outcome.name}: {result.detail}"[:2000])
        summary = {k: v for k, v in counts.items() if v}
        audit("worker", "publish:batch:settled", batch_id, txid=result.txid, **summary)
    return dict(counts)


# --------------------------------------------------------------------------------------------
# Recovery of batches left behind


def packed_raw_tx(txid: str) -> str | None:
    """The raw hex of packed transaction ``txid``, stored once on its batch row (its jobs
    keep ``raw_tx`` NULL), or None. For code that re-sends or re-reads a job's transaction
    from ``publish_jobs.raw_tx`` (confirmation poller, reaper) and finds none.
    """
    return db.session.scalar(
        select(PublishBatch.raw_tx).where(
            PublishBatch.mode == "packed",
            PublishBatch.txids == json.dumps([txid]),
            PublishBatch.raw_tx.is_not(None),
        )
    )


def resume_stale(now: datetime | None = None) -> int:
    """Finish batches a crash or a transient failure left behind (run by every collector run).

    * packed, ``retry`` for ``BATCH_WINDOW_SECONDS``, or ``signed``/``resuming`` past the
      reservation timeout: its stored transaction is sent again (never re-signed) and
      settled by the outcome ("already known" is success);
    * ``collecting`` past the reservation timeout (never signed): packed jobs go back to
      ``queued`` and the input is released; batch-mode jobs are the reaper's (they have
      leases), so the batch row is only closed;
    * batch mode ``signed`` past the timeout: closed (the reaper settles its jobs).

    Each stale batch is taken with a conditional UPDATE of its status, so two collectors
    never resume the same batch.

    Returns:
        How many batches were resumed or closed.
    """
    cfg = current_app.config
    now = now or utcnow()
    timeout = timedelta(seconds=int(cfg["RESERVATION_TIMEOUT_SECONDS"]))
    backoff = timedelta(seconds=int(cfg["BATCH_WINDOW_SECONDS"]))
    with transaction():
        rows = db.session.execute(
            select(
                PublishBatch.batch_id,
                PublishBatch.status,
                PublishBatch.mode,
                PublishBatch.created_at,
                PublishBatch.broadcasted_at,
            )
            .where(PublishBatch.status.in_((COLLECTING, SIGNED, RESUMING, RETRY)))
            .order_by(PublishBatch.created_at)
            .limit(100)
        ).all()
    done = 0
    for batch_id, status, mode, created_at, broadcasted_at in rows:
        last = broadcasted_at or created_at
        if status == RETRY and last > now - backoff:
            continue
        if status in (COLLECTING, SIGNED) and created_at > now - timeout:
            continue
        if status == RESUMING and last > now - timeout:
            continue
        try:
            if _resume_one(batch_id, status, mode, now):
                done += 1
        except Exception:
            log.exception("could not resume batch %s", batch_id)
    return done


def _take_batch(batch_id: str, status: str, new_status: str, now: datetime) -> bool:
    result = db.session.execute(
        update(PublishBatch)
        .where(PublishBatch.batch_id == batch_id, PublishBatch.status == status)
        .values(status=new_status, broadcasted_at=now)
    )
    return _rowcount(result) == 1


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount or 0)


def _resume_one(batch_id: str, status: str, mode: str | None, now: datetime) -> bool:
    if mode != "packed":
        with transaction():
            return _take_batch(batch_id, status, ABANDONED, now)
    if status == COLLECTING:
        with transaction():
            if not _take_batch(batch_id, status, ABANDONED, now):
                return False
            jobs = [j for j in _processing_jobs(batch_id) if j.txid is None]
            _requeue(
                batch_id,
                None,
                jobs,
                keep_tx=False,
                detail="recovered: never signed",
                not_before=None,
            )
            db.session.execute(
                update(Utxo)
                .where(
                    Utxo.reserved_by == batch_id,
                    Utxo.status == RESERVED,
                    Utxo.spent_by_txid.is_(None),
                )
                .values(status=AVAILABLE, reserved_at=None, reserved_until=None, reserved_by=None)
                .execution_options(synchronize_session=False)
            )
        return True
    with transaction():
        if not _take_batch(batch_id, status, RESUMING, now):
            return False
        raw_tx = db.session.scalar(
            select(PublishBatch.raw_tx).where(PublishBatch.batch_id == batch_id)
        )
        first = db.session.execute(
            select(PublishJob.utxo_txid, PublishJob.utxo_vout)
            .where(*_ours(batch_id, None))
            .limit(1)
        ).first()
        coin = None
        if first is not None:
            utxo = db.session.scalar(
                select(Utxo).where(Utxo.txid == first[0], Utxo.vout == first[1])
            )
            coin = _Coin.of(utxo) if utxo is not None else None
    if raw_tx is None or first is None:
        with transaction():
            _close_batch(batch_id, ABANDONED, "no stored transaction or no job left")
        return True
    result = _broadcast_many([raw_tx])[0]
    wallet_script = services.server_wallet().locking_script_hex
    change = pipeline.outputs_to(raw_tx, wallet_script)
    change_vout, change_sats = change[-1] if change else (None, None)
    _settle_packed(batch_id, result, coin, change_vout, change_sats)
    return True


# --------------------------------------------------------------------------------------------
# Shared statements (current transaction)


def _utxo_row(
    txid: str, vout: int, satoshis: int, script: str, depth: int, now: datetime
) -> dict[str, Any]:
    return {
        "txid": txid,
        "vout": vout,
        "satoshis": satoshis,
        "script_pub_key": script,
        "purpose": PURPOSE_PUBLISH,
        "status": AVAILABLE,
        "dirty": False,
        "depth": depth,
        "created_at": now,
        "updated_at": now,
    }


def _mark_sent(batch_id: str, lease: datetime | None, jobs: list[_Job], now: datetime) -> set[int]:
    """``processing -> sent`` for those of ``jobs`` still in this batch; returns their ids."""
    if not jobs:
        return set()
    rows = db.session.execute(
        update(PublishJob)
        .where(PublishJob.id.in_([j.id for j in jobs]), *_ours(batch_id, lease))
        .values(
            status=SENT,
            sent_at=func.coalesce(PublishJob.sent_at, now),
            lease_until=None,
            error_code=None,
            error_detail=None,
        )
        .returning(PublishJob.id)
        .execution_options(synchronize_session=False)
    ).all()
    return {r[0] for r in rows}


def _mark_coins_spent(ids: list[int]) -> None:
    # pool.mark_spent for many rows (spent_by_txid was set when the transaction was stored)
    if ids:
        db.session.execute(
            update(Utxo)
            .where(Utxo.id.in_(ids))
            .values(status=SPENT, reserved_until=None)
            .execution_options(synchronize_session=False)
        )


def _release_coins(ids: list[int]) -> None:
    # pool.release for many rows
    if ids:
        db.session.execute(
            update(Utxo)
            .where(Utxo.id.in_(ids))
            .values(
                status=AVAILABLE,
                reserved_at=None,
                reserved_until=None,
                reserved_by=None,
                spent_by_txid=None,
            )
            .execution_options(synchronize_session=False)
        )


def _mark_coin_dirty(coin_id: int, reason: str) -> None:
    # pool.mark_dirty: released, not spent, set aside until the chain says
    db.session.execute(
        update(Utxo)
        .where(Utxo.id == coin_id)
        .values(
            status=AVAILABLE,
            reserved_at=None,
            reserved_until=None,
            reserved_by=None,
            spent_by_txid=None,
            dirty=True,
            dirty_reason=reason[:500],
        )
        .execution_options(synchronize_session=False)
    )


def _requeue(
    batch_id: str,
    lease: datetime | None,
    jobs: list[_Job],
    *,
    keep_tx: bool,
    detail: str,
    not_before: datetime | None,
) -> None:
    """``processing -> queued`` for ``jobs`` of this batch, with or without their transaction.

    No RQ job is enqueued: in batch and packed modes the collector takes queued jobs.
    """
    if not jobs:
        return
    values: dict[str, Any] = dict(
        status=QUEUED,
        lease_until=None,
        processing_batch_id=None,
        not_before=not_before,
        error_detail=detail[:2000],
    )
    if not keep_tx:
        values.update(raw_tx=None, txid=None, vout=None, utxo_txid=None, utxo_vout=None)
    db.session.execute(
        update(PublishJob)
        .where(PublishJob.id.in_([j.id for j in jobs]), *_ours(batch_id, lease))
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def _fail_jobs(
    batch_id: str, lease: datetime | None, jobs: list[_Job], code: str, detail: str
) -> None:
    """``processing -> failed`` with the credit given back, as the pipeline does for one."""
    if not jobs:
        return
    rows = db.session.execute(
        update(PublishJob)
        .where(PublishJob.id.in_([j.id for j in jobs]), *_ours(batch_id, lease))
        .values(status=FAILED, lease_until=None, error_code=code, error_detail=detail[:2000])
        .returning(PublishJob.job_id, PublishJob.key_id)
        .execution_options(synchronize_session=False)
    ).all()
    for job_id, key_id in rows:
        credits.refund(key_id, job_id)
        audit("worker", "publish:job:failed", job_id, code=code)


def _processing_jobs(batch_id: str) -> list[_Job]:
    rows = db.session.execute(
        select(*_JOB_COLUMNS).where(*_ours(batch_id, None))
    ).all()
    return [_Job(**row._mapping) for row in rows]


def _count_processing(batch_id: str) -> int:
    return int(db.session.scalar(select(func.count()).where(*_ours(batch_id, None))) or 0)


def _close_batch(batch_id: str, status: str, detail: str | None) -> None:
    db.session.execute(
        update(PublishBatch)
        .where(PublishBatch.batch_id == batch_id)
        .values(status=status, completed_at=utcnow(), error_detail=detail)
    )
