"""Encrypted wallet backups: versions of a blob the browser encrypted with the user's password.

The server checks the envelope's shape and size and stores it; it cannot decrypt it (it never
receives the password, the seed or a key). Every upload is a new version (1, 2, ...).

Envelope (``PUT /wallet/api/backup``)::

    {"ciphertext": <base64>, "kdf": {"name": "PBKDF2"|"scrypt", ..., "salt": <base64>},
     "cipher": {"name": "AES-GCM", "iv": <base64>}, "identityPubkey": <66 hex>}

KDF minimums: PBKDF2 ``iterations`` >= 100 000 with ``hash`` SHA-256/384/512; scrypt
``N`` a power of two >= 2**14, ``r`` >= 1, ``p`` >= 1. Salt 16..64 bytes, IV 12..16 bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import func, select

import raregen.signing as signing
from raregen.audit import audit
from raregen.db import db, transaction
from raregen.errors import NotFound, PayloadTooLarge, RequestError
from raregen.wallet.accounts import account_ref
from raregen.wallet.models import Account, Backup

PBKDF2_MIN_ITERATIONS = 100_000
SCRYPT_MIN_N = 2**14
_KDF_JSON_MAX = 1024


def _bad(message: str, field: str) -> RequestError:
    return RequestError(message, code="BAD_BACKUP", field=field)


def _b64(value: object, field: str, lo: int, hi: int) -> bytes:
    if not isinstance(value, str) or not value:
        raise _bad(f"{field} must be a base64 string", field)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(f"{field} is not standard base64", field) from None
    if not lo <= len(raw) <= hi:
        raise _bad(f"{field} must decode to {lo}..{hi} bytes", field)
    return raw


def _int(params: dict[str, Any], name: str, minimum: int) -> int:
    value = params.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _bad(f"kdf.{name} must be an integer >= {minimum}", f"kdf.{name}")
    return value


def _check_kdf(kdf: object) -> dict[str, Any]:
    if not isinstance(kdf, dict):
        raise _bad("kdf must be an object", "kdf")
    if len(json.dumps(kdf)) > _KDF_JSON_MAX:
        raise _bad("kdf is too large", "kdf")
    _b64(kdf.get("salt"), "kdf.salt", 16, 64)
    name = kdf.get("name")
    if name == "PBKDF2":
        _int(kdf, "iterations", PBKDF2_MIN_ITERATIONS)
        if kdf.get("hash", "SHA-256") not in ("SHA-256", "SHA-384", "SHA-512"):
            raise _bad("kdf.hash must be SHA-256, SHA-384 or SHA-512", "kdf.hash")
    elif name == "scrypt":
        n = _int(kdf, "N", SCRYPT_MIN_N)
        if n & (n - 1):
            raise _bad("kdf.N must be a power of two", "kdf.N")
        _int(kdf, "r", 1)
        _int(kdf, "p", 1)
    else:
        raise _bad("kdf.name must be PBKDF2 or scrypt", "kdf.name")
    return kdf


def _check_cipher(cipher: object) -> dict[str, Any]:
    if not isinstance(cipher, dict) or cipher.get("name") != "AES-GCM":
        raise _bad('cipher must be {"name": "AES-GCM", "iv": <base64>}', "cipher")
    if len(json.dumps(cipher)) > _KDF_JSON_MAX:
        raise _bad("cipher is too large", "cipher")
    _b64(cipher.get("iv"), "cipher.iv", 12, 16)
    return cipher


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds") + "Z"


def _full_view(row: Backup) -> dict[str, Any]:
    return {
        "version": row.version,
        "ciphertext": row.ciphertext,
        "kdf": row.kdf,
        "cipher": row.cipher,
        "identityPubkey": row.identity_pubkey,
        "createdAt": _iso(row.created_at),
    }


def store(account_id: int, body: Any) -> int:
    """Check an envelope and store it as the account's next version.

    Returns:
        The new version number (1 for the first backup).

    Raises:
        RequestError: ``BAD_BACKUP`` (field names the member), ``UNKNOWN_FIELD``,
            ``BAD_PUBKEY``.
        PayloadTooLarge: 413, ciphertext over ``BACKUP_MAX_BYTES`` (64 KiB) decoded.
    """
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object", "body")
    allowed = {"ciphertext", "kdf", "cipher", "identityPubkey"}
    unknown = set(body) - allowed
    if unknown:
        name = min(unknown)
        raise RequestError(f"Unknown member {name!r}.", code="UNKNOWN_FIELD", field=name)
    limit = int(current_app.config["BACKUP_MAX_BYTES"])
    ciphertext = body.get("ciphertext")
    if isinstance(ciphertext, str) and len(ciphertext) > 4 * ((limit + 2) // 3):
        raise PayloadTooLarge(f"The backup is larger than {limit} bytes.", field="ciphertext")
    # AES-GCM: at least one byte and the 16-byte tag
    if len(_b64(ciphertext, "ciphertext", 17, limit + 2)) > limit:
        raise PayloadTooLarge(f"The backup is larger than {limit} bytes.", field="ciphertext")
    kdf = _check_kdf(body.get("kdf"))
    cipher = _check_cipher(body.get("cipher"))
    identity = body.get("identityPubkey")
    if not isinstance(identity, str) or len(identity) != 66:
        raise RequestError(
            "identityPubkey must be 66 hex characters (SEC1 compressed).",
            code="BAD_PUBKEY",
            field="identityPubkey",
        )
    identity_hex = signing.parse_pubkey(identity).hex()
    with transaction():
        # lock the account so two uploads never take the same version number
        db.session.scalar(select(Account.id).where(Account.id == account_id).with_for_update())
        last = db.session.scalar(
            select(func.max(Backup.version)).where(Backup.account_id == account_id)
        )
        version = int(last or 0) + 1
        db.session.add(
            Backup(
                account_id=account_id,
                version=version,
                ciphertext=ciphertext,
                kdf=kdf,
                cipher=cipher,
                identity_pubkey=identity_hex,
            )
        )
        db.session.flush()
        audit(
            f"account:{account_id}",
            "wallet:backup:stored",
            account_ref(account_id),
            version=version,
        )
    return version


def latest_version(account_id: int) -> int | None:
    """The account's newest backup version, or None without a backup."""
    value = db.session.scalar(
        select(func.max(Backup.version)).where(Backup.account_id == account_id)
    )
    return int(value) if value is not None else None


