"""Signed acceptance receipts (docs/PROOFS.md, "The acceptance receipt").

A receipt says: RareGen accepted the request whose exact body bytes hash to ``bodySha256``
as job ``jobId`` at ``acceptedAt``, and means to have it in a block by ``deadline``::

    {"receipt": {"jobId", "bodySha256", "acceptedAt", "deadline"},
     "pubkey": "<receipt key, SEC1 compressed hex>",
     "signature": "<DER hex, low-S>"}

The signature is ECDSA secp256k1 over SHA-256 of the RFC 8785 (JCS) bytes of the
``receipt`` object (algorithm name ``ecdsa-secp256k1-sha256-jcs``). Times are RFC 3339 UTC
with a ``Z`` and whole seconds. The receipt key is a key of its own, never the server's funds
key: ``RECEIPT_WIF``, or the key file ``RECEIPT_KEY_FILE`` (hex secret, made with mode 0600
on first use, as the development server key is).

Signing and checking are pure (coincurve, rfc8785); the app's receipt key is
:func:`raregen.publish.services.app_receipt_key`.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import coincurve
import rfc8785

from raregen.errors import RequestError
from raregen.signing import is_low_s

__all__ = [
    "ALGORITHM",
    "ReceiptError",
    "load_or_create_key",
    "rfc3339",
    "sign_receipt",
    "verify_receipt",
]

ALGORITHM = "ecdsa-secp256k1-sha256-jcs"
RECEIPT_MEMBERS = ("jobId", "bodySha256", "acceptedAt", "deadline")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_RFC3339_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


class ReceiptError(ValueError):
    """A receipt whose shape or signature does not check out (message says which)."""


def rfc3339(moment: datetime) -> str:
    """``moment`` (naive UTC, or aware) as RFC 3339 UTC with whole seconds and ``Z``."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0).isoformat() + "Z"


def _digest(receipt: dict[str, Any]) -> bytes:
    return hashlib.sha256(rfc8785.dumps(receipt)).digest()


def sign_receipt(
    key: coincurve.PrivateKey,
    *,
    job_id: str,
    body_sha256: str,
    accepted_at: datetime,
    deadline_seconds: int,
) -> dict[str, Any]:
    """The signed receipt for a job accepted at ``accepted_at`` (naive UTC).

    Returns:
        ``{"receipt": {...}, "pubkey", "signature"}`` (module docstring); about 60 µs
        (one JCS encoding and one libsecp256k1 signature, low-S by construction).
    """
    receipt = {
        "jobId": job_id,
        "bodySha256": body_sha256,
        "acceptedAt": rfc3339(accepted_at),
        "deadline": rfc3339(accepted_at + timedelta(seconds=int(deadline_seconds))),
    }
    der = key.sign(_digest(receipt), hasher=None)
    return {
        "receipt": receipt,
        "pubkey": key.public_key.format(compressed=True).hex(),
        "signature": der.hex(),
    }


def verify_receipt(obj: Any, *, expected_pubkey: str | None = None) -> dict[str, Any]:
    """Check a signed receipt: its shape, a present ``jobId``, RFC 3339 times, and the
    low-S DER signature of ``pubkey`` over SHA-256 of the JCS bytes of ``receipt``.

    Args:
        obj: the ``{"receipt", "pubkey", "signature"}`` object.
        expected_pubkey: when given, the receipt key must be this one (hex, compressed).

    Returns:
        The ``receipt`` object.

    Raises:
        ReceiptError: what failed.
    """
    if not isinstance(obj, dict):
        raise ReceiptError("the acceptance is not an object")
    receipt, pubkey, signature = obj.get("receipt"), obj.get("pubkey"), obj.get("signature")
    if (
        not isinstance(receipt, dict)
        or not isinstance(pubkey, str)
        or not isinstance(signature, str)
    ):
        raise ReceiptError("the acceptance needs receipt (object), pubkey and signature (hex)")
    job_id = receipt.get("jobId")
    if not isinstance(job_id, str) or not job_id:
        raise ReceiptError("the receipt has no jobId")
    for name in ("acceptedAt", "deadline"):
        value = receipt.get(name)
        if not isinstance(value, str) or not _RFC3339_Z.fullmatch(value):
            raise ReceiptError(f"the receipt's {name} is not an RFC 3339 UTC time")
    if not isinstance(receipt.get("bodySha256"), str) or not _HEX64.fullmatch(
        receipt["bodySha256"]
    ):
        raise ReceiptError("the receipt's bodySha256 is not 64 lowercase hex characters")
    if expected_pubkey is not None and pubkey.lower() != expected_pubkey.lower():
        raise ReceiptError("the receipt is signed by another key than the expected one")
    try:
        key = coincurve.PublicKey(bytes.fromhex(pubkey))
        der = bytes.fromhex(signature)
    except ValueError:
        raise ReceiptError("the receipt's pubkey or signature is not valid hex of a key") from None
    try:
        ok = is_low_s(der) and key.verify(der, _digest(receipt), hasher=None)
    except (ValueError, TypeError, OverflowError, RequestError):  # RequestError: not DER
        ok = False
    if not ok:
        raise ReceiptError("the receipt's signature does not verify")
    return receipt


def load_or_create_key(path: Path) -> coincurve.PrivateKey:
    """The receipt key in ``path`` (hex secret), made first if missing: written under a
    temporary name (mode 0600) then hard-linked into place, so processes starting together
    all read the one key that won."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(coincurve.PrivateKey().secret.hex() + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return coincurve.PrivateKey(bytes.fromhex(path.read_text().strip()))
