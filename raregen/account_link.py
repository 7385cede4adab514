"""What the publisher side asks of the wallet's accounts, without importing the wallet.

Keys registered through the wallet carry the reference ``"acct:<id>"`` of the account that
owns them (:func:`account_ref`). Publisher-side code (credits, the internal endpoints,
webhooks, the worker's periodic jobs) needs a few things done for such an account: take or
give back a ledger credit, tell its owner by mail, purge the wallet's expired one-time rows.
It asks through :class:`AccountServices`, which the wallet implements
(:class:`raregen.wallet.link.WalletAccounts`) and :func:`raregen.create_app` registers on
every app (:func:`register`), whatever its role: both processes share one database.

This module sits below both the publisher and the wallet (docs/ARCHITECTURE.md) and imports
neither.
"""

from __future__ import annotations

import re
from typing import Protocol

from flask import Flask, current_app

ACCOUNT_REF_PREFIX = "acct:"
_REF_RE = re.compile(r"acct:([1-9][0-9]{0,17})")
_EXTENSION = "raregen.account_services"


def account_ref(account_id: int) -> str:
    """The publisher's reference to an account: ``"acct:<id>"``."""
    return f"{ACCOUNT_REF_PREFIX}{account_id}"


def parse_account_ref(ref: str | None) -> int | None:
    """The account id of an ``"acct:<id>"`` reference; None for any other reference."""
    match = _REF_RE.fullmatch(ref or "")
    return int(match.group(1)) if match else None


class AccountServices(Protocol):
    """What the publisher side needs of the wallet's accounts (all in the current app
    context; the ledger methods in the caller's database transaction)."""

    def charge(self, account_id: int, job_id: str) -> None:
        """Take one credit from the account for job ``job_id``.

        Raises:
            raregen.errors.NoCredits: 402 ``NO_CREDITS``, nothing left (or no such account).
        """
        ...

    def refund(self, account_id: int, job_id: str) -> bool:
        """Give back the credit job ``job_id`` took, once. True if a credit was given back."""
        ...

    def tell_webhook_disabled(
        self, account_id: int, endpoint_id: int, url: str, reason: str
    ) -> None:
        """Tell the account's owner by mail that webhook endpoint ``endpoint_id`` (``url``)
        was disabled for ``reason``. Best effort: never raises for a mail failure."""
        ...

    def purge_expired(self) -> dict[str, int]:
        """Delete the wallet's expired one-time rows; how many of each kind went."""
        ...


def register(app: Flask, services: AccountServices) -> None:
    """Make ``services`` the account services of ``app`` (called once by the app factory)."""
    app.extensions[_EXTENSION] = services


def services() -> AccountServices:
    """The account services of the current app.

    Raises:
        RuntimeError: outside an app context, or on an app built without them (every app
            :func:`raregen.create_app` builds has them).
    """
    found = current_app.extensions.get(_EXTENSION)
    if found is None:
        raise RuntimeError("no account services registered on this app (raregen.create_app)")
    return found  # type: ignore[no-any-return]
