"""Wycheproof ECDSA secp256k1 / SHA-256 DER vectors through decode_signature + verify_signature.

Rules checked for every case of both files:
- no case with result "invalid" is ever accepted;
- a "valid" case with low S verifies; a "valid" case with high S gives HIGH_S_SIGNATURE;
- the Bitcoin file's high-S cases (flag SignatureMalleabilityBitcoin) give HIGH_S_SIGNATURE,
  and no "invalid" case is reported as merely high-S unless Bitcoin's low-S rule is its reason;
- every rejection is a RareGenError (BAD_SIGNATURE_ENCODING, SIGNATURE_INVALID or
  HIGH_S_SIGNATURE), never another exception.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any

import pytest

from raregen.errors import RareGenError
from raregen.signing import SECP256K1_N, decode_signature, parse_pubkey, verify_signature
from tests.vectors import vector_file

FILES = ["ecdsa_secp256k1_sha256_test.json", "ecdsa_secp256k1_sha256_bitcoin_test.json"]
REJECTION_CODES = {"BAD_SIGNATURE_ENCODING", "SIGNATURE_INVALID", "HIGH_S_SIGNATURE"}


def _high_s(der: bytes) -> bool:
    len_r = der[3]
    return int.from_bytes(der[6 + len_r :], "big") > SECP256K1_N // 2


def _outcome(pubkey: bytes, sig_hex: str, msg: bytes) -> str:
    """'accepted' or the error code, through the base64 path the server uses."""
    try:
        der = decode_signature(base64.b64encode(bytes.fromhex(sig_hex)).decode())
        verify_signature(pubkey, der, msg)
    except RareGenError as exc:
        return exc.code
    return "accepted"


def _direct_outcome(pubkey: bytes, sig_hex: str, msg: bytes) -> str:
    """Same, handing raw bytes straight to verify_signature (it must re-check DER)."""
    try:
        verify_signature(pubkey, bytes.fromhex(sig_hex), msg)
    except RareGenError as exc:
        return exc.code
    return "accepted"


@pytest.mark.parametrize("filename", FILES)
def test_wycheproof_file(filename: str) -> None:
    data: dict[str, Any] = json.loads(vector_file("wycheproof", filename).read_text())
    bitcoin = "bitcoin" in filename
    failures: list[str] = []
    seen: Counter[str] = Counter()
    total = 0
    for group in data["testGroups"]:
        assert group["sha"] == "SHA-256"
        pubkey = parse_pubkey(group["publicKey"]["uncompressed"])
        for case in group["tests"]:
            total += 1
            tc = f"tcId {case['tcId']} ({case['comment']})"
            msg = bytes.fromhex(case["msg"])
            try:
                outcome = _outcome(pubkey, case["sig"], msg)
                direct = _direct_outcome(pubkey, case["sig"], msg)
            except Exception as exc:  # noqa: BLE001 - the point of the test
                failures.append(f"{tc}: escaped {type(exc).__name__}: {exc}")
                continue
            seen[f"{case['result']}:{outcome}"] += 1
            if outcome != "accepted" and outcome not in REJECTION_CODES:
                failures.append(f"{tc}: unexpected code {outcome}")
            if direct == "accepted" and outcome != "accepted":
                failures.append(f"{tc}: raw DER accepted but base64 path gave {outcome}")
            if case["result"] == "invalid":
                if outcome == "accepted":
                    failures.append(f"{tc}: invalid case accepted")
                high_s_flag = "SignatureMalleabilityBitcoin" in case["flags"]
                if bitcoin and high_s_flag and outcome != "HIGH_S_SIGNATURE":
                    failures.append(f"{tc}: Bitcoin malleability case gave {outcome}")
                # high-S is a reason for "invalid" only under the Bitcoin rules (the flag, or
                # e.g. tcId 388: s = (n+1)/2, flagged ArithmeticError)
                if outcome == "HIGH_S_SIGNATURE" and not (
                    bitcoin and _high_s(bytes.fromhex(case["sig"]))
                ):
                    failures.append(f"{tc}: invalid case reported as merely high-S")
            elif case["result"] == "valid":
                expected = "HIGH_S_SIGNATURE" if _high_s(bytes.fromhex(case["sig"])) else "accepted"
                if outcome != expected:
                    failures.append(f"{tc}: valid case gave {outcome}, expected {expected}")
            elif outcome == "accepted":  # "acceptable": allowed either way
                pass
    assert total == data["numberOfTests"]
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:40])
    # sanity: both branches were exercised
    assert seen["valid:accepted"] > 0
    if not bitcoin:
        assert seen["valid:HIGH_S_SIGNATURE"] > 0
    assert seen["invalid:BAD_SIGNATURE_ENCODING"] > 0
    assert seen["invalid:SIGNATURE_INVALID"] > 0
