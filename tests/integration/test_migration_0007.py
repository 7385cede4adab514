"""Migration 0007 (the audit log's hash chain): the upgrade chains the rows already there in
id order, new rows are chained by the trigger after them, and the downgrade removes the
columns and triggers and only those. SQLite and PostgreSQL, each on a fresh database."""

from __future__ import annotations

from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from raregen import audit as audit_mod
from raregen.audit import audit
from raregen.auditchain import GENESIS
from raregen.db import db, transaction
from tests.integration import test_migrations

# an empty, unmigrated database on each backend (the fixture of the migration tests)
fresh_app = test_migrations.fresh_app

OLD_ROWS = [
    ("cli", "keys:key:registered", "02ab", '{"credits": null}', "2026-10-01 10:00:00"),
    ("worker", "publish:job:sent", None, None, "2026-10-01 10:00:00.5"),
    (
        "account:7",
        "wallet:account:plan",
        "acct_7",
        '{"new": "paid", "note": "é\\n:"}',
        "2026-09-30 23:59:59.999999",
    ),
]


def _columns() -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("audit_log")}


def _triggers() -> set[str]:
    if db.engine.dialect.name == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    else:
        sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    names = set(db.session.scalars(text(sql)))
    db.session.rollback()
    return names


def test_0007_chains_existing_rows_and_back(fresh_app):
    upgrade(revision="0006")
    before = _triggers()
    with transaction():
        for actor, action, subject, detail, created in OLD_ROWS:
            db.session.execute(
                text(
                    "INSERT INTO audit_log (actor, action, subject, detail, created_at) "
                    "VALUES (:a, :b, :s, :d, :c)"
                ),
                {"a": actor, "b": action, "s": subject, "d": detail, "c": created},
            )

    upgrade(revision="0007")
    assert {"seq", "prev_hash", "hash"} <= _columns()
    assert {"trg_audit_log_chain", "trg_audit_log_append_only"} <= _triggers()
    with transaction():
        rows = db.session.execute(
            text("SELECT id, seq, prev_hash FROM audit_log ORDER BY id")
        ).all()
        assert [r.seq for r in rows] == [1, 2, 3]
        assert rows[0].prev_hash == GENESIS
        report = audit_mod.verify()
    assert report.problem is None and report.count == 3

    # the trigger chains new entries after the migrated ones
    with transaction():
        audit("cli", "keys:key:revoked", "02ab")
    with transaction():
        report = audit_mod.verify()
    assert report.problem is None and report.count == 4 and report.head_seq == 4

    downgrade(revision="0006")
    assert not ({"seq", "prev_hash", "hash"} & _columns())
    assert _triggers() == before
    with transaction():
        assert db.session.scalar(text("SELECT COUNT(*) FROM audit_log")) == 4

    # upgrading again chains every row, those written meanwhile too
    upgrade()
    with transaction():
        report = audit_mod.verify()
    assert report.problem is None and report.count == 4
