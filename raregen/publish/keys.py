"""Registered publishing keys: add, list, revoke (docs/PROTOCOL.md §2: 403 if unknown/revoked),
and the keys of a wallet account."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from raregen.audit import audit
from raregen.db import db, transaction, utcnow
from raregen.errors import NotFound
from raregen.publish.models import RegisteredKey
from raregen.signing import parse_pubkey

#: The purposes of the keys a wallet account registers (docs/WALLET_API.md).
PURPOSES = ("identity", "financial", "tokens")


def _view(key: RegisteredKey) -> dict[str, Any]:
    return {
        "pubkey": key.pubkey,
        "status": key.status,
        "credits": key.credits,
        "label": key.label,
        "purpose": key.purpose,
        "accountRef": key.account_ref,
    }


def register_key(
    pubkey_hex: str,
    *,
    credits: int | None = None,
    label: str | None = None,
    account_ref: str | None = None,
    purpose: str = "operator",
    actor: str = "cli",
) -> dict[str, Any]:
    """Register (or re-activate) a key. ``credits`` None means unlimited.

    Raises:
        RequestError: BAD_PUBKEY if the key is not a valid secp256k1 point.
    """
    pubkey = parse_pubkey(pubkey_hex).hex()
    with transaction():
        key = db.session.scalar(select(RegisteredKey).where(RegisteredKey.pubkey == pubkey))
        if key is None:
            key = RegisteredKey(pubkey=pubkey)
            db.session.add(key)
        key.status = "active"
        key.revoked_at = None
        key.credits = credits
        key.label = label or key.label
        key.account_ref = account_ref or key.account_ref
        key.purpose = purpose
        db.session.flush()
        audit(actor, "keys:key:registered", pubkey, credits=credits)
        return _view(key)


def list_keys() -> list[dict[str, Any]]:
    """All registered keys, oldest first."""
    with transaction():
        return [
            _view(k) for k in db.session.scalars(select(RegisteredKey).order_by(RegisteredKey.id))
        ]


def revoke_key(pubkey_hex: str, *, actor: str = "cli") -> None:
    """Revoke a key.

    Raises:
        NotFound: the key is not registered.
    """
    pubkey = parse_pubkey(pubkey_hex).hex()
    with transaction():
        key = db.session.scalar(select(RegisteredKey).where(RegisteredKey.pubkey == pubkey))
        if key is None:
            raise NotFound("This key is not registered.", field="pubkey")
        key.status = "revoked"
        key.revoked_at = utcnow()
        audit(actor, "keys:key:revoked", pubkey)


def keys_for_account(account_ref: str) -> list[dict[str, str]]:
    """The account's active keys, oldest first: ``[{"purpose", "pubkey"}]``."""
    rows = db.session.scalars(
        select(RegisteredKey)
        .where(RegisteredKey.account_ref == account_ref, RegisteredKey.status == "active")
        .order_by(RegisteredKey.id)
    )
    return [{"purpose": k.purpose, "pubkey": k.pubkey} for k in rows]
