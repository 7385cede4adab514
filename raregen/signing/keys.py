"""secp256k1 public keys as the contract receives them (SEC 1 v2 §2.3.3), for
:mod:`raregen.signing`. Pure: libsecp256k1 (``coincurve``) only.
"""

from __future__ import annotations

import re
from typing import Final

import coincurve

from raregen.errors import RequestError

_HEX_RE: Final = re.compile(r"[0-9A-Fa-f]*")


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
