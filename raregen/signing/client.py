"""Client side of publish contract v1: build the canonical ``signedPayload``, sign it
(DER or Bitcoin Signed Message) and make the request body. Used by the client CLI and
the tests. Pure: reads the clock only when the caller leaves ``now`` out.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Mapping
from typing import Any, Final

import coincurve
import rfc8785

from raregen.signing.bsm import bsm_digest
from raregen.signing.der import is_low_s, sha256
from raregen.signing.payload import CONTRACT_VERSION, is_int

_NONCE_CHARS: Final = 32


def canonicalize(obj: Any) -> str:
    """Return the RFC 8785 canonical JSON text of ``obj`` (via ``rfc8785``).

    Raises:
        ValueError: ``rfc8785.CanonicalizationError`` if ``obj`` holds values JCS cannot
            represent (NaN, infinities, integers beyond ±(2**53-1), lone surrogates,
            non-string keys, other types).
    """
    try:
        return rfc8785.dumps(obj).decode("utf-8")
    except UnicodeError as exc:  # a lone surrogate in a key
        raise rfc8785.CanonicalizationError("input contains non-UTF-8 codepoints") from exc


def new_nonce() -> str:
    """Return a fresh random nonce: 32 URL-safe base64 characters (24 bytes from secrets)."""
    return secrets.token_urlsafe(24)


def build_payload(
    record: Mapping[str, Any],
    *,
    type: str | None = None,
    ttl: int = 600,
    now: int | None = None,
    nonce: str | None = None,
) -> str:
    """Build the canonical ``signedPayload`` text for ``record``.

    Args:
        record: the JSON object to publish.
        type: optional record kind (``"work"`` for a creative work).
        ttl: ``exp - iat`` in seconds (1..3600 is what a default server accepts).
        now: ``iat`` in Unix seconds; the current time if None.
        nonce: the nonce to use; a fresh :func:`new_nonce` if None.

    Raises:
        TypeError: ``record`` is not a mapping.
        ValueError: ``ttl`` is not a positive integer, or the content cannot be
            canonicalized (``rfc8785.CanonicalizationError``).
    """
    if not isinstance(record, Mapping):
        raise TypeError("record must be a mapping (a JSON object)")
    if not is_int(ttl) or ttl <= 0:
        raise ValueError("ttl must be a positive integer number of seconds")
    iat = int(time.time()) if now is None else int(now)
    payload: dict[str, Any] = {
        "v": CONTRACT_VERSION,
        "nonce": new_nonce() if nonce is None else nonce,
        "iat": iat,
        "exp": iat + ttl,
        "record": dict(record),
    }
    if type is not None:
        payload["type"] = type
    return canonicalize(payload)


def _private_key(private_key: bytes | coincurve.PrivateKey) -> coincurve.PrivateKey:
    if isinstance(private_key, coincurve.PrivateKey):
        return private_key
    return coincurve.PrivateKey(bytes(private_key))


def sign_payload(private_key: bytes | coincurve.PrivateKey, signed_payload: str) -> str:
    """Sign ``signed_payload`` (its UTF-8 bytes, hashed with SHA-256); return base64 DER.

    libsecp256k1 signs deterministically (RFC 6979) and always low-S; this is checked.

    Args:
        private_key: 32 raw bytes or a ``coincurve.PrivateKey``.
        signed_payload: the canonical payload text.

    Raises:
        ValueError: the private key is invalid.
        RuntimeError: the library produced a high-S signature (should never happen).
    """
    key = _private_key(private_key)
    der = key.sign(signed_payload.encode("utf-8"), hasher=sha256)
    if not is_low_s(der):
        raise RuntimeError("coincurve produced a high-S signature")
    return base64.b64encode(der).decode("ascii")


def sign_bsm(
    private_key: bytes | coincurve.PrivateKey, message: str, *, compressed: bool = True
) -> str:
    """Sign ``message`` (its UTF-8 bytes) as a Bitcoin Signed Message; return the base64 of
    the 65-byte compact signature (header 31..34 for a compressed key, 27..30 otherwise).

    Raises:
        ValueError: the private key is invalid.
    """
    key = _private_key(private_key)
    rec = key.sign_recoverable(bsm_digest(message.encode("utf-8")), hasher=None)
    header = 27 + rec[64] + (4 if compressed else 0)
    return base64.b64encode(bytes([header]) + rec[:64]).decode("ascii")


def make_request(
    private_key: bytes | coincurve.PrivateKey,
    record: Mapping[str, Any],
    type: str | None = None,
    ttl: int = 600,
    *,
    now: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Build and sign a v1 request body ``{"signedPayload", "signature", "pubkey"}``.

    Args: as :func:`build_payload` and :func:`sign_payload`.

    Raises:
        TypeError, ValueError: see :func:`build_payload` and :func:`sign_payload`.
    """
    key = _private_key(private_key)
    signed_payload = build_payload(record, type=type, ttl=ttl, now=now, nonce=nonce)
    return {
        "signedPayload": signed_payload,
        "signature": sign_payload(key, signed_payload),
        "pubkey": key.public_key.format(compressed=True).hex(),
    }
