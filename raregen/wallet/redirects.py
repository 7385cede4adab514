"""Where a browser may be sent after signing in: only a path on this site.

:func:`safe_next` is the one gate for every ``next`` value the wallet honours (the
``?next=`` of the sign-in page, kept in the session until the code is accepted).

Browsers do not read a ``Location`` header the way a naive check does. The WHATWG URL
Standard (section 4.4, "basic URL parser") has them strip leading and trailing C0 control
characters and spaces, delete every tab, line feed and carriage return anywhere in the
string, and treat ``\\`` like ``/`` in http(s) URLs. So ``/<TAB>/evil.example/`` and
``/\\evil.example/`` both become ``//evil.example/``: a scheme-relative URL, another site.
The check therefore runs on the string as a browser would read it, and is repeated on its
percent-decoded forms so that a proxy or a later redirect that decodes the path (``/%2F/x``
becoming ``//x``) cannot turn an accepted value into another site either.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

__all__ = ["DEFAULT_NEXT", "MAX_NEXT_LENGTH", "safe_next"]

#: Where a browser goes when no acceptable ``next`` was given: the wallet's dashboard.
DEFAULT_NEXT = "/wallet"

#: Longer values are refused (the value lives in the session cookie until used).
MAX_NEXT_LENGTH = 2000

# WHATWG URL Standard: C0 controls and space are trimmed at both ends ...
_EDGES = "".join(chr(c) for c in range(0x21))
# ... and ASCII tab and newline are removed everywhere
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
# what is left may not hold any other control character (C0 or DEL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# bound on repeated percent-decoding (each round may reveal another encoded layer)
_DECODE_ROUNDS = 4


def _as_browser_reads(value: str) -> str:
    """``value`` the way a browser's URL parser sees it before resolving it."""
    return _TAB_NEWLINE.sub("", value.strip(_EDGES)).replace("\\", "/")


def _is_local_path(value: str) -> bool:
    """True for an absolute path on this site: ``/`` then anything but a second ``/``."""
    if not value.startswith("/") or value.startswith("//") or _CONTROL.search(value):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


def safe_next(url: object, default: str = DEFAULT_NEXT) -> str:
    """The local path to send a browser to, or ``default`` when ``url`` is not one.

    Accepted: a path on this site (``/wallet/records?tab=2`` is returned with its query),
    judged after browser normalisation (see the module docstring: control characters
    dropped, ``\\`` read as ``/``) and again after each round of percent-decoding.
    Refused (``default`` is returned): anything not a string, empty or longer than
    :data:`MAX_NEXT_LENGTH`; scheme-relative URLs (``//host``, ``/\\host``, ``/<TAB>/host``);
    URLs with a scheme (``https:``, ``javascript:``, ``data:``); relative paths without a
    leading ``/``; paths whose decoded form is one of these (``/%2F/host``); paths holding
    other control characters.

    Args:
        url: the requested target (a query parameter or a value read back from the
            session); any type.
        default: the local path returned when ``url`` is refused.

    Returns:
        The normalised path (what the browser would have read), or ``default``.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_NEXT_LENGTH:
        return default
    candidate = _as_browser_reads(url)
    if not _is_local_path(candidate):
        return default
    decoded = candidate
    for _ in range(_DECODE_ROUNDS):
        step = unquote(decoded)
        if step == decoded:
            return candidate
        decoded = step
        if not _is_local_path(_as_browser_reads(decoded)):
            return default
    return default  # still encoded after several rounds: not a path anyone needs
