"""Accounts: email addresses, plans, and the ``acct:<id>`` reference the publisher knows.

Services add and flush; the caller's :func:`raregen.db.transaction` commits.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

# the account reference lives below the publisher and the wallet (raregen.account_link);
# named here too because the wallet's modules and its tests use it as accounts.account_ref
from raregen.account_link import ACCOUNT_REF_PREFIX as ACCOUNT_REF_PREFIX
from raregen.account_link import account_ref as account_ref
from raregen.account_link import parse_account_ref as parse_account_ref
from raregen.audit import audit
from raregen.db import db
from raregen.errors import NotFound, RequestError
from raregen.wallet.models import PLANS, Account

_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def normalize_email(raw: object) -> str:
    """The address as stored: trimmed and lowercased.

    Raises:
        RequestError: ``BAD_EMAIL`` (field ``email``) if it does not look like an address
            (one ``@``, a dot in the domain, no spaces, at most 254 characters).
    """
    email = raw.strip().lower() if isinstance(raw, str) else ""
    if len(email) > 254 or not _EMAIL_RE.fullmatch(email):
        raise RequestError("Enter a valid email address.", code="BAD_EMAIL", field="email")
    return email


def get(account_id: int) -> Account | None:
    """The account with this id, or None."""
    return db.session.get(Account, account_id)


def by_email(email: str) -> Account | None:
    """The account with this (already normalized) address, or None."""
    return db.session.scalar(select(Account).where(Account.email == email))


def get_or_create(email: str) -> Account:
    """The account of a verified ``email`` (normalized), created on first sign-in."""
    account = by_email(email)
    if account is not None:
        return account
    try:
        with db.session.begin_nested():
            account = Account(email=email)
            db.session.add(account)
            db.session.flush()
    except IntegrityError:  # created concurrently by another sign-in of the same address
        account = by_email(email)
        assert account is not None
        return account
    audit(f"account:{account.id}", "wallet:account:created", account_ref(account.id))
    return account


def set_plan(email: str, plan: str, *, actor: str = "cli") -> Account:
    """Put the account of ``email`` on ``plan`` (``free`` or ``paid``).

    Raises:
        RequestError: ``BAD_PLAN`` for an unknown plan.
        NotFound: no account has this address.
    """
    if plan not in PLANS:
        raise RequestError(f"plan must be one of {', '.join(PLANS)}", code="BAD_PLAN", field="plan")
    account = require_by_email(email)
    if account.plan != plan:
        audit(actor, "wallet:account:plan", account_ref(account.id), old=account.plan, new=plan)
        account.plan = plan
        db.session.flush()
    return account


def set_operator(email: str, operator: bool, *, actor: str = "cli") -> Account:
    """Grant (``operator`` True) or revoke the operator role of the account of ``email``:
    operators may use the console at ``/ops`` (:mod:`raregen.ops`). Audited as
    ``wallet:account:operator`` when the role changes.

    Raises:
        RequestError: ``BAD_EMAIL``; NotFound: no account has this address.
    """
    account = require_by_email(email)
    if bool(account.is_operator) != operator:
        audit(actor, "wallet:account:operator", account_ref(account.id), operator=operator)
        account.is_operator = operator
        db.session.flush()
    return account


def require_by_email(email: str) -> Account:
    """The account of ``email`` (normalized here).

    Raises:
        RequestError: ``BAD_EMAIL``; NotFound: no such account.
    """
    account = by_email(normalize_email(email))
    if account is None:
        raise NotFound("No account has this email address.", field="email")
    return account


def list_all() -> list[Account]:
    """Every account, oldest first."""
    return list(db.session.scalars(select(Account).order_by(Account.id)))
