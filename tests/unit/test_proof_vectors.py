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
        "SIGNATURE_INVALID",
        "RECORD_MISMATCH",
        "MERKLE_ROOT_MISMATCH",
        "MERKLE_PATH_OTHER_TX",
        "HEADER_POW_INVALID",
        "HEADER_CHAIN_BROKEN",
        "FILE_HASH_MISMATCH",
        None,
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


@pytest.mark.parametrize("count", [2, 3, 5, 6, 7, 9, 17, 1001])
def test_paths_of_a_whole_block_at_once_match_one_by_one(count: int) -> None:
    """``bumps_from_txids`` (one tree, own BRC-74 encoder) gives byte for byte what the
    SDK's ``MerklePath`` writes one txid at a time, and every path leads to the root."""
    import hashlib

    from bsv import MerklePath

    from raregen.proofs import merkle

    txids = [hashlib.sha256(f"{count}:{i}".encode()).hexdigest() for i in range(count)]
    wanted = txids[1:] if count < 100 else txids[1::37] + [txids[-2]]
    many = merkle.bumps_from_txids(800_000, txids, wanted + ["ff" * 32])
    assert sorted(many) == sorted(wanted)  # a txid not in the block is left out
    root = merkle.merkle_root(txids)
    for txid in wanted:
        assert many[txid] == merkle.bump_from_txids(800_000, txids, txid)
        path = MerklePath.from_hex(many[txid])
        assert path.block_height == 800_000 and path.compute_root(txid) == root
