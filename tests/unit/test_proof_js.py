"""Two verifiers, one set of vectors: the browser verifier (raregen/static/js/src/proof.js),
run under Node.js by tests/js/proof_vectors.mjs, gives the verdict and reason code that
tests/data/proofs/index.json expects for every vector (the Python verifier's), check by check
as :mod:`raregen.proofs.verify` does; then both verifiers are run side by side on variants of
the vectors made here (bad input, limits, re-encoded keys and signatures).
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import coincurve
import pytest

from raregen.proofs.verify import verify_proof_bytes
from raregen.signing import SECP256K1_N, decode_signature
from tests.jsbridge import run_js
from tests.vectors import REPO_ROOT

VECTORS = REPO_ROOT / "tests" / "data" / "proofs"
INDEX = json.loads((VECTORS / "index.json").read_text())
SPEC_MAX_BYTES = 4 * 1024 * 1024  # docs/PROOFS.md: the default size limit of a proof file


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text())


@pytest.fixture(scope="module")
def js_results() -> dict[str, dict[str, Any]]:
    return {r["file"]: r for r in run_js("proof_vectors.mjs", str(VECTORS))}


def test_every_vector_is_checked(js_results: dict[str, dict[str, Any]]) -> None:
    assert sorted(js_results) == sorted(v["file"] for v in INDEX["vectors"])
    assert len(js_results) >= 20


@pytest.mark.parametrize("vector", INDEX["vectors"], ids=lambda v: v["file"])
def test_vector_verdict_and_reason(vector: dict[str, Any], js_results: dict[str, Any]) -> None:
    got = js_results[vector["file"]]
    assert (got["verdict"], got["reason"]) == (vector["verdict"], vector["reason"])


@pytest.mark.parametrize("vector", INDEX["vectors"], ids=lambda v: v["file"])
def test_vector_checks_match_the_python_verifier(
    vector: dict[str, Any], js_results: dict[str, Any]
) -> None:
    original = base64.b64decode(vector["originalBase64"]) if "originalBase64" in vector else None
    py = verify_proof_bytes(
        (VECTORS / vector["file"]).read_bytes(), original=original, max_bytes=INDEX["maxBytes"]
    )
    got = js_results[vector["file"]]
    assert [list(pair) for pair in got["checks"]] == [[c.code, c.state] for c in py.checks]
    if py.verdict == "valid":
        assert got["trust"].split(" (")[0] == py.trust.split(" (")[0]


# ---------------------------------------------------------------------------------------------
# Variants: both verifiers on the same bytes


def _high_s(doc: dict[str, Any]) -> None:
    der = decode_signature(doc["record"]["signature"])
    r_len = der[3]
    r = int.from_bytes(der[4 : 4 + r_len], "big")
    s = int.from_bytes(der[6 + r_len :], "big")
    doc["record"]["signature"] = _b64(_der(r, SECP256K1_N - s))


def _der(r: int, s: int) -> bytes:
    def integer(v: int) -> bytes:
        body = v.to_bytes((v.bit_length() + 7) // 8, "big")
        if body[0] & 0x80:
            body = b"\x00" + body
        return b"\x02" + bytes([len(body)]) + body

    seq = integer(r) + integer(s)
    return b"\x30" + bytes([len(seq)]) + seq


def _uncompressed(doc: dict[str, Any]) -> None:
    key = coincurve.PublicKey(bytes.fromhex(doc["record"]["pubkey"]))
    doc["record"]["pubkey"] = key.format(compressed=False).hex()


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = doc
        for name in parents:
            target = target[name]
        target[last] = value

    return edit


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc.pop(name)


#: (id, source vector, edit of the parsed document or None, original file bytes or None)
VARIANTS: list[tuple[str, str, Callable[[dict[str, Any]], None] | None, bytes | None]] = [
    ("high-s-signature", "valid-one-complete.json", _high_s, None),
    ("uncompressed-pubkey", "valid-one-complete.json", _uncompressed, None),
    ("no-acceptance", "valid-one-complete.json", _drop("acceptance"), None),
    ("no-headers", "valid-one-complete.json", _drop("headers"), None),
    ("empty-headers", "valid-one-complete.json", _set("headers", []), None),
    ("headers-not-a-list", "valid-one-complete.json", _set("headers", "00"), None),
    ("receipt-other-job", "valid-one-pending.json", _set("jobId", "another-job"), None),
    ("receipt-no-jobid", "valid-one-pending.json", _set("acceptance.receipt.jobId", ""), None),
    ("receipt-not-hex", "valid-one-pending.json", _set("acceptance.signature", "zz"), None),
    ("acceptance-not-object", "valid-one-pending.json", _set("acceptance", []), None),
    ("vout-out-of-range", "valid-one-complete.json", _set("vout", 99), None),
    ("vout-negative", "valid-one-complete.json", _set("vout", -1), None),
    ("vout-string", "valid-one-complete.json", _set("vout", "0"), None),
    (
        "rawtx-odd-length",
        "valid-one-complete.json",
        lambda d: d.update(rawTx=d["rawTx"][:-1]),
        None,
    ),
    ("rawtx-truncated", "valid-one-pending.json", lambda d: d.update(rawTx=d["rawTx"][:-2]), None),
    ("merkle-path-garbage", "valid-one-complete.json", _set("merklePath", "00"), None),
    (
        "header-short",
        "valid-one-complete.json",
        lambda d: d.update(blockHeader=d["blockHeader"][:-2]),
        None,
    ),
    ("status-unknown", "valid-one-complete.json", _set("status", "done"), None),
    ("format-other", "valid-one-complete.json", _set("format", "other-proof"), None),
    ("version-missing", "valid-one-complete.json", _drop("version"), None),
    ("version-string", "valid-one-complete.json", _set("version", "1"), None),
    ("record-not-object", "valid-one-complete.json", _set("record", "x"), None),
    (
        "pubkey-bad-prefix",
        "valid-one-complete.json",
        lambda d: d["record"].update(pubkey="05" + d["record"]["pubkey"][2:]),
        None,
    ),
    ("signature-not-base64", "valid-one-complete.json", _set("record.signature", "!!!!"), None),
    ("pending-with-file", "valid-one-pending.json", None, "ORIGINAL"),
    ("pending-with-other-file", "valid-one-pending.json", None, b"another file"),
    ("packed-with-empty-file", "valid-packed-complete.json", None, b""),
    ("unknown-members-ignored", "valid-packed-complete.json", _set("comment", {"x": [1, 2]}), None),
]


def _original_of(name: str) -> bytes:
    [vector] = [v for v in INDEX["vectors"] if "originalBase64" in v and v["verdict"] == "valid"]
    del name
    return base64.b64decode(vector["originalBase64"])


def _variant_bytes(source: str, edit: Callable[[dict[str, Any]], None] | None) -> bytes:
    doc = copy.deepcopy(_load(source))
    if edit is not None:
        edit(doc)
    return json.dumps(doc).encode()


RAW_CASES: list[tuple[str, bytes, int | None]] = [
    ("not-utf8", b'{"format": "raregen-proof", "version": 1, "x": "\xff"}', None),
    ("top-level-array", b"[1, 2]", None),
    ("empty", b"", None),
    (
        "duplicate-member",
        b'{"format": "raregen-proof", "format": "raregen-proof", "version": 1}',
        None,
    ),
    ("trailing-garbage", (VECTORS / "valid-one-pending.json").read_bytes() + b" x", None),
    ("trailing-whitespace", (VECTORS / "valid-one-pending.json").read_bytes() + b"\n\n", None),
    ("one-byte-over-limit", (VECTORS / "valid-one-pending.json").read_bytes(), 100),
]


def _both(cases: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
    js = {r["file"]: r for r in run_js("proof_vectors.mjs", "-", requests=cases)}
    out = []
    for case in cases:
        original = base64.b64decode(case["originalBase64"]) if "originalBase64" in case else None
        kwargs = {"max_bytes": case["maxBytes"]} if "maxBytes" in case else {}
        py = verify_proof_bytes(base64.b64decode(case["proofBase64"]), original=original, **kwargs)
        out.append((case["file"], js[case["file"]], py))
    return out


def test_variants_same_verdict_as_python() -> None:
    cases: list[dict[str, Any]] = []
    for name, source, edit, original in VARIANTS:
        case: dict[str, Any] = {"file": name, "proofBase64": _b64(_variant_bytes(source, edit))}
        if original is not None:
            case["originalBase64"] = _b64(
                _original_of(source) if original == "ORIGINAL" else original
            )
        cases.append(case)
    for name, data, limit in RAW_CASES:
        case = {"file": name, "proofBase64": _b64(data), "maxBytes": limit or INDEX["maxBytes"]}
        cases.append(case)
    mismatches = [
        (name, (js["verdict"], js["reason"]), (py.verdict, py.reason))
        for name, js, py in _both(cases)
        if (js["verdict"], js["reason"]) != (py.verdict, py.reason)
        or [list(p) for p in js["checks"]] != [[c.code, c.state] for c in py.checks]
    ]
    assert not mismatches, mismatches


def test_variant_expectations() -> None:
    """A few variants pinned to their meaning, not only to the Python verifier's answer."""
    wanted = {
        "high-s-signature": ("invalid", "SIGNATURE_INVALID"),
        "uncompressed-pubkey": ("valid", None),
        "no-acceptance": ("valid", None),
        "receipt-other-job": ("invalid", "RECEIPT_INVALID"),
        "pending-with-file": ("valid", None),
        "pending-with-other-file": ("invalid", "FILE_HASH_MISMATCH"),
        "duplicate-member": ("could-not-check", "PROOF_MALFORMED"),
        "one-byte-over-limit": ("could-not-check", "PROOF_TOO_LARGE"),
        "format-other": ("could-not-check", "PROOF_UNSUPPORTED"),
    }
    cases = []
    for name, source, edit, original in VARIANTS:
        if name in wanted:
            case: dict[str, Any] = {"file": name, "proofBase64": _b64(_variant_bytes(source, edit))}
            if original is not None:
                case["originalBase64"] = _b64(
                    _original_of(source) if original == "ORIGINAL" else original
                )
            cases.append(case)
    for name, data, limit in RAW_CASES:
        if name in wanted:
            cases.append({"file": name, "proofBase64": _b64(data), "maxBytes": limit or 10**7})
    got = {
        r["file"]: (r["verdict"], r["reason"])
        for r in run_js("proof_vectors.mjs", "-", requests=cases)
    }
    assert got == wanted


