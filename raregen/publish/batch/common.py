"""Shared pieces of the collector: batch statuses, the claimed-job and coin records, the
column list jobs are read with, the broadcast call, and the bulk statement helpers
(:func:`once`, :func:`update_rows`, :func:`id_in`). No step of the collector lives here."""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    CTE,
    ColumnElement,
    Integer,
    Select,
    Text,
    bindparam,
    column,
    func,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY, JSON

import raregen.protocol as protocol
from raregen.db import db, is_postgres, rows_matched
from raregen.publish import services
from raregen.publish.broadcasters.base import BroadcastResult, Outcome, txid_of
from raregen.publish.models import PROCESSING, PublishJob, Utxo
from raregen.publish.txbuilder import BuiltTx, SpendableUtxo
from raregen.signing import decode_stored_signature, parse_pubkey

log = logging.getLogger("raregen.publish.batch")

MODES = ("auto", "immediate", "batch", "packed")
#: Seconds a job waits before its next try when no pool UTXO was free for it.
POOL_WAIT_SECONDS = 3

# batch statuses (publish_batches.status); ``collecting`` is only found on rows written by
# earlier versions (the collector now inserts its batch row already ``signed``)
COLLECTING, SIGNED, RESUMING, RETRY = "collecting", "signed", "resuming", "retry"
DONE, PARTIAL, ABANDONED = "sent", "partial", "abandoned"

JOBS = PublishJob.__table__
UTXOS = Utxo.__table__

