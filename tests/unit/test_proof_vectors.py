"""The Python verifier over every committed proof vector (tests/data/proofs/index.json): the
verdict and reason code each must give, from the file alone (offline, no services)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from raregen.proofs import verify as proofs

HERE = Path(__file__).resolve().parents[1] / "data" / "proofs"
INDEX = json.loads((HERE / "index.json").read_text())


def test_the_index_covers_every_case_of_the_spec() -> None:
    reasons = {v["reason"] for v in INDEX["vectors"]}
    assert {
        "SIGNATURE_INVALID", "RECORD_MISMATCH", "MERKLE_ROOT_MISMATCH", "MERKLE_PATH_OTHER_TX",
        "HEADER_POW_INVALID", "HEADER_CHAIN_BROKEN", "FILE_HASH_MISMATCH", None,
    } <= reasons
    files = {v["file"] for v in INDEX["vectors"]}
    assert files == {p.name for p in HERE.glob("*.json")} - {"index.json"}


@pytest.mark.parametrize("vector", INDEX["vectors"], ids=lambda v: v["file"])
def test_vector(vector: dict) -> None:  # type: ignore[type-arg]
    data = (HERE / vector["file"]).read_bytes()
    original = base64.b64decode(vector["originalBase64"]) if "originalBase64" in vector else None
    result = proofs.verify_proof_bytes(data, original=original, max_bytes=INDEX["maxBytes"])
    assert (result.verdict, result.reason) == (vector["verdict"], vector["reason"])
    assert result.exit_code == {"valid": 0, "invalid": 1, "could-not-check": 3}[vector["verdict"]]
    failed = [c.code for c in result.checks if c.state == "fail"]
    assert failed == ([] if vector["reason"] is None else [vector["reason"]])


def test_oversized_file_is_refused_before_parsing() -> None:
    data = (HERE / "valid-one-complete.json").read_bytes()
    result = proofs.verify_proof_bytes(data, max_bytes=len(data) - 1)
    assert (result.verdict, result.reason) == ("could-not-check", "PROOF_TOO_LARGE")
