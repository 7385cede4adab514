"""The audit trail: one append-only, hash-chained row per noteworthy action.

:func:`audit` records an entry in the caller's transaction: it is written just before that
transaction commits (a session ``before_commit`` hook), after the ORM's own changes, and is
dropped with them on rollback. Writing it last keeps the chain lock short: the database
chains each new row under a lock held until commit (see migration 0007 and the "Audit log"
section of docs/OPERATIONS.md), so a row written early would make every other writer wait
for the rest of this transaction. Inside a savepoint (``begin_nested``) the entry is
remembered with that savepoint and dropped if it rolls back.

:func:`verify` walks the chain (:mod:`raregen.auditchain`); :func:`tail` reads the newest
entries. ``flask --app app audit verify|tail`` (:mod:`raregen.audit_cli`) calls both.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import event, insert, select, text
from sqlalchemy.orm import Session, SessionTransaction

from raregen.auditchain import Entry, Report, verify_entries
from raregen.db import db, utcnow
from raregen.publish.models import AuditLog

_PENDING = "raregen_audit_pending"
#: Entries written by the committing transaction, logged once it has committed.
_WRITTEN = "raregen_audit_written"

log = logging.getLogger("raregen.audit")


def audit(actor: str, action: str, subject: str | None = None, **detail: Any) -> None:
    """Record an audit entry in the current transaction (the caller's :func:`transaction`
    commits; on rollback the entry is gone with the change it records).

    Args:
        actor: who acted, e.g. ``"cli"``, ``"worker"``, ``"key:02ab…"``, ``"account:42"``.
        action: ``source:subject:action``, e.g. ``"publish:job:sent"``.
        subject: the id acted on (job id, txid:vout, pubkey).
        detail: JSON-serialisable facts. Never secrets.
    """
    session = db.session()
    if not session.in_transaction():
        session.begin()  # so that a rollback before any SQL still drops the entry
    row = {
        "actor": actor,
        "action": action,
        "subject": subject,
        "detail": json.dumps(detail, sort_keys=True, default=str) if detail else None,
        "created_at": utcnow(),
    }
    nested = session.get_nested_transaction()
    session.info.setdefault(_PENDING, []).append((row, nested))


def _within(tx: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while tx is not None:
        if tx is ancestor:
            return True
        tx = tx.parent
    return False


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    """Insert the recorded entries last in the committing transaction (one multi-row INSERT;
    the database trigger chains each row). A savepoint being released writes them too (the
    hook cannot tell it from the final commit); they still commit or roll back with the
    outer transaction."""
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    session.flush()  # the recorded changes first, the chain lock last
    rows = [row for row, _nested in pending]
    session.execute(insert(AuditLog), rows)
    session.info.setdefault(_WRITTEN, []).extend(rows)


@event.listens_for(Session, "after_commit")
def _log_committed(session: Session) -> None:
    """One log line per committed entry (``audit <action> <subject>``, the detail as fields):
    a job's id is in the lines of every machine that acted on it (raregen.logs)."""
    for row in session.info.pop(_WRITTEN, None) or ():
        log.info(
            "audit %s %s %s",
            row["action"],
            row["subject"],
            row["detail"] or "",
            extra={"action": row["action"], "subject": row["subject"], "actor": row["actor"]},
        )


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_WRITTEN, None)
    pending = session.info.get(_PENDING)
    if not pending:
        return
    if previous_transaction.parent is None:
        session.info.pop(_PENDING, None)
        return
    if previous_transaction.nested:
        pending[:] = [
            (row, nested) for row, nested in pending if not _within(nested, previous_transaction)
        ]


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def pending_count() -> int:
    """How many entries the current transaction will write at commit (tests, diagnostics)."""
    return len(db.session().info.get(_PENDING) or [])


def _entries() -> list[Entry]:
    """Every row, chained ones by ``seq`` then the others by id. SQLite: ``created_at`` as
    the stored text, the form its trigger hashed."""
    table = AuditLog.__table__
    created = table.c.created_at
    if db.engine.dialect.name == "sqlite":
        from sqlalchemy import String, cast

        created = cast(table.c.created_at, String).label("created_at")
    cols = (
        table.c.id,
        table.c.seq,
        created,
        table.c.actor,
        table.c.action,
        table.c.subject,
        table.c.detail,
        table.c.prev_hash,
        table.c.hash,
    )
    chained = db.session.execute(
        select(*cols).where(table.c.seq.is_not(None)).order_by(table.c.seq)
    ).all()
    loose = db.session.execute(
        select(*cols).where(table.c.seq.is_(None)).order_by(table.c.id)
    ).all()
    return [Entry(*row) for row in [*chained, *loose]]


#: ``prev_hash`` of an entry written deferred (PostgreSQL, migration 0011): the chain trigger
#: leaves it unchained and takes no lock; :func:`chain_deferred` chains it.
DEFERRED = "deferred"


def chain_deferred() -> int:
    """Chain the deferred entries committed so far, oldest id first, under the chain lock
    (current transaction; PostgreSQL's ``raregen_audit_chain_deferred()``, migration 0011).
    Nothing to do on SQLite, which never defers.

    The one-statement accept (:mod:`raregen.publish.intake`) writes its
    ``publish:job:accepted`` entry deferred, so accepts do not wait for each other's commit
    on the chain lock. Any chained write chains the deferred entries first; so do the
    periodic reaper (:func:`raregen.publish.tasks.reap`) and :func:`verify`.

    Returns:
        How many entries were chained.
    """
    if db.engine.dialect.name != "postgresql":
        return 0
    present = db.session.execute(
        text("SELECT to_regprocedure('raregen_audit_chain_deferred()') IS NOT NULL")
    ).scalar()
    if not present:  # a schema older than migration 0011: nothing is ever deferred
        return 0
    return int(db.session.execute(text("SELECT raregen_audit_chain_deferred()")).scalar() or 0)


def verify(anchor: tuple[int, str] | None = None) -> Report:
    """Check the whole chain (one snapshot on PostgreSQL when run in one transaction, after
    chaining the deferred entries committed so far: :func:`chain_deferred`; commit the
    transaction to keep that chaining). See :func:`raregen.auditchain.verify_entries` for
    ``anchor`` and the checks."""
    chain_deferred()
    return verify_entries(_entries(), anchor=anchor)


def tail(limit: int = 20) -> list[dict[str, Any]]:
    """The newest ``limit`` chained entries, oldest of them first: ``{"id", "seq",
    "created_at" (ISO 8601, UTC), "actor", "action", "subject", "detail" (decoded JSON or
    None), "prev_hash", "hash"}``."""
    rows = db.session.scalars(
        select(AuditLog)
        .where(AuditLog.seq.is_not(None))
        .order_by(AuditLog.seq.desc())
        .limit(max(0, limit))
    ).all()
    out = []
    for row in reversed(rows):
        try:
            detail = json.loads(row.detail) if row.detail else None
        except ValueError:
            detail = row.detail
        out.append(
            {
                "id": row.id,
                "seq": row.seq,
                "created_at": row.created_at.isoformat() + "Z",
                "actor": row.actor,
                "action": row.action,
                "subject": row.subject,
                "detail": detail,
                "prev_hash": row.prev_hash,
                "hash": row.hash,
            }
        )
    return out
