"""Accepting a publish request (DESIGN.md §2): verify, take a credit, store the job, enqueue.

The whole acceptance is one database transaction: the credit is taken and the job is stored
together, or neither happens. The RQ job is enqueued only after the commit.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from raregen import signing
from raregen.audit import audit
from raregen.db import after_commit, db, transaction
from raregen.errors import (
    KeyRefused,
    NonceReused,
    RequestError,
    TimeWindowError,
    UnsupportedMediaType,
)
from raregen.publish import credits
from raregen.publish.models import QUEUED, PublishJob, RegisteredKey
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


def _replay_or_conflict(job: PublishJob, signed_payload: str, signature: str) -> Accepted:
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
                key = db.session.scalar(
                    select(RegisteredKey).where(RegisteredKey.pubkey == req.pubkey_hex)
                )
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
                existing = _existing(req.pubkey_hex, req.payload.nonce)
                if existing is not None:
                    return _replay_or_conflict(existing, req.signed_payload, req.signature_b64)
                credits.take(key)
                job = PublishJob(
                    job_id=str(uuid.uuid4()),
                    key_id=key.id,
                    pubkey=req.pubkey_hex,
                    nonce=req.payload.nonce,
                    signed_payload=req.signed_payload,
                    signature=req.signature_b64,
                    record_type=req.payload.type,
                    account_ref=key.account_ref,
                    status=QUEUED,
                )
                db.session.add(job)
                db.session.flush()
                audit(f"key:{req.pubkey_hex[:16]}", "publish:job:accepted", job.job_id)
                job_id = job.job_id
                if cfg["PUBLISH_MODE"] == "immediate":
                    after_commit(lambda: enqueue_publish(job_id))
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
