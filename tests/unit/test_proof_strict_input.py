"""Both proof verifiers read members strictly and agree (a new user's findings): a hex member
with a trailing newline, a txid with one, a vout past uint32 are PROOF_MALFORMED in Python
and in the browser, never "valid" in one and refused in the other."""

from __future__ import annotations

import base64
import json

import pytest

from raregen.proofs.verify import verify_proof_bytes
from tests.jsbridge import run_js
from tests.vectors import REPO_ROOT

VALID = REPO_ROOT / "tests" / "data" / "proofs" / "valid-one-complete.json"

CASES = {
    "rawTx-newline": ("rawTx", lambda v: v + "\n"),
    "txid-newline": ("txid", lambda v: v + "\n"),
    "merklePath-newline": ("merklePath", lambda v: v + "\n"),
    "vout-past-uint32": ("vout", lambda v: 2**70),
    "vout-uint32-plus-one": ("vout", lambda v: 2**32),
}


def _crafted(name: str) -> bytes:
    doc = json.loads(VALID.read_text(encoding="utf-8"))
    member, change = CASES[name]
    doc[member] = change(doc[member])
    return json.dumps(doc).encode()


@pytest.mark.parametrize("name", sorted(CASES))
def test_python_verifier_refuses(name: str) -> None:
    result = verify_proof_bytes(_crafted(name))
    assert (result.verdict, result.reason) == ("could-not-check", "PROOF_MALFORMED")


def test_browser_verifier_agrees() -> None:
    requests = [
        {"file": name, "proofBase64": base64.b64encode(_crafted(name)).decode()}
        for name in sorted(CASES)
    ]
    got = {
        r["file"]: (r["verdict"], r["reason"])
        for r in run_js("proof_vectors.mjs", "-", requests=requests)
    }
    assert got == {name: ("could-not-check", "PROOF_MALFORMED") for name in CASES}
