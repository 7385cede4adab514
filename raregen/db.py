"""The database handle and the one place that opens database transactions.

Services add and flush; they never commit. Views, tasks and commands wrap their unit of
work in :func:`transaction`, which commits on success, rolls back on any exception, and
then runs the callbacks registered with :func:`after_commit` (for example enqueueing an RQ
job for a row that is now visible to workers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.orm import DeclarativeBase, scoped_session

from raregen.auditchain import sqlite_entry_hash

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)

_CALLBACKS = "raregen_after_commit"


def utcnow() -> datetime:
    """Current UTC time as a naive datetime (the form stored in every table)."""
    return datetime.now(UTC).replace(tzinfo=None)


def after_commit(callback: Callable[[], object]) -> None:
    """Run ``callback`` once the current transaction has committed (never on rollback)."""
    db.session.info.setdefault(_CALLBACKS, []).append(callback)


@contextmanager
def transaction() -> Iterator[scoped_session[Session]]:
    """Open a unit of work on the request's (or task's) session.

    Yields:
        The app's scoped SQLAlchemy session (``db.session``). Commit happens on normal
        exit; any exception rolls back and propagates. After the commit, callbacks
        registered with :func:`after_commit` run in order; an exception from a callback
        propagates but the commit stands.
    """
    session = db.session
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        session.info.pop(_CALLBACKS, None)
        raise
    callbacks = session.info.pop(_CALLBACKS, [])
    for callback in callbacks:
        callback()


def rows_matched(result: object) -> int:
    """The number of rows an UPDATE or DELETE run with ``db.session.execute`` matched.

    SQLAlchemy returns a ``CursorResult`` for such statements, but types ``Session.execute``
    as returning a plain ``Result`` (which has no ``rowcount``).

    Raises:
        TypeError: ``result`` is not a ``CursorResult`` (a SELECT's result, say).
    """
    if not isinstance(result, CursorResult):
        raise TypeError(f"rows_matched needs a CursorResult, not {type(result).__name__}")
    return int(result.rowcount or 0)


def is_postgres() -> bool:
    """True when the bound database is PostgreSQL."""
    return db.engine.dialect.name == "postgresql"


@event.listens_for(Engine, "connect")
def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLite: take the write lock at BEGIN (BEGIN IMMEDIATE) so two processes never deadlock
    # upgrading a read lock, wait for a busy lock instead of failing, and use WAL so readers
    # never block the writer.
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA busy_timeout = 30000")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()
        # the audit_log chain trigger (migration 0006) hashes each new row with it
        dbapi_connection.create_function(
            "raregen_audit_hash", 8, sqlite_entry_hash, deterministic=True
        )


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
