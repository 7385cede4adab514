"""Every error code the code base can emit is listed in docs/API.md (its "Error codes" section).

The codes are found in the source by the ways they are written: ``code="X"`` arguments,
``default_code = "X"`` class attributes, the HTTP-status table and ``_respond``/``_error`` calls
of the error handlers, ``_fail``/``fail_jobs`` calls (a failed job's ``errorCode``) and the
``"X: message"`` strings of record verification.
"""

from __future__ import annotations

import re

from tests.vectors import REPO_ROOT

_PATTERNS = [
    r'code="([A-Z][A-Z_]+)"',
    r'default_code(?:: str)? = "([A-Z][A-Z_]+)"',
    r'_respond\(\s*\d+,\s*"([A-Z][A-Z_]+)"',
    r'_error\(\s*\d+,\s*"([A-Z][A-Z_]+)"',
    r'\b\d{3}: "([A-Z][A-Z_]+)"',
    r'_HTTP_CODES\.get\([^,]+, "([A-Z][A-Z_]+)"\)',
    r'\b(?:_fail|fail_jobs)\([^"]*"([A-Z][A-Z_]+)"',
    r'f"([A-Z][A-Z_]+): ',
]

# Codes that must be found, so a change in how codes are written cannot empty the check.
_KNOWN = {
    "MALFORMED_JSON",
    "NON_CANONICAL_PAYLOAD",
    "HIGH_S_SIGNATURE",
    "NONCE_REUSED",
    "UNAVAILABLE",
    "METHOD_NOT_ALLOWED",
    "INTERNAL",
    "CSRF_FAILED",
    "BROADCAST_REJECTED",
    "BROADCAST_CONFLICT",
    "BAD_RECORD",
    "MALFORMED_RECORD",
}


def _emitted_codes() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted((REPO_ROOT / "raregen").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for pattern in _PATTERNS:
            for match in re.finditer(pattern, text, re.S):
                if match.group(1).startswith("RAREGEN_"):
                    continue  # a setting's name in a start-up refusal, not an error code
                found.setdefault(match.group(1), str(path.relative_to(REPO_ROOT)))
    return found


def test_every_emitted_error_code_is_in_api_md() -> None:
    codes = _emitted_codes()
    assert _KNOWN <= codes.keys(), sorted(_KNOWN - codes.keys())
    doc = (REPO_ROOT / "docs" / "API.md").read_text(encoding="utf-8")
    section = doc.split("## Error codes", 1)
    assert len(section) == 2, "docs/API.md has no '## Error codes' section"
    listed = set(re.findall(r"`([A-Z][A-Z_]+)`", section[1]))
    missing = {code: where for code, where in codes.items() if code not in listed}
    assert not missing, f"error codes missing from docs/API.md: {missing}"
