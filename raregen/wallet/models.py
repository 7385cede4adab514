"""Tables of the wallet (component B): accounts, one-time codes, the credit ledger, backups,
key-registration challenges (docs/PROTOCOL.md §7), signed-in sessions.

Times are naive UTC. ``accounts.updated_at`` is also kept by a database trigger (migration
``0002``). The credit ledger is append-only (a trigger refuses UPDATE) and is the record of
an account's credits; ``accounts.credit_balance`` (migration ``0005``) keeps its running sum,
updated in the transaction of every ledger insert (``raregen.wallet.credits``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from raregen.db import db, utcnow

PLAN_FREE, PLAN_PAID = "free", "paid"
PLANS = (PLAN_FREE, PLAN_PAID)

# credit_ledger.reason values; "allowance:<YYYY-MM>" and "grant:<note>" carry a suffix
REASON_PUBLISH, REASON_REFUND = "publish", "refund"
ALLOWANCE_PREFIX, GRANT_PREFIX = "allowance:", "grant"

OTP_PURPOSE_SIGNIN = "signin"


class Account(db.Model):  # type: ignore[name-defined,misc]
    """A wallet user, known by a verified email address (stored lowercased).

    ``credit_balance`` (credits, may be negative after an operator's correction) is always
    ``SUM(credit_ledger.delta)`` of the account: only :mod:`raregen.wallet.credits` changes
    it, in the transaction that inserts the ledger row, with the account row locked.
    ``raregen.wallet.credits.check_balances`` compares the two.
    """

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), nullable=False, unique=True)
    plan: Mapped[str] = mapped_column(String(16), nullable=False, default=PLAN_FREE)
    credit_balance: Mapped[int] = mapped_column(
        BigInteger, nullable=False, default=0, server_default="0"
    )
    #: may use the operator console at /ops (migration 0010; ``accounts operator EMAIL``)
    is_operator: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime, nullable=False, default=utcnow, onupdate=utcnow
    )

    __table_args__ = (
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        CheckConstraint("plan IN ('free', 'paid')", name="plan_known"),
    )


class OtpChallenge(db.Model):  # type: ignore[name-defined,misc]
    """One emailed code. Only an HMAC of the code is stored (``raregen.wallet.otp``)."""

    __tablename__ = "otp_challenges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), nullable=False)
    purpose: Mapped[str] = mapped_column(String(16), nullable=False, default=OTP_PURPOSE_SIGNIN)
    code_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    tries: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (Index("idx_otp_challenges_email", "email", "created_at"),)


class CreditEntry(db.Model):  # type: ignore[name-defined,misc]
    """One append-only movement of an account's publishing credits (``delta``: +n or -1).

    Idempotency is enforced by the schema: one ``publish`` and one ``refund`` row per job
    (unique ``job_id, reason``) and one ``allowance:<month>`` row per account and month.
    """

    __tablename__ = "credit_ledger"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), nullable=False)
    delta: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[str] = mapped_column(String(120), nullable=False)
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        UniqueConstraint("job_id", "reason"),
        Index("idx_credit_ledger_account", "account_id"),
        Index(
            "uq_credit_ledger_allowance",
            "account_id",
            "reason",
            unique=True,
            postgresql_where=text("reason LIKE 'allowance:%'"),
            sqlite_where=text("reason LIKE 'allowance:%'"),
        ),
    )


class Backup(db.Model):  # type: ignore[name-defined,misc]
    """One version of an account's wallet backup, encrypted in the browser.

    The server stores what it is given: AES-GCM ciphertext (base64), the KDF name and
    parameters (with salt) and the cipher parameters (with IV). It never sees the password.
    """

    __tablename__ = "backups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    ciphertext: Mapped[str] = mapped_column(Text, nullable=False)
    kdf: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    cipher: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    identity_pubkey: Mapped[str] = mapped_column(String(66), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("account_id", "version"),)


class KeyChallenge(db.Model):  # type: ignore[name-defined,misc]
    """A server challenge the browser signs to prove it holds the keys it registers.

    Kept in the database (not the cookie) so that it is single use even if an old session
    cookie is replayed.
    """

    __tablename__ = "key_challenges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), nullable=False)
    challenge: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)


class WalletSession(db.Model):  # type: ignore[name-defined,misc]
    """One signed-in browser session (migration ``0006``; :mod:`raregen.wallet.session`).

    The signed session cookie carries a random token (32 bytes, URL-safe base64); the row is
    keyed by its SHA-256 (hex), so the table alone cannot be turned back into cookies. The
    row is deleted at sign-out; a session is valid only while its row exists and
    ``expires_at`` (sign-in time + ``SESSION_LIFETIME_SECONDS``, naive UTC) is in the future.
    """

    __tablename__ = "wallet_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)

    __table_args__ = (Index("idx_wallet_sessions_account", "account_id", "expires_at"),)
