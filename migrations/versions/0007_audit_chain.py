"""audit_log: hash chain (seq, prev_hash, hash), chained by a trigger; append-only

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00.000000

Each audit entry gets ``seq`` (its place in the one chain: 1, 2, ...), ``prev_hash`` (the
previous entry's ``hash``; 64 zeros for seq 1) and ``hash``, the SHA-256 of its canonical
text (``raregen.auditchain``; docs/OPERATIONS.md "Audit log"). The database fills the three
on every INSERT, whoever writes the row (the ORM, the one-statement publish, raw SQL), and
ignores what the writer sent:

* PostgreSQL: a BEFORE INSERT trigger takes the transaction-scoped advisory lock
  :data:`LOCK_KEY`, reads the newest entry (committed: the lock's previous holder has
  committed when it is granted, and each statement of the trigger sees a fresh READ
  COMMITTED snapshot), and computes the hash with ``sha256()``. The lock is held to the
  commit, so no two transactions pick the same predecessor and chain order is commit order.
  A transaction at REPEATABLE READ or SERIALIZABLE could not see the newest entry: the
  trigger refuses it. The unique index on ``seq`` is a second guard.
* SQLite (one writer at a time, BEGIN IMMEDIATE): an AFTER INSERT trigger sets ``seq`` and
  ``prev_hash``, then ``hash`` with ``raregen_audit_hash()``, a Python function the app
  registers on each connection (``raregen.db``). A connection without it cannot insert.

UPDATE of a chained row is refused (BEFORE UPDATE trigger). DELETE is not refused (tests
empty the table with it); ``flask audit verify`` finds deleted entries.

Upgrade chains the existing rows in ``id`` order. Downgrade drops the triggers, functions,
index and columns.
"""

import sqlalchemy as sa
from alembic import op

from raregen.auditchain import GENESIS, entry_hash

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: pg_advisory_xact_lock key of the chain: the bytes "raregen\x01" as a bigint
LOCK_KEY = 8241994572916682241

# PostgreSQL's rendering of raregen.auditchain.canonical(): one line per field, each
# "<UTF-8 byte length>:<value>" or "~" for NULL
_PG_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION raregen_audit_field(v text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN v IS NULL THEN '~'
                ELSE octet_length(convert_to(v, 'UTF8'))::text || ':' || v END
$$;

CREATE OR REPLACE FUNCTION raregen_audit_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last_seq bigint;
    last_hash text;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'audit_log entries are written in READ COMMITTED transactions only'
            USING HINT = 'the chain needs the newest committed entry';
    END IF;
    PERFORM pg_advisory_xact_lock({LOCK_KEY});
    SELECT seq, hash INTO last_seq, last_hash
    FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1;
    NEW.seq := COALESCE(last_seq, 0) + 1;
    NEW.prev_hash := COALESCE(last_hash, '{GENESIS}');
    NEW.hash := encode(sha256(convert_to(concat_ws(E'\\n',
        'raregen-audit-v1',
        raregen_audit_field(NEW.seq::text),
        raregen_audit_field(NEW.id::text),
        raregen_audit_field(to_char(NEW.created_at, 'YYYY-MM-DD"T"HH24:MI:SS.US')),
        raregen_audit_field(NEW.actor),
        raregen_audit_field(NEW.action),
        raregen_audit_field(NEW.subject),
        raregen_audit_field(NEW.detail),
        raregen_audit_field(NEW.prev_hash)
    ), 'UTF8')), 'hex');
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION raregen_audit_refuse_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
"""

_SQLITE_CHAIN = f"""
CREATE TRIGGER trg_audit_log_chain AFTER INSERT ON audit_log
FOR EACH ROW
BEGIN
    UPDATE audit_log SET
        seq = COALESCE((SELECT MAX(seq) FROM audit_log WHERE id <> NEW.id), 0) + 1,
        prev_hash = COALESCE(
            (SELECT hash FROM audit_log WHERE id <> NEW.id AND seq IS NOT NULL
             ORDER BY seq DESC LIMIT 1),
            '{GENESIS}'
        ),
        hash = NULL
    WHERE id = NEW.id;
    UPDATE audit_log SET hash = raregen_audit_hash(
        seq, id, created_at, actor, action, subject, detail, prev_hash
    )
    WHERE id = NEW.id;
END
"""

_SQLITE_APPEND_ONLY = """
CREATE TRIGGER trg_audit_log_append_only BEFORE UPDATE ON audit_log
FOR EACH ROW WHEN OLD.hash IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END
"""


def _chain_existing(bind):
    """Chain the rows written before this revision, in id order (Python computes the same
    hash as the triggers)."""
    sqlite = bind.dialect.name == "sqlite"
    created = "CAST(created_at AS TEXT)" if sqlite else "created_at"
    rows = bind.execute(
        sa.text(f"SELECT id, {created}, actor, action, subject, detail FROM audit_log ORDER BY id")
    ).all()
    prev = GENESIS
    updates = []
    for seq, (entry_id, created_at, actor, action, subject, detail) in enumerate(rows, 1):
        digest = entry_hash(seq, entry_id, created_at, actor, action, subject, detail, prev)
        updates.append({"i": entry_id, "s": seq, "p": prev, "h": digest})
        prev = digest
    if updates:
        bind.execute(
            sa.text("UPDATE audit_log SET seq = :s, prev_hash = :p, hash = :h WHERE id = :i"),
            updates,
        )


def upgrade():
    # plain ADD COLUMN (in place on SQLite too: no batch mode, no table copy)
    op.add_column("audit_log", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.add_column("audit_log", sa.Column("prev_hash", sa.String(length=64), nullable=True))
    op.add_column("audit_log", sa.Column("hash", sa.String(length=64), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # no entry may be written between the chaining below and the trigger
        op.execute("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
    _chain_existing(bind)
    op.create_index("idx_audit_log_seq", "audit_log", ["seq"], unique=True)
    if bind.dialect.name == "postgresql":
        # driver SQL: no bind-parameter parsing of the ':' in the functions' text
        bind.exec_driver_sql(_PG_FUNCTIONS)
        op.execute(
            "CREATE TRIGGER trg_audit_log_chain BEFORE INSERT ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION raregen_audit_chain()"
        )
        op.execute(
            "CREATE TRIGGER trg_audit_log_append_only BEFORE UPDATE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION raregen_audit_refuse_update()"
        )
    elif bind.dialect.name == "sqlite":
        op.execute(_SQLITE_CHAIN)
        op.execute(_SQLITE_APPEND_ONLY)


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS trg_audit_log_append_only ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS trg_audit_log_chain ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS raregen_audit_refuse_update()")
        op.execute("DROP FUNCTION IF EXISTS raregen_audit_chain()")
        op.execute("DROP FUNCTION IF EXISTS raregen_audit_field(text)")
    else:
        op.execute("DROP TRIGGER IF EXISTS trg_audit_log_append_only")
        op.execute("DROP TRIGGER IF EXISTS trg_audit_log_chain")
    op.drop_index("idx_audit_log_seq", table_name="audit_log")
    if bind.dialect.name == "sqlite":
        # SQLite >= 3.35 drops columns in place (batch mode would copy the table)
        for column in ("hash", "prev_hash", "seq"):
            op.execute(f"ALTER TABLE audit_log DROP COLUMN {column}")
    else:
        for column in ("hash", "prev_hash", "seq"):
            op.drop_column("audit_log", column)
