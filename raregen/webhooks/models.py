"""Tables of the webhooks (migration ``0009``; docs/API.md "Webhooks").

Times are naive UTC, as everywhere. An endpoint belongs to exactly one owner: a registered
publishing key (``key_id``) or a wallet account (``account_ref``, ``"acct:<id>"``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from raregen.db import db, utcnow

# event states in the outbox
PENDING, DELIVERED, GAVE_UP = "pending", "delivered", "failed"


class WebhookEndpoint(db.Model):  # type: ignore[name-defined,misc]
    """A callback URL and its signing secret (``whsec_`` + base64 of 24 random bytes)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("registered_keys.id", ondelete="CASCADE"), nullable=True
    )
    account_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(String(200), nullable=True)
    secret: Mapped[str] = mapped_column(String(80), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # consecutive failed attempts (reset by a success); at WEBHOOK_DISABLE_AFTER_FAILURES the
    # endpoint is disabled and its owner told
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        CheckConstraint("(key_id IS NULL) <> (account_ref IS NULL)", name="one_owner"),
        Index("idx_webhook_endpoints_key", "key_id"),
        Index("idx_webhook_endpoints_account", "account_ref"),
    )


class WebhookEvent(db.Model):  # type: ignore[name-defined,misc]
    """One event for one endpoint: the outbox row, written in the transaction of the job's
    state change, delivered (at least once) by :mod:`raregen.webhooks.delivery`.

    ``msg_id`` is the Standard Webhooks ``webhook-id`` (the same on every retry: receivers
    deduplicate on it); ``payload`` the exact JSON text sent.
    """

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    msg_id: Mapped[str] = mapped_column(String(40), nullable=False, unique=True)
    endpoint_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
    )
    job_id: Mapped[str] = mapped_column(String(36), nullable=False)
    event_type: Mapped[str] = mapped_column(String(32), nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    # a delivery loop's claim (a conditional UPDATE); expired claims are taken over
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    __table_args__ = (
        # the due events, oldest first
        Index(
            "idx_webhook_events_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # order per job and endpoint: an event waits for the earlier ones of its job
        Index("idx_webhook_events_order", "endpoint_id", "job_id", "id"),
    )


class WebhookAttempt(db.Model):  # type: ignore[name-defined,misc]
    """One HTTP attempt of an event: the answer's status (None: no answer) or the error."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("webhook_events.id", ondelete="CASCADE"), nullable=False
    )
    endpoint_id: Mapped[int] = mapped_column(Integer, nullable=False)
    attempted_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ok: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    __table_args__ = (
        Index("idx_webhook_attempts_event", "event_id", "id"),
        Index("idx_webhook_attempts_endpoint", "endpoint_id", "id"),
    )


class CommandNonce(db.Model):  # type: ignore[name-defined,misc]
    """A nonce of a signed webhook command (``POST /v1/webhooks``), kept until its ``exp``
    so a command is never run twice."""

    __tablename__ = "webhook_command_nonces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pubkey: Mapped[str] = mapped_column(String(66), nullable=False)
    nonce: Mapped[str] = mapped_column(String(128), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)

    __table_args__ = (
        UniqueConstraint("pubkey", "nonce"),
        Index("idx_webhook_command_nonces_expiry", "expires_at"),
    )
