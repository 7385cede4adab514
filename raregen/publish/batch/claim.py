"""Claiming: the queued jobs and the pool UTXOs a batch takes, locked in the claim
transaction and written ONCE, after the batch's transactions are signed (current
transaction; none of these opens or commits one).

PostgreSQL: the rows are locked ``SELECT ... FOR UPDATE SKIP LOCKED`` (concurrent
collectors and immediate-mode workers never take the same job or UTXO; a plain ``SELECT
... LIMIT n FOR UPDATE`` runs once, unlike a ``LIMIT`` subquery inside an ``UPDATE``, see
:func:`common.once`). SQLite: the transaction's ``BEGIN IMMEDIATE`` serializes writers, and
every write re-checks the status it expects.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, update

from raregen.db import db, is_postgres
from raregen.publish import pool
from raregen.publish.batch.common import (
    JOB_COLUMNS,
    JOBS,
    UTXOS,
    Coin,
    Job,
    id_in,
    rows_update,
    update_rows,
)
from raregen.publish.models import (
    AVAILABLE,
    PROCESSING,
    QUEUED,
    RESERVED,
    PublishBatch,
    PublishJob,
    Utxo,
)

BATCHES = PublishBatch.__table__


class ClaimLost(RuntimeError):
    """A locked row changed under the claim (cannot happen with the locks held; the claim
    transaction is rolled back rather than leave a job or UTXO half-written)."""


def lock_queued(limit: int, now: datetime, *, with_tx: bool | None = False) -> list[Job]:
    """The oldest ``limit`` due ``queued`` jobs, locked for this transaction but not
    written (by row id).

    Args:
        limit: at most this many jobs.
        now: jobs whose ``not_before`` (a back-off) is later are left alone.
        with_tx: only jobs that hold a signed transaction (True), only jobs that do not
            (False, packed mode), or both (None).
    """
    query = select(*JOB_COLUMNS).where(
        PublishJob.status == QUEUED,
        or_(PublishJob.not_before.is_(None), PublishJob.not_before <= now),
    )
    if with_tx is True:
        query = query.where(PublishJob.raw_tx.is_not(None))
    elif with_tx is False:
        query = query.where(PublishJob.raw_tx.is_(None))
    query = query.order_by(PublishJob.created_at).limit(limit)
    if is_postgres():
        query = query.with_for_update(skip_locked=True)
    jobs = [Job(*row) for row in db.session.execute(query)]
    jobs.sort(key=lambda j: j.id)
    return jobs


def lock_coins(
    count: int,
    min_satoshis: int,
    *,
    max_depth: int,
    purpose: str,
    exclude: list[int] | None = None,
) -> list[Coin]:
    """Up to ``count`` pool UTXOs worth at least ``min_satoshis`` (satoshis), locked for this
    transaction but not written: the same choice as :func:`pool.reserve_many` (the smallest
    available, clean UTXOs of ``purpose`` under the depth limit, ``pool.candidates``).

    ``exclude``: ids this transaction already holds (PostgreSQL's SKIP LOCKED does not skip
    rows locked by the same transaction). Call :func:`pool.release_expired` first.
    """
    query = (
        pool.candidates(min_satoshis, max_depth, purpose)
        .with_only_columns(
            Utxo.id, Utxo.txid, Utxo.vout, Utxo.satoshis, Utxo.script_pub_key, Utxo.depth
        )
        .limit(count)
    )
    if exclude:
        query = query.where(Utxo.id.not_in(exclude))
    if is_postgres():
        query = query.with_for_update(skip_locked=True)
    return [Coin(*row) for row in db.session.execute(query)]


def reserve_signed(
    coins: list[Coin], holders: list[str], txids: list[str], now: datetime, timeout: int
) -> None:
    """Write locked ``coins`` ``reserved`` by ``holders[i]`` until ``now`` + ``timeout``
    seconds, signed by ``txids[i]`` (``pool.reserve`` and ``pool.mark_signed`` in one
    write per row).

    Raises:
        ClaimLost: a coin was no longer ``available``.
    """
    if not coins:
        return
    values = pool.reservation_values("", now, timeout)
    values.pop("reserved_by")
    changed = update_rows(
        UTXOS,
        {"id": [c.id for c in coins], "reserved_by": holders, "spent_by_txid": txids},
        fixed={**values, "updated_at": now},
        where=(UTXOS.c.status == AVAILABLE,),
    )
    if changed != len(coins):
        raise ClaimLost(f"{len(coins) - changed} of {len(coins)} UTXOs changed under the claim")


def store_signed(
    batch_id: str,
    built: list[Job],
    *,
    now: datetime,
    lease_until: datetime,
    timeout: int,
    batch_row: dict[str, Any],
) -> None:
    """Write the claim of jobs locked by :func:`lock_queued` and signed (``job.built``, input
    ``job.coin`` locked by :func:`lock_coins`), their inputs and the batch row, each row
    once: jobs ``queued -> processing`` (this batch, the lease ``lease_until``, one more
    attempt, raw transaction, txid, vout 0, input), inputs ``available -> reserved`` by their
    job until ``now`` + ``timeout`` seconds and signed by its txid, and ``batch_row`` (the
    columns of ``publish_batches``) inserted.

    PostgreSQL: ONE statement (the two updates and the insert as CTEs of one query, one
    round trip). SQLite: :func:`write_claims`, :func:`reserve_signed` and the insert.

    Raises:
        ClaimLost: a job was no longer ``queued`` or an input no longer ``available``.
    """
    coins = [j.coin for j in built if j.coin is not None]
    txs = [j.built for j in built if j.built is not None]
    if len(coins) != len(built) or len(txs) != len(built):
        raise ValueError("store_signed needs every job built, with its input")
    per_job: dict[str, list[Any]] = {
        "raw_tx": [t.raw_hex for t in txs],
        "txid": [t.txid for t in txs],
        "utxo_txid": [c.txid for c in coins],
        "utxo_vout": [c.vout for c in coins],
    }
    if not is_postgres():
        write_claims(
            batch_id, built, now=now, lease_until=lease_until, per_job=per_job, fixed={"vout": 0}
        )
        reserve_signed(coins, [j.job_id for j in built], per_job["txid"], now, timeout)
        db.session.execute(insert(BATCHES).values(**batch_row))
        for job in built:
            job.attempts += 1  # as written: settling compares it with MAX_ATTEMPTS
        return
    jobs_update, job_params = rows_update(
        JOBS,
        {"id": [j.id for j in built], **per_job},
        fixed={
            "status": PROCESSING,
            "processing_batch_id": batch_id,
            "lease_until": lease_until,
            "not_before": None,
            "updated_at": now,
            "vout": 0,
            "attempts": JOBS.c.attempts + 1,
        },
        where=(JOBS.c.status == QUEUED,),
        prefix="j",
    )
    reservation = pool.reservation_values("", now, timeout)
    reservation.pop("reserved_by")
    coins_update, coin_params = rows_update(
        UTXOS,
        {
            "id": [c.id for c in coins],
            "reserved_by": [j.job_id for j in built],
            "spent_by_txid": per_job["txid"],
        },
        fixed={**reservation, "updated_at": now},
        where=(UTXOS.c.status == AVAILABLE,),
        prefix="u",
    )
    jobs_cte = jobs_update.returning(JOBS.c.id).cte("claimed_jobs")
    coins_cte = coins_update.returning(UTXOS.c.id).cte("reserved_coins")
    batch_cte = insert(BATCHES).values(**batch_row).returning(BATCHES.c.batch_id).cte("batch_row")
    jobs_n, coins_n, _ = db.session.execute(
        select(
            select(func.count()).select_from(jobs_cte).scalar_subquery(),
            select(func.count()).select_from(coins_cte).scalar_subquery(),
            select(func.count()).select_from(batch_cte).scalar_subquery(),
        ),
        {**job_params, **coin_params},
    ).one()
    if jobs_n != len(built) or coins_n != len(coins):
        raise ClaimLost(
            f"{len(built) - jobs_n} of {len(built)} jobs and {len(coins) - coins_n} of "
            f"{len(coins)} UTXOs changed under the claim"
        )
    for job in built:
        job.attempts += 1  # as written: settling compares it with MAX_ATTEMPTS


def extend_reservations(jobs: list[Job], now: datetime, timeout: int) -> None:
    """Jobs that already hold a signed transaction keep its input: find each input (sets
    ``job.coin``) and extend its reservation to ``now`` + ``timeout`` seconds."""
    if not jobs:
        return
    pairs = {(j.utxo_txid, j.utxo_vout) for j in jobs if j.utxo_txid is not None}
    if not pairs:
        return
    rows = db.session.execute(
        select(Utxo.id, Utxo.txid, Utxo.vout, Utxo.satoshis, Utxo.script_pub_key, Utxo.depth).where(
            Utxo.txid.in_({t for t, _ in pairs})
        )
    ).all()
    by_outpoint = {(r.txid, r.vout): Coin(*r) for r in rows if (r.txid, r.vout) in pairs}
    for job in jobs:
        job.coin = by_outpoint.get((job.utxo_txid or "", job.utxo_vout or 0))
    ids = [c.id for c in by_outpoint.values()]
    if ids:
        db.session.execute(
            update(Utxo)
            .where(id_in(Utxo.id, ids), Utxo.status == RESERVED)
            .values(reserved_until=now + timedelta(seconds=timeout))
            .execution_options(synchronize_session=False)
        )


def write_claims(
    batch_id: str,
    jobs: list[Job],
    *,
    now: datetime,
    lease_until: datetime | None,
    per_job: dict[str, list[Any]] | None = None,
    fixed: dict[str, Any] | None = None,
    attempt: bool = True,
) -> None:
    """``queued -> processing`` for ``jobs`` locked by :func:`lock_queued`, in one
    statement: this batch's id, the lease ``lease_until`` (None: packed, the batch row is
    the lease), one more attempt when ``attempt`` (a new signed transaction), and per-job
    values ``per_job[column][i]`` (raw_tx, txid, vout, utxo_txid, utxo_vout) and ``fixed``.

    Raises:
        ClaimLost: a job was no longer ``queued``.
    """
    if not jobs:
        return
    values: dict[str, Any] = {
        "status": PROCESSING,
        "processing_batch_id": batch_id,
        "lease_until": lease_until,
        "not_before": None,
        "updated_at": now,
        **(fixed or {}),
    }
    if attempt:
        values["attempts"] = JOBS.c.attempts + 1
    changed = update_rows(
        JOBS,
        {"id": [j.id for j in jobs], **(per_job or {})},
        fixed=values,
        where=(JOBS.c.status == QUEUED,),
    )
    if changed != len(jobs):
        raise ClaimLost(f"{len(jobs) - changed} of {len(jobs)} jobs changed under the claim")


def defer(jobs: list[Job], *, detail: str, not_before: datetime, attempt: bool = False) -> None:
    """Leave locked ``queued`` jobs queued with a back-off ``not_before`` and ``detail`` (no
    pool UTXO free for them, or their build failed: ``attempt`` counts it)."""
    if not jobs:
        return
    values: dict[str, Any] = {"not_before": not_before, "error_detail": detail[:2000]}
    if attempt:
        values["attempts"] = PublishJob.attempts + 1
    db.session.execute(
        update(PublishJob)
        .where(id_in(PublishJob.id, [j.id for j in jobs]), PublishJob.status == QUEUED)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
