"""operator console: an operator role on accounts, pool level samples

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:00:00.000000

* ``accounts.is_operator``: the account may use the operator console at ``/ops``
  (granted and revoked by ``flask --app app accounts operator EMAIL [--revoke]``).
* ``pool_samples``: the pool level sampled by the cron process (``pool-sample`` periodic
  job), one row per sample, for the console's pool chart. Old rows are deleted by the
  sampler itself after two days (raregen/ops/charts.py).
* indexes on ``publish_jobs.created_at``, ``sent_at`` and ``confirmed_at`` for the
  per-minute charts.

The column is added in place on both databases (no batch mode, which on SQLite would copy
the table and lose the ``accounts`` triggers of 0002).
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "accounts",
        sa.Column("is_operator", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "pool_samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sampled_at", sa.DateTime(), nullable=False),
        sa.Column("available_count", sa.Integer(), nullable=False),
        sa.Column("available_satoshis", sa.BigInteger(), nullable=False),
        sa.Column("reserved_count", sa.Integer(), nullable=False),
        sa.Column("dirty_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("idx_pool_samples_sampled_at", "pool_samples", ["sampled_at"])
    op.create_index("idx_publish_jobs_created_at", "publish_jobs", ["created_at"])
    op.create_index("idx_publish_jobs_sent_at", "publish_jobs", ["sent_at"])
    op.create_index("idx_publish_jobs_confirmed_at", "publish_jobs", ["confirmed_at"])


def downgrade():
    op.drop_index("idx_publish_jobs_confirmed_at", table_name="publish_jobs")
    op.drop_index("idx_publish_jobs_sent_at", table_name="publish_jobs")
    op.drop_index("idx_publish_jobs_created_at", table_name="publish_jobs")
    op.drop_index("idx_pool_samples_sampled_at", table_name="pool_samples")
    op.drop_table("pool_samples")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE accounts DROP COLUMN is_operator")
    else:
        op.drop_column("accounts", "is_operator")
