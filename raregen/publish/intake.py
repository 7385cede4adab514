"""Accepting a publish request (DESIGN.md §2): verify, take a credit, store the job, enqueue.

The whole acceptance is one database transaction: the credit is taken and the job is stored
together, or neither happens. The RQ job is enqueued only after the commit.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, cast

from flask import current_app
from sqlalchemy import String, and_, bindparam, insert, literal, select
from sqlalchemy.exc import IntegrityError

from raregen import signing
from raregen.db import after_commit, db, transaction, utcnow
from raregen.errors import (
    KeyRefused,
    NonceReused,
    RequestError,
    TimeWindowError,
    UnsupportedMediaType,
)
from raregen.publish import batch, credits
from raregen.publish.models import QUEUED, AuditLog, PublishJob, RegisteredKey
from raregen.queue import enqueue_publish


@dataclass(frozen=True)
class Accepted:
    """The outcome of an accepted request: the job and whether it is new (202) or a replay (200)."""

    job_id: str
    status: str
    created: bool


def parse_body(raw: bytes, content_type: str | None) -> Any:
    """Decode the HTTP body as JSON.

    Raises:
        UnsupportedMediaType: the content type is not ``application/json``.
        RequestError: MALFORMED_JSON (not UTF-8 JSON), DUPLICATE_MEMBER (a member twice).
    """
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime != "application/json":
        raise UnsupportedMediaType("Send the request as application/json.")
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
        PublishJob.job_id,
        PublishJob.status,
        PublishJob.signed_payload,
        PublishJob.signature,
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
    "job_id", "key_id", "pubkey", "nonce", "signed_payload", "signature", "record_type",
    "account_ref", "status", "attempts", "created_at", "updated_at",
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

    __slots__ = ("account_ref", "credits", "id", "pubkey", "status")

    def __init__(self, pubkey: str, row: Any):
        self.pubkey = pubkey
        self.id: int = row.id
        self.status: str = row.key_status
        self.credits: int | None = row.credits
        self.account_ref: str | None = row.account_ref


def _key_and_stored(pubkey: str, nonce: str) -> tuple[_Key | None, Any]:
    """The registered key of ``pubkey`` (None if unknown) and the row of the job stored
    earlier for ``(pubkey, nonce)`` (``job_id``, ``status``, ``signed_payload``,
    ``signature``; None if none), in one query (an outer join on the unique index)."""
    row = db.session.connection().execute(
        _KEY_AND_STORED, {"pubkey": pubkey, "nonce": nonce}
    ).first()
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


def _replay_or_conflict(job: Any, signed_payload: str, signature: str) -> Accepted:
    if job.signed_payload == signed_payload and job.signature == signature:
        return Accepted(job.job_id, job.status, created=False)
    raise NonceReused(
        "This nonce was already used by this key with other content; use a fresh nonce.",
        field="signedPayload",
    )


def accept(body: Any, *, now: int | None = None) -> Accepted:
    """Verify a v1 request body and store a ``queued`` job for it.

    Args:
        body: the decoded JSON body.
        now: Unix seconds (tests); default the current time.

    Returns:
        :class:`Accepted`; ``created`` False for an exact resubmission (same key, nonce,
        payload and signature), which answers 200 with the stored job.

    Raises:
        RareGenError subclasses with the codes of DESIGN.md §2.
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

    for _attempt in range(2):
        try:
            with transaction():
                # one round trip: the key, and the job stored before under this nonce if any
                key, stored = _key_and_stored(req.pubkey_hex, req.payload.nonce)
                if key is None:
                    raise KeyRefused(
                        "This public key is not registered with the publisher.",
                        code="KEY_NOT_REGISTERED",
                        field="pubkey",
                    )
                if key.status != "active":
                    raise KeyRefused(
                        "This public key was revoked.", code="KEY_REVOKED", field="pubkey"
                    )
                if stored is not None:
                    return _replay_or_conflict(stored, req.signed_payload, req.signature_b64)
                job_id = str(uuid.uuid4())
                # credits.take reads id, credits and account_ref, the columns loaded above
                credits.take(cast(RegisteredKey, key), job_id)
                stamp = utcnow()
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
                        "p_actor": f"key:{req.pubkey_hex[:16]}",
                    }
                )
                if cfg["PUBLISH_MODE"] == "immediate":
                    after_commit(lambda: enqueue_publish(job_id))
                else:  # batch, packed: the collector takes it (DESIGN.md §6)
                    after_commit(batch.notify_queued)
            return Accepted(job_id, QUEUED, created=True)
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
    if not all(isinstance(v, str) for v in (payload, signature, pubkey)):
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
            return Accepted(job.job_id, job.status, created=False)
    return None
