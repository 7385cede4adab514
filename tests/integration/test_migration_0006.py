"""Migration 0006 (``wallet_sessions``): the upgrade creates the table with its index and
foreign key, the downgrade drops it and only it. SQLite and PostgreSQL, each on a fresh
database."""

from __future__ import annotations

from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from raregen.db import db, transaction
from tests.integration import test_migrations

# an empty, unmigrated database on each backend (the fixture of the migration tests)
fresh_app = test_migrations.fresh_app


def _tables() -> set[str]:
    return set(inspect(db.engine).get_table_names())


def test_0006_creates_wallet_sessions_and_back(fresh_app):
    upgrade(revision="0005")
    before = _tables()
    assert "wallet_sessions" not in before
    upgrade(revision="0006")
    assert _tables() == before | {"wallet_sessions"}
    inspector = inspect(db.engine)
    columns = {c["name"]: c for c in inspector.get_columns("wallet_sessions")}
    assert set(columns) == {"id", "account_id", "created_at", "expires_at"}
    assert not any(c["nullable"] for c in columns.values())
    assert inspector.get_pk_constraint("wallet_sessions")["constrained_columns"] == ["id"]
    [fk] = inspector.get_foreign_keys("wallet_sessions")
    assert fk["referred_table"] == "accounts" and fk["constrained_columns"] == ["account_id"]
    indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("wallet_sessions")}
    assert indexes["idx_wallet_sessions_account"] == ["account_id", "expires_at"]
    with transaction():  # a row as the code writes it
        db.session.execute(
            text(
                "INSERT INTO accounts (email, plan, credit_balance, created_at, updated_at) "
                "VALUES ('a@example.com', 'free', 0, '2026-12-01', '2026-12-01')"
            )
        )
        db.session.execute(
            text(
                "INSERT INTO wallet_sessions (id, account_id, created_at, expires_at) "
                "SELECT :h, id, '2026-12-01', '2026-12-15' FROM accounts"
            ),
            {"h": "ab" * 32},
        )
    downgrade(revision="0005")
    assert _tables() == before
    upgrade()
    assert "wallet_sessions" in _tables()
