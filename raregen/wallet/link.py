"""The wallet's side of :mod:`raregen.account_link`: the account services the publisher side
uses (credits ledger, owner mail, purge of expired rows), registered on every app by
:func:`raregen.create_app`."""

from __future__ import annotations

import logging

from raregen.db import db, transaction
from raregen.wallet import credits, mail, purge
from raregen.wallet.models import Account

log = logging.getLogger(__name__)


class WalletAccounts:
    """:class:`raregen.account_link.AccountServices` over the wallet's tables."""

    def charge(self, account_id: int, job_id: str) -> None:
        """:func:`raregen.wallet.credits.charge` (current transaction; raises ``NoCredits``)."""
        credits.charge(account_id, job_id)

    def refund(self, account_id: int, job_id: str) -> bool:
        """:func:`raregen.wallet.credits.refund` (current transaction)."""
        return credits.refund(account_id, job_id)

    def tell_webhook_disabled(
        self, account_id: int, endpoint_id: int, url: str, reason: str
    ) -> None:
        """Mail the account's address that endpoint ``endpoint_id`` (``url``) was disabled
        (the wallet's mail settings). Best effort: a mail failure is logged."""
        with transaction():
            account = db.session.get(Account, account_id)
            email = account.email if account is not None else None
        if email is None:
            return
        try:
            mail.send_notice(
                email,
                "RareGen: a webhook endpoint was disabled",
                "wallet/webhook_disabled_mail.txt",
                url=url,
                reason=reason,
            )
        except Exception:
            log.exception(
                "could not tell %s that webhook endpoint %s was disabled", email, endpoint_id
            )

    def purge_expired(self) -> dict[str, int]:
        """:func:`raregen.wallet.purge.purge_expired` with its defaults."""
        return purge.purge_expired()
