"""Publishing credits of a registered key (DESIGN.md §2: 402 NO_CREDITS).

A key with ``credits`` None publishes without limit (operator keys). Otherwise one credit is
taken in the transaction that stores the job, and given back when the job ends ``failed``.
"""

from __future__ import annotations

from sqlalchemy import update

from raregen.db import db
from raregen.errors import NoCredits
from raregen.publish.models import RegisteredKey


def take(key: RegisteredKey) -> None:
    """Take one credit from ``key`` in the current transaction.

    Raises:
        NoCredits: the key has no credit left (the conditional UPDATE matched no row, so two
            concurrent publishes with one credit left never both succeed).
    """
    if key.credits is None:
        return
    result = db.session.execute(
        update(RegisteredKey)
        .where(RegisteredKey.id == key.id, RegisteredKey.credits > 0)
        .values(credits=RegisteredKey.credits - 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise NoCredits("This key's account has no publishing credit left.")


def refund(key_id: int | None, job_id: str) -> None:
    """Give back the credit of job ``job_id``, which ended ``failed`` (current transaction)."""
    if key_id is None:
        return
    db.session.execute(
        update(RegisteredKey)
        .where(RegisteredKey.id == key_id, RegisteredKey.credits.is_not(None))
        .values(credits=RegisteredKey.credits + 1)
        .execution_options(synchronize_session=False)
    )
