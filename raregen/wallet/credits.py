"""The append-only credit ledger of accounts (plans, monthly allowance, charges, refunds).

An account's balance is ``SUM(delta)`` of its ``credit_ledger`` rows; rows are only ever
inserted. Every plan grants a monthly allowance (``FREE_MONTHLY_CREDITS``,
``PAID_MONTHLY_CREDITS``) as one ``allowance:<YYYY-MM>`` row, added on the first charge of
each UTC calendar month; unused credits carry over. A publish is one ``publish`` row of -1
for its job id, a failed job's refund one ``refund`` row of +1.

Race safety: every write first locks the account row (``SELECT ... FOR UPDATE`` on
PostgreSQL; on SQLite ``BEGIN IMMEDIATE`` already serializes writers), then reads the sum
and inserts. Two concurrent charges on one remaining credit therefore see the balance one
after the other: exactly one succeeds. The schema backs this up: one ``publish`` and one
``refund`` row per job, one allowance row per account and month.

Services add and flush; the caller's :func:`raregen.db.transaction` commits.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy import func, select

from raregen.audit import audit
from raregen.db import db, utcnow
from raregen.errors import NoCredits, RequestError
from raregen.wallet.accounts import account_ref
from raregen.wallet.models import (
    ALLOWANCE_PREFIX,
    GRANT_PREFIX,
    PLAN_PAID,
    REASON_PUBLISH,
    REASON_REFUND,
    Account,
    CreditEntry,
)


def monthly_allowance(plan: str) -> int:
    """Credits a plan grants each calendar month (from configuration)."""
    cfg = current_app.config
    return int(cfg["PAID_MONTHLY_CREDITS"] if plan == PLAN_PAID else cfg["FREE_MONTHLY_CREDITS"])


def allowance_reason(now: datetime) -> str:
    """The ledger reason of the allowance of ``now``'s UTC month: ``allowance:YYYY-MM``."""
    return f"{ALLOWANCE_PREFIX}{now:%Y-%m}"


def balance(account_id: int) -> int:
    """The sum of the account's ledger rows (credits it can spend now)."""
    total = db.session.scalar(
        select(func.coalesce(func.sum(CreditEntry.delta), 0)).where(
            CreditEntry.account_id == account_id
        )
    )
    return int(total or 0)


def _has_row(account_id: int, reason: str) -> bool:
    return (
        db.session.scalar(
            select(CreditEntry.id).where(
                CreditEntry.account_id == account_id, CreditEntry.reason == reason
            )
        )
        is not None
    )


def available(account: Account, *, now: datetime | None = None) -> int:
    """What the account can spend: its balance plus this month's allowance if not yet granted.

    Read-only (the allowance row itself is written by the month's first charge).
    """
    now = now or utcnow()
    total = balance(account.id)
    if not _has_row(account.id, allowance_reason(now)):
        total += monthly_allowance(account.plan)
    return total


def _lock(account_id: int) -> Account | None:
    return db.session.scalar(
        select(Account)
        .where(Account.id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _grant_allowance(account: Account, now: datetime) -> None:
    reason = allowance_reason(now)
    if not _has_row(account.id, reason):
        db.session.add(
            CreditEntry(account_id=account.id, delta=monthly_allowance(account.plan), reason=reason)
        )
        db.session.flush()


def charge(account_id: int, job_id: str, *, now: datetime | None = None) -> None:
    """Take one credit from the account for job ``job_id`` (current transaction).

    Grants the month's allowance first if this is the month's first charge.

    Raises:
        NoCredits: 402 ``NO_CREDITS`` when the balance is 0 (or the account is unknown).
    """
    now = now or utcnow()
    account = _lock(account_id)
    if account is None:
        raise NoCredits("This key's account does not exist any more.")
    _grant_allowance(account, now)
    if balance(account_id) <= 0:
        raise NoCredits(
            "Your account has no publishing credit left; credits come back with next "
            "month's allowance, or ask for more."
        )
    db.session.add(
        CreditEntry(account_id=account_id, delta=-1, reason=REASON_PUBLISH, job_id=job_id)
    )
    db.session.flush()


def refund(account_id: int, job_id: str) -> bool:
    """Give back the credit job ``job_id`` took, once (current transaction).

    Returns:
        True if a refund row was added; False if the job took no credit from this account
        or was refunded before.
    """
    if _lock(account_id) is None:
        return False
    rows = set(
        db.session.scalars(
            select(CreditEntry.reason).where(
                CreditEntry.account_id == account_id, CreditEntry.job_id == job_id
            )
        )
    )
    if REASON_PUBLISH not in rows or REASON_REFUND in rows:
        return False
    db.session.add(CreditEntry(account_id=account_id, delta=1, reason=REASON_REFUND, job_id=job_id))
    db.session.flush()
    audit("worker", "credits:job:refunded", job_id, account=account_ref(account_id))
    return True


def grant(account_id: int, amount: int, note: str | None = None, *, actor: str = "cli") -> int:
    """Add ``amount`` credits (may be negative to correct a mistake) with an operator note.

    Returns:
        The new balance.

    Raises:
        RequestError: ``BAD_AMOUNT`` for 0.
    """
    if amount == 0:
        raise RequestError("amount must not be 0", code="BAD_AMOUNT", field="amount")
    if _lock(account_id) is None:
        raise RequestError("no such account", code="BAD_ACCOUNT", field="account")
    reason = f"{GRANT_PREFIX}:{note}" if note else GRANT_PREFIX
    db.session.add(CreditEntry(account_id=account_id, delta=amount, reason=reason[:120]))
    db.session.flush()
    audit(actor, "credits:account:granted", account_ref(account_id), amount=amount, note=note)
    return balance(account_id)
