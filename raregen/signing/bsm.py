"""Bitcoin Signed Message: compact recoverable signatures (scheme ``bsm`` of
:mod:`raregen.signing`), and telling a stored signature's scheme from its bytes.
Pure: libsecp256k1 (``coincurve``) recovers the key; no I/O.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

import coincurve

from raregen.errors import SignatureRejected
from raregen.signing.der import SECP256K1_N, bad_signature, decode_signature, sha256

BSM_MAGIC: Final = b"Bitcoin Signed Message:\n"
"""The message prefix of Bitcoin Signed Message (before it: its length as a varint, 24)."""


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
    return sha256(sha256(data))


def decode_bsm_signature(b64: str) -> bytes:
    """Decode a ``bsm`` ``signature``: canonical standard base64 of 65 bytes, the first (the
    header) 27..34.

    Raises:
        RequestError: ``BAD_SIGNATURE_ENCODING``, field ``signature``.
    """
    if not isinstance(b64, str) or not b64:
        raise bad_signature("missing or not a string")
    if len(b64) != _BSM_B64_LEN:
        raise bad_signature("a Bitcoin Signed Message signature is 88 base64 characters (65 bytes)")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_signature("not valid standard base64") from exc
    if base64.b64encode(raw).decode("ascii") != b64:
        raise bad_signature("base64 is not canonical (padding bits must be zero)")
    if len(raw) != _BSM_LEN or not 27 <= raw[0] <= 34:
        raise bad_signature(
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
        raise bad_signature("not valid standard base64") from exc
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
