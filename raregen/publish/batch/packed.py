"""Packed mode (docs/PROTOCOL.md §3, §6): many records in ONE transaction, job ``i`` of the batch
(by job row id) at vout ``i``.

The jobs are locked (one ``SELECT ... FOR UPDATE SKIP LOCKED``, :func:`.claim.lock_queued`)
and so is one input; the transaction is built and signed; then, in the same database
transaction, each job is written once (``processing``, the batch id, the txid, its vout,
the input), the input once (reserved by the batch, signed by the txid) and the raw
transaction stored on the batch row (``signed``), not on the jobs (1000 copies of a 500 kB
transaction). A crash before that commit leaves the jobs ``queued`` and the input free;
after it, the batch row holds everything :func:`.recovery.resume_stale` needs. Each job row
is written twice: here and when settled.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime

from flask import current_app

import raregen.publish.batch.claim as claim
import raregen.publish.batch.settle as settle
from raregen.db import db, transaction, utcnow
from raregen.errors import InsufficientFunds
from raregen.publish import pool, services
from raregen.publish.batch.common import (
    SIGNED,
    Coin,
    Job,
    Rollback,
    RunReport,
    broadcast_many,
    log,
    new_batch_id,
    record_script,
)
from raregen.publish.batch.statements import fail_unencodable
from raregen.publish.models import PURPOSE_FUNDING, PURPOSE_PUBLISH, PublishBatch
from raregen.publish.txbuilder import (
    DUST_LIMIT,
    TxInvariantError,
    build_packed_tx,
    estimate_size,
    fee_for_size,
)


def packed_prefix(jobs: list[Job], max_bytes: int) -> int:
    """How many of ``jobs`` (in order, scripts set) fit one transaction of at most
    ``max_bytes`` bytes (>= 1)."""
    # estimate_size without the records, then each record output's exact size
    size = estimate_size(1, [], with_change=True) + 2  # output count varint may grow to 3
    for i, job in enumerate(jobs):
        n = len(job.script)
        size += 8 + (1 if n < 0xFD else 3 if n <= 0xFFFF else 5) + n
        if size > max_bytes and i > 0:
            return i
    return len(jobs)


def collect_packed(*, limit: int | None = None) -> RunReport:
    """Publish up to ``PACKED_MAX_RECORDS`` queued jobs (at most ``PACKED_MAX_BYTES``) in ONE
    transaction; job ``i`` of the batch (by job row id) gets vout ``i`` (see the module doc).

    The input is one pool UTXO (or, when the pool has none big enough, a funding coin) whose
    value covers the fee of the whole transaction with a change output: the fee grows with
    the records (``fee = ceil(size * rate / 1000)`` satoshis), so the choice asks for at
    least that much.

    Returns:
        A :class:`RunReport`; ``more`` is True when the transaction was full.
    """
    cfg = current_app.config
    limit = int(limit or cfg["PACKED_MAX_RECORDS"])
    max_bytes = int(cfg["PACKED_MAX_BYTES"])
    timeout = int(cfg["RESERVATION_TIMEOUT_SECONDS"])
    max_depth = int(cfg["MAX_UNCONFIRMED_DEPTH"])
    rate = services.fee_rate()
    batch_id = new_batch_id("packed")
    now = utcnow()
    counts: Counter[str] = Counter()
    try:
        with transaction():
            jobs = claim.lock_queued(limit, now, with_tx=False)
            if not jobs:
                raise Rollback({})
            broken: list[Job] = []
            good: list[Job] = []
            for job in jobs:
                try:
                    job.script = record_script(job)
                    good.append(job)
                except Exception:  # validated at intake; a damaged row must not stop the rest
                    broken.append(job)
            # the records that fit PACKED_MAX_BYTES; the others stay queued, untouched
            keep = packed_prefix(good, max_bytes)
            overflow, good = good[keep:], good[:keep]
            if broken:
                counts["failed"] += fail_unencodable(batch_id, broken)
            if not good:
                if not broken:
                    raise Rollback({})
                return RunReport(None, len(broken), bool(overflow), dict(counts))  # commits
            scripts = [j.script for j in good]
            need = fee_for_size(estimate_size(1, scripts, with_change=True), rate) + DUST_LIMIT
            coin = _lock_input(need, max_depth, now)
            if coin is None:
                if broken:  # keep the failures; the others stay queued
                    return RunReport(None, len(broken), False, dict(counts))  # commits
                raise Rollback({"waiting": len(good)})
            try:
                built = build_packed_tx(services.server_wallet(), coin.spendable(), scripts, rate)
            except (InsufficientFunds, ValueError, TxInvariantError) as exc:
                log.warning("packed batch %s: build failed: %s", batch_id, exc)
                raise Rollback({"waiting": len(good)}) from exc
            # each job written once: processing, this batch, the txid and its own vout;
            # packed jobs have no lease: the batch row is the lease (package doc)
            claim.write_claims(
                batch_id,
                good,
                now=now,
                lease_until=None,
                per_job={"vout": list(built.record_vouts)},
                fixed={"txid": built.txid, "utxo_txid": coin.txid, "utxo_vout": coin.vout},
            )
            claim.reserve_signed([coin], [batch_id], [built.txid], now, timeout)
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
    except Rollback as stop:
        return RunReport(None, 0, False, stop.counts)
    more = len(jobs) >= limit or bool(overflow)

    # broadcast, then settle every job and the input at once
    result = broadcast_many([built.raw_hex])[0]
    counts.update(
        settle.settle_packed(
            batch_id, built.txid, result, coin, built.change_vout, built.change_satoshis
        )
    )
    return RunReport(batch_id, len(good) + len(broken), more, dict(counts))


def _lock_input(need: int, max_depth: int, now: datetime) -> Coin | None:
    """The smallest clean publish UTXO worth ``need`` satoshis, else a funding coin, locked
    (not written: :func:`.claim.reserve_signed` writes it once signed); expired reservations
    released first."""
    pool.release_expired(now)
    for purpose in (PURPOSE_PUBLISH, PURPOSE_FUNDING):
        coins = claim.lock_coins(1, need, max_depth=max_depth, purpose=purpose)
        if coins:
            return coins[0]
    return None
