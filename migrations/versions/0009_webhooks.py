"""webhooks: endpoints, the event outbox, delivery attempts, command nonces; job/key flags

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 10:00:00.000000

* ``webhook_endpoints``: callback URLs of a registered key (``key_id``) or of a wallet
  account (``account_ref``), each with its Standard Webhooks secret;
* ``webhook_events``: the outbox, one row per event and endpoint, written in the
  transaction of the job's state change (``raregen.webhooks.outbox``);
* ``webhook_attempts``: every HTTP attempt of an event;
* ``webhook_command_nonces``: nonces of the signed commands of ``POST /v1/webhooks``;
* ``registered_keys.webhooks`` and ``publish_jobs.notify`` (BOOLEAN NOT NULL DEFAULT false,
  a constant default: no table rewrite on PostgreSQL): the key has endpoints; the job,
  accepted from such a key, writes events.

Downgrade drops the four tables and the two columns.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    false = sa.text("false")
    # plain ADD COLUMN on both databases (batch mode could copy the table on SQLite and lose
    # its triggers)
    op.add_column(
        "registered_keys", sa.Column("webhooks", sa.Boolean(), server_default=false, nullable=False)
    )
    op.add_column(
        "publish_jobs", sa.Column("notify", sa.Boolean(), server_default=false, nullable=False)
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("account_ref", sa.String(length=64), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("secret", sa.String(length=80), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "(key_id IS NULL) <> (account_ref IS NULL)", name=op.f("ck_webhook_endpoints_one_owner")
        ),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["registered_keys.id"],
            name=op.f("fk_webhook_endpoints_key_id_registered_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index("idx_webhook_endpoints_key", "webhook_endpoints", ["key_id"])
    op.create_index("idx_webhook_endpoints_account", "webhook_endpoints", ["account_ref"])
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("msg_id", sa.String(length=40), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_events_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint("msg_id", name=op.f("uq_webhook_events_msg_id")),
    )
    op.create_index(
        "idx_webhook_events_due",
        "webhook_events",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index("idx_webhook_events_order", "webhook_events", ["endpoint_id", "job_id", "id"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["webhook_events.id"],
            name=op.f("fk_webhook_attempts_event_id_webhook_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index("idx_webhook_attempts_event", "webhook_attempts", ["event_id", "id"])
    op.create_index("idx_webhook_attempts_endpoint", "webhook_attempts", ["endpoint_id", "id"])
    op.create_table(
        "webhook_command_nonces",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pubkey", sa.String(length=66), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_command_nonces")),
        sa.UniqueConstraint("pubkey", "nonce", name=op.f("uq_webhook_command_nonces_pubkey_nonce")),
    )
    op.create_index("idx_webhook_command_nonces_expiry", "webhook_command_nonces", ["expires_at"])


def downgrade():
    op.drop_table("webhook_command_nonces")
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_events")
    op.drop_table("webhook_endpoints")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE publish_jobs DROP COLUMN notify")
        op.execute("ALTER TABLE registered_keys DROP COLUMN webhooks")
    else:
        op.drop_column("publish_jobs", "notify")
        op.drop_column("registered_keys", "webhooks")