# the columns a claimed job is read with, in :class:`Job`'s field order
JOB_COLUMNS = (
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
class Job:
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
    coin: Coin | None = None
    built: BuiltTx | None = None


@dataclass(frozen=True)
class Coin:
    """A pool UTXO held by the collector: ``satoshis`` in satoshis, ``depth`` its count of
    unconfirmed ancestors."""

    id: int
    txid: str
    vout: int
    satoshis: int
    script_pub_key: str
    depth: int

    @classmethod
    def of(cls, utxo: Utxo) -> Coin:
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

    def add_to(self, totals: Counter[str]) -> None:
        """Add this step to a run's ``totals``: ``batches`` (1 if it claimed a batch),
        ``claimed`` and its counts by outcome."""
        if self.batch_id is not None:
            totals["batches"] += 1
        totals["claimed"] += self.claimed
        totals.update(self.counts)


class Rollback(Exception):
    """Leave the claim transaction without committing (nothing could be done)."""

    def __init__(self, counts: dict[str, int]):
        super().__init__("rollback")
        self.counts = counts


def new_batch_id(mode: str) -> str:
    return f"{'pk' if mode == 'packed' else 'bt'}-{uuid.uuid4().hex}"


@lru_cache(maxsize=4096)
def _pubkey33(pubkey_hex: str) -> bytes:
    # parse_pubkey checks the point with libsecp256k1 (~tens of µs); a batch's records
    # mostly come from a few authors, so each key is parsed once per process
    return parse_pubkey(pubkey_hex)


def record_script(job: Job) -> bytes:
    """The record output's locking script of ``job`` (docs/PROTOCOL.md §3), the same bytes as
    ``pipeline.record_script_for``, from the claimed columns.

    Raises:
        RequestError, ValueError: the stored record cannot be encoded (validated at intake,
            so only a damaged row).
    """
    return protocol.record_script(
        job.signed_payload.encode("utf-8"),
        decode_stored_signature(job.signature)[1],
        _pubkey33(job.pubkey),
    )


def ours(batch_id: str, lease: Any) -> tuple[ColumnElement[bool], ...]:
    """The rows this batch still holds: ``processing``, its batch id, and its lease token.

    Batch-mode jobs share the claim's ``lease_until`` as their fencing token (as
    ``pipeline.claim`` does for one job): once the reaper takes a job over it writes a new
    lease, and every later write of this batch to that job matches nothing. Packed jobs have
    no lease (NULL): their batch row is the lease (see the package doc).
    """
    token = PublishJob.lease_until.is_(None) if lease is None else PublishJob.lease_until == lease
    return (
        PublishJob.status == PROCESSING,
        PublishJob.processing_batch_id == batch_id,
        token,
    )


def id_in(column: Any, ids: list[int]) -> ColumnElement[bool]:
    """``column IN ids``; on PostgreSQL ``column = ANY(:array)``, one parameter instead of
    one per id (500-1000 ids a batch)."""
    if is_postgres():
        return cast(
            ColumnElement[bool],
            column == func.any(bindparam(None, list(ids), type_=ARRAY(Integer))),
        )
    return cast(ColumnElement[bool], column.in_(list(ids)))


def once(candidates: Select[Any], name: str) -> CTE:
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


def rows_update(
    table: Any,
    columns: dict[str, list[Any]],
    *,
    fixed: dict[str, Any] | None = None,
    where: tuple[Any, ...] = (),
    prefix: str = "a",
) -> tuple[Any, dict[str, str]]:
    """PostgreSQL: ``(UPDATE statement, parameters)`` setting, on row ``i`` of ``table`` (by
    ``id``), ``columns[name][i]`` for every name and ``fixed`` on every row, where ``where``
    holds, so the statement can also be one CTE of a larger one.

    The per-row values go as ONE JSON parameter (bind name ``<prefix>_rows``) read back by
    ``json_to_recordset`` (``UPDATE ... FROM json_to_recordset(:rows) AS r(id integer,
    raw_tx text, ...)``): ``json.dumps`` in C, where arrays of text (500 raw transactions)
    cost psycopg's Python array dumper about a fifth of the collector's time
    (docs/PERFORMANCE.md)."""
    names = list(columns)
    rows = (
        func.json_to_recordset(sql_cast(bindparam(f"{prefix}_rows", type_=Text), JSON))
        .table_valued(*(column(n, table.c[n].type) for n in names))
        .render_derived(name=f"{prefix}_rows", with_types=True)
    )
    statement = (
        update(table)
        .where(table.c.id == rows.c.id, *where)
        .values({**(fixed or {}), **{n: rows.c[n] for n in names if n != "id"}})
    )
    data = [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    return statement, {f"{prefix}_rows": json.dumps(data, default=str)}


def update_rows(
    table: Any,
    columns: dict[str, list[Any]],
    *,
    fixed: dict[str, Any] | None = None,
    where: tuple[Any, ...] = (),
) -> int:
    """Update many rows of ``table`` by ``id`` in the current transaction: row ``i`` gets
    ``columns[name][i]`` for every name, and every row gets ``fixed``; only rows matching
    ``where`` change.

    PostgreSQL: ONE statement (:func:`rows_update`); three times less time than an
    ``executemany`` of 1000 rows here (``bench/bench_e2e.py``). SQLite: one ``executemany``.

    Returns:
        The number of rows changed.
    """
    fixed = dict(fixed or {})
    names = list(columns)
    if not columns["id"]:
        return 0
    if is_postgres():
        statement, one = rows_update(table, columns, fixed=fixed, where=where)
        return rows_matched(db.session.execute(statement, one))
    params = [{f"b_{n}": columns[n][i] for n in names} for i in range(len(columns["id"]))]
    result = db.session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"), *where)
        .values({**fixed, **{n: bindparam(f"b_{n}") for n in names if n != "id"}}),
        params,
    )
    return rows_matched(result)


def broadcast_many(raws: list[str]) -> list[BroadcastResult]:
    """Broadcast ``raws`` (raw transactions in hex) in one call of the configured backend.

    Never raises: an exception or a result list of the wrong length counts as a transient
    outcome for every transaction (a backend bug must not strand the batch).

    Returns:
        One result per transaction, in order.
    """
    if not raws:
        return []
    try:
        results = services.broadcaster().broadcast_many(raws)
        if len(results) == len(raws):
            return results
        detail = f"backend returned {len(results)} results for {len(raws)}"
    except Exception as exc:
        detail = f"broadcast raised {exc.__class__.__name__}"
    log.warning("batch broadcast failed: %s", detail)
    return [BroadcastResult(txid_of(r), Outcome.TRANSIENT, detail, "unknown") for r in raws]
