"""wallet_sessions: server-side records of signed-in browser sessions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:00:00.000000

Until now a session lived only in the signed cookie: signing out emptied the browser's
cookie, but a copy taken before still worked until it expired. Each sign-in now stores a
row (the SHA-256 of a random token the cookie carries, the account, when it expires);
sign-out deletes it and every authenticated request checks it (``raregen.wallet.session``).

Upgrade creates the table; no row is backfilled, so cookies signed before the upgrade
carry no token and their users sign in again once. Downgrade drops the table (sessions are
then cookie-only again, and every signed-in browser of the new release stays signed in
with the old code, which ignores the token).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "wallet_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_wallet_sessions_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_sessions")),
    )
    op.create_index(
        "idx_wallet_sessions_account", "wallet_sessions", ["account_id", "expires_at"], unique=False
    )


def downgrade():
    op.drop_index("idx_wallet_sessions_account", table_name="wallet_sessions")
    op.drop_table("wallet_sessions")
