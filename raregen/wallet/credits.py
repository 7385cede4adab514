"""The append-only credit ledger of accounts (plans, monthly allowance, charges, refunds).

The ledger (``credit_ledger``, rows only ever inserted) is the record; an account's balance
is ``SUM(delta)`` of its rows, kept as a running total in ``accounts.credit_balance`` so that
reading it costs one row whatever the account's history. Every ledger insert goes through
:func:`_post`, which moves the column by the same ``delta`` in the same transaction, with the
account row locked; :func:`check_balances` compares the column with the ledger.

Every plan grants a monthly allowance (``FREE_MONTHLY_CREDITS``, ``PAID_MONTHLY_CREDITS``)
as one ``allowance:<YYYY-MM>`` row, added on the first charge of each UTC calendar month;
unused credits carry over. A publish is one ``publish`` row of -1 for its job id, a failed
job's refund one ``refund`` row of +1.

Race safety: every write first locks the account row (``SELECT ... FOR UPDATE`` on
PostgreSQL; on SQLite ``BEGIN IMMEDIATE`` already serializes writers), then reads the
balance column and inserts. Two concurrent charges on one remaining credit therefore see
the balance one after the other: exactly one succeeds. The column itself is moved by a
relative ``UPDATE ... SET credit_balance = credit_balance + delta``. The schema backs this
up: one ``publish`` and one ``refund`` row per job, one allowance row per account and month.

Services add and flush; the caller's :func:`raregen.db.transaction` commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from flask import current_app
from sqlalchemy import Select, func, literal_column, select, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ColumnClause

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

# the predicate of the partial unique index uq_credit_ledger_allowance, spelled as in the
# index: SQLite uses a partial index only when the query repeats its WHERE term verbatim
_ALLOWANCE_ROWS: ColumnClause[Any] = literal_column("credit_ledger.reason LIKE 'allowance:%'")


def monthly_allowance(plan: str) -> int:
    """Credits a plan grants each calendar month (from configuration)."""
    cfg = current_app.config
    return int(cfg["PAID_MONTHLY_CREDITS"] if plan == PLAN_PAID else cfg["FREE_MONTHLY_CREDITS"])


def allowance_reason(now: datetime) -> str:
    """The ledger reason of the allowance of ``now``'s UTC month: ``allowance:YYYY-MM``."""
    return f"{ALLOWANCE_PREFIX}{now:%Y-%m}"


def balance(account_id: int) -> int:
    """The account's balance in credits: its ``credit_balance`` column (one row read).

    Equal to ``SUM(delta)`` of its ledger rows (see :func:`check_balances`); may be negative
    after an operator's correction. 0 for an unknown account.
    """
    total = db.session.scalar(select(Account.credit_balance).where(Account.id == account_id))
    return int(total or 0)


def _has_allowance(account_id: int, reason: str) -> bool:
    return (
        db.session.scalar(
            select(CreditEntry.id).where(
                CreditEntry.account_id == account_id,
                CreditEntry.reason == reason,
                _ALLOWANCE_ROWS,
            )
        )
        is not None
    )


def available(account: Account, *, now: datetime | None = None) -> int:
    """What the account can spend now, in credits: its balance plus this month's allowance
    if that is not granted yet.

    Read-only: the account's row and one probe of the allowance index (the allowance row
    itself is written by the month's first charge). ``now`` (naive UTC) picks the month.
    """
    now = now or utcnow()
    total = balance(account.id)
    if not _has_allowance(account.id, allowance_reason(now)):
        total += monthly_allowance(account.plan)
    return total


