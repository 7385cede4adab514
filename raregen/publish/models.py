"""Tables of the publisher (component A): jobs, the UTXO pool, batches, registered keys.

Column meanings follow docs/PROTOCOL.md §2 (job states), §4 (pool) and §6 (batches). Satoshis are
integers (BigInteger). Times are naive UTC. ``updated_at`` is also maintained by a database
trigger on every UPDATE (migration ``0001``), so raw SQL updates keep it right too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from raregen.db import db, utcnow

# Job states (docs/PROTOCOL.md §2): queued -> processing -> sent -> confirmed; processing -> queued;
# failed is terminal.
QUEUED, PROCESSING, SENT, CONFIRMED, FAILED = "queued", "processing", "sent", "confirmed", "failed"
JOB_STATES = (QUEUED, PROCESSING, SENT, CONFIRMED, FAILED)
TERMINAL_STATES = (CONFIRMED, FAILED)

# UTXO states and purposes (docs/PROTOCOL.md §4)
AVAILABLE, RESERVED, SPENT = "available", "reserved", "spent"
PURPOSE_PUBLISH, PURPOSE_FUNDING = "publish", "funding"


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime, nullable=False, default=utcnow, onupdate=utcnow
    )


class PublishJob(Timestamps, db.Model):  # type: ignore[name-defined,misc]
    """One record to publish, from acceptance to its end."""

    __tablename__ = "publish_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    key_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pubkey: Mapped[str] = mapped_column(String(66), nullable=False)
    nonce: Mapped[str] = mapped_column(String(128), nullable=False)
    signed_payload: Mapped[str] = mapped_column(Text, nullable=False)
    signature: Mapped[str] = mapped_column(Text, nullable=False)  # base64 DER as received
    record_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    account_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # the input the stored transaction spends, and the transaction itself (stored before
    # broadcasting so a retry re-sends it instead of signing another one)
    utxo_txid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    utxo_vout: Mapped[int | None] = mapped_column(Integer, nullable=True)
    raw_tx: Mapped[str | None] = mapped_column(Text, nullable=True)
    txid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    vout: Mapped[int | None] = mapped_column(Integer, nullable=True)
    block_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    block_height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    processing_batch_id: Mapped[str | None] = mapped_column(String(50), nullable=True)
    not_before: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # the signed acceptance receipt answered to POST /v1/publish (compact JSON text: the
    # {"receipt", "pubkey", "signature"} object), kept so a resubmission answers the same one
    # and proof files carry it (docs/PROOFS.md); None for jobs accepted before 0006
    receipt: Mapped[str | None] = mapped_column(Text, nullable=True)
    # copied at acceptance from the key's ``webhooks`` flag (migration 0010): only such jobs
    # write webhook events when their state changes (raregen.webhooks.outbox)
    notify: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=text("false")
    )

    __table_args__ = (
        UniqueConstraint("pubkey", "nonce"),
        Index(
            "idx_publish_jobs_claim",
            "status",
            "created_at",
            postgresql_where=text("status IN ('queued', 'processing')"),
            sqlite_where=text("status IN ('queued', 'processing')"),
        ),
        # no index on processing_batch_id (dropped in 0004): a batch's jobs are read with
        # status 'processing' (idx_publish_jobs_claim) or their txid
        Index("idx_publish_jobs_txid", "txid"),
        Index("idx_publish_jobs_account", "account_ref", "created_at"),
        # the operator console's per-minute charts (migration 0010)
        Index("idx_publish_jobs_created_at", "created_at"),
        Index("idx_publish_jobs_sent_at", "sent_at"),
        Index("idx_publish_jobs_confirmed_at", "confirmed_at"),
    )


class Utxo(Timestamps, db.Model):  # type: ignore[name-defined,misc]
    """An output of the server's wallet: the pool publishing pays from (docs/PROTOCOL.md §4)."""

    __tablename__ = "utxos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    txid: Mapped[str] = mapped_column(String(64), nullable=False)
    vout: Mapped[int] = mapped_column(Integer, nullable=False)
    satoshis: Mapped[int] = mapped_column(BigInteger, nullable=False)
    script_pub_key: Mapped[str] = mapped_column(Text, nullable=False)
    purpose: Mapped[str] = mapped_column(String(16), nullable=False, default=PURPOSE_PUBLISH)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=AVAILABLE)
    reserved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    reserved_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    reserved_by: Mapped[str | None] = mapped_column(String(50), nullable=True)
    dirty: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    dirty_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    spent_by_txid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # number of unconfirmed ancestors of the transaction that made this output (0: mined);
    # the pool keeps it under MAX_UNCONFIRMED_DEPTH so the node's ancestor limit is never met
    depth: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    __table_args__ = (
        UniqueConstraint("txid", "vout"),
        Index(
            "idx_utxos_reserved_until",
            "reserved_until",
            postgresql_where=text("status = 'reserved'"),
            sqlite_where=text("status = 'reserved'"),
        ),
        Index(
            "idx_utxos_dirty",
            "dirty",
            postgresql_where=text("dirty"),
            sqlite_where=text("dirty"),
        ),
        # the reservation's ORDER BY satoshis, id is read straight off this index (0003)
        Index("idx_utxos_select", "status", "purpose", "satoshis", "id"),
    )


