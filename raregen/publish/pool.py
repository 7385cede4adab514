"""The server's UTXO pool (docs/PROTOCOL.md §4): reserve, release, spend, mark dirty, add change.

Functions here add and flush inside the caller's transaction (``raregen.db.transaction``);
none commits. Concurrency:

* PostgreSQL: the candidate row is locked with ``FOR UPDATE SKIP LOCKED`` (the lock taken on
  the ``utxos`` table alone), so concurrent reservers never wait on or take the same UTXO.
* SQLite: every transaction starts with ``BEGIN IMMEDIATE`` (see ``raregen.db``), and the
  reservation is a conditional UPDATE (``... AND status = 'available'``) checked by its row
  count, so two processes never both win one UTXO.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select, update

from raregen.db import db, is_postgres, rows_matched, utcnow
from raregen.publish.models import (
    AVAILABLE,
    PURPOSE_PUBLISH,
    RESERVED,
    SPENT,
    Utxo,
)


def release_expired(now: datetime | None = None) -> int:
    """Return expired reservations to ``available``.

    A reservation whose transaction was already signed (``spent_by_txid`` set) is left to the
    reaper, which settles it from the chain: releasing it could publish a record twice.

    Returns:
        The number of UTXOs released.
    """
    now = now or utcnow()
    result = db.session.execute(
        update(Utxo)
        .where(
            Utxo.status == RESERVED,
            Utxo.reserved_until < now,
            Utxo.spent_by_txid.is_(None),
        )
        .values(**released_values())
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result)


def released_values() -> dict[str, Any]:
    """The column values of a UTXO handed back to ``available`` with nothing signed on it
    (no holder, no reservation times, no spending txid)."""
    return {
        "status": AVAILABLE,
        "reserved_at": None,
        "reserved_until": None,
        "reserved_by": None,
        "spent_by_txid": None,
    }


def reservation_values(holder: str, now: datetime, timeout_seconds: float) -> dict[str, Any]:
    """The column values marking a UTXO ``reserved`` by ``holder`` (a job or batch id) until
    ``now`` plus ``timeout_seconds``."""
    return {
        "status": RESERVED,
        "reserved_at": now,
        "reserved_until": now + timedelta(seconds=timeout_seconds),
        "reserved_by": holder,
    }


def candidates(min_satoshis: int, max_depth: int, purpose: str) -> Select[int]:
    """The ``SELECT Utxo.id`` of the UTXOs a reservation may take: ``available``, clean, of
    ``purpose``, at least ``min_satoshis``, under ``max_depth`` unconfirmed ancestors, smallest
    first. Callers add their limit and row locks (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""
    return (
        select(Utxo.id)
        .where(
            Utxo.status == AVAILABLE,
            Utxo.purpose == purpose,
            Utxo.satoshis >= min_satoshis,
            Utxo.dirty.is_(False),
            Utxo.depth < max_depth,
        )
        .order_by(Utxo.satoshis.asc(), Utxo.id.asc())
    )


def reserve(
    min_satoshis: int,
    holder: str,
    *,
    timeout_seconds: int = 300,
    max_depth: int = 20,
    purpose: str = PURPOSE_PUBLISH,
    now: datetime | None = None,
) -> Utxo | None:
    """Reserve the smallest available, clean UTXO worth at least ``min_satoshis``.

    Expired reservations are released first (docs/PROTOCOL.md §4).

    Args:
        min_satoshis: the fee the transaction to build needs with no change (satoshis).
        holder: the job id (or batch id) that holds the reservation.
        timeout_seconds: how long the reservation lasts.
        max_depth: only UTXOs with fewer unconfirmed ancestors than this are taken, so a
            transaction never meets the node's mempool ancestor limit.
        purpose: ``publish`` (default) or ``funding``.

    Returns:
        The reserved :class:`Utxo` (flushed, not committed), or None if none qualifies.
    """
    now = now or utcnow()
    release_expired(now)
    values = reservation_values(holder, now, timeout_seconds)
    if is_postgres():
        sub = (
            candidates(min_satoshis, max_depth, purpose)
            .limit(1)
            .with_for_update(skip_locked=True, of=Utxo)
            .scalar_subquery()
        )
        row = db.session.execute(
            update(Utxo)
            .where(Utxo.id == sub)
            .values(**values)
            .returning(Utxo.id)
            .execution_options(synchronize_session=False)
        ).first()
        if row is None:
            return None
        return db.session.get(Utxo, row[0], populate_existing=True)
    for (utxo_id,) in db.session.execute(candidates(min_satoshis, max_depth, purpose).limit(8)):
        result = db.session.execute(
            update(Utxo)
            .where(Utxo.id == utxo_id, Utxo.status == AVAILABLE, Utxo.dirty.is_(False))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if rows_matched(result) == 1:
            return db.session.get(Utxo, utxo_id, populate_existing=True)
    return None


def reserve_many(
    count: int,
    min_satoshis: int,
    holder: str,
    *,
    timeout_seconds: int = 300,
    max_depth: int = 20,
    now: datetime | None = None,
) -> list[Utxo]:
    """Reserve up to ``count`` UTXOs in one statement (batch mode, docs/PROTOCOL.md §6).

    Returns:
        The reserved UTXOs, smallest first; possibly fewer than ``count``.
    """
    now = now or utcnow()
    release_expired(now)
    values = reservation_values(holder, now, timeout_seconds)
    cand = candidates(min_satoshis, max_depth, PURPOSE_PUBLISH).limit(count)
    if is_postgres():
        cand = cand.with_for_update(skip_locked=True, of=Utxo)
    ids = [row[0] for row in db.session.execute(cand)]
    if not ids:
        return []
    db.session.execute(
        update(Utxo)
        .where(Utxo.id.in_(ids), Utxo.status == AVAILABLE)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    rows = db.session.scalars(
        select(Utxo)
        .where(Utxo.id.in_(ids), Utxo.reserved_by == holder)
        .order_by(Utxo.satoshis, Utxo.id)
        .execution_options(populate_existing=True)
    )
    return list(rows)


def mark_signed(utxo: Utxo, txid: str) -> None:
    """Record that ``utxo`` is spent by the stored, signed transaction ``txid`` (not yet sent)."""
    utxo.spent_by_txid = txid


def _held_unsigned(utxo_id: int, holder: str) -> tuple[ColumnElement[bool], ...]:
    """UTXO ``utxo_id``, reserved by ``holder``, with nothing signed on it yet."""
    return (
        Utxo.id == utxo_id,
        Utxo.status == RESERVED,
        Utxo.reserved_by == holder,
        Utxo.spent_by_txid.is_(None),
    )


def mark_signed_if_held(utxo_id: int, holder: str, txid: str) -> bool:
    """Record ``txid`` as the signed spender of UTXO ``utxo_id`` only if ``holder`` still holds
    its reservation and nothing was signed with it yet (a conditional UPDATE).

    A holder whose reservation expired and was taken by someone else gets False and must not
    broadcast: two signed spends of one UTXO would conflict.

    Returns:
        True if recorded.
    """
    result = db.session.execute(
        update(Utxo)
        .where(*_held_unsigned(utxo_id, holder))
        .values(spent_by_txid=txid)
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result) == 1


def release_if_held(utxo_id: int, holder: str) -> bool:
    """Hand back UTXO ``utxo_id`` if ``holder`` holds it and signed nothing with it.

    Returns:
        True if released.
    """
    result = db.session.execute(
        update(Utxo)
        .where(*_held_unsigned(utxo_id, holder))
        .values(**released_values())
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result) == 1


def extend_reservation(utxo: Utxo, until: datetime) -> None:
    """Keep ``utxo`` reserved until ``until`` (a job re-sending its stored transaction)."""
    if utxo.status == RESERVED:
        utxo.reserved_until = max(until, utxo.reserved_until or until)


def mark_spent(utxo: Utxo, txid: str) -> None:
    """The transaction ``txid`` spending ``utxo`` was accepted: the UTXO is gone for good."""
    utxo.status = SPENT
    utxo.spent_by_txid = txid
    utxo.reserved_until = None


def release(utxo: Utxo) -> None:
    """Hand a reservation back at once (nothing was broadcast with it)."""
    utxo.status = AVAILABLE
    utxo.reserved_at = None
    utxo.reserved_until = None
    utxo.reserved_by = None
    utxo.spent_by_txid = None


def mark_dirty(utxo: Utxo, reason: str) -> None:
    """Set ``utxo`` aside after a mempool conflict or missing inputs (docs/PROTOCOL.md §4).

    It is not marked spent: a periodic check settles it against the chain.
    """
    release(utxo)
    utxo.dirty = True
    utxo.dirty_reason = reason[:500]


def add_utxo(
    txid: str,
    vout: int,
    satoshis: int,
    script_pub_key: str,
    *,
    purpose: str = PURPOSE_PUBLISH,
    depth: int = 0,
) -> Utxo | None:
    """Add an output of ours to the pool as ``available`` (change, split outputs, imports).

    Returns:
        The new row, or None if (txid, vout) is already known.
    """
    exists = db.session.scalar(select(Utxo.id).where(Utxo.txid == txid, Utxo.vout == vout))
    if exists is not None:
        return None
    utxo = Utxo(
        txid=txid,
        vout=vout,
        satoshis=satoshis,
        script_pub_key=script_pub_key,
        purpose=purpose,
        status=AVAILABLE,
        depth=depth,
    )
    db.session.add(utxo)
    db.session.flush()
    return utxo


def unconfirmed_txids(limit: int = 500) -> list[str]:
    """Distinct txids of pool outputs still counted as unconfirmed (``depth`` > 0), not spent.

    The confirmation poller asks the chain about each and resets the depth of mined ones.
    """
    return list(
        db.session.scalars(
            select(Utxo.txid).where(Utxo.depth > 0, Utxo.status != SPENT).distinct().limit(limit)
        )
    )


def mark_confirmed_outputs(txid: str) -> int:
    """Outputs made by the mined transaction ``txid`` have no unconfirmed ancestors any more."""
    result = db.session.execute(
        update(Utxo)
        .where(Utxo.txid == txid, Utxo.depth != 0)
        .values(depth=0)
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result)


def mark_confirmed_outputs_many(txids: list[str]) -> int:
    """:func:`mark_confirmed_outputs` for many mined transactions in one statement (current
    transaction).

    Returns:
        How many outputs had their depth reset.
    """
    if not txids:
        return 0
    result = db.session.execute(
        update(Utxo)
        .where(Utxo.txid.in_(txids), Utxo.depth != 0)
        .values(depth=0)
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result)


def status_summary(now: datetime | None = None) -> dict[str, Any]:
    """Counts and satoshis by status, dirty count, reservations past their timeout, and how
    the clean publish UTXOs spread over unconfirmed-chain depths.

    Returns:
        ``{"by_status": {status: {"count", "satoshis"}}, "by_purpose": {purpose: count},
        "available_count", "available_satoshis" (clean publish UTXOs), "available_by_depth":
        {depth: count}, "usable_now" (of those, under ``MAX_UNCONFIRMED_DEPTH``),
        "dirty_count", "reserved_signed" (reservations with a signed, stored transaction),
        "reserved_past_timeout", "low_water" (``POOL_LOW_WATER``), "below_low_water"}``.
    """
    now = now or utcnow()
    by_status: dict[str, dict[str, int]] = {}
    for status, count, sats in db.session.execute(
        select(Utxo.status, func.count(), func.coalesce(func.sum(Utxo.satoshis), 0)).group_by(
            Utxo.status
        )
    ):
        by_status[status] = {"count": int(count), "satoshis": int(sats)}
    by_purpose: dict[str, int] = {}
    for purpose, count in db.session.execute(
        select(Utxo.purpose, func.count())
        .where(Utxo.status == AVAILABLE, Utxo.dirty.is_(False))
        .group_by(Utxo.purpose)
    ):
        by_purpose[purpose] = int(count)
    clean = and_(Utxo.status == AVAILABLE, Utxo.dirty.is_(False), Utxo.purpose == PURPOSE_PUBLISH)
    available = db.session.execute(
        select(func.count(), func.coalesce(func.sum(Utxo.satoshis), 0)).where(clean)
    ).one()
    dirty = db.session.scalar(select(func.count()).where(Utxo.dirty.is_(True))) or 0
    overdue = (
        db.session.scalar(
            select(func.count()).where(Utxo.status == RESERVED, Utxo.reserved_until < now)
        )
        or 0
    )
    signed = (
        db.session.scalar(
            select(func.count()).where(Utxo.status == RESERVED, Utxo.spent_by_txid.is_not(None))
        )
        or 0
    )
    by_depth: dict[str, int] = {}
    for depth, count in db.session.execute(
        select(Utxo.depth, func.count()).where(clean).group_by(Utxo.depth)
    ):
        by_depth[str(int(depth))] = int(count)
    low_water, max_depth = _pool_settings()
    usable = sum(n for d, n in by_depth.items() if int(d) < max_depth)
    return {
        "by_status": by_status,
        "by_purpose": by_purpose,
        "available_count": int(available[0]),
        "available_satoshis": int(available[1]),
        "available_by_depth": by_depth,
        "usable_now": usable,
        "dirty_count": int(dirty),
        "reserved_signed": int(signed),
        "reserved_past_timeout": int(overdue),
        "low_water": low_water,
        "below_low_water": int(available[0]) < low_water,
    }


def _pool_settings() -> tuple[int, int]:
    """(POOL_LOW_WATER, MAX_UNCONFIRMED_DEPTH) of the current app, or defaults outside one."""
    try:
        from flask import current_app

        cfg = current_app.config
        return int(cfg.get("POOL_LOW_WATER", 0)), int(cfg.get("MAX_UNCONFIRMED_DEPTH", 20))
    except RuntimeError:
        return 0, 20


def prevouts(outpoints: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[int, str]]:
    """The outputs the given outpoints spend, as far as the ``utxos`` table knows them.

    The resolver behind ARC's Extended Format (BRC-30; ``ARC_PREVOUTS``, wired in
    :func:`raregen.publish.services.broadcaster`): every publish input is a pool UTXO, so its
    satoshis and locking script are here. Reads on a connection of its own, outside the
    caller's session and transaction. Call in an app context.

    Args:
        outpoints: ``[(txid hex, vout)]``.

    Returns:
        ``{(txid, vout): (satoshis, locking script hex)}`` for the outpoints found; the
        others are left out (the broadcaster then sends that transaction raw).
    """
    from sqlalchemy import tuple_

    found: dict[tuple[str, int], tuple[int, str]] = {}
    wanted = list(dict.fromkeys(outpoints))
    with db.engine.connect() as conn:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = conn.execute(
                select(Utxo.txid, Utxo.vout, Utxo.satoshis, Utxo.script_pub_key).where(
                    tuple_(Utxo.txid, Utxo.vout).in_(chunk)
                )
            )
            for txid, vout, satoshis, script in rows:
                found[(txid, int(vout))] = (int(satoshis), script)
    return found
