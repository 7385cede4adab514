"""Accepting a publish request (docs/PROTOCOL.md §2): verify, take a credit, store the job, enqueue.

The whole acceptance is one database transaction: the credit is taken and the job is stored
together, or neither happens. The RQ job is enqueued only after the commit.

On PostgreSQL the usual case (a key without a wallet account) is accepted by **one**
statement in autocommit mode (:data:`_PG_ACCEPT_SQL`): the key, the job stored earlier
under the same nonce, the conditional credit decrement, the job row and its audit row, one
round trip instead of BEGIN, SELECT, INSERT and COMMIT. It runs on a pool of its own without
pre-ping (:func:`_autocommit_engine`), so that is the only round trip to PostgreSQL. A
single statement is atomic, so the rule above holds. Keys of wallet accounts (the credit
ledger), SQLite (the embedded default) and calls made inside an open session transaction
take the transactional path.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

from flask import current_app
from sqlalchemy import String, and_, bindparam, create_engine, insert, literal, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

import raregen.signing as signing
from raregen.db import after_commit, db, transaction, utcnow
from raregen.errors import (
    KeyRefused,
    NoCredits,
    NonceReused,
    RequestError,
    TimeWindowError,
    UnsupportedMediaType,
)
from raregen.proofs import receipt
from raregen.publish import batch, credits, services
from raregen.publish.models import QUEUED, AuditLog, PublishJob, RegisteredKey
from raregen.queue import enqueue_publish


@dataclass(frozen=True)
class Accepted:
    """The outcome of an accepted request: the job and whether it is new (202) or a replay (200)."""

    job_id: str
    status: str
    created: bool
    #: the signed acceptance receipt as stored (JSON text), None for jobs accepted before
    #: receipts existed (docs/PROOFS.md)
    receipt: str | None = None
    #: the same receipt as the object it was made from (a new job only), so the answer
    #: need not parse the text just written
    receipt_obj: dict[str, Any] | None = None

    def receipt_object(self) -> dict[str, Any] | None:
        """The receipt as a JSON object (``{"receipt", "pubkey", "signature"}``), or None."""
        if self.receipt_obj is not None:
            return self.receipt_obj
        return json.loads(self.receipt) if self.receipt else None


def parse_body(raw: bytes, content_type: str | None) -> Any:
    """Decode the HTTP body as JSON.

    Args:
        raw: the request body, bytes as received.
        content_type: the ``Content-Type`` header, or None.

    Returns:
        The decoded JSON value (any JSON type; :func:`accept` checks its shape).

    Raises:
        UnsupportedMediaType: 415 UNSUPPORTED_MEDIA_TYPE: the media type is not
            ``application/json``, or a ``charset`` parameter names another encoding than
            UTF-8 (RFC 8259 §8.1: JSON exchanged between systems is UTF-8; a body declared
            as, say, latin-1 is refused rather than read as UTF-8).
        RequestError: MALFORMED_JSON (not UTF-8 JSON), DUPLICATE_MEMBER (a member twice).
    """
    mime, *params = (content_type or "").split(";")
    if mime.strip().lower() != "application/json":
        raise UnsupportedMediaType("Send the request as application/json.")
    for param in params:
        # every charset parameter counts (a repeated one too); an empty value is not UTF-8
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            raise UnsupportedMediaType(
                "Send the request as application/json in UTF-8 (no other charset)."
            )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("The body is not UTF-8.", code="MALFORMED_JSON") from None
    return signing.loads_strict(text, field=None)


def _existing(pubkey: str, nonce: str) -> PublishJob | None:
    return db.session.scalar(
        select(PublishJob).where(PublishJob.pubkey == pubkey, PublishJob.nonce == nonce)
    )


# The statements of the hot path, built once: constructing SQLAlchemy statements per request
# cost more than running them (bench/bench_ingest.py --profile).
_KEY_AND_STORED = (
    select(
        RegisteredKey.id,
        RegisteredKey.status.label("key_status"),
        RegisteredKey.credits,
        RegisteredKey.account_ref,
        RegisteredKey.webhooks,
        PublishJob.job_id,
        PublishJob.status,
        PublishJob.signed_payload,
        PublishJob.signature,
        PublishJob.receipt,
    )
    .outerjoin(
        PublishJob,
        and_(PublishJob.pubkey == RegisteredKey.pubkey, PublishJob.nonce == bindparam("nonce")),
    )
    .where(RegisteredKey.pubkey == bindparam("pubkey"))
)
_JOBS = PublishJob.__table__
_AUDIT = AuditLog.__table__
_JOB_COLUMNS = (
    "job_id",
    "key_id",
    "pubkey",
    "nonce",
    "signed_payload",
    "signature",
    "record_type",
    "account_ref",
    "status",
    "attempts",
    "created_at",
    "updated_at",
    "receipt",
    "notify",
)
_INSERT_JOB = insert(_JOBS).values({c: bindparam(f"p_{c}") for c in _JOB_COLUMNS})
_INSERT_AUDIT = insert(_AUDIT).values(
    actor=bindparam("p_actor"),
    action="publish:job:accepted",
    subject=bindparam("p_job_id"),
    created_at=bindparam("p_created_at"),
)
# PostgreSQL: the job and its audit row in one statement (one round trip less)
_NEW_JOB = _INSERT_JOB.returning(_JOBS.c.job_id, _JOBS.c.created_at).cte("new_job")
_INSERT_JOB_AND_AUDIT = insert(_AUDIT).from_select(
    ["actor", "action", "subject", "created_at"],
    select(
        bindparam("p_actor", type_=String),
        literal("publish:job:accepted", String),
        _NEW_JOB.c.job_id,
        _NEW_JOB.c.created_at,
    ),
)


class _Key:
    """The columns of a registered key that accepting a request reads (no ORM instance)."""

    __slots__ = ("account_ref", "credits", "id", "pubkey", "status", "webhooks")

    def __init__(self, pubkey: str, row: Any):
        self.pubkey = pubkey
        self.id: int = row.id
        self.status: str = row.key_status
        self.credits: int | None = row.credits
        self.account_ref: str | None = row.account_ref
        self.webhooks: bool = bool(row.webhooks)


def _key_and_stored(pubkey: str, nonce: str) -> tuple[_Key | None, Any]:
    """The registered key of ``pubkey`` (None if unknown) and the row of the job stored
    earlier for ``(pubkey, nonce)`` (``job_id``, ``status``, ``signed_payload``,
    ``signature``; None if none), in one query (an outer join on the unique index)."""
    row = (
        db.session.connection().execute(_KEY_AND_STORED, {"pubkey": pubkey, "nonce": nonce}).first()
    )
    if row is None:
        return None, None
    return _Key(pubkey, row), (row if row.job_id is not None else None)


def _store_job(params: dict[str, Any]) -> None:
    """Insert the job row and its audit row (``publish:job:accepted``, as
    :func:`raregen.audit.audit` would add it) in the current transaction.

    Plain Core INSERTs on the session's connection, no ORM unit of work: this is the hot
    path of the API. A concurrent twin of ``(pubkey, nonce)`` raises ``IntegrityError``.
    """
    conn = db.session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(_INSERT_JOB_AND_AUDIT, params)
    else:
        conn.execute(_INSERT_JOB, params)
        conn.execute(_INSERT_AUDIT, params)


def _refuse_unusable_key(status: str | None) -> None:
    """Refuse a key that is not registered (``status`` None) or not active.

    Raises:
        KeyRefused: 403 ``KEY_NOT_REGISTERED`` or ``KEY_REVOKED`` (docs/PROTOCOL.md §2).
    """
    if status is None:
        raise KeyRefused(
            "This public key is not registered with the publisher.",
            code="KEY_NOT_REGISTERED",
            field="pubkey",
        )
    if status != "active":
        raise KeyRefused("This public key was revoked.", code="KEY_REVOKED", field="pubkey")


def _replay_or_conflict(job: Any, signed_payload: str, signature: str) -> Accepted:
    if job.signed_payload == signed_payload and job.signature == signature:
        return Accepted(job.job_id, job.status, created=False, receipt=job.receipt)
    raise NonceReused(
        "This nonce was already used by this key with other content; use a fresh nonce.",
        field="signedPayload",
    )


# PostgreSQL, keys without a wallet account: the whole acceptance in one statement, run in
# autocommit mode (a single statement is its own transaction: all of it happens or none).
# Same checks, same order and same rows as the transactional path in accept():
# * k: the key (none: KEY_NOT_REGISTERED; status not active: KEY_REVOKED);
# * prev: the job stored before under (pubkey, nonce): replay (200) or NONCE_REUSED;
# * paid: a key with a credits column pays with a conditional decrement, re-checked on the
#   row's latest version under its lock (READ COMMITTED), so two concurrent requests never
#   both take the last credit (nothing paid: NO_CREDITS); credits NULL is unlimited;
# * new_job, audited: the job row and its publish:job:accepted audit row, written deferred
#   (prev_hash 'deferred', migration 0011): the chain trigger takes no lock for it, so
#   accepts commit side by side instead of one commit (WAL flush) at a time; the entry is
#   chained soon after, under the chain lock, by the next chained write, the periodic
#   reaper or `audit verify` (raregen.audit.chain_deferred);
# * keys with an account_ref (wallet accounts pay from the credit ledger) change nothing
#   here and are then accepted by the transactional path;
# * the job's notify copies the key's webhooks flag (raregen.webhooks.outbox).
# A concurrent twin of (pubkey, nonce) makes the INSERT fail on the unique index, which rolls
# the whole statement back (the credit too). Data-modifying CTEs run exactly once whether or
# not the final SELECT reads them.
_PG_ACCEPT_SQL = """
WITH k AS (
    SELECT id, status, credits, account_ref, webhooks FROM registered_keys
    WHERE pubkey = %(pubkey)s
), prev AS (
    SELECT job_id, status, signed_payload, signature, receipt FROM publish_jobs
    WHERE pubkey = %(pubkey)s AND nonce = %(nonce)s
), go AS (
    SELECT id, credits, webhooks FROM k
    WHERE status = 'active' AND account_ref IS NULL AND NOT EXISTS (SELECT 1 FROM prev)
), paid AS (
    UPDATE registered_keys SET credits = registered_keys.credits - 1
    FROM go
    WHERE registered_keys.id = go.id AND go.credits IS NOT NULL AND registered_keys.credits > 0
    RETURNING registered_keys.id
), new_job AS (
    INSERT INTO publish_jobs (job_id, key_id, pubkey, nonce, signed_payload, signature,
                              record_type, account_ref, status, attempts, created_at, updated_at,
                              receipt, notify)
    SELECT %(job_id)s, go.id, %(pubkey)s, %(nonce)s, %(signed_payload)s, %(signature)s,
           %(record_type)s, NULL, 'queued', 0, %(now)s, %(now)s, %(receipt)s, go.webhooks
    FROM go
    WHERE go.credits IS NULL OR EXISTS (SELECT 1 FROM paid)
    RETURNING job_id, created_at
), audited AS (
    INSERT INTO audit_log (actor, action, subject, created_at, prev_hash)
    SELECT %(actor)s, 'publish:job:accepted', job_id, created_at, 'deferred' FROM new_job
)
SELECT k.status AS key_status, k.account_ref,
       prev.job_id, prev.status, prev.signed_payload, prev.signature, prev.receipt,
       (SELECT job_id FROM new_job) AS new_job_id