class PublishBatch(db.Model):  # type: ignore[name-defined,misc]
    """A set of jobs broadcast together (docs/PROTOCOL.md §6)."""

    __tablename__ = "publish_batches"

    batch_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    job_count: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="collecting")
    txids: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list of txids
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    broadcasted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    error_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    # "batch" (one transaction per job) or "packed" (one transaction for all its jobs, whose
    # raw hex is kept here once rather than on every job); migration 0003
    mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    raw_tx: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("idx_publish_batches_status", "status", "created_at"),)


class TxProof(db.Model):  # type: ignore[name-defined,misc]
    """The merkle proof of one of our confirmed transactions (docs/PROOFS.md): its BRC-74
    merkle path (BUMP, hex) and the 80-byte header of its block (hex). One row per txid: a
    packed transaction's path serves all its records. Dropped when the block leaves the
    main chain (reorganisation), written again when the transaction confirms anew."""

    __tablename__ = "tx_proofs"

    txid: Mapped[str] = mapped_column(String(64), primary_key=True)
    block_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    block_height: Mapped[int] = mapped_column(Integer, nullable=False)
    merkle_path: Mapped[str] = mapped_column(Text, nullable=False)
    block_header: Mapped[str] = mapped_column(String(160), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (Index("idx_tx_proofs_block", "block_height", "block_hash"),)


class BlockHeader(db.Model):  # type: ignore[name-defined,misc]
    """A main-chain block header seen by the publisher, by height: the ``headers`` a proof
    file carries after its block. Only headers buried deeper than ``PROOF_RECHECK_BLOCKS``
    are kept (shallower ones are read from the chain each time); a row that no longer links
    to the block before it is read again."""

    __tablename__ = "block_headers"

    height: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    block_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    header: Mapped[str] = mapped_column(String(160), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)


class RegisteredKey(Timestamps, db.Model):  # type: ignore[name-defined,misc]
    """A public key allowed to publish. ``credits`` None means unlimited (operator keys)."""

    __tablename__ = "registered_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pubkey: Mapped[str] = mapped_column(String(66), nullable=False, unique=True)
    account_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    purpose: Mapped[str] = mapped_column(String(16), nullable=False, default="operator")
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    credits: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # the key (or its wallet account) has webhook endpoints (migration 0010); copied onto
    # each job it publishes, so keys without webhooks cost nothing more
    webhooks: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=text("false")
    )

    __table_args__ = (Index("idx_registered_keys_account", "account_ref"),)


class AuditLog(db.Model):  # type: ignore[name-defined,misc]
    """Append-only trail: who did what, when. ``action`` reads ``source:subject:action``."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(120), nullable=False)
    action: Mapped[str] = mapped_column(String(120), nullable=False)
    subject: Mapped[str | None] = mapped_column(String(200), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    # the hash chain (migration 0006): set by the database's trigger on INSERT, whatever the
    # writer sends; ``seq`` is the chain order (1, 2, ...), ``prev_hash`` the previous
    # entry's ``hash``, ``hash`` the SHA-256 of this entry (raregen.auditchain)
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        Index("idx_audit_log_created", "created_at"),
        Index("idx_audit_log_seq", "seq", unique=True),
    )


class PoolSample(db.Model):  # type: ignore[name-defined,misc]
    """The pool level at one moment (migration 0010), written by the ``pool-sample``
    periodic job for the operator console's pool chart (:mod:`raregen.ops.charts`).
    Counts are UTXOs; ``available_*`` are clean publish UTXOs, as in
    :func:`raregen.publish.pool.status_summary`."""

    __tablename__ = "pool_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sampled_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    available_count: Mapped[int] = mapped_column(Integer, nullable=False)
    available_satoshis: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reserved_count: Mapped[int] = mapped_column(Integer, nullable=False)
    dirty_count: Mapped[int] = mapped_column(Integer, nullable=False)

    __table_args__ = (Index("idx_pool_samples_sampled_at", "sampled_at"),)
