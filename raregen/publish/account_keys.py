"""Keys of wallet accounts, as the publisher sees them.

The wallet (component B) registers the keys an account proved it holds and publishes on the
account's behalf. Both go through these two services, called in-process (``ROLE=all``) or
from the publisher's internal endpoints (``ROLE=publisher``, :mod:`raregen.publish.internal_api`).
An account is known here only by its reference ``"acct:<id>"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

import raregen.signing as signing
from raregen.audit import audit
from raregen.db import db, transaction
from raregen.errors import KeyRefused, KeyTaken, RareGenError, RequestError
from raregen.publish import intake
from raregen.publish.keys import PURPOSES
from raregen.publish.models import RegisteredKey
from raregen.webhooks.service import owner_has_endpoints

# the keypairs a wallet derives from its seed (docs/PROTOCOL.md §7); only identity keys publish


def register_account_keys(
    account_ref: str, keys: Sequence[tuple[str, str]]
) -> list[dict[str, str]]:
    """Register ``(purpose, pubkey_hex)`` pairs for an account, all or none.

    Registering a key the account already has is a no-op (safe to retry). Account keys have
    ``credits`` None: their publishes are paid from the account's ledger.

    Returns:
        ``[{"purpose", "pubkey"}]`` in the given order (pubkeys compressed, lowercase hex).

    Raises:
        RequestError: ``BAD_PUBKEY``, ``BAD_PURPOSE``.
        KeyTaken: 409 ``KEY_TAKEN``, a key belongs to another account or to an operator.
        KeyRefused: 403 ``KEY_REVOKED``, the key was revoked (an operator must act).
    """
    for purpose, _pub in keys:
        if purpose not in PURPOSES:
            raise RequestError(
                f"purpose must be one of {', '.join(PURPOSES)}.",
                code="BAD_PURPOSE",
                field="purpose",
            )
    parsed = [(purpose, signing.parse_pubkey(pub).hex()) for purpose, pub in keys]
    with transaction():
        for purpose, pubkey in parsed:
            key = db.session.scalar(select(RegisteredKey).where(RegisteredKey.pubkey == pubkey))
            if key is None:
                db.session.add(
                    RegisteredKey(
                        pubkey=pubkey,
                        account_ref=account_ref,
                        purpose=purpose,
                        credits=None,
                        label=f"{purpose} key of {account_ref}",
                        # the account's webhooks cover its new keys too
                        webhooks=owner_has_endpoints(None, account_ref),
                    )
                )
                db.session.flush()
                audit(account_ref, "keys:key:registered", pubkey, purpose=purpose)
                continue
            if key.account_ref != account_ref:
                raise KeyTaken(
                    "This public key is already registered to another account.", field="pubkey"
                )
            if key.status != "active":
                raise KeyRefused("This public key was revoked.", code="KEY_REVOKED", field="pubkey")
    return [{"purpose": purpose, "pubkey": pubkey} for purpose, pubkey in parsed]


def _owned(account_ref: str, pubkey_hex: str) -> bool:
    key = db.session.scalar(select(RegisteredKey).where(RegisteredKey.pubkey == pubkey_hex))
    return key is not None and key.account_ref == account_ref


def accept_for_account(account_ref: str, raw: bytes, content_type: str | None) -> intake.Accepted:
    """Accept a v1 publish body (raw bytes) on behalf of an account.

    Same rules and errors as ``POST /v1/publish``, plus: the body's ``pubkey`` must be a key
    of this account.

    Raises:
        KeyRefused: 403 ``KEY_NOT_REGISTERED`` if the key is not the account's.
        RareGenError: every code of docs/PROTOCOL.md §2.
    """
    body = intake.parse_body(raw, content_type)
    pubkey = body.get("pubkey") if isinstance(body, dict) else None
    if isinstance(pubkey, str):
        try:
            pubkey_hex = signing.parse_pubkey(pubkey).hex()
        except RareGenError:
            pubkey_hex = None  # intake reports BAD_PUBKEY in its usual order
        if pubkey_hex is not None:
            with transaction():
                owned = _owned(account_ref, pubkey_hex)
            if not owned:
                raise KeyRefused(
                    "This public key is not registered to your account.",
                    code="KEY_NOT_REGISTERED",
                    field="pubkey",
                )
    return intake.accept(body)


def accepted_view(accepted: intake.Accepted, status_url: str) -> tuple[dict[str, Any], int]:
    """The answer of an accepted publish: body and status (202 new, 200 resubmission)."""
    body = {"jobId": accepted.job_id, "status": accepted.status, "statusUrl": status_url}
    return body, (202 if accepted.created else 200)
