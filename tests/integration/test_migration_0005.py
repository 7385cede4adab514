"""Migration 0005 (``accounts.credit_balance``): the upgrade backfills each account's column
from its ledger, keeps the accounts triggers, and the downgrade drops the column and only
the column. SQLite and PostgreSQL, each on a fresh database."""

from __future__ import annotations

from datetime import datetime

from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from raregen.db import db, transaction
from raregen.wallet import credits
from tests.integration import test_migrations

# an empty, unmigrated database on each backend (the fixture of the migration tests)
fresh_app = test_migrations.fresh_app


# account email -> its ledger rows (delta, reason, job_id) before the upgrade
LEDGERS: dict[str, list[tuple[int, str, str | None]]] = {
    "busy@example.com": [
        (20, "allowance:2026-10", None),
        *[(-1, "publish", f"00000000-0000-4000-8000-{n:012d}") for n in range(15)],
        (1, "refund", "00000000-0000-4000-8000-000000000003"),
        (20, "allowance:2026-11", None),
        (-4, "grant:mistake", None),
    ],
    "granted@example.com": [(1000, "grant:promo", None), (-1, "publish", "job-g")],
    "negative@example.com": [(-3, "grant", None)],
    "empty@example.com": [],
}
EXPECTED = {
    "busy@example.com": 22,
    "granted@example.com": 999,
    "negative@example.com": -3,
    "empty@example.com": 0,
}


def _seed_at_0004() -> dict[str, int]:
    """Accounts and ledger rows written as the 0004 schema knows them (raw SQL)."""
    ids = {}
    with transaction():
        for email, rows in LEDGERS.items():
            db.session.execute(
                text(
                    "INSERT INTO accounts (email, plan, created_at, updated_at) "
                    "VALUES (:e, 'free', '2026-10-01', '2026-10-01')"
                ),
                {"e": email},
            )
            ids[email] = db.session.scalar(
                text("SELECT id FROM accounts WHERE email = :e"), {"e": email}
            )
            for delta, reason, job_id in rows:
                db.session.execute(
                    text(
                        "INSERT INTO credit_ledger (account_id, delta, reason, job_id, "
                        "created_at) VALUES (:a, :d, :r, :j, '2026-10-02')"
                    ),
                    {"a": ids[email], "d": delta, "r": reason, "j": job_id},
                )
    return ids


def _balances() -> dict[str, int]:
    rows = db.session.execute(text("SELECT email, credit_balance FROM accounts"))
    result = {email: int(balance) for email, balance in rows}
    db.session.rollback()
    return result


def _account_columns() -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("accounts")}


def _trigger_names() -> set[str]:
    if db.engine.dialect.name == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    else:
        sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    names = set(db.session.scalars(text(sql)))
    db.session.rollback()
    return names


def test_0005_backfills_from_the_ledger_and_back(fresh_app):
    upgrade(revision="0004")
    assert "credit_balance" not in _account_columns()
    triggers = _trigger_names()
    assert {"trg_accounts_updated_at", "trg_credit_ledger_append_only"} <= triggers
    ids = _seed_at_0004()

    upgrade(revision="0005")
    column = next(
        c for c in inspect(db.engine).get_columns("accounts") if c["name"] == "credit_balance"
    )
    assert column["nullable"] is False
    assert _balances() == EXPECTED
    assert _trigger_names() == triggers  # SQLite: the table was altered in place, not copied

    # the services use today's models: the later revisions add columns of their own
    upgrade()
    with transaction():
        assert credits.check_balances() == []

    # the services keep it from here (November's allowance is in the seed: a plain -1); a
    # new account starts at 0 (the server default too)
    with transaction():
        credits.charge(ids["busy@example.com"], "job-after", now=datetime(2026, 11, 15))
        db.session.execute(
            text(
                "INSERT INTO accounts (email, plan, created_at, updated_at) "
                "VALUES ('raw@example.com', 'free', '2026-11-01', '2026-11-01')"
            )
        )
    after = dict(EXPECTED, **{"busy@example.com": 21, "raw@example.com": 0})
    assert _balances() == after

    downgrade(revision="0004")
    assert "credit_balance" not in _account_columns()
    assert _trigger_names() == triggers
    ledger_rows = db.session.scalar(text("SELECT COUNT(*) FROM credit_ledger"))
    db.session.rollback()
    assert ledger_rows == sum(len(rows) for rows in LEDGERS.values()) + 1

    # upgrading again backfills the rows written meanwhile too
    upgrade()
    assert _balances() == after
    with transaction():
        assert credits.check_balances() == []
