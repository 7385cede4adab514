"""Email one-time codes: make a code, keep only a keyed hash of it, check a guess.

Pure code: imports neither Flask nor the database.

A code is six decimal digits made by pyotp (an HOTP value, RFC 4226, of a fresh random
base32 secret at counter 0; the secret is discarded at once, so every code is independent).
The server stores only ``HMAC-SHA256(server_key, "<challenge id>:<code>")``: a database
dump alone does not reveal the code, and without the server key the 10^6 candidates cannot
be tried offline. The comparison runs in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re

import pyotp

CODE_DIGITS = 6
_CODE_RE = re.compile(r"[0-9]{6}")


def new_code() -> str:
    """A fresh 6-digit code (string, leading zeros kept)."""
    return pyotp.HOTP(pyotp.random_base32(), digits=CODE_DIGITS).at(0)


def normalize_code(text: str) -> str | None:
    """The code a user typed, without spaces or dashes; None if it cannot be a code."""
    if not isinstance(text, str):
        return None
    cleaned = re.sub(r"[\s-]", "", text)
    return cleaned if _CODE_RE.fullmatch(cleaned) else None


def hash_code(server_key: bytes, salt: str, code: str) -> str:
    """The stored form of ``code``: hex HMAC-SHA256 keyed with ``server_key``.

    Args:
        server_key: a secret only the server holds (derived from the app's SECRET_KEY).
        salt: a per-challenge value (its row id) so that equal codes of different
            challenges hash differently.
        code: the six digits.
    """
    return hmac.new(server_key, f"{salt}:{code}".encode(), hashlib.sha256).hexdigest()


def check_code(server_key: bytes, salt: str, guess: str, stored_hash: str) -> bool:
    """Whether ``guess`` is the code whose hash is ``stored_hash`` (constant-time compare)."""
    return hmac.compare_digest(hash_code(server_key, salt, guess), stored_hash)
