"""Purge of expired wallet challenges: email one-time codes and key-registration challenges.

Both tables only grow otherwise: every code request adds an ``otp_challenges`` row (with the
client's IP) and every ``POST /wallet/api/challenge`` a ``key_challenges`` row. A row is of
no use once it has expired (``expires_at`` in the past): it can no longer be accepted, and
a used row (``used_at`` set) keeps its ``expires_at``, so it expires the same way. Rate
limits are counted in the rate-limit storage (Redis), not in these rows, and sign-ins are recorded
by the audit log, so deleting the rows changes no rule (docs/PROTOCOL.md §7). A browser whose
session still names a purged code is told to ask for a new one (``CODE_EXPIRED``).

The grace keeps rows for a while after they expired (default 24 hours: recent sign-in
attempts stay visible to an operator investigating abuse, and a request that read a row
just before it expired never races the purge).

Meant to run periodically (any interval; idempotent, and safe to run twice at once), and by
hand: ``flask --app app accounts purge-expired [--grace-hours H]``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete

from raregen.audit import audit
from raregen.db import db, transaction, utcnow
from raregen.wallet.models import KeyChallenge, OtpChallenge

__all__ = ["DEFAULT_GRACE", "purge_expired"]

log = logging.getLogger(__name__)

#: How long an expired row is kept before :func:`purge_expired` deletes it.
DEFAULT_GRACE = timedelta(hours=24)


def _deleted(statement: Any) -> int:
    return int(cast("CursorResult[Any]", db.session.execute(statement)).rowcount)


def purge_expired(
    now: datetime | None = None, grace: timedelta = DEFAULT_GRACE, *, actor: str = "system"
) -> dict[str, int]:
    """Delete the one-time-code and key-challenge rows that expired more than ``grace`` ago.

    Both deletions run in one database transaction (:func:`raregen.db.transaction`): either
    both tables are purged or neither is. Needs an application context.

    Args:
        now: the current time, naive UTC (the form stored in every table); default
            :func:`raregen.db.utcnow`.
        grace: how long after ``expires_at`` a row is kept (default 24 hours; must not be
            negative). A row is deleted when ``expires_at < now - grace``.
        actor: who asked (``cli`` for the operator command), for the audit entry
            ``wallet:challenges:purged`` written in the same transaction when rows were
            deleted.

    Returns:
        Rows deleted per table: ``{"otp_challenges": n, "key_challenges": m}``.

    Raises:
        ValueError: ``grace`` is negative, or ``now`` carries a time zone.
        sqlalchemy.exc.SQLAlchemyError: the database failed; nothing was deleted.
    """
    if grace < timedelta(0):
        raise ValueError("grace must not be negative")
    if now is not None and now.tzinfo is not None:
        raise ValueError("now must be naive UTC (as stored), not time-zone aware")
    cutoff = (now or utcnow()) - grace
    with transaction():
        otp = _deleted(
            delete(OtpChallenge)
            .where(OtpChallenge.expires_at < cutoff)
            .execution_options(synchronize_session=False)
        )
        keys = _deleted(
            delete(KeyChallenge)
            .where(KeyChallenge.expires_at < cutoff)
            .execution_options(synchronize_session=False)
        )
        if otp or keys:
            audit(
                actor,
                "wallet:challenges:purged",
                None,
                otp_challenges=otp,
                key_challenges=keys,
                before=cutoff.isoformat(),
            )
    counts = {"otp_challenges": otp, "key_challenges": keys}
    if otp or keys:
        log.info("purged expired wallet challenges before %s: %s", cutoff.isoformat(), counts)
    return counts
