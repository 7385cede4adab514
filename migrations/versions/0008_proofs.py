"""proof files: merkle proofs of confirmed transactions, block headers, acceptance receipts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 10:00:00.000000

* ``tx_proofs``: per confirmed txid, its BRC-74 merkle path (BUMP hex), block hash, height
  and 80-byte header (hex), captured when the transaction is seen confirmed and dropped when
  its block leaves the main chain (docs/PROOFS.md).
* ``block_headers``: main-chain headers by height (the ``headers`` of a proof file).
* ``publish_jobs.receipt``: the signed acceptance receipt of the job (JSON text), so an
  exact resubmission answers the same receipt and a proof file carries it. Jobs accepted
  before this revision keep NULL (their proofs have no ``acceptance``).

The column is added in place on both databases (no batch mode, which on SQLite could copy
the table and lose the ``publish_jobs`` triggers of 0001).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "tx_proofs",
        sa.Column("txid", sa.String(length=64), nullable=False),
        sa.Column("block_hash", sa.String(length=64), nullable=False),
        sa.Column("block_height", sa.Integer(), nullable=False),
        sa.Column("merkle_path", sa.Text(), nullable=False),
        sa.Column("block_header", sa.String(length=160), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("txid"),
    )
    op.create_index("idx_tx_proofs_block", "tx_proofs", ["block_height", "block_hash"])
    op.create_table(
        "block_headers",
        sa.Column("height", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("block_hash", sa.String(length=64), nullable=False),
        sa.Column("header", sa.String(length=160), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("height"),
    )
    op.add_column("publish_jobs", sa.Column("receipt", sa.Text(), nullable=True))


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        # SQLite >= 3.35 drops a column in place (batch mode would copy the table)
        op.execute("ALTER TABLE publish_jobs DROP COLUMN receipt")
    else:
        op.drop_column("publish_jobs", "receipt")
    op.drop_table("block_headers")
    op.drop_index("idx_tx_proofs_block", table_name="tx_proofs")
    op.drop_table("tx_proofs")
