"""Publishing credits of a registered key (docs/PROTOCOL.md §2: 402 NO_CREDITS).

Which balance pays depends on the key:

* ``account_ref`` ``"acct:<id>"`` (keys registered through the wallet): the account's
  append-only credit ledger and its running balance ``accounts.credit_balance``
  (kept by the wallet, reached through :func:`raregen.account_link.services`); the key's
  ``credits`` column is not used.
* otherwise ``credits`` set (operator or API keys): that column, decremented in place.
* otherwise (``credits`` None): unlimited.

One credit is taken in the transaction that stores the job, and given back once when the
job ends ``failed``.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, update

from raregen.account_link import parse_account_ref
from raregen.account_link import services as account_services
from raregen.db import db
from raregen.errors import NoCredits
from raregen.publish.models import RegisteredKey


def take(key: RegisteredKey, job_id: str) -> None:
    """Take one credit for job ``job_id`` from what pays for ``key`` (current transaction).

    Raises:
        NoCredits: nothing left. Race-safe: the account row is locked before its balance
            (``accounts.credit_balance``) is read and moved, and a key's column is
            decremented by a conditional UPDATE, so two concurrent publishes with one credit
            left never both succeed.
    """
    account_id = parse_account_ref(key.account_ref)
    if account_id is not None:
        account_services().charge(account_id, job_id)
        return
    if key.credits is None:
        return
    result = db.session.execute(
        update(RegisteredKey)
        .where(RegisteredKey.id == key.id, RegisteredKey.credits > 0)
        .values(credits=RegisteredKey.credits - 1)
        .execution_options(synchronize_session=False)
    )
    if cast("CursorResult[Any]", result).rowcount != 1:
        raise NoCredits("This key's account has no publishing credit left.")


def refund(key_id: int | None, job_id: str) -> None:
    """Give back the credit of job ``job_id``, which ended ``failed`` (current transaction).

    For account keys this is idempotent per job: the ledger holds at most one ``refund`` row
    per job, and only a job that took a ledger credit is refunded. A key's ``credits``
    column is incremented as before (the pipeline calls this once, on the transition to
    ``failed``).
    """
    if key_id is None:
        return
    key = db.session.get(RegisteredKey, key_id)
    if key is None:
        return
    account_id = parse_account_ref(key.account_ref)
    if account_id is not None:
        account_services().refund(account_id, job_id)
        return
    if key.credits is None:
        return
    db.session.execute(
        update(RegisteredKey)
        .where(RegisteredKey.id == key_id, RegisteredKey.credits.is_not(None))
        .values(credits=RegisteredKey.credits + 1)
        .execution_options(synchronize_session=False)
    )