def test_default_limit_is_the_python_verifiers() -> None:
    """Without a limit given, the browser verifier refuses a file over 4 MiB, the Python
    verifier's default (docs/PROOFS.md)."""
    proof = (VECTORS / "valid-one-pending.json").read_bytes()
    at_limit = proof + b" " * (SPEC_MAX_BYTES - len(proof))
    cases = [
        {"file": "at-limit", "proofBase64": _b64(at_limit)},
        {"file": "over-limit", "proofBase64": _b64(at_limit + b" ")},
    ]
    got = {
        r["file"]: (r["verdict"], r["reason"])
        for r in run_js("proof_vectors.mjs", "-", requests=cases)
    }
    assert got == {
        "at-limit": ("valid", None),
        "over-limit": ("could-not-check", "PROOF_TOO_LARGE"),
    }


def test_receipt_signature_not_der_is_receipt_invalid() -> None:
    """A receipt signature that is hex but not strict DER is RECEIPT_INVALID, not an error."""
    doc = _load("valid-one-pending.json")
    doc["acceptance"]["signature"] = "00"
    cases = [{"file": "receipt-not-der", "proofBase64": _b64(json.dumps(doc).encode())}]
    [got] = run_js("proof_vectors.mjs", "-", requests=cases)
    assert (got["verdict"], got["reason"]) == ("invalid", "RECEIPT_INVALID")