def _lock(account_id: int) -> Account | None:
    return db.session.scalar(
        select(Account)
        .where(Account.id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _post(account: Account, delta: int, reason: str, job_id: str | None = None) -> int:
    """Insert one ledger row and move ``account.credit_balance`` by ``delta``; the new balance.

    The caller holds the account row lock (:func:`_lock`). The row goes in first, so a
    unique-constraint refusal leaves the column untouched (and the transaction fails).
    """
    db.session.add(CreditEntry(account_id=account.id, delta=delta, reason=reason, job_id=job_id))
    db.session.flush()
    new_balance = db.session.execute(
        update(Account)
        .where(Account.id == account.id)
        .values(credit_balance=Account.credit_balance + delta)
        .returning(Account.credit_balance)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    set_committed_value(account, "credit_balance", new_balance)
    db.session.expire(account, ["updated_at"])  # stamped by the UPDATE
    return int(new_balance)


def _grant_allowance(account: Account, now: datetime) -> None:
    reason = allowance_reason(now)
    if not _has_allowance(account.id, reason):
        amount = monthly_allowance(account.plan)
        _post(account, amount, reason)
        audit(
            "system",
            "credits:account:allowance",
            account_ref(account.id),
            amount=amount,
            reason=reason,
        )


def charge(account_id: int, job_id: str, *, now: datetime | None = None) -> None:
    """Take one credit from the account for job ``job_id`` (current transaction).

    Grants the month's allowance first if this is the month's first charge (``now``, naive
    UTC, picks the month). Locks the account row, then reads its balance column: no ledger
    sum is computed.

    Raises:
        NoCredits: 402 ``NO_CREDITS`` when the balance is 0 or less (or the account is
            unknown).
        sqlalchemy.exc.IntegrityError: this job was charged before (one ``publish`` row per
            job).
    """
    now = now or utcnow()
    account = _lock(account_id)
    if account is None:
        raise NoCredits("This key's account does not exist any more.")
    _grant_allowance(account, now)
    if account.credit_balance <= 0:
        raise NoCredits(
            "Your account has no publishing credit left; credits come back with next "
            "month's allowance, or ask for more."
        )
    _post(account, -1, REASON_PUBLISH, job_id)


def refund(account_id: int, job_id: str) -> bool:
    """Give back the credit job ``job_id`` took, once (current transaction).

    Returns:
        True if a refund row was added (and the balance raised by 1); False if the account
        is unknown, the job took no credit from this account or was refunded before.
    """
    account = _lock(account_id)
    if account is None:
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
    _post(account, 1, REASON_REFUND, job_id)
    audit("worker", "credits:job:refunded", job_id, account=account_ref(account_id))
    return True


def grant(account_id: int, amount: int, note: str | None = None, *, actor: str = "cli") -> int:
    """Add ``amount`` credits (may be negative to correct a mistake) with an operator note.

    Args:
        amount: credits, non-zero; the ledger row's ``delta``.
        note: kept in the row's reason as ``grant:<note>`` (reason cut at 120 characters).

    Returns:
        The new balance in credits (may be negative).

    Raises:
        RequestError: ``BAD_AMOUNT`` for 0; ``BAD_ACCOUNT`` for an unknown account.
    """
    if amount == 0:
        raise RequestError("amount must not be 0", code="BAD_AMOUNT", field="amount")
    account = _lock(account_id)
    if account is None:
        raise RequestError("no such account", code="BAD_ACCOUNT", field="account")
    reason = f"{GRANT_PREFIX}:{note}" if note else GRANT_PREFIX
    new_balance = _post(account, amount, reason[:120])
    audit(actor, "credits:account:granted", account_ref(account_id), amount=amount, note=note)
    return new_balance


class BalanceMismatch(NamedTuple):
    """An account whose ``credit_balance`` column differs from its ledger's sum (credits)."""

    account_id: int
    email: str
    column: int
    ledger: int


def _mismatch_query(account_id: int | None = None) -> Select[Any]:
    sums = select(CreditEntry.account_id, func.sum(CreditEntry.delta).label("total"))
    accounts = select(Account.id, Account.email, Account.credit_balance)
    if account_id is not None:
        sums = sums.where(CreditEntry.account_id == account_id)
        accounts = accounts.where(Account.id == account_id)
    totals = sums.group_by(CreditEntry.account_id).subquery()
    total = func.coalesce(totals.c.total, 0)
    return (
        accounts.add_columns(total)
        .outerjoin(totals, totals.c.account_id == Account.id)
        .where(Account.credit_balance != total)
        .order_by(Account.id)
    )


def check_balances(account_id: int | None = None) -> list[BalanceMismatch]:
    """Accounts whose ``credit_balance`` is not ``SUM(delta)`` of their ledger rows.

    One read-only statement (a consistent snapshot on both databases: a ledger row and its
    column update commit together, so concurrent charges cause no false report). It reads
    the whole ledger: an operator's check, not for the request path.

    Args:
        account_id: check only this account (None: every account).

    Returns:
        The mismatches, by account id; empty when all agree. An account without ledger rows
        agrees when its column is 0.
    """
    rows = db.session.execute(_mismatch_query(account_id))
    return [BalanceMismatch(int(i), str(e), int(c), int(t)) for i, e, c, t in rows]


def repair_balances(*, actor: str = "cli") -> list[BalanceMismatch]:
    """Set every mismatched ``credit_balance`` to its ledger's sum (current transaction).

    The ledger is the record, so the column is what gets corrected. Each account is locked
    and checked again before it is written, so a concurrent charge is never overwritten;
    each repair is audited (``credits:account:balance-repaired``).

    Returns:
        The mismatches repaired, with the values seen under the lock (``column`` before,
        ``ledger`` after).
    """
    repaired: list[BalanceMismatch] = []
    for found in check_balances():
        account = _lock(found.account_id)
        if account is None:
            continue
        for mismatch in check_balances(account.id):
            db.session.execute(
                update(Account)
                .where(Account.id == account.id)
                .values(credit_balance=mismatch.ledger)
                .execution_options(synchronize_session=False)
            )
            set_committed_value(account, "credit_balance", mismatch.ledger)
            db.session.expire(account, ["updated_at"])
            audit(
                actor,
                "credits:account:balance-repaired",
                account_ref(account.id),
                column=mismatch.column,
                ledger=mismatch.ledger,
            )
            repaired.append(mismatch)
    db.session.flush()
    return repaired
