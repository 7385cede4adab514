"""batch mode and pool scale: packed batches keep their raw transaction; the pool's
selection index covers the whole ORDER BY

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 14:00:00.000000

* ``publish_batches.mode`` (``batch`` | ``packed``) and ``publish_batches.raw_tx``: a packed
  batch is one transaction carrying many records; its raw hex is stored once, on the batch,
  instead of on each of its (up to 1000) jobs.
* ``idx_utxos_select`` becomes ``(status, purpose, satoshis, id)``: the reservation query
  orders by ``satoshis, id``; without ``id`` in the index PostgreSQL sorted every available
  UTXO of equal value (a freshly split pool is all one value), 185 ms at 200 000 rows
  (``bench/bench_pool_scale.py``); with it, an index scan stops at the first row.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("publish_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mode", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("raw_tx", sa.Text(), nullable=True))
    with op.batch_alter_table("utxos", schema=None) as batch_op:
        batch_op.drop_index("idx_utxos_select")
        batch_op.create_index(
            "idx_utxos_select", ["status", "purpose", "satoshis", "id"], unique=False
        )


def downgrade():
    with op.batch_alter_table("utxos", schema=None) as batch_op:
        batch_op.drop_index("idx_utxos_select")
        batch_op.create_index("idx_utxos_select", ["status", "purpose", "satoshis"], unique=False)
    with op.batch_alter_table("publish_batches", schema=None) as batch_op:
        batch_op.drop_column("raw_tx")
        batch_op.drop_column("mode")
