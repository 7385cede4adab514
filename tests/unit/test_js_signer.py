"""A request signed by JavaScript (tests/js/sign_record.mjs) passes verify_publish_request.

Needs Node.js and the packages of the repo's package.json (``npm install`` at the repo root).
Missing either makes this test fail with instructions, not skip.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from typing import Any

import coincurve
import pytest

from raregen.signing import is_low_s, verify_publish_request
from tests.vectors import REPO_ROOT

SCRIPT = REPO_ROOT / "tests" / "js" / "sign_record.mjs"
PRIVATE_KEY = bytes(range(0x41, 0x61))
NOW = 1_700_000_000


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js (node) is not on PATH; install Node.js >= 20.19", pytrace=False)
    for package in ("@noble/curves", "@noble/hashes", "canonicalize"):
        if not (REPO_ROOT / "node_modules" / package / "package.json").is_file():
            pytest.fail(
                f"node_modules/{package} is missing: run `npm install` in {REPO_ROOT} "
                "(it installs the pinned versions of package.json for tests/js/sign_record.mjs)",
                pytrace=False,
            )
    return node


def sign_with_js(request: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [_node(), str(SCRIPT)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=False,
    )
    assert proc.returncode == 0, f"sign_record.mjs failed: {proc.stderr}"
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


RECORDS = [
    {"title": "Song", "creator": "Ras", "contentHash": "ab" * 32, "mediaType": "audio/flac"},
    {"n": [1.5, 0.1, 1e21, 1e-7, -0.0, 123456789, 9007199254740991], "ok": True, "none": None},
    {"\ufb01": "ligature", "\U0001f600": "astral", "\u00e9": "é", "a": {"\r": "", "1": []}},
    {"text": 'quote " backslash \\ control \u0001 tab \t newline \n / </script>'},
]


@pytest.mark.parametrize("record", RECORDS)
def test_js_signed_request_verifies(record: dict[str, Any]) -> None:
    body = sign_with_js(
        {"privateKeyHex": PRIVATE_KEY.hex(), "record": record, "type": "work", "now": NOW}
    )
    assert set(body) == {"signedPayload", "signature", "pubkey"}
    verified = verify_publish_request(body, now=NOW + 5)
    assert verified.pubkey_hex == coincurve.PrivateKey(PRIVATE_KEY).public_key.format().hex()
    assert verified.payload.record == record
    assert verified.payload.type == "work"
    assert verified.payload.exp - verified.payload.iat == 600
    assert len(verified.payload.nonce) == 32
    assert is_low_s(base64.b64decode(body["signature"]))


def test_js_signer_defaults_to_current_time() -> None:
    import time

    body = sign_with_js({"privateKeyHex": PRIVATE_KEY.hex(), "record": {"a": 1}, "ttl": 120})
    verified = verify_publish_request(body, now=int(time.time()))
    assert verified.payload.type is None
    assert verified.payload.exp - verified.payload.iat == 120
