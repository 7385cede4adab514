"""publish_jobs: drop idx_publish_jobs_batch (processing_batch_id)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 16:00:00.000000

Every UPDATE of a job row that cannot be HOT (a status change: the claim index covers
``status``) inserts an entry into every index of ``publish_jobs``; the batch collector
rewrites each job twice, so each index costs two inserts a record. No query needs an index
on ``processing_batch_id`` alone: the collector reads a batch's jobs with ``status =
'processing'`` (the partial claim index ``idx_publish_jobs_claim``) and, for packed batches,
with their ``txid`` (``idx_publish_jobs_txid``); batch-mode jobs are settled by primary key.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("publish_jobs", schema=None) as batch_op:
        batch_op.drop_index("idx_publish_jobs_batch")


def downgrade():
    with op.batch_alter_table("publish_jobs", schema=None) as batch_op:
        batch_op.create_index("idx_publish_jobs_batch", ["processing_batch_id"], unique=False)
