"""Publish contract v1: parsing, canonical-form checks, signatures (docs/PROTOCOL.md §2).

Shared by the server (``verify_publish_request``) and the client CLI (``make_request``).
Pure: imports neither Flask nor SQLAlchemy, does no I/O, reads no clock unless the caller
leaves ``now`` out on the client side.

The cryptography and the canonicalizer are libraries: ``coincurve`` (libsecp256k1) verifies
and signs ECDSA over secp256k1, ``rfc8785`` produces the RFC 8785 (JCS) canonical form. This
module only adds the checks around them.

Server-side order of checks (``verify_publish_request``), each failing with the first
error it finds:

1. body shape (``parse_request_body``): a JSON object with exactly ``signedPayload``,
   ``signature``, ``pubkey``, all strings; the pre-v1 body gives ``LEGACY_CONTRACT``;
2. ``pubkey`` (``parse_pubkey``): SEC1 compressed or uncompressed, on the curve;
3. ``signature`` encoding (``decode_signature``): canonical standard base64 of strict DER;
4. ``signedPayload`` size, JSON parse, canonical form (``parse_signed_payload``);
5. payload members and time window (``validate_payload``);
6. the signature itself (``verify_request_signature``): for DER, range of r and s, low-S,
   ECDSA verify (``verify_signature``); for Bitcoin Signed Message, key recovery
   (``verify_bsm``).

Signature schemes (the optional body member ``signatureScheme``; absent means ``der``):

- ``der``: ``signature`` is base64 of strict DER, ECDSA over SHA-256 of the UTF-8 bytes of
  ``signedPayload``, low-S.
- ``bsm``: ``signature`` is base64 of the 65-byte compact recoverable signature of the
  Bitcoin Signed Message form (what HandCash, Yours, ElectrumSV and most wallets' "sign
  message" produce): header byte 27..34, r (32 bytes), s (32 bytes), over
  ``SHA-256(SHA-256(varint(24) || "Bitcoin Signed Message:\n" || varint(len) ||
  signedPayload))``. The key recovered (recovery id ``(header - 27) & 3``) must be
  ``pubkey``; the header's compression flag (31..34 compressed, 27..30 uncompressed) must
  match the form ``pubkey`` is given in (66 or 130 hex characters). S may be high: the
  message-signing tools do not all normalise it, and BSM verifiers accept both.

Decisions on error codes (only codes of docs/PROTOCOL.md §2 are used; fields name the member):

- Not JSON at all, or JSON outside what RFC 8259 allows: ``MALFORMED_JSON``
  (field ``signedPayload``). This covers syntax errors, the ``NaN`` / ``Infinity`` /
  ``-Infinity`` literals Python's parser would otherwise accept, lone surrogates (raw in the
  string, or ``\\ud800``-style escapes: not Unicode text, RFC 8259 §8.2 / RFC 7493 §2.1),
  a top level that is not an object, and nesting too deep for the parser.
- Well-formed JSON that is not exactly its RFC 8785 form: ``NON_CANONICAL_PAYLOAD``. This
  includes numbers JCS cannot carry exactly: integers outside the I-JSON safe range
  ±(2**53 - 1) (RFC 7493 §2.2; RFC 8785 §3.2.2.3 serializes every number as an IEEE-754
  double, so larger integers would silently change), and literals that overflow a double
  (``1e400``). Any other number whose ES6 form differs from its text (``1.0``, ``1E3``,
  ``-0``) fails the byte-for-byte comparison with the same code.
- ``v`` other than the integer 1: ``MALFORMED_JSON`` with field ``v`` (no version code
  exists in the contract).
- r or s of the signature equal to 0 or >= n: well-formed DER (BIP 66 is a syntactic rule),
  so it is not an encoding error; it is ``SIGNATURE_INVALID`` (401) raised by
  ``verify_signature``, as libsecp256k1 treats such values (parsed, never valid).
- High-S (s > n/2, BIP 62 rule 5 / BIP 146 LOW_S): if the signature would verify once
  normalized to n - s, ``HIGH_S_SIGNATURE`` (401, the client should normalize); if it does
  not verify either way, ``SIGNATURE_INVALID``.
- ``signature`` that is valid base64 but not the canonical encoding of its bytes (non-zero
  padding bits): ``BAD_SIGNATURE_ENCODING``; so the received text is also the normalized
  text kept in ``signature_b64``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import coincurve
import rfc8785
from coincurve.ecdsa import cdata_to_der, der_to_cdata, signature_normalize

from raregen.errors import (
    PayloadTooLarge,
    RequestError,
    SignatureRejected,
    TimeWindowError,
)

__all__ = [
    "CONTRACT_VERSION",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DEFAULT_MAX_SKEW",
    "DEFAULT_MAX_TTL",
    "SECP256K1_N",
    "Payload",
    "PublishRequest",
    "VerifiedRequest",
    "build_payload",
    "canonicalize",
    "check_payload_fields",
    "check_time_window",
    "decode_signature",
    "is_low_s",
    "loads_strict",
    "make_request",
    "new_nonce",
    "parse_pubkey",
    "parse_request_body",
    "parse_signed_payload",
    "sign_bsm",
    "sign_payload",
    "bsm_digest",
    "decode_bsm_signature",
    "decode_stored_signature",
    "recover_bsm",
    "signature_scheme_of",
    "validate_payload",
    "verify_bsm",
    "verify_request_signature",
    "verify_publish_request",
    "verify_signature",
]

CONTRACT_VERSION: Final = 1
"""The ``v`` member every payload of contract v1 carries."""

DEFAULT_MAX_PAYLOAD_BYTES: Final = 100_000
"""Default limit of ``signedPayload``, in UTF-8 bytes (docs/PROTOCOL.md §2)."""

DEFAULT_MAX_SKEW: Final = 60
"""Default tolerated clock skew, seconds: ``iat`` may be at most this far in the future."""

DEFAULT_MAX_TTL: Final = 3600
"""Default maximum ``exp - iat``, seconds."""

SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""Order n of the secp256k1 group (SEC 2 §2.4.1)."""

