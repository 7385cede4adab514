"""Proof that the browser holds the keys it registers (docs/PROTOCOL.md §7).

The server issues a random challenge (32 bytes, 64 hex characters, valid 300 seconds, single
use, bound to the account). For each key the browser signs, with that key, the UTF-8 bytes of
``"raregen-key-registration:" + challenge + ":" + purpose + ":" + pubkey`` (ECDSA secp256k1
over SHA-256, DER, base64, low-S: the same rules as a publish signature).

Order of checks for ``POST /wallet/api/keys``: the body's shape, the challenge's form
(64 lowercase hex) and every entry's encodings (:func:`parse_keys`, :func:`decode_proofs`)
come first and spend nothing; then the challenge is spent (:func:`consume_challenge`,
whatever follows); then the signatures are verified (:func:`verify_proofs`). A request that
cannot be a proof therefore gets a 400 and leaves its challenge usable.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, update

import raregen.signing as signing
from raregen.db import db, transaction, utcnow
from raregen.errors import RequestError, SignatureRejected
from raregen.publish.keys import PURPOSES
from raregen.wallet.models import KeyChallenge

CHALLENGE_SECONDS = 300
MESSAGE_PREFIX = "raregen-key-registration:"
_CHALLENGE_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class KeyProof:
    """A key whose possession was proven: its purpose and compressed hex pubkey."""

    purpose: str
    pubkey: str


@dataclass(frozen=True)
class DecodedEntry:
    """A key entry whose encodings were checked, not yet its signature.

    Attributes:
        purpose: ``identity``, ``financial`` or ``tokens``.
        pubkey_text: the pubkey as sent (66 hex; the signed message contains this text).
        pubkey: the SEC1 compressed key, 33 bytes (on the curve).
        der: the strict DER signature bytes (BIP 66).
    """

    purpose: str
    pubkey_text: str
    pubkey: bytes
    der: bytes


def _affected(statement: Any) -> int:
    """Rows an UPDATE matched (the current transaction)."""
    return int(cast("CursorResult[Any]", db.session.execute(statement)).rowcount)


def proof_message(challenge: str, purpose: str, pubkey_hex: str) -> bytes:
    """The bytes a key signs to prove possession (hashed once with SHA-256 by the signer)."""
    return f"{MESSAGE_PREFIX}{challenge}:{purpose}:{pubkey_hex}".encode()


def issue_challenge(account_id: int) -> dict[str, Any]:
    """A fresh challenge for the account: ``{"challenge": <64 hex>, "expiresIn": 300}``."""
    value = secrets.token_hex(32)
    with transaction():
        db.session.add(
            KeyChallenge(
                account_id=account_id,
                challenge=value,
                expires_at=utcnow() + timedelta(seconds=CHALLENGE_SECONDS),
            )
        )
    return {"challenge": value, "expiresIn": CHALLENGE_SECONDS}


def _bad(message: str, field: str | None = "keys") -> RequestError:
    return RequestError(message, code="MALFORMED_JSON", field=field)


def parse_keys(body: Any) -> tuple[str, list[dict[str, str]]]:
    """Check the shape of a registration body; return the challenge and the key entries.

    Spends nothing (no database access).

    Raises:
        RequestError: MALFORMED_JSON (also for a challenge that is not 64 lowercase hex,
            field ``challenge``), MISSING_FIELD, UNKNOWN_FIELD, BAD_PURPOSE.
    """
    if not isinstance(body, dict):
        raise _bad("The body must be a JSON object.", None)
    unknown = set(body) - {"challenge", "keys"}
    if unknown:
        name = min(unknown)
        raise RequestError(f"Unknown member {name!r}.", code="UNKNOWN_FIELD", field=name)
    challenge, keys = body.get("challenge"), body.get("keys")
    if not isinstance(challenge, str) or not challenge:
        raise RequestError("challenge is required.", code="MISSING_FIELD", field="challenge")
    if not _CHALLENGE_RE.fullmatch(challenge):
        raise RequestError(
            "challenge must be the 64 lowercase hex characters POST /wallet/api/challenge "
            "answered.",
            code="MALFORMED_JSON",
            field="challenge",
        )
    if not isinstance(keys, list) or not 1 <= len(keys) <= len(PURPOSES):
        raise _bad(f"keys must be a list of 1 to {len(PURPOSES)} entries.")
    entries, seen = [], set()
    for entry in keys:
        if not isinstance(entry, dict) or set(entry) != {"purpose", "pubkey", "signature"}:
            raise _bad("each key needs exactly purpose, pubkey and signature.")
        if not all(isinstance(entry[k], str) for k in entry):
            raise _bad("purpose, pubkey and signature are strings.")
        if entry["purpose"] not in PURPOSES:
            raise RequestError(
                f"purpose must be one of {', '.join(PURPOSES)}.",
                code="BAD_PURPOSE",
                field="purpose",
            )
        if entry["purpose"] in seen:
            raise _bad("each purpose may appear once.")
        seen.add(entry["purpose"])
        entries.append(entry)
    return challenge, entries


def consume_challenge(account_id: int, challenge: str) -> None:
    """Spend the account's challenge; it can never be presented again (even after a failure).

    Raises:
        SignatureRejected: ``CHALLENGE_INVALID`` if it is unknown, another account's, used
            or expired.
    """
    now = utcnow()
    with transaction():
        used = _affected(
            update(KeyChallenge)
            .where(
                KeyChallenge.challenge == challenge,
                KeyChallenge.account_id == account_id,
                KeyChallenge.used_at.is_(None),
                KeyChallenge.expires_at > now,
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
    if used != 1:
        raise SignatureRejected(
            "The challenge is unknown, used or expired; ask for a new one.",
            code="CHALLENGE_INVALID",
            field="challenge",
        )


def decode_proofs(entries: Sequence[dict[str, str]]) -> list[DecodedEntry]:
    """Check each entry's pubkey and signature encodings (no signature check, no database).

    Args:
        entries: the key entries of :func:`parse_keys`.

    Returns:
        One :class:`DecodedEntry` per entry, in order.

    Raises:
        RequestError: ``BAD_PUBKEY`` (not 66 hex characters: uncompressed keys are refused
            here; or not on the curve), ``BAD_SIGNATURE_ENCODING`` (not standard base64 of
            strict DER).
    """
    decoded = []
    for entry in entries:
        if len(entry["pubkey"]) != 66:
            raise RequestError(
                "pubkey must be 66 hex characters (SEC1 compressed).",
                code="BAD_PUBKEY",
                field="pubkey",
            )
        pub = signing.parse_pubkey(entry["pubkey"])
        der = signing.decode_signature(entry["signature"])
        decoded.append(DecodedEntry(entry["purpose"], entry["pubkey"], pub, der))
    return decoded


def verify_proofs(
    challenge: str, entries: Sequence[dict[str, str] | DecodedEntry]
) -> list[KeyProof]:
    """Verify each entry's signature over :func:`proof_message`.

    Args:
        challenge: the challenge the entries signed.
        entries: raw entries (decoded here with :func:`decode_proofs`) or already decoded.

    Returns:
        The proven keys, in order (pubkeys lowercase compressed hex).

    Raises:
        RequestError: ``BAD_PUBKEY``, ``BAD_SIGNATURE_ENCODING`` (raw entries only).
        SignatureRejected: ``SIGNATURE_INVALID``, ``HIGH_S_SIGNATURE``.
    """
    proofs = []
    for item in entries:
        entry = item if isinstance(item, DecodedEntry) else decode_proofs([item])[0]
        signing.verify_signature(
            entry.pubkey, entry.der, proof_message(challenge, entry.purpose, entry.pubkey_text)
        )
        proofs.append(KeyProof(entry.purpose, entry.pubkey.hex()))
    return proofs
