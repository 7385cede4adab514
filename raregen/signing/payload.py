"""The members of a v1 ``signedPayload`` and its time window (docs/PROTOCOL.md §2), for
:mod:`raregen.signing`. Pure: reads no clock (the caller passes ``now``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from raregen.errors import RequestError, TimeWindowError
from raregen.signing.strictjson import malformed, shorten

CONTRACT_VERSION: Final = 1
"""The ``v`` member every payload of contract v1 carries."""

DEFAULT_MAX_SKEW: Final = 60
"""Default tolerated clock skew, seconds: ``iat`` may be at most this far in the future."""

DEFAULT_MAX_TTL: Final = 3600
"""Default maximum ``exp - iat``, seconds."""

PAYLOAD_REQUIRED: Final = ("v", "nonce", "iat", "exp", "record")
PAYLOAD_OPTIONAL: Final = ("type",)

_NONCE_RE: Final = re.compile(r"[A-Za-z0-9_-]{16,128}")


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


def is_int(value: object) -> bool:
    """Whether ``value`` is a JSON integer as parsed: an ``int``, not a ``bool``."""
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
        raise malformed("signedPayload must encode a JSON object")
    for name in PAYLOAD_REQUIRED:
        if name not in obj:
            raise RequestError(
                f"signedPayload lacks the member {name!r}", code="MISSING_FIELD", field=name
            )
    extra = sorted(str(k) for k in obj if k not in PAYLOAD_REQUIRED and k not in PAYLOAD_OPTIONAL)
    if extra:
        raise RequestError(
            f"signedPayload has unknown member {shorten(extra[0])}; allowed: "
            "v, nonce, iat, exp, record, type",
            code="UNKNOWN_FIELD",
            field=extra[0],
        )
    v = obj["v"]
    if not is_int(v) or v != CONTRACT_VERSION:
        raise malformed(f"v must be the integer {CONTRACT_VERSION} (contract v1)", field="v")
    nonce = obj["nonce"]
    if not isinstance(nonce, str) or not _NONCE_RE.fullmatch(nonce):
        raise RequestError(
            "nonce must be 16 to 128 characters from [A-Za-z0-9_-]",
            code="BAD_NONCE",
            field="nonce",
        )
    iat, exp = obj["iat"], obj["exp"]
    for name, value in (("iat", iat), ("exp", exp)):
        if not is_int(value):
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
        raise malformed("record must be a JSON object", field="record")
    kind = obj.get("type")
    if "type" in obj and not isinstance(kind, str):
        raise malformed("type must be a string", field="type")
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
