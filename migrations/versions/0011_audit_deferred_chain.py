"""audit_log: deferred chaining of entries written without the chain lock (PostgreSQL)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 16:00:00.000000

On PostgreSQL the chain trigger of migration 0007 takes a transaction-scoped advisory lock
held to the commit, so every audited transaction's commit (its WAL flush) waits for the
previous one's: audited writers are not grouped. ``POST /v1/publish`` writes one entry per
accepted record, so accepts were bounded by one commit at a time (about 1 / fsync latency).

An entry may now be written **deferred**: inserted with ``prev_hash = 'deferred'`` (the
one-statement accept does so, ``raregen.publish.intake``), the trigger leaves it unchained
(``seq`` and ``hash`` NULL, ``prev_hash`` ``'deferred'``) and takes no lock, so such
inserts commit side by side. :func:`raregen_audit_chain_deferred` chains the deferred entries
visible to it, oldest ``id`` first, under the same advisory lock, in one go:

* the chain trigger calls it before chaining an entry of its own (a deferred entry is
  chained before any entry written after it commits);
* the periodic reaper (``raregen.publish.tasks.reap``, every ``REAPER_INTERVAL_SECONDS``)
  and ``flask audit verify`` (before it walks the chain) call it.

Only the chaining function may update a deferred entry: the append-only trigger lets an
UPDATE through when the row was deferred (``seq`` NULL, ``prev_hash`` ``'deferred'``), the
entry's own fields are unchanged, and the new ``hash`` is the entry's hash at its new
``seq`` after its new ``prev_hash``. Every other UPDATE is refused as before. A row written
past the trigger (``prev_hash`` NULL) is never chained by it: the verifier still reports it.

SQLite (one writer at a time, no advisory lock): unchanged; ``'deferred'`` is not used there.
Downgrade chains what is deferred and restores migration 0007's functions.
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: pg_advisory_xact_lock key of the chain (migration 0007)
LOCK_KEY = 8241994572916682241
GENESIS = "0" * 64
DEFERRED = "deferred"

_HASH_FN = """
CREATE OR REPLACE FUNCTION raregen_audit_hash(
    p_seq bigint, p_id bigint, p_created_at timestamp, p_actor text, p_action text,
    p_subject text, p_detail text, p_prev_hash text
) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(concat_ws(E'\\n',
        'raregen-audit-v1',
        raregen_audit_field(p_seq::text),
        raregen_audit_field(p_id::text),
        raregen_audit_field(to_char(p_created_at, 'YYYY-MM-DD"T"HH24:MI:SS.US')),
        raregen_audit_field(p_actor),
        raregen_audit_field(p_action),
        raregen_audit_field(p_subject),
        raregen_audit_field(p_detail),
        raregen_audit_field(p_prev_hash)
    ), 'UTF8')), 'hex')
$$;
"""

_NEW_FUNCTIONS = (
    _HASH_FN
    + f"""
CREATE OR REPLACE FUNCTION raregen_audit_chain_deferred() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    last_seq bigint;
    last_hash text;
    n integer := 0;
    r record;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'audit_log entries are chained in READ COMMITTED transactions only'
            USING HINT = 'the chain needs the newest committed entry';
    END IF;
    PERFORM pg_advisory_xact_lock({LOCK_KEY});
    IF NOT EXISTS (SELECT 1 FROM audit_log WHERE seq IS NULL AND prev_hash = '{DEFERRED}') THEN
        RETURN 0;
    END IF;
    SELECT seq, hash INTO last_seq, last_hash
    FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1;
    last_seq := COALESCE(last_seq, 0);
    last_hash := COALESCE(last_hash, '{GENESIS}');
    FOR r IN
        SELECT id, created_at, actor, action, subject, detail FROM audit_log
        WHERE seq IS NULL AND prev_hash = '{DEFERRED}' ORDER BY id
    LOOP
        last_seq := last_seq + 1;
        UPDATE audit_log SET
            seq = last_seq,
            prev_hash = last_hash,
            hash = raregen_audit_hash(last_seq, r.id, r.created_at, r.actor, r.action,
                                      r.subject, r.detail, last_hash)
        WHERE id = r.id
        RETURNING hash INTO last_hash;
        n := n + 1;
    END LOOP;
    RETURN n;
END;
$$;

CREATE OR REPLACE FUNCTION raregen_audit_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last_seq bigint;
    last_hash text;
BEGIN
    IF NEW.prev_hash IS NOT DISTINCT FROM '{DEFERRED}' THEN
        -- chained later by raregen_audit_chain_deferred(): no lock here
        NEW.seq := NULL;
        NEW.hash := NULL;
        RETURN NEW;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'audit_log entries are written in READ COMMITTED transactions only'
            USING HINT = 'the chain needs the newest committed entry';
    END IF;
    -- takes the chain lock; the deferred entries committed so far go first
    PERFORM raregen_audit_chain_deferred();
    SELECT seq, hash INTO last_seq, last_hash
    FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1;
    NEW.seq := COALESCE(last_seq, 0) + 1;
    NEW.prev_hash := COALESCE(last_hash, '{GENESIS}');
    NEW.hash := raregen_audit_hash(NEW.seq, NEW.id, NEW.created_at, NEW.actor, NEW.action,
                                   NEW.subject, NEW.detail, NEW.prev_hash);
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION raregen_audit_refuse_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.seq IS NULL AND OLD.prev_hash = '{DEFERRED}'
       AND NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL
       AND NEW.id = OLD.id
       AND NEW.created_at IS NOT DISTINCT FROM OLD.created_at
       AND NEW.actor IS NOT DISTINCT FROM OLD.actor
       AND NEW.action IS NOT DISTINCT FROM OLD.action
       AND NEW.subject IS NOT DISTINCT FROM OLD.subject
       AND NEW.detail IS NOT DISTINCT FROM OLD.detail
       AND NEW.hash = raregen_audit_hash(NEW.seq, NEW.id, NEW.created_at, NEW.actor,
                                         NEW.action, NEW.subject, NEW.detail, NEW.prev_hash)
    THEN
        RETURN NEW;  -- a deferred entry being chained
    END IF;
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
"""
)

# migration 0007's versions, for the downgrade
_OLD_CHAIN = f"""
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


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # driver SQL: no bind-parameter parsing of the ':' in the functions' text
    # the deferred entries are found through idx_audit_log_seq (0007): a btree holds the
    # NULLs too, and only deferred (or forged) entries have no seq
    bind.exec_driver_sql(_NEW_FUNCTIONS)


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    bind.exec_driver_sql("SELECT raregen_audit_chain_deferred()")
    bind.exec_driver_sql(_OLD_CHAIN)
    op.execute("DROP FUNCTION IF EXISTS raregen_audit_chain_deferred()")
    op.execute(
        "DROP FUNCTION IF EXISTS raregen_audit_hash(bigint, bigint, timestamp, text, text, "
        "text, text, text)"
    )
