"""Writing webhook events into the outbox, in the transaction of the job's state change.

Every place a job becomes ``sent``, ``confirmed`` or ``failed`` calls :func:`emit` with the
rows it changed, inside its own transaction, so the event exists if and only if the state
change committed: a crash after the commit loses nothing (the delivery loop finds the row),
a rollback leaves no event behind. The places: ``pipeline.mark_job_sent`` and
``pipeline._fail`` (immediate mode, the reaper's settlements), ``batch.statements.mark_sent``
and ``fail_jobs`` (batch mode, claim-time failures), ``batch.settle.settle_packed`` (packed
mode), ``confirm.mark_confirmed`` (confirmations, also by the reaper),
``proofs.capture.revert_txids`` (a reorganisation: ``job.reorged``).

Cost when nobody listens: nothing. A job carries ``notify`` (copied at acceptance from its
key's ``webhooks`` flag); :func:`emit` ignores rows without it before touching the database.
A row with it costs one ``INSERT ... SELECT`` on the owner indexes of
``webhook_endpoints``, one event per enabled endpoint of the key and of its wallet account.

``reorged``: :data:`REORGED` is written when a confirmed job's block left the best chain
and the job went back to ``sent`` (``raregen.proofs.capture.revert_txids``); its next
``job.confirmed`` follows once it is mined again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, bindparam, cast, insert, literal, or_, select

from raregen.db import after_commit, db, utcnow
from raregen.publish.models import PublishJob
from raregen.webhooks import delivery
from raregen.webhooks.models import PENDING, WebhookEndpoint, WebhookEvent

SENT, CONFIRMED, FAILED, REORGED = "job.sent", "job.confirmed", "job.failed", "job.reorged"
EVENT_TYPES = (SENT, CONFIRMED, FAILED, REORGED)

#: The job columns :func:`emit` reads: add them to a statement's RETURNING clause.
JOB_FIELDS = (
    PublishJob.job_id,
    PublishJob.key_id,
    PublishJob.account_ref,
    PublishJob.notify,
    PublishJob.txid,
    PublishJob.vout,
    PublishJob.block_hash,
    PublishJob.block_height,
    PublishJob.error_code,
    PublishJob.error_detail,
)

_STATUS = {SENT: "sent", CONFIRMED: "confirmed", FAILED: "failed", REORGED: "sent"}


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds") + "Z"


def event_body(event_type: str, job: Any, at: datetime) -> str:
    """The JSON text of an event (Standard Webhooks payload shape: ``type``, ``timestamp``,
    ``data``). ``data`` holds the job's public facts after the change: ``jobId``, ``status``,
    ``txid``, ``vout``, ``blockHash``, ``blockHeight``, ``errorCode``, ``errorDetail``."""
    data = {
        "jobId": job.job_id,
        "status": _STATUS[event_type],
        "txid": job.txid if event_type != FAILED else None,
        "vout": job.vout if event_type != FAILED else None,
        "blockHash": job.block_hash if event_type == CONFIRMED else None,
        "blockHeight": job.block_height if event_type == CONFIRMED else None,
        "errorCode": job.error_code if event_type == FAILED else None,
        "errorDetail": job.error_detail if event_type == FAILED else None,
    }
    body = {"type": event_type, "timestamp": _iso(at), "data": data}
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def new_msg_id() -> str:
    """A fresh ``webhook-id``: ``msg_`` and 32 hex digits."""
    return "msg_" + uuid.uuid4().hex


_INSERT = insert(WebhookEvent).from_select(
    [
        "msg_id",
        "endpoint_id",
        "job_id",
        "event_type",
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
    ],
    select(
        # one msg_id per endpoint: the endpoint id makes the given prefix unique
        bindparam("msg_prefix", type_=String)
        .concat(cast(WebhookEndpoint.id, String))
        .label("msg_id"),
        WebhookEndpoint.id,
        bindparam("job_id", type_=String),
        bindparam("event_type", type_=String),
        bindparam("payload", type_=String),
        literal(PENDING, String),
        literal(0),
        bindparam("now"),
        bindparam("now"),
    ).where(
        WebhookEndpoint.enabled.is_(True),
        or_(
            and_(
                WebhookEndpoint.key_id.is_not(None),
                WebhookEndpoint.key_id == bindparam("key_id"),
            ),
            and_(
                WebhookEndpoint.account_ref.is_not(None),
                WebhookEndpoint.account_ref == bindparam("account_ref"),
            ),
        ),
    ),
)


def emit(event_type: str, jobs: Iterable[Any]) -> int:
    """Write event ``event_type`` for each of ``jobs`` that has ``notify`` set, for every
    enabled endpoint of its key and of its wallet account (current transaction; the caller
    commits). After the commit the delivery loop is nudged.

    Args:
        event_type: one of :data:`EVENT_TYPES`.
        jobs: ORM jobs or rows with the attributes of :data:`JOB_FIELDS`, as they are after
            the change.

    Returns:
        How many jobs had ``notify`` set (events may be fewer: endpoints disabled or removed).
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    flagged = [job for job in jobs if getattr(job, "notify", False)]
    if not flagged:
        return 0
    now = utcnow()
    params = [
        {
            "msg_prefix": f"msg_{uuid.uuid4().hex[:28]}_",
            "job_id": job.job_id,
            "event_type": event_type,
            "payload": event_body(event_type, job, now),
            "now": now,
            "key_id": job.key_id if job.key_id is not None else -1,
            "account_ref": job.account_ref or "",
        }
        for job in flagged
    ]
    # one call for all the jobs (the driver's executemany: a block's confirmations are one
    # round of statements, not one call per job)
    db.session.connection().execute(_INSERT, params)
    after_commit(_nudge)
    return len(flagged)


def _nudge() -> None:
    delivery.nudge()
