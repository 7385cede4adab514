"""initial schema: jobs, UTXO pool, batches, registered keys, audit log; updated_at triggers

Revision ID: 0001
Revises:
Create Date: 2026-11-29 12:34:23.355744
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


# Tables whose updated_at a trigger keeps right on every UPDATE (docs/PROTOCOL.md §4).
TRIGGER_TABLES = ("publish_jobs", "utxos", "registered_keys")


def create_updated_at_triggers(tables):
    """PostgreSQL: one trigger function, a BEFORE UPDATE trigger per table.
    SQLite: an AFTER UPDATE trigger per table that sets the column unless the statement set it."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            """
            CREATE OR REPLACE FUNCTION raregen_set_updated_at() RETURNS trigger AS $$
            BEGIN
                NEW.updated_at := (now() AT TIME ZONE 'utc');
                RETURN NEW;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        for table in tables:
            op.execute(
                f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION raregen_set_updated_at()"
            )
    elif dialect == "sqlite":
        for table in tables:
            op.execute(
                f"""
                CREATE TRIGGER trg_{table}_updated_at AFTER UPDATE ON {table}
                FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
                BEGIN
                    UPDATE {table} SET updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now')
                    WHERE id = NEW.id;
                END
                """
            )


def drop_updated_at_triggers(tables):
    dialect = op.get_bind().dialect.name
    for table in tables:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_updated_at ON {table}")
        elif dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_updated_at")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS raregen_set_updated_at()")


def upgrade():
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=120), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("idx_audit_log_created", ["created_at"], unique=False)

    op.create_table(
        "publish_batches",
        sa.Column("batch_id", sa.String(length=50), nullable=False),
        sa.Column("job_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("txids", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("broadcasted_at", sa.DateTime(), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_publish_batches")),
    )
    with op.batch_alter_table("publish_batches", schema=None) as batch_op:
        batch_op.create_index("idx_publish_batches_status", ["status", "created_at"], unique=False)

    op.create_table(
        "publish_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("pubkey", sa.String(length=66), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("signed_payload", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("record_type", sa.String(length=64), nullable=True),
        sa.Column("account_ref", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("utxo_txid", sa.String(length=64), nullable=True),
        sa.Column("utxo_vout", sa.Integer(), nullable=True),
        sa.Column("raw_tx", sa.Text(), nullable=True),
        sa.Column("txid", sa.String(length=64), nullable=True),
        sa.Column("vout", sa.Integer(), nullable=True),
        sa.Column("block_hash", sa.String(length=64), nullable=True),
        sa.Column("block_height", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
        sa.Column("processing_batch_id", sa.String(length=50), nullable=True),
        sa.Column("not_before", sa.DateTime(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publish_jobs")),
        sa.UniqueConstraint("job_id", name=op.f("uq_publish_jobs_job_id")),
        sa.UniqueConstraint("pubkey", "nonce", name=op.f("uq_publish_jobs_pubkey_nonce")),
    )
    with op.batch_alter_table("publish_jobs", schema=None) as batch_op:
        batch_op.create_index(
            "idx_publish_jobs_account", ["account_ref", "created_at"], unique=False
        )
        batch_op.create_index("idx_publish_jobs_batch", ["processing_batch_id"], unique=False)
        batch_op.create_index(
            "idx_publish_jobs_claim",
            ["status", "created_at"],
            unique=False,
            postgresql_where=sa.text("status IN ('queued', 'processing')"),
            sqlite_where=sa.text("status IN ('queued', 'processing')"),
        )
        batch_op.create_index("idx_publish_jobs_txid", ["txid"], unique=False)

    op.create_table(
        "registered_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pubkey", sa.String(length=66), nullable=False),
        sa.Column("account_ref", sa.String(length=64), nullable=True),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("credits", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registered_keys")),
        sa.UniqueConstraint("pubkey", name=op.f("uq_registered_keys_pubkey")),
    )
    with op.batch_alter_table("registered_keys", schema=None) as batch_op:
        batch_op.create_index("idx_registered_keys_account", ["account_ref"], unique=False)

    op.create_table(
        "utxos",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("txid", sa.String(length=64), nullable=False),
        sa.Column("vout", sa.Integer(), nullable=False),
        sa.Column("satoshis", sa.BigInteger(), nullable=False),
        sa.Column("script_pub_key", sa.Text(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reserved_at", sa.DateTime(), nullable=True),
        sa.Column("reserved_until", sa.DateTime(), nullable=True),
        sa.Column("reserved_by", sa.String(length=50), nullable=True),
        sa.Column("dirty", sa.Boolean(), nullable=False),
        sa.Column("dirty_reason", sa.Text(), nullable=True),
        sa.Column("spent_by_txid", sa.String(length=64), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_utxos")),
        sa.UniqueConstraint("txid", "vout", name=op.f("uq_utxos_txid_vout")),
    )
    with op.batch_alter_table("utxos", schema=None) as batch_op:
        batch_op.create_index(
            "idx_utxos_dirty",
            ["dirty"],
            unique=False,
            postgresql_where=sa.text("dirty"),
            sqlite_where=sa.text("dirty"),
        )
        batch_op.create_index(
            "idx_utxos_reserved_until",
            ["reserved_until"],
            unique=False,
            postgresql_where=sa.text("status = 'reserved'"),
            sqlite_where=sa.text("status = 'reserved'"),
        )
        batch_op.create_index("idx_utxos_select", ["status", "purpose", "satoshis"], unique=False)

    create_updated_at_triggers(TRIGGER_TABLES)


def downgrade():
    drop_updated_at_triggers(TRIGGER_TABLES)
    with op.batch_alter_table("utxos", schema=None) as batch_op:
        batch_op.drop_index("idx_utxos_select")
        batch_op.drop_index(
            "idx_utxos_reserved_until",
            postgresql_where=sa.text("status = 'reserved'"),
            sqlite_where=sa.text("status = 'reserved'"),
        )
        batch_op.drop_index(
            "idx_utxos_dirty", postgresql_where=sa.text("dirty"), sqlite_where=sa.text("dirty")
        )

    op.drop_table("utxos")
    with op.batch_alter_table("registered_keys", schema=None) as batch_op:
        batch_op.drop_index("idx_registered_keys_account")

    op.drop_table("registered_keys")
    with op.batch_alter_table("publish_jobs", schema=None) as batch_op:
        batch_op.drop_index("idx_publish_jobs_txid")
        batch_op.drop_index(
            "idx_publish_jobs_claim",
            postgresql_where=sa.text("status IN ('queued', 'processing')"),
            sqlite_where=sa.text("status IN ('queued', 'processing')"),
        )
        batch_op.drop_index("idx_publish_jobs_batch")
        batch_op.drop_index("idx_publish_jobs_account")

    op.drop_table("publish_jobs")
    with op.batch_alter_table("publish_batches", schema=None) as batch_op:
        batch_op.drop_index("idx_publish_batches_status")

    op.drop_table("publish_batches")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("idx_audit_log_created")

    op.drop_table("audit_log")
