"""Strict DER ECDSA signatures over secp256k1 (BIP 66 form, BIP 62/146 low-S), for
:mod:`raregen.signing`: decoding the ``signature`` member and verifying it with
libsecp256k1 (``coincurve``). Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Final

import coincurve
from coincurve.ecdsa import cdata_to_der, der_to_cdata, signature_normalize

from raregen.errors import RequestError, SignatureRejected

SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""Order n of the secp256k1 group (SEC 2 §2.4.1)."""

_HALF_N: Final = SECP256K1_N // 2
_DER_MIN: Final = 8  # 30 06 02 01 r 02 01 s
_DER_MAX: Final = 72  # 30 46 02 21 r(33) 02 21 s(33)
_B64_MAX: Final = 4 * ((_DER_MAX + 2) // 3)


def bad_signature(reason: str) -> RequestError:
    """The ``BAD_SIGNATURE_ENCODING`` error (field ``signature``) naming ``reason``; the
    caller raises it."""
    return RequestError(
        f"signature must be standard base64 of a strict DER ECDSA signature: {reason}",
        code="BAD_SIGNATURE_ENCODING",
        field="signature",
    )


def _der_int(body: bytes, name: str) -> int:
    """Check one DER INTEGER content per BIP 66 (non-empty, positive, minimal); return it."""
    if not body:
        raise bad_signature(f"{name} is empty")
    if body[0] & 0x80:
        raise bad_signature(f"{name} is negative")
    if len(body) > 1 and body[0] == 0 and not body[1] & 0x80:
        raise bad_signature(f"{name} has an unnecessary leading zero byte")
    return int.from_bytes(body, "big")


def _der_rs(der: bytes) -> tuple[int, int]:
    """Parse strict DER ``SEQUENCE { INTEGER r, INTEGER s }`` (BIP 66); return ``(r, s)``.

    Raises:
        RequestError: ``BAD_SIGNATURE_ENCODING`` naming the rule broken.
    """
    n = len(der)
    if n < _DER_MIN or n > _DER_MAX:
        raise bad_signature(f"length {n} outside {_DER_MIN}..{_DER_MAX} bytes")
    if der[0] != 0x30:
        raise bad_signature("not a DER SEQUENCE")
    if der[1] != n - 2:
        raise bad_signature("SEQUENCE length does not match the signature length")
    if der[2] != 0x02:
        raise bad_signature("r is not an INTEGER")
    len_r = der[3]
    if 4 + len_r + 2 > n:
        raise bad_signature("r length runs past the signature")
    r = _der_int(der[4 : 4 + len_r], "r")
    pos = 4 + len_r
    if der[pos] != 0x02:
        raise bad_signature("s is not an INTEGER")
    len_s = der[pos + 1]
    if pos + 2 + len_s != n:
        raise bad_signature("s length does not match the rest of the signature")
    s = _der_int(der[pos + 2 :], "s")
    return r, s


def decode_signature(b64: str) -> bytes:
    """Decode the ``signature`` member: standard base64 (RFC 4648 §4) of strict DER.

    Base64 must be canonical: alphabet ``A-Za-z0-9+/`` only, ``=`` padding present, no
    whitespace, and re-encoding the bytes gives the same text. The DER must follow BIP 66:
    ``30 len 02 lenR R 02 lenS S`` with short-form lengths that add up, R and S non-empty,
    positive, without unnecessary leading zero bytes, nothing after S; 8..72 bytes.
    The values of r and s are not range-checked here (see :func:`verify_signature`).

    Returns:
        the DER bytes.

    Raises:
        RequestError: code ``BAD_SIGNATURE_ENCODING``, field ``signature``.
    """
    if not isinstance(b64, str) or not b64:
        raise bad_signature("missing or not a string")
    if len(b64) > _B64_MAX:
        raise bad_signature(f"longer than {_B64_MAX} characters")
    try:
        der = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_signature("not valid standard base64") from exc
    if base64.b64encode(der).decode("ascii") != b64:
        raise bad_signature("base64 is not canonical (padding bits must be zero)")
    _der_rs(der)
    return der


def is_low_s(der: bytes) -> bool:
    """Whether a strict-DER signature has ``s <= n/2`` (BIP 62 rule 5, BIP 146 LOW_S).

    Raises:
        RequestError: ``BAD_SIGNATURE_ENCODING`` if ``der`` is not strict DER.
    """
    _, s = _der_rs(bytes(der))
    return s <= _HALF_N


def sha256(data: bytes) -> bytes:
    """SHA-256 of ``data``, 32 bytes (the hasher given to libsecp256k1)."""
    return hashlib.sha256(data).digest()


def verify_signature(pubkey33: bytes, der: bytes, message: bytes) -> None:
    """Verify an ECDSA secp256k1 signature over ``SHA-256(message)``; return None if valid.

    Args:
        pubkey33: SEC1 compressed public key, 33 bytes.
        der: strict DER signature (BIP 66).
        message: the signed bytes (for the contract: UTF-8 of ``signedPayload``); hashed
            once with SHA-256 here.

    Order: DER form, then 1 <= r, s < n, then the low-S rule, then libsecp256k1's verify.
    A high-S signature is verified in its normalized form (n - s) so that the client is told
    to normalize only when that would help.

    Raises:
        RequestError: ``BAD_SIGNATURE_ENCODING`` (field ``signature``) if ``der`` is not
            strict DER; ``BAD_PUBKEY`` (field ``pubkey``) if ``pubkey33`` is not a
            compressed point on the curve.
        SignatureRejected: ``SIGNATURE_INVALID`` (r or s out of range, or the signature does
            not verify) or ``HIGH_S_SIGNATURE`` (valid but s > n/2), field ``signature``.
        No other exception escapes, whatever the bytes.
    """
    der = bytes(der)
    message = bytes(message)
    r, s = _der_rs(der)
    if not (1 <= r < SECP256K1_N and 1 <= s < SECP256K1_N):
        raise SignatureRejected(
            "signature does not verify: r and s must be in 1..n-1",
            code="SIGNATURE_INVALID",
            field="signature",
        )
    pubkey33 = bytes(pubkey33)
    if len(pubkey33) != 33 or pubkey33[0] not in (2, 3):
        raise RequestError(
            "pubkey must be 33 bytes, SEC1 compressed", code="BAD_PUBKEY", field="pubkey"
        )
    high_s = s > _HALF_N
    try:
        key = coincurve.PublicKey(pubkey33)
    except Exception as exc:
        raise RequestError(
            "pubkey is not a point on the secp256k1 curve", code="BAD_PUBKEY", field="pubkey"
        ) from exc
    try:
        candidate = der
        if high_s:
            _, normalized = signature_normalize(der_to_cdata(der))
            candidate = cdata_to_der(normalized)
        ok = key.verify(candidate, message, hasher=sha256)
    except Exception:  # noqa: BLE001 - any libsecp256k1 / cffi refusal: "does not verify"
        ok = False
    if not ok:
        raise SignatureRejected(
            "signature does not verify for this pubkey and signedPayload "
            "(ECDSA secp256k1 over SHA-256 of the UTF-8 bytes of signedPayload)",
            code="SIGNATURE_INVALID",
            field="signature",
        )
    if high_s:
        raise SignatureRejected(
            "signature has a high S value (s > n/2); normalize it to low-S (s' = n - s), "
            "as Bitcoin requires (BIP 62/146), and resend",
            code="HIGH_S_SIGNATURE",
            field="signature",
        )