FROM k LEFT JOIN prev ON true
"""


def _one_statement_usable() -> bool:
    """True when :func:`_accept_one_statement` may run: PostgreSQL, and no transaction open
    on the session (a caller's uncommitted rows would be invisible to another connection)."""
    if db.engine.dialect.name != "postgresql":
        return False
    registry = db.session.registry  # has(): without making a session just to ask it
    return not registry.has() or not registry().in_transaction()


def _autocommit_engine() -> Engine:
    """The engine :func:`_accept_one_statement` runs on: the app's database URL and
    ``SQLALCHEMY_ENGINE_OPTIONS``, but connections in autocommit mode and **no** pre-ping.

    A pool of its own, made on first use in each process (so after a fork), because the
    app's pool tests every connection with a round trip before each use
    (``RAREGEN_DB_POOL_PRE_PING``, on by default) and SQLAlchemy cannot skip that for one
    checkout. The statement needs no such test: on a connection PostgreSQL dropped it fails,
    and it is retried once on a fresh one (see :func:`_accept_one_statement`). Saves that
    round trip, the CPU the worker and PostgreSQL spend on it, and switching the pooled
    connection to autocommit and back, on every publish (about 0.15 ms of worker CPU,
    in-process measurement). Costs each web process one more PostgreSQL connection while it
    accepts publishes (more with threads, as the app's pool: the same sizes). Its
    connections close with the process (``app.extensions["raregen.intake_engine"]``;
    ``dispose()`` it where the app's engine is disposed for good).
    """
    app = current_app
    engine = app.extensions.get("raregen.intake_engine")
    if engine is None:
        options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        options.update(pool_pre_ping=False, isolation_level="AUTOCOMMIT")
        engine = create_engine(db.engine.url, **options)
        app.extensions["raregen.intake_engine"] = engine
    return cast(Engine, engine)


def _receipt(job_id: str, body_sha256: str, stamp: Any) -> tuple[str, dict[str, Any]]:
    """The signed acceptance receipt of a new job (docs/PROOFS.md): as compact JSON text
    (stored) and as the object (answered)."""
    cfg = current_app.config
    signed = receipt.sign_receipt(
        services.app_receipt_key(),
        job_id=job_id,
        body_sha256=body_sha256,
        accepted_at=stamp,
        deadline_seconds=int(cfg.get("RECEIPT_DEADLINE_SECONDS", 6 * 3600)),
    )
    return json.dumps(signed, separators=(",", ":")), signed


def _accept_one_statement(req: Any, mode: str, body_sha256: str = "") -> Accepted | None:
    """Accept a verified request with :data:`_PG_ACCEPT_SQL` (PostgreSQL, autocommit).

    Args:
        req: the verified request (``signing.verify_publish_request``).
        mode: ``PUBLISH_MODE``: what to do once the job is stored (as the transactional
            path: enqueue its RQ job in immediate mode, else count it for the collector).
        body_sha256: hex SHA-256 of the request body, for the receipt.

    Returns:
        :class:`Accepted`, or None when the transactional path must decide: the key belongs
        to a wallet account (credit ledger), or a concurrent request stored the same
        ``(pubkey, nonce)`` first (the unique index refused ours; nothing was written).

    Raises:
        KeyRefused: KEY_NOT_REGISTERED, KEY_REVOKED.
        NonceReused: NONCE_REUSED (same key and nonce, other payload or signature).
        NoCredits: NO_CREDITS (the key's ``credits`` column is 0).
        sqlalchemy.exc.DBAPIError: the database failed. A connection PostgreSQL dropped
            (e.g. after a restart) is retried once on a fresh one first; retrying is safe:
            if the first statement did commit, the retry finds that job and answers it as an
            exact resubmission (200).
    """
    job_id = str(uuid.uuid4())
    stamp = utcnow()
    signed_receipt, receipt_obj = _receipt(job_id, body_sha256, stamp)
    params = {
        "pubkey": req.pubkey_hex,
        "nonce": req.payload.nonce,
        "job_id": job_id,
        "signed_payload": req.signed_payload,
        "signature": req.signature_b64,
        "record_type": req.payload.type,
        "now": stamp,
        "receipt": signed_receipt,
        "actor": f"key:{req.pubkey_hex[:16]}",
    }
    for attempt in range(2):
        try:
            with _autocommit_engine().connect() as conn:
                row = conn.exec_driver_sql(_PG_ACCEPT_SQL, params).first()
            break
        except IntegrityError:
            return None
        except DBAPIError as err:
            # SQLAlchemy invalidated the dropped connection and every older one in its pool
            if err.connection_invalidated:
                # the app's pool holds connections as old (a PostgreSQL restart): drop them
                # too, so the process's next request reconnects rather than failing once
                db.engine.dispose()
                if attempt == 0:
                    continue
            raise
    _refuse_unusable_key(None if row is None else row.key_status)
    assert row is not None  # an unknown key was refused just above
    if row.job_id is not None:
        return _replay_or_conflict(row, req.signed_payload, req.signature_b64)
    if row.new_job_id is None:
        if row.account_ref is not None:
            return None
        raise NoCredits("This key's account has no publishing credit left.")
    if mode == "immediate":
        enqueue_publish(job_id)
    else:  # batch, packed: the collector takes it (docs/PROTOCOL.md §6)
        batch.notify_queued()
    return Accepted(job_id, QUEUED, created=True, receipt=signed_receipt, receipt_obj=receipt_obj)


def accept(body: Any, *, now: int | None = None, raw: bytes | None = None) -> Accepted:
    """Verify a v1 request body and store a ``queued`` job for it.

    Args:
        body: the decoded JSON body.
        now: Unix seconds (tests); default the current time.
        raw: the exact request body bytes; the receipt's ``bodySha256`` is their SHA-256
            (without them, SHA-256 of the body's RFC 8785 form).

    Returns:
        :class:`Accepted`; ``created`` False for an exact resubmission (same key, nonce,
        payload and signature), which answers 200 with the stored job.

    Raises:
        RareGenError subclasses with the codes of docs/PROTOCOL.md §2.
        sqlalchemy.exc.DBAPIError: the database is unreachable (``raregen.web.errors``
            answers 503 UNAVAILABLE).

    On PostgreSQL, outside an open session transaction, a key without a wallet account is
    accepted by one statement (:func:`_accept_one_statement`); everything else by the
    transaction below. Both give the same answers and write the same rows (a property test
    feeds both the same generated request sequences: tests/integration/test_accept_paths_equal.py).
    """
    cfg = current_app.config
    now = int(time.time()) if now is None else now
    limits = dict(
        max_payload_bytes=cfg["MAX_PAYLOAD_BYTES"],
        max_skew=cfg["MAX_CLOCK_SKEW_SECONDS"],
        max_ttl=cfg["MAX_TTL_SECONDS"],
    )
    try:
        req = signing.verify_publish_request(body, now=now, **limits)
    except TimeWindowError:
        # a client retrying an accepted request after its window still gets its job back
        replay = _exact_replay(body)
        if replay is not None:
            return replay
        raise

    if raw is not None:
        body_sha256 = hashlib.sha256(raw).hexdigest()
    else:
        body_sha256 = hashlib.sha256(signing.canonicalize(body).encode("utf-8")).hexdigest()
    if _one_statement_usable():
        accepted = _accept_one_statement(req, cfg["PUBLISH_MODE"], body_sha256)
        if accepted is not None:
            return accepted

    for _attempt in range(2):
        try:
            with transaction():
                # one round trip: the key, and the job stored before under this nonce if any
                key, stored = _key_and_stored(req.pubkey_hex, req.payload.nonce)
                _refuse_unusable_key(None if key is None else key.status)
                assert key is not None  # an unknown key was refused just above
                if stored is not None:
                    return _replay_or_conflict(stored, req.signed_payload, req.signature_b64)
                job_id = str(uuid.uuid4())
                # credits.take reads id, credits and account_ref, the columns loaded above
                credits.take(cast(RegisteredKey, key), job_id)
                stamp = utcnow()
                signed_receipt, receipt_obj = _receipt(job_id, body_sha256, stamp)
                _store_job(
                    {
                        "p_job_id": job_id,
                        "p_key_id": key.id,
                        "p_pubkey": req.pubkey_hex,
                        "p_nonce": req.payload.nonce,
                        "p_signed_payload": req.signed_payload,
                        "p_signature": req.signature_b64,
                        "p_record_type": req.payload.type,
                        "p_account_ref": key.account_ref,
                        "p_status": QUEUED,
                        "p_attempts": 0,
                        "p_created_at": stamp,
                        "p_updated_at": stamp,
                        "p_receipt": signed_receipt,
                        "p_notify": key.webhooks,
                        "p_actor": f"key:{req.pubkey_hex[:16]}",
                    }
                )
                if cfg["PUBLISH_MODE"] == "immediate":
                    after_commit(partial(enqueue_publish, job_id))
                else:  # batch, packed: the collector takes it (docs/PROTOCOL.md §6)
                    after_commit(batch.notify_queued)
            return Accepted(
                job_id, QUEUED, created=True, receipt=signed_receipt, receipt_obj=receipt_obj
            )
        except IntegrityError:
            # the same (pubkey, nonce) was stored concurrently: answer as a replay or conflict
            continue
    with transaction():
        existing = _existing(req.pubkey_hex, req.payload.nonce)
        if existing is None:  # pragma: no cover - the unique index guarantees a row
            raise RequestError("Could not store the job; retry.", code="MALFORMED_JSON")
        return _replay_or_conflict(existing, req.signed_payload, req.signature_b64)


def _exact_replay(body: Any) -> Accepted | None:
    """An already stored job for exactly this body, if any (no time-window check)."""
    if not isinstance(body, dict):
        return None
    payload, signature, pubkey = (
        body.get("signedPayload"),
        body.get("signature"),
        body.get("pubkey"),
    )
    if not (isinstance(payload, str) and isinstance(signature, str) and isinstance(pubkey, str)):
        return None
    try:
        pub = signing.parse_pubkey(pubkey).hex()
        nonce = json.loads(payload).get("nonce")
    except Exception:
        return None
    if not isinstance(nonce, str):
        return None
    with transaction():
        job = _existing(pub, nonce)
        if job and job.signed_payload == payload and job.signature == signature:
            return Accepted(job.job_id, job.status, created=False, receipt=job.receipt)
    return None
