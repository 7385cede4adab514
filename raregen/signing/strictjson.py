"""``signedPayload``: strict JSON parse (RFC 8259 with the I-JSON limits of RFC 7493) and
the RFC 8785 (JCS) canonical-form check, for :mod:`raregen.signing`. Why each case gets
its error code: the package docstring. Pure: ``json`` and ``rfc8785`` only.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import rfc8785

from raregen.errors import PayloadTooLarge, RequestError

DEFAULT_MAX_PAYLOAD_BYTES: Final = 100_000
"""Default limit of ``signedPayload``, in UTF-8 bytes (docs/PROTOCOL.md §2)."""

_MAX_SAFE_INTEGER: Final = 2**53 - 1
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")


def malformed(message: str, field: str | None = "signedPayload") -> RequestError:
    """The ``MALFORMED_JSON`` error for ``field``; the caller raises it."""
    return RequestError(message, code="MALFORMED_JSON", field=field)


def non_canonical(message: str, field: str | None = "signedPayload") -> RequestError:
    """The ``NON_CANONICAL_PAYLOAD`` error for ``field``; the caller raises it."""
    return RequestError(message, code="NON_CANONICAL_PAYLOAD", field=field)


def shorten(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters (``...`` added) and quoted with ``ascii()``, for
    error messages that echo client input."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return ascii(shown)


def _check_unicode(obj: Any, field: str | None) -> None:
    """Refuse lone surrogates anywhere in a parsed value (iterative: no recursion limit)."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE_RE.search(item):
                raise malformed("JSON text contains a lone surrogate (not Unicode text)", field)
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
                    f"the member name {shorten(key)} appears twice in one object",
                    code="DUPLICATE_MEMBER",
                    field=field,
                )
            obj[key] = value
        return obj

    def reject_constant(name: str) -> Any:
        raise malformed(f"{name} is not JSON (RFC 8259 §6)", field)

    def parse_int(literal: str) -> int:
        if len(literal.removeprefix("-")) > 16 or abs(int(literal)) > _MAX_SAFE_INTEGER:
            raise non_canonical(
                f"number {shorten(literal)} is outside the exact integer range +-(2**53-1) "
                "(RFC 7493 §2.2, RFC 8785 §3.2.2.3)",
                field,
            )
        return int(literal)

    def parse_float(literal: str) -> float:
        value = float(literal)
        if value in (float("inf"), float("-inf")):
            raise non_canonical(f"number {shorten(literal)} overflows an IEEE-754 double", field)
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
        raise malformed(f"not valid JSON: {exc.msg} at character {exc.pos}", field) from exc
    except RecursionError as exc:
        raise malformed("JSON nested too deeply", field) from exc
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
        raise malformed("signedPayload must be a string")
    too_large = PayloadTooLarge(
        f"signedPayload is larger than {max_bytes} bytes (UTF-8)", field="signedPayload"
    )
    if len(s) > max_bytes:  # UTF-8 never has fewer bytes than characters
        raise too_large
    try:
        raw = s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise malformed("signedPayload contains a lone surrogate (not Unicode text)") from exc
    if len(raw) > max_bytes:
        raise too_large
    obj = loads_strict(s, field="signedPayload")
    if not isinstance(obj, dict):
        raise malformed("signedPayload must encode a JSON object")
    try:
        canonical = rfc8785.dumps(obj)
    except RecursionError as exc:
        raise malformed("signedPayload is nested too deeply") from exc
    except (rfc8785.CanonicalizationError, UnicodeError) as exc:
        raise non_canonical(f"signedPayload cannot be canonicalized (RFC 8785): {exc}") from exc
    if canonical != raw:
        at = next(
            (i for i, (a, b) in enumerate(zip(canonical, raw, strict=False)) if a != b),
            min(len(canonical), len(raw)),
        )
        raise non_canonical(
            "signedPayload is not in RFC 8785 (JCS) canonical form: sorted keys, no "
            f"whitespace, ES6 number and string forms; first difference at byte {at}"
        )
    return obj