def get(account_id: int, version: int | None = None) -> dict[str, Any]:
    """One backup (the newest when ``version`` is None) as the API returns it.

    Raises:
        NotFound: 404 ``NOT_FOUND``, the account has no such backup.
    """
    if version is not None and not 0 < version < 2**31:
        raise NotFound("No backup is stored for this account.", field="version")
    query = select(Backup).where(Backup.account_id == account_id)
    if version is not None:
        query = query.where(Backup.version == version)
    row = db.session.scalar(query.order_by(Backup.version.desc()).limit(1))
    if row is None:
        raise NotFound("No backup is stored for this account.", field="version")
    return _full_view(row)


def versions(account_id: int) -> list[dict[str, Any]]:
    """Every version of the account's backup, newest first, without the ciphertext:
    ``[{"version", "createdAt", "identityPubkey", "kdf": <name>, "size": <bytes>}]``."""
    rows = db.session.scalars(
        select(Backup).where(Backup.account_id == account_id).order_by(Backup.version.desc())
    )
    return [
        {
            "version": row.version,
            "createdAt": _iso(row.created_at),
            "identityPubkey": row.identity_pubkey,
            "kdf": row.kdf.get("name"),
            "size": len(base64.b64decode(row.ciphertext)),
        }
        for row in rows
    ]
