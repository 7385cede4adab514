"""Domain errors of RareGen.

Every error a client can see is a :class:`RareGenError` subclass with a stable ``code``
(docs/API.md, Error codes), an HTTP ``status`` and an optional ``field`` naming the request
member at fault. One error handler (``raregen.web.errors``) turns them into
``{"error": {"code", "message", "field"}}``; nothing else ever reaches a client.

Tree::

    RareGenError                  BAD_REQUEST (400: unreadable HTTP body, raregen.web.errors)
    ├── RequestError (400)        MALFORMED_JSON, MISSING_FIELD, UNKNOWN_FIELD, BAD_PUBKEY,
    │                             BAD_SIGNATURE_ENCODING, NON_CANONICAL_PAYLOAD,
    │                             DUPLICATE_MEMBER, BAD_NONCE, BAD_TIMESTAMPS, LEGACY_CONTRACT
    ├── SignatureRejected (401)   SIGNATURE_INVALID, HIGH_S_SIGNATURE,
    │                             CHALLENGE_INVALID (wallet key proof: unknown, used or expired)
    ├── AuthRequired (401)        AUTH_REQUIRED (wallet API without a signed-in session)
    ├── CodeRejected (401)        CODE_WRONG, CODE_EXPIRED, CODE_USED, TOO_MANY_TRIES
    │                             (email one-time code)
    ├── NoCredits (402)           NO_CREDITS
    ├── KeyRefused (403)          KEY_NOT_REGISTERED, KEY_REVOKED
    ├── NotFound (404)            NOT_FOUND
    ├── NonceReused (409)         NONCE_REUSED
    ├── KeyTaken (409)            KEY_TAKEN (the key is registered to another account)
    ├── PayloadTooLarge (413)     PAYLOAD_TOO_LARGE
    ├── UnsupportedMediaType (415) UNSUPPORTED_MEDIA_TYPE
    ├── TimeWindowError (422)     EXPIRED, NOT_YET_VALID
    ├── RateLimited (429)         RATE_LIMITED
    └── ServiceError (503)        UNAVAILABLE (a dependency such as Redis or the node is down)

This module imports neither Flask nor the database.
"""

from __future__ import annotations


class RareGenError(Exception):
    """Base of all client-visible errors.

    Attributes:
        code: stable machine-readable code (docs/PROTOCOL.md §2).
        status: HTTP status the code maps to.
        message: human-readable sentence, safe to show (no secrets, no stack).
        field: the request member at fault, or None.
    """

    status: int = 400
    default_code: str = "BAD_REQUEST"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None):
        super().__init__(message)
        self.code = code or self.default_code
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, dict[str, str | None]]:
        """The error body of docs/PROTOCOL.md §2: ``{"error": {"code", "message", "field"}}``."""
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class RequestError(RareGenError):
    """400: the request's form is wrong (code says how)."""

    status = 400
    default_code = "MALFORMED_JSON"


class SignatureRejected(RareGenError):
    """401: SIGNATURE_INVALID or HIGH_S_SIGNATURE (BIP 62/146 low-S rule)."""

    status = 401
    default_code = "SIGNATURE_INVALID"


class AuthRequired(RareGenError):
    """401: the wallet API needs a signed-in session (email one-time code)."""

    status = 401
    default_code = "AUTH_REQUIRED"


class CodeRejected(RareGenError):
    """401: an email one-time code was refused.

    Codes: CODE_WRONG (``tries_left`` more attempts on this code), CODE_EXPIRED, CODE_USED,
    TOO_MANY_TRIES (a new code is needed).
    """

    status = 401
    default_code = "CODE_WRONG"

    def __init__(self, message: str, *, tries_left: int = 0, **kw: str | None):
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.tries_left = tries_left


class NoCredits(RareGenError):
    """402: the key's account has no publishing credit left."""

    status = 402
    default_code = "NO_CREDITS"


class KeyRefused(RareGenError):
    """403: KEY_NOT_REGISTERED or KEY_REVOKED."""

    status = 403
    default_code = "KEY_NOT_REGISTERED"


class NotFound(RareGenError):
    """404: the job, record or page does not exist."""

    status = 404
    default_code = "NOT_FOUND"


class NonceReused(RareGenError):
    """409: the nonce was used before by this key with other content."""

    status = 409
    default_code = "NONCE_REUSED"


class KeyTaken(RareGenError):
    """409: the public key is already registered to another account."""

    status = 409
    default_code = "KEY_TAKEN"


class PayloadTooLarge(RareGenError):
    """413: body or signedPayload over the configured limit (bytes)."""

    status = 413
    default_code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(RareGenError):
    """415: the request is not ``application/json``."""

    status = 415
    default_code = "UNSUPPORTED_MEDIA_TYPE"


class TimeWindowError(RareGenError):
    """422: EXPIRED or NOT_YET_VALID (the payload's iat/exp window)."""

    status = 422
    default_code = "EXPIRED"


class RateLimited(RareGenError):
    """429: too many requests; ``retry_after`` seconds go into the Retry-After header."""

    status = 429
    default_code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: int = 60, **kw: str | None):
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServiceError(RareGenError):
    """503: a dependency (queue, node, publisher) is unavailable; the client may retry."""

    status = 503
    default_code = "UNAVAILABLE"


class InsufficientFunds(Exception):
    """Internal: no pool UTXO (or not enough satoshis) to pay for a transaction. Not client-visible."""