_HALF_N: Final = SECP256K1_N // 2
_MAX_SAFE_INTEGER: Final = 2**53 - 1

REQUEST_MEMBERS: Final = ("signedPayload", "signature", "pubkey")
"""Members of the v1 request body, in the order they are reported missing."""

REQUEST_OPTIONAL: Final = ("signatureScheme",)
"""Optional members of the v1 request body."""

SCHEMES: Final = ("der", "bsm")
"""Values of ``signatureScheme``: ``der`` (the default) and ``bsm`` (Bitcoin Signed Message)."""

BSM_MAGIC: Final = b"Bitcoin Signed Message:\n"
"""The message prefix of Bitcoin Signed Message (before it: its length as a varint, 24)."""

LEGACY_MEMBERS: Final = frozenset({"publickey", "nonce", "record"})
"""Top-level members of the pre-v1 body ``{publickey, signature, nonce, record}``."""

PAYLOAD_REQUIRED: Final = ("v", "nonce", "iat", "exp", "record")
PAYLOAD_OPTIONAL: Final = ("type",)

_NONCE_RE: Final = re.compile(r"[A-Za-z0-9_-]{16,128}")
_HEX_RE: Final = re.compile(r"[0-9A-Fa-f]*")
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")
_DER_MIN: Final = 8  # 30 06 02 01 r 02 01 s
_DER_MAX: Final = 72  # 30 46 02 21 r(33) 02 21 s(33)
_B64_MAX: Final = 4 * ((_DER_MAX + 2) // 3)
_NONCE_CHARS: Final = 32


# ---------------------------------------------------------------------------------------------
# Data shapes


@dataclass(frozen=True)
class Payload:
    """The members of a v1 ``signedPayload`` after validation.

    Attributes:
        v: contract version, always 1.
        nonce: 16..128 characters of ``[A-Za-z0-9_-]``, unique per key.
        iat: issued-at, integer Unix seconds.
        exp: expiry, integer Unix seconds, ``iat < exp``.
        record: the JSON object to publish (not copied; treat as read-only).
        type: optional record kind (``"work"`` for the web UI), or None.
    """

    v: int
    nonce: str
    iat: int
    exp: int
    record: dict[str, Any]
    type: str | None = None


@dataclass(frozen=True)
class PublishRequest:
    """A v1 request body whose shape, key and signature encoding were checked.

    Attributes:
        signed_payload: the ``signedPayload`` string as received (not yet parsed).
        signature: the DER bytes decoded from ``signature`` (strict DER, 8..72 bytes).
        pubkey: the key as 33 bytes, SEC1 compressed.
        signature_b64: the ``signature`` text (canonical standard base64).
        pubkey_hex: the compressed key as 66 lowercase hex characters.
    """

    signed_payload: str
    signature: bytes
    pubkey: bytes
    signature_b64: str
    pubkey_hex: str
    scheme: str = "der"
    pubkey_compressed: bool = True


@dataclass(frozen=True)
class VerifiedRequest:
    """A request that passed every check of :func:`verify_publish_request`.

    Attributes:
        pubkey_hex: the signer's key, compressed, 66 lowercase hex characters.
        payload: the validated payload members.
        signed_payload: the canonical payload text, exactly as signed.
        signature_der: the signature: strict DER, low-S (scheme ``der``), or the 65-byte
            compact recoverable signature (scheme ``bsm``).
        signature_b64: the signature as received (canonical standard base64).
        scheme: ``der`` or ``bsm``.
    """

    pubkey_hex: str
    payload: Payload
    signed_payload: str
    signature_der: bytes
    signature_b64: str
    scheme: str = "der"


# ---------------------------------------------------------------------------------------------
# Keys and signatures


def parse_pubkey(hex_str: str) -> bytes:
    """Parse a secp256k1 public key given in hex; return it SEC1 compressed (33 bytes).

    Accepted forms (SEC 1 v2 §2.3.3): 66 hex characters with prefix ``02``/``03``
    (compressed) or 130 hex characters with prefix ``04`` (uncompressed, converted to
    compressed). Upper- or lowercase hex. Hybrid keys (``06``/``07``), whitespace and any
    other length are refused; the point must be on the curve (checked by libsecp256k1).

    Raises:
        RequestError: code ``BAD_PUBKEY``, field ``pubkey``.
    """
    if (
        not isinstance(hex_str, str)
        or len(hex_str) not in (66, 130)
        or not _HEX_RE.fullmatch(hex_str)
    ):
        raise RequestError(
            "pubkey must be a secp256k1 public key in hex: 66 characters (SEC1 compressed) "
            "or 130 characters (uncompressed)",
            code="BAD_PUBKEY",
            field="pubkey",
        )
    raw = bytes.fromhex(hex_str)
    if (len(raw) == 33 and raw[0] not in (2, 3)) or (len(raw) == 65 and raw[0] != 4):
        raise RequestError(
            "pubkey has a wrong prefix byte: 02/03 for compressed, 04 for uncompressed",
            code="BAD_PUBKEY",
            field="pubkey",
        )
    try:
        return coincurve.PublicKey(raw).format(compressed=True)
    except Exception as exc:  # libsecp256k1 refuses points off the curve
        raise RequestError(
            "pubkey is not a point on the secp256k1 curve", code="BAD_PUBKEY", field="pubkey"
        ) from exc


def _bad_signature(reason: str) -> RequestError:
    return RequestError(
        f"signature must be standard base64 of a strict DER ECDSA signature: {reason}",
        code="BAD_SIGNATURE_ENCODING",
        field="signature",
    )


def _der_int(body: bytes, name: str) -> int:
    """Check one DER INTEGER content per BIP 66 (non-empty, positive, minimal); return it."""
    if not body:
        raise _bad_signature(f"{name} is empty")
    if body[0] & 0x80:
        raise _bad_signature(f"{name} is negative")
    if len(body) > 1 and body[0] == 0 and not body[1] & 0x80:
        raise _bad_signature(f"{name} has an unnecessary leading zero byte")
    return int.from_bytes(body, "big")


def _der_rs(der: bytes) -> tuple[int, int]:
    """Parse strict DER ``SEQUENCE { INTEGER r, INTEGER s }`` (BIP 66); return ``(r, s)``.

    Raises:
        RequestError: ``BAD_SIGNATURE_ENCODING`` naming the rule broken.
    """
    n = len(der)
    if n < _DER_MIN or n > _DER_MAX:
        raise _bad_signature(f"length {n} outside {_DER_MIN}..{_DER_MAX} bytes")
    if der[0] != 0x30:
        raise _bad_signature("not a DER SEQUENCE")
    if der[1] != n - 2:
        raise _bad_signature("SEQUENCE length does not match the signature length")
    if der[2] != 0x02:
        raise _bad_signature("r is not an INTEGER")
    len_r = der[3]
    if 4 + len_r + 2 > n:
        raise _bad_signature("r length runs past the signature")
    r = _der_int(der[4 : 4 + len_r], "r")
    pos = 4 + len_r
    if der[pos] != 0x02:
        raise _bad_signature("s is not an INTEGER")
    len_s = der[pos + 1]
    if pos + 2 + len_s != n:
        raise _bad_signature("s length does not match the rest of the signature")
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
        raise _bad_signature("missing or not a string")
    if len(b64) > _B64_MAX:
        raise _bad_signature(f"longer than {_B64_MAX} characters")
    try:
        der = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad_signature("not valid standard base64") from exc
    if base64.b64encode(der).decode("ascii") != b64:
        raise _bad_signature("base64 is not canonical (padding bits must be zero)")
    _der_rs(der)
    return der


def is_low_s(der: bytes) -> bool:
    """Whether a strict-DER signature has ``s <= n/2`` (BIP 62 rule 5, BIP 146 LOW_S).

    Raises:
        RequestError: ``BAD_SIGNATURE_ENCODING`` if ``der`` is not strict DER.
    """
    _, s = _der_rs(bytes(der))
    return s <= _HALF_N


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# ---------------------------------------------------------------------------------------------
# Bitcoin Signed Message (compact recoverable signatures)

_BSM_LEN: Final = 65
_BSM_B64_LEN: Final = 88


def bsm_digest(message: bytes) -> bytes:
    """The 32-byte digest a Bitcoin Signed Message signature signs:
    ``SHA-256(SHA-256(varint(24) || "Bitcoin Signed Message:\\n" || varint(len(message)) ||
    message))`` (Bitcoin Core ``MessageHash``; lengths as CompactSize)."""
    # imported here: `import raregen.client` (which uses this module) loads no bsv-sdk
    from bsv.utils import unsigned_to_varint

    data = (
        unsigned_to_varint(len(BSM_MAGIC))
        + BSM_MAGIC
        + unsigned_to_varint(len(message))
        + bytes(message)
    )
    return _sha256(_sha256(data))


def decode_bsm_signature(b64: str) -> bytes:
    """Decode a ``bsm`` ``signature``: canonical standard base64 of 65 bytes, the first (the
    header) 27..34.

    Raises:
        RequestError: ``BAD_SIGNATURE_ENCODING``, field ``signature``.
    """
    if not isinstance(b64, str) or not b64:
        raise _bad_signature("missing or not a string")
    if len(b64) != _BSM_B64_LEN:
        raise _bad_signature(
            "a Bitcoin Signed Message signature is 88 base64 characters (65 bytes)"
        )
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad_signature("not valid standard base64") from exc
    if base64.b64encode(raw).decode("ascii") != b64:
        raise _bad_signature("base64 is not canonical (padding bits must be zero)")
    if len(raw) != _BSM_LEN or not 27 <= raw[0] <= 34:
        raise _bad_signature(
            "a Bitcoin Signed Message signature is 65 bytes with a header byte of 27 to 34"
        )
    return raw


def signature_scheme_of(signature: bytes) -> str:
    """The scheme of checked signature bytes: ``der`` (strict DER starts with 0x30) or
    ``bsm`` (65 bytes, header 27..34). Used for stored signatures, checked at intake.

    Raises:
        ValueError: neither form.
    """
    if len(signature) == _BSM_LEN and 27 <= signature[0] <= 34:
        return "bsm"
    if signature[:1] == b"\x30":
        return "der"
    raise ValueError("neither a DER nor a compact signature")


def decode_stored_signature(b64: str) -> tuple[str, bytes]:
    """A stored ``signature`` (base64, checked at intake) as ``(scheme, bytes)``.

    Raises:
        RequestError: ``BAD_SIGNATURE_ENCODING``: neither a DER nor a BSM signature.
    """
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise _bad_signature("not valid standard base64") from exc
    if len(raw) == _BSM_LEN and raw[:1] != b"\x30":
        return "bsm", decode_bsm_signature(b64)
    return "der", decode_signature(b64)


def recover_bsm(signature: bytes, message: bytes) -> tuple[bytes, bool]:
    """Recover the signer of a compact BSM signature over ``message``.

    Returns:
        ``(pubkey33, compressed_flag)``: the key, SEC1 compressed, and whether the header
        says compressed (31..34).

    Raises:
        SignatureRejected: ``SIGNATURE_INVALID`` (r or s out of range, no key recovers).
    """
    header = signature[0]
    recid = (header - 27) & 3
    compressed = header >= 31
    r = int.from_bytes(signature[1:33], "big")
    s = int.from_bytes(signature[33:65], "big")
    invalid = SignatureRejected(
        "signature does not verify for this pubkey and signedPayload (Bitcoin Signed "
        "Message: compact recoverable signature over the double SHA-256 of the prefixed "
        "message)",
        code="SIGNATURE_INVALID",
        field="signature",
    )
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise invalid
    try:
        key = coincurve.PublicKey.from_signature_and_message(
            signature[1:65] + bytes([recid]), bsm_digest(message), hasher=None
        )
    except Exception as exc:  # libsecp256k1: no point for this r and recovery id
        raise invalid from exc
    return key.format(compressed=True), compressed


def verify_bsm(
    pubkey33: bytes, signature: bytes, message: bytes, *, compressed: bool | None = None
) -> None:
    """Verify a Bitcoin Signed Message signature: the key recovered from ``signature`` over
    ``message`` must be ``pubkey33``; with ``compressed`` given, the header's compression
    flag must equal it (the form the key was given in).

    Raises:
        SignatureRejected: ``SIGNATURE_INVALID``, field ``signature``.
    """
    recovered, flag = recover_bsm(bytes(signature), bytes(message))
    if recovered != bytes(pubkey33):
        raise SignatureRejected(
            "signature does not verify for this pubkey and signedPayload (Bitcoin Signed "
            "Message: the key recovered from the signature is another key)",
            code="SIGNATURE_INVALID",
            field="signature",
        )
    if compressed is not None and flag != compressed:
        form = "compressed" if flag else "uncompressed"
        raise SignatureRejected(
            f"the signature's header byte says a {form} key signed; send pubkey in that "
            "form (66 hex characters compressed, 130 uncompressed)",
            code="SIGNATURE_INVALID",
            field="signature",
        )


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
        ok = key.verify(candidate, message, hasher=_sha256)
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


# ---------------------------------------------------------------------------------------------
# signedPayload: strict JSON parse and RFC 8785 canonical check


def _malformed(message: str, field: str | None = "signedPayload") -> RequestError:
    return RequestError(message, code="MALFORMED_JSON", field=field)


def _non_canonical(message: str, field: str | None = "signedPayload") -> RequestError:
    return RequestError(message, code="NON_CANONICAL_PAYLOAD", field=field)


def _short(text: str, limit: int = 40) -> str:
    shown = text if len(text) <= limit else text[:limit] + "..."
    return ascii(shown)


def _check_unicode(obj: Any, field: str | None) -> None:
    """Refuse lone surrogates anywhere in a parsed value (iterative: no recursion limit)."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE_RE.search(item):
                raise _malformed("JSON text contains a lone surrogate (not Unicode text)", field)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def loads_strict(text: str, *, field: str | None = "signedPayload") -> Any:
    """Parse JSON text strictly (RFC 8259 plus the I-JSON limits of RFC 7493).

    Refused: syntax errors, ``NaN``/``Infinity``/``-Infinity`` (Python's parser accepts
    them), lone surrogates, nesting too deep for the parser (``MALFORMED_JSON``); a member
    name twice in one object at any depth (``DUPLICATE_MEMBER``); integers beyond
    ±(2**53-1) and numbers overflowing a double (``NON_CANONICAL_PAYLOAD``). Used for
    ``signedPayload`` and, with ``field=None``, for the HTTP body itself.

    Args:
        text: the JSON text.
        field: the member named in errors.

    Returns:
        the value: dict, list, str, int, float, bool or None.

    Raises:
        RequestError: as above, with ``field``.
    """

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                raise RequestError(
                    f"the member name {_short(key)} appears twice in one object",
                    code="DUPLICATE_MEMBER",
                    field=field,
                )
            obj[key] = value
        return obj

    def reject_constant(name: str) -> Any:
        raise _malformed(f"{name} is not JSON (RFC 8259 §6)", field)

    def parse_int(literal: str) -> int:
        if len(literal.removeprefix("-")) > 16 or abs(int(literal)) > _MAX_SAFE_INTEGER:
            raise _non_canonical(
                f"number {_short(literal)} is outside the exact integer range +-(2**53-1) "
                "(RFC 7493 §2.2, RFC 8785 §3.2.2.3)",
                field,
            )
        return int(literal)

    def parse_float(literal: str) -> float:
        value = float(literal)
        if value in (float("inf"), float("-inf")):
            raise _non_canonical(f"number {_short(literal)} overflows an IEEE-754 double", field)
        return value

    try:
        obj = json.loads(
            text,
            object_pairs_hook=pairs_hook,
            parse_constant=reject_constant,
            parse_int=parse_int,
            parse_float=parse_float,
        )
    except json.JSONDecodeError as exc:
        raise _malformed(f"not valid JSON: {exc.msg} at character {exc.pos}", field) from exc
    except RecursionError as exc:
        raise _malformed("JSON nested too deeply", field) from exc
    _check_unicode(obj, field)
    return obj


def parse_signed_payload(s: str, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """Parse ``signedPayload`` and check that it is exactly its RFC 8785 canonical form.

    Steps: size (UTF-8 bytes, at most ``max_bytes``); strict JSON parse (duplicate member
    names refused in every object at every depth; ``NaN``/``Infinity`` refused; integers
    limited to ±(2**53-1)); top level must be an object; no lone surrogates; finally
    ``rfc8785.dumps(obj)`` must equal the UTF-8 bytes of ``s`` (RFC 8785 §3).
    See the module docstring for why each case gets its code.

    Returns:
        the parsed object (a dict; numbers are int or float).

    Raises:
        PayloadTooLarge: ``PAYLOAD_TOO_LARGE``, field ``signedPayload``.
        RequestError: ``MALFORMED_JSON``, ``DUPLICATE_MEMBER`` or ``NON_CANONICAL_PAYLOAD``,
            field ``signedPayload``.
    """
    if not isinstance(s, str):
        raise _malformed("signedPayload must be a string")
    too_large = PayloadTooLarge(
        f"signedPayload is larger than {max_bytes} bytes (UTF-8)", field="signedPayload"
    )
    if len(s) > max_bytes:  # UTF-8 never has fewer bytes than characters
        raise too_large
    try:
        raw = s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _malformed("signedPayload contains a lone surrogate (not Unicode text)") from exc
    if len(raw) > max_bytes:
        raise too_large
    obj = loads_strict(s, field="signedPayload")
    if not isinstance(obj, dict):
        raise _malformed("signedPayload must encode a JSON object")
    try:
        canonical = rfc8785.dumps(obj)
    except RecursionError as exc:
        raise _malformed("signedPayload is nested too deeply") from exc
    except (rfc8785.CanonicalizationError, UnicodeError) as exc:
        raise _non_canonical(f"signedPayload cannot be canonicalized (RFC 8785): {exc}") from exc
    if canonical != raw:
        at = next(
            (i for i, (a, b) in enumerate(zip(canonical, raw, strict=False)) if a != b),
            min(len(canonical), len(raw)),
        )
        raise _non_canonical(
            "signedPayload is not in RFC 8785 (JCS) canonical form: sorted keys, no "
            f"whitespace, ES6 number and string forms; first difference at byte {at}"
        )
    return obj


# ---------------------------------------------------------------------------------------------
# Payload members and time window


def _is_int(value: object) -> bool:
    return type(value) is int  # not bool, not float


def check_payload_fields(obj: object, *, max_ttl: int | None = DEFAULT_MAX_TTL) -> Payload:
    """Check the members of a parsed payload, without the clock (docs/PROTOCOL.md §2).

    Exactly ``v``, ``nonce``, ``iat``, ``exp``, ``record`` and optional ``type``.
    ``max_ttl`` (seconds) bounds ``exp - iat``; None skips that bound (used when checking
    a record already on chain, whose acceptance limits are not known).

    Raises:
        RequestError: ``MALFORMED_JSON`` (not an object: field ``signedPayload``; ``v`` not
            1, ``record`` not an object, ``type`` not a string: field names the member),
            ``MISSING_FIELD``, ``UNKNOWN_FIELD``, ``BAD_NONCE`` (field ``nonce``),
            ``BAD_TIMESTAMPS`` (field ``iat`` or ``exp``).
    """
    if not isinstance(obj, dict):
        raise _malformed("signedPayload must encode a JSON object")
    for name in PAYLOAD_REQUIRED:
        if name not in obj:
            raise RequestError(
                f"signedPayload lacks the member {name!r}", code="MISSING_FIELD", field=name
            )
    extra = sorted(str(k) for k in obj if k not in PAYLOAD_REQUIRED and k not in PAYLOAD_OPTIONAL)
    if extra:
        raise RequestError(
            f"signedPayload has unknown member {_short(extra[0])}; allowed: "
            "v, nonce, iat, exp, record, type",
            code="UNKNOWN_FIELD",
            field=extra[0],
        )
    v = obj["v"]
    if not _is_int(v) or v != CONTRACT_VERSION:
        raise _malformed(f"v must be the integer {CONTRACT_VERSION} (contract v1)", field="v")
    nonce = obj["nonce"]
    if not isinstance(nonce, str) or not _NONCE_RE.fullmatch(nonce):
        raise RequestError(
            "nonce must be 16 to 128 characters from [A-Za-z0-9_-]",
            code="BAD_NONCE",
            field="nonce",
        )
    iat, exp = obj["iat"], obj["exp"]
    for name, value in (("iat", iat), ("exp", exp)):
        if not _is_int(value):
            raise RequestError(
                f"{name} must be an integer (Unix seconds)", code="BAD_TIMESTAMPS", field=name
            )
    if not iat < exp:
        raise RequestError("exp must be later than iat", code="BAD_TIMESTAMPS", field="exp")
    if max_ttl is not None and exp > iat + max_ttl:
        raise RequestError(
            f"exp must be at most {max_ttl} seconds after iat",
            code="BAD_TIMESTAMPS",
            field="exp",
        )
    record = obj["record"]
    if not isinstance(record, dict):
        raise _malformed("record must be a JSON object", field="record")
    kind = obj.get("type")
    if "type" in obj and not isinstance(kind, str):
        raise _malformed("type must be a string", field="type")
    return Payload(v=v, nonce=nonce, iat=iat, exp=exp, record=record, type=kind)


def check_time_window(payload: Payload, *, now: int, max_skew: int = DEFAULT_MAX_SKEW) -> None:
    """Check ``iat <= now + max_skew`` and ``exp > now`` (all Unix seconds).

    Raises:
        TimeWindowError: ``NOT_YET_VALID`` (field ``iat``) or ``EXPIRED`` (field ``exp``).
    """
    if payload.iat > now + max_skew:
        raise TimeWindowError(
            f"iat is more than {max_skew} seconds in the future; check the client clock",
            code="NOT_YET_VALID",
            field="iat",
        )
    if payload.exp <= now:
        raise TimeWindowError(
            "the payload has expired (exp is not after now); sign a new one",
            code="EXPIRED",
            field="exp",
        )


def validate_payload(
    obj: object,
    *,
    now: int,
    max_skew: int = DEFAULT_MAX_SKEW,
    max_ttl: int = DEFAULT_MAX_TTL,
) -> Payload:
    """Check a parsed payload's members, then its time window (docs/PROTOCOL.md §2).

    Args:
        obj: the value returned by :func:`parse_signed_payload`.
        now: current Unix time, seconds.
        max_skew: how far ``iat`` may lie in the future, seconds.
        max_ttl: upper bound of ``exp - iat``, seconds.

    Raises:
        RequestError: see :func:`check_payload_fields`.
        TimeWindowError: see :func:`check_time_window`.
    """
    payload = check_payload_fields(obj, max_ttl=max_ttl)
    check_time_window(payload, now=now, max_skew=max_skew)
    return payload


# ---------------------------------------------------------------------------------------------
# Request body


def parse_request_body(body: object) -> PublishRequest:
    """Check the shape of a v1 request body and decode its key and signature.

    ``body`` is the parsed JSON body. It must be an object with exactly ``signedPayload``,
    ``signature`` and ``pubkey``, all strings. A body with the pre-v1 members
    (``publickey``, ``nonce`` or ``record``) and no ``signedPayload`` is the legacy
    contract. Then the key (:func:`parse_pubkey`) and the signature encoding
    (:func:`decode_signature`) are checked, in that order.

    Raises:
        RequestError: ``MALFORMED_JSON`` (not an object: no field; member not a string:
            field names it), ``LEGACY_CONTRACT``, ``MISSING_FIELD``, ``UNKNOWN_FIELD``,
            ``BAD_PUBKEY``, ``BAD_SIGNATURE_ENCODING``.
    """
    if not isinstance(body, Mapping):
        raise RequestError("the request body must be a JSON object", code="MALFORMED_JSON")
    if "signedPayload" not in body and LEGACY_MEMBERS.intersection(body.keys()):
        raise RequestError(
            "this is the legacy {publickey, signature, nonce, record} body; use publish "
            "contract v1: {signedPayload, signature, pubkey} where signedPayload is the "
            "RFC 8785 canonical JSON of {v: 1, nonce, iat, exp, record[, type]}",
            code="LEGACY_CONTRACT",
        )
    for name in REQUEST_MEMBERS:
        if name not in body:
            raise RequestError(
                f"the request body lacks the member {name!r}", code="MISSING_FIELD", field=name
            )
    extra = sorted(str(k) for k in body if k not in REQUEST_MEMBERS and k not in REQUEST_OPTIONAL)
    if extra:
        raise RequestError(
            f"the request body has unknown member {_short(extra[0])}; allowed: "
            "signedPayload, signature, pubkey, signatureScheme",
            code="UNKNOWN_FIELD",
            field=extra[0],
        )
    for name in REQUEST_MEMBERS:
        if not isinstance(body[name], str):
            raise _malformed(f"{name} must be a string", field=name)
    scheme = body.get("signatureScheme", "der")
    if scheme not in SCHEMES:
        raise RequestError(
            'signatureScheme must be "der" (the default) or "bsm" (Bitcoin Signed Message)',
            code="BAD_SIGNATURE_SCHEME",
            field="signatureScheme",
        )
    pubkey = parse_pubkey(body["pubkey"])
    if scheme == "bsm":
        signature = decode_bsm_signature(body["signature"])
    else:
        signature = decode_signature(body["signature"])
    return PublishRequest(
        signed_payload=body["signedPayload"],
        signature=signature,
        pubkey=pubkey,
        signature_b64=body["signature"],
        pubkey_hex=pubkey.hex(),
        scheme=scheme,
        pubkey_compressed=len(body["pubkey"]) == 66,
    )


def verify_request_signature(request: PublishRequest) -> None:
    """Verify a parsed body's signature over its ``signedPayload`` by its scheme
    (:func:`verify_signature` for ``der``, :func:`verify_bsm` for ``bsm``).

    Raises:
        SignatureRejected: ``SIGNATURE_INVALID`` or ``HIGH_S_SIGNATURE`` (DER only).
    """
    message = request.signed_payload.encode("utf-8")
    if request.scheme == "bsm":
        verify_bsm(request.pubkey, request.signature, message, compressed=request.pubkey_compressed)
    else:
        verify_signature(request.pubkey, request.signature, message)


def verify_publish_request(
    body: object,
    *,
    now: int,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    max_skew: int = DEFAULT_MAX_SKEW,
    max_ttl: int = DEFAULT_MAX_TTL,
) -> VerifiedRequest:
    """Run every stateless check of publish contract v1 on a parsed request body.

    Order: body shape, pubkey, signature encoding, payload size / parse / canonical form,
    payload members / time window, signature verification. Key registration, nonce reuse
    and credits are the caller's (they need the database).

    Args:
        body: the parsed JSON request body.
        now: current Unix time, seconds.
        max_payload_bytes: ``signedPayload`` limit in UTF-8 bytes.
        max_skew: tolerated clock skew for ``iat``, seconds.
        max_ttl: maximum ``exp - iat``, seconds.

    Raises:
        RequestError (400), SignatureRejected (401), PayloadTooLarge (413),
        TimeWindowError (422): see the functions above. Nothing else.
    """
    request = parse_request_body(body)
    obj = parse_signed_payload(request.signed_payload, max_payload_bytes)
    payload = validate_payload(obj, now=now, max_skew=max_skew, max_ttl=max_ttl)
    verify_request_signature(request)
    return VerifiedRequest(
        pubkey_hex=request.pubkey_hex,
        payload=payload,
        signed_payload=request.signed_payload,
        signature_der=request.signature,
        signature_b64=request.signature_b64,
        scheme=request.scheme,
    )


# ---------------------------------------------------------------------------------------------
# Client side


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
    if not _is_int(ttl) or ttl <= 0:
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
    der = key.sign(signed_payload.encode("utf-8"), hasher=_sha256)
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
