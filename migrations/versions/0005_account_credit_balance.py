"""accounts.credit_balance: the running sum of each account's credit ledger

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 16:30:00.000000

Until now a publish summed the account's whole ``credit_ledger`` (``SUM(delta)``) under the
account row lock, a cost growing with the account's history. ``accounts.credit_balance``
(BIGINT, not null, default 0) keeps that sum; ``raregen.wallet.credits`` updates it in the
transaction of every ledger insert, with the account row locked. The ledger stays the
record: ``flask accounts check-balances`` compares the two.

Upgrade adds the column (PostgreSQL: a constant default, no table rewrite) and backfills it
from the ledger in one statement. The ALTER takes
an exclusive lock on ``accounts`` (PostgreSQL) until the migration commits, so charges
wait; but code of an earlier release still running AFTER the upgrade would insert ledger
rows without moving the column: stop it first (or run ``accounts check-balances --repair``
once it is gone). Downgrade drops the column (the ledger alone is the balance again).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    # a plain ADD COLUMN, in place on both databases: no batch mode, which on SQLite may
    # copy the table and so drop the accounts triggers of 0002
    op.add_column(
        "accounts",
        sa.Column("credit_balance", sa.BigInteger(), server_default="0", nullable=False),
    )
    # only accounts with ledger rows are written (the others are 0 already); the
    # updated_at triggers of 0002 stamp those rows, as any later charge would
    op.execute(
        """
        UPDATE accounts SET credit_balance = (
            SELECT COALESCE(SUM(credit_ledger.delta), 0) FROM credit_ledger
            WHERE credit_ledger.account_id = accounts.id
        )
        WHERE EXISTS (SELECT 1 FROM credit_ledger WHERE credit_ledger.account_id = accounts.id)
        """
    )


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        # SQLite >= 3.35 drops a column in place; batch mode would copy the table (and
        # lose the accounts triggers of 0002)
        op.execute("ALTER TABLE accounts DROP COLUMN credit_balance")
    else:
        op.drop_column("accounts", "credit_balance")
