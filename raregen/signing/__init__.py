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

Modules (one job each): :mod:`~raregen.signing.keys` (``pubkey``),
:mod:`~raregen.signing.der` (strict DER, low-S, ECDSA verify), :mod:`~raregen.signing.bsm`
(Bitcoin Signed Message), :mod:`~raregen.signing.strictjson` (strict JSON, RFC 8785 check),
:mod:`~raregen.signing.payload` (payload members, time window),
:mod:`~raregen.signing.contract` (request body, order of checks) and
:mod:`~raregen.signing.client` (building and signing requests). This package re-exports
their public names, so ``raregen.signing.X`` keeps working.
"""

from __future__ import annotations

from raregen.signing.bsm import (
    BSM_MAGIC,
    bsm_digest,
    decode_bsm_signature,
    decode_stored_signature,
    recover_bsm,
    signature_scheme_of,
    verify_bsm,
)
from raregen.signing.client import (
    build_payload,
    canonicalize,
    make_request,
    new_nonce,
    sign_bsm,
    sign_payload,
)
from raregen.signing.contract import (
    LEGACY_MEMBERS,
    REQUEST_MEMBERS,
    REQUEST_OPTIONAL,
    SCHEMES,
    PublishRequest,
    VerifiedRequest,
    parse_request_body,
    verify_publish_request,
    verify_request_signature,
)
from raregen.signing.der import SECP256K1_N, decode_signature, is_low_s, verify_signature
from raregen.signing.keys import parse_pubkey
from raregen.signing.payload import (
    CONTRACT_VERSION,
    DEFAULT_MAX_SKEW,
    DEFAULT_MAX_TTL,
    PAYLOAD_OPTIONAL,
    PAYLOAD_REQUIRED,
    Payload,
    check_payload_fields,
    check_time_window,
    validate_payload,
)
from raregen.signing.strictjson import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    loads_strict,
    parse_signed_payload,
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
    # also re-exported (module constants of the former single module)
    "BSM_MAGIC",
    "LEGACY_MEMBERS",
    "PAYLOAD_OPTIONAL",
    "PAYLOAD_REQUIRED",
    "REQUEST_MEMBERS",
    "REQUEST_OPTIONAL",
    "SCHEMES",
]
