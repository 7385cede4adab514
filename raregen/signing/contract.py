"""The v1 request body and the server-side order of checks (``verify_publish_request``;
docs/PROTOCOL.md §2 and the package docstring of :mod:`raregen.signing`).
Pure: imports neither Flask nor SQLAlchemy, does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from raregen.errors import RequestError
from raregen.signing.bsm import decode_bsm_signature, verify_bsm
from raregen.signing.der import decode_signature, verify_signature
from raregen.signing.keys import parse_pubkey
from raregen.signing.payload import DEFAULT_MAX_SKEW, DEFAULT_MAX_TTL, Payload, validate_payload
from raregen.signing.strictjson import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    malformed,
    parse_signed_payload,
    shorten,
)

REQUEST_MEMBERS: Final = ("signedPayload", "signature", "pubkey")
"""Members of the v1 request body, in the order they are reported missing."""

REQUEST_OPTIONAL: Final = ("signatureScheme",)
"""Optional members of the v1 request body."""

SCHEMES: Final = ("der", "bsm")
"""Values of ``signatureScheme``: ``der`` (the default) and ``bsm`` (Bitcoin Signed Message)."""

LEGACY_MEMBERS: Final = frozenset({"publickey", "nonce", "record"})
"""Top-level members of the pre-v1 body ``{publickey, signature, nonce, record}``."""


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
            f"the request body has unknown member {shorten(extra[0])}; allowed: "
            "signedPayload, signature, pubkey, signatureScheme",
            code="UNKNOWN_FIELD",
            field=extra[0],
        )
    for name in REQUEST_MEMBERS:
        if not isinstance(body[name], str):
            raise malformed(f"{name} must be a string", field=name)
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
