"""Migration 0008 (proof files): the tables ``tx_proofs`` and ``block_headers`` and the column
``publish_jobs.receipt`` come and go; a job stored at 0007 keeps its row (receipt NULL) and
the ``publish_jobs`` triggers survive. SQLite and PostgreSQL, each on a fresh database."""

from __future__ import annotations

from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from raregen.db import db, transaction
from tests.integration import test_migrations

fresh_app = test_migrations.fresh_app


def _columns(table: str) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns(table)}


def test_0008_up_and_down(fresh_app):
    upgrade(revision="0007")
    with transaction():
        db.session.execute(
            text(
                "INSERT INTO publish_jobs (job_id, pubkey, nonce, signed_payload, signature, "
                "status, attempts, created_at, updated_at) VALUES ('j-1', '02ab', 'n1', '{}', "
                "'sig', 'queued', 0, '2026-11-01', '2026-11-01')"
            )
        )
    upgrade(revision="0008")
    tables = set(inspect(db.engine).get_table_names())
    assert {"tx_proofs", "block_headers"} <= tables
    assert "receipt" in _columns("publish_jobs")
    with transaction():
        row = db.session.execute(text("SELECT job_id, receipt FROM publish_jobs")).one()
        assert tuple(row) == ("j-1", None)
        # the updated_at trigger of 0001 still stamps updates
        db.session.execute(text("UPDATE publish_jobs SET receipt = '{}'"))
        stamp = db.session.scalar(text("SELECT updated_at FROM publish_jobs"))
    assert str(stamp)[:10] != "2026-11-01"
    downgrade(revision="0007")
    assert not {"tx_proofs", "block_headers"} & set(inspect(db.engine).get_table_names())
    assert "receipt" not in _columns("publish_jobs")
    with transaction():
        assert db.session.scalar(text("SELECT count(*) FROM publish_jobs")) == 1
    upgrade()
