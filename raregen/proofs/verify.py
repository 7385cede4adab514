"""The offline verifier of ``raregen-proof`` v1 files (docs/PROOFS.md).

Runs every check of the format, in its order, with nothing but the file (and, optionally,
the original file whose hash the record names): no network, no RareGen. Each failed check
has a reason code shared with the browser verifier:

=======================  =====================================================  ===============
code                     meaning                                                verdict
=======================  =====================================================  ===============
``PROOF_TOO_LARGE``      the file is over the size limit (default 4 MiB)        could-not-check
``PROOF_MALFORMED``      not JSON, truncated, a member missing or ill-typed     could-not-check
``PROOF_UNSUPPORTED``    ``format`` is not ``raregen-proof`` or ``version``     could-not-check
                         is not 1
``SIGNATURE_INVALID``    the record's signature or payload fails contract v1    invalid
``TXID_MISMATCH``        ``txid`` is not the double SHA-256 of ``rawTx``        invalid
``RECORD_MISMATCH``      output ``vout`` of ``rawTx`` does not carry exactly    invalid
                         this record (layout v1)
``MERKLE_PATH_OTHER_TX`` the merkle path does not hold ``txid`` at level 0      invalid
``MERKLE_ROOT_MISMATCH`` the path's root is not the header's merkle root, or    invalid
                         the path's height is not ``blockHeight``
``HEADER_POW_INVALID``   a header's hash is above the target of its ``bits``    invalid
``HEADER_CHAIN_BROKEN``  a following header does not name the one before        invalid
``RECEIPT_INVALID``      the acceptance receipt does not verify / has no jobId  invalid
``FILE_HASH_MISMATCH``   the original file's SHA-256 is not the record's        invalid
                         ``contentHash``
=======================  =====================================================  ===============

Pure: imports neither Flask nor SQLAlchemy and does no I/O (the header sources of
``raregen verify --check-header`` are in :mod:`raregen.proofs.headers`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from bsv import MerklePath

import raregen.protocol as protocol
import raregen.signing as signing
from raregen.errors import RareGenError
from raregen.proofs import merkle
from raregen.proofs.receipt import ReceiptError, verify_receipt

__all__ = [
    "CHECKS",
    "DEFAULT_MAX_BYTES",
    "Check",
    "Result",
    "verify_document",
    "verify_proof_bytes",
]

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
"""Default size limit of a proof file: a packed transaction may be 1 MB (2 MB of hex)."""

VALID, INVALID, COULD_NOT_CHECK = "valid", "invalid", "could-not-check"

#: (reason code, what the check establishes), in the order they run.
CHECKS: tuple[tuple[str, str], ...] = (
    ("PROOF_TOO_LARGE", "the file is within the size limit"),
    ("PROOF_MALFORMED", "the file is well-formed JSON with every member"),
    ("PROOF_UNSUPPORTED", "the format is raregen-proof version 1"),
    ("SIGNATURE_INVALID", "the record is signed by its key (contract v1)"),
    ("TXID_MISMATCH", "the transaction hashes to the txid"),
    ("RECORD_MISMATCH", "the transaction's output carries exactly this record"),
    ("MERKLE_PATH_OTHER_TX", "the merkle path is the transaction's"),
    ("MERKLE_ROOT_MISMATCH", "the merkle path leads to the block header's merkle root"),
    ("HEADER_POW_INVALID", "every header carries its proof of work"),
    ("HEADER_CHAIN_BROKEN", "the following headers are built on the block"),
    ("RECEIPT_INVALID", "the acceptance receipt is signed by its key"),
    ("FILE_HASH_MISMATCH", "the original file is the one the record names"),
)
_BAD_INPUT = {"PROOF_TOO_LARGE", "PROOF_MALFORMED", "PROOF_UNSUPPORTED"}
_HEX = re.compile(r"\A(?:[0-9a-fA-F]{2})*\Z")
_TXID = re.compile(r"\A[0-9a-fA-F]{64}\Z")


@dataclass
class Check:
    """One check: its reason code, what it establishes, and ``"pass"``, ``"fail"`` or
    ``"skip"`` (not applicable, or not run after an earlier failure), with a detail."""

    code: str
    title: str
    state: str
    detail: str = ""


@dataclass
class Result:
    """A verdict: ``valid``, ``invalid`` or ``could-not-check``; ``reason`` is the code of
    the failed check (None when valid); ``checks`` lists every check; ``trust`` says in
    words what is left to trust; ``info`` carries what was read (txid, vout, status,
    blockHeight, blockHash, receipt)."""

    verdict: str
    reason: str | None
    checks: list[Check] = field(default_factory=list)
    trust: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 valid, 1 invalid, 3 could not check (the CLI's exit codes)."""
        return {VALID: 0, INVALID: 1}.get(self.verdict, 3)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "checks": [vars(c) for c in self.checks],
            "trust": self.trust,
            "info": self.info,
        }


class _Fail(Exception):
    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"member {key!r} appears twice")
        out[key] = value
    return out


def _finish(checks: list[Check], code: str | None, detail: str, doc: Any) -> Result:
    ran = {c.code for c in checks}
    for c, title in CHECKS:
        if c not in ran:
            checks.append(Check(c, title, "skip", "not run" if code else "not applicable"))
    order = {c: i for i, (c, _) in enumerate(CHECKS)}
    checks.sort(key=lambda c: order[c.code])
    info: dict[str, Any] = {}
    if isinstance(doc, dict):
        for key in ("txid", "vout", "status", "blockHeight", "blockHash", "jobId"):
            if key in doc:
                info[key] = doc[key]
        if code is None and doc.get("status") == "complete":
            info["blockHash"] = merkle.parse_header(doc["blockHeader"]).hash
            info["blockTime"] = merkle.parse_header(doc["blockHeader"]).time
            info["headersAfter"] = len(doc.get("headers") or [])
        acceptance = doc.get("acceptance")
        if code is None and isinstance(acceptance, dict):
            info["receipt"] = acceptance.get("receipt")
            info["receiptKey"] = acceptance.get("pubkey")
    if code is None:
        return Result(VALID, None, checks, _trust(info), info)
    verdict = COULD_NOT_CHECK if code in _BAD_INPUT else INVALID
    return Result(verdict, code, checks, "", info)


def _trust(info: dict[str, Any]) -> str:
    if info.get("status") == "complete":
        return (
            f"block {info['blockHeight']} with hash {info['blockHash']} must be on the BSV "
            f"chain (the file shows {info.get('headersAfter', 0)} blocks built on it; ask a "
            "block-header source you trust: --check-header)."
        )
    receipt = info.get("receipt")
    if receipt:
        return (
            f"not yet in a block: RareGen's receipt key {info.get('receiptKey')} accepted it "
            f"at {receipt.get('acceptedAt')} (promised in a block by {receipt.get('deadline')}); "
            "ask for the proof again once it is confirmed."
        )
    return "not yet in a block, and the file carries no acceptance receipt."


def verify_proof_bytes(
    data: bytes, *, original: bytes | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> Result:
    """Verify a proof file given as bytes (module table: every check in order).

    Args:
        data: the file's bytes (UTF-8 JSON).
        original: the original work's bytes, when the user has them (FILE_HASH_MISMATCH).
        max_bytes: size limit (PROOF_TOO_LARGE above it).

    Returns:
        The :class:`Result`; never raises for any input.
    """
    checks: list[Check] = []
    if len(data) > max_bytes:
        checks.append(
            Check(
                "PROOF_TOO_LARGE",
                CHECKS[0][1],
                "fail",
                f"{len(data)} bytes, over the limit of {max_bytes}",
            )
        )
        return _finish(checks, "PROOF_TOO_LARGE", "", None)
    checks.append(Check("PROOF_TOO_LARGE", CHECKS[0][1], "pass", f"{len(data)} bytes"))
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        checks.append(Check("PROOF_MALFORMED", CHECKS[1][1], "fail", f"not JSON: {exc}"))
        return _finish(checks, "PROOF_MALFORMED", "", None)
    return verify_document(doc, original=original, _checks=checks)


def _shape(doc: Any) -> None:
    def need(cond: bool, what: str) -> None:
        if not cond:
            raise _Fail("PROOF_MALFORMED", what)

    need(isinstance(doc, dict), "the file is not a JSON object")
    if (
        doc.get("format") != "raregen-proof"
        or doc.get("version") != 1
        or isinstance(doc.get("version"), bool)
    ):
        if "format" not in doc or "version" not in doc:
            raise _Fail("PROOF_MALFORMED", "format and version are required")
        raise _Fail(
            "PROOF_UNSUPPORTED",
            f"format {doc.get('format')!r} version {doc.get('version')!r}: this verifier reads "
            "raregen-proof version 1",
        )
    record = doc.get("record")
    need(isinstance(record, dict), "record must be an object")
    for name in ("signedPayload", "signature", "pubkey"):
        need(isinstance(record.get(name), str), f"record.{name} must be a string")
    need(isinstance(doc.get("txid"), str) and bool(_TXID.match(doc["txid"])), "txid must be 64 hex")
    vout = doc.get("vout")
    need(
        isinstance(vout, int) and not isinstance(vout, bool) and 0 <= vout <= 0xFFFFFFFF,
        "vout must be an integer from 0 to 2^32-1 (a uint32 in a transaction)",
    )
    raw = doc.get("rawTx")
    need(isinstance(raw, str) and bool(raw) and bool(_HEX.match(raw)), "rawTx must be hex")
    need(doc.get("status") in ("pending", "complete"), "status must be pending or complete")
    if doc["status"] == "complete":
        need(
            isinstance(doc.get("merklePath"), str)
            and bool(_HEX.match(doc["merklePath"]))
            and bool(doc["merklePath"]),
            "merklePath must be hex",
        )
        need(
            isinstance(doc.get("blockHeader"), str)
            and len(doc["blockHeader"]) == 160
            and bool(_HEX.match(doc["blockHeader"])),
            "blockHeader must be 80 bytes of hex",
        )
        height = doc.get("blockHeight")
        need(
            isinstance(height, int) and not isinstance(height, bool) and height >= 0,
            "blockHeight must be an integer >= 0",
        )
        headers = doc.get("headers", [])
        need(
            isinstance(headers, list)
            and all(isinstance(h, str) and len(h) == 160 and _HEX.match(h) for h in headers),
            "headers must be a list of 80-byte headers in hex",
        )
    if "acceptance" in doc:
        need(isinstance(doc["acceptance"], dict), "acceptance must be an object")


def verify_document(
    doc: Any, *, original: bytes | None = None, _checks: list[Check] | None = None
) -> Result:
    """Verify a decoded proof document (as :func:`verify_proof_bytes` after parsing)."""
    checks = _checks if _checks is not None else []
    current = "PROOF_MALFORMED"
    titles = dict(CHECKS)

    def ok(code: str, detail: str = "") -> None:
        checks.append(Check(code, titles[code], "pass", detail))

    try:
        _shape(doc)
        ok("PROOF_MALFORMED")
        ok("PROOF_UNSUPPORTED", "raregen-proof version 1")
        record = doc["record"]
        txid, vout = doc["txid"].lower(), doc["vout"]

        current = "SIGNATURE_INVALID"
        try:
            pubkey33 = signing.parse_pubkey(record["pubkey"])
            # DER, or a Bitcoin Signed Message signature (layout v2): told by its form
            scheme, der = signing.decode_stored_signature(record["signature"])
            payload_bytes = record["signedPayload"].encode("utf-8")
            if scheme == "bsm":
                signing.verify_bsm(pubkey33, der, payload_bytes)
            else:
                signing.verify_signature(pubkey33, der, payload_bytes)
            payload = signing.check_payload_fields(
                signing.parse_signed_payload(record["signedPayload"], max_bytes=len(payload_bytes)),
                max_ttl=None,
            )
        except (RareGenError, UnicodeError) as exc:
            raise _Fail(current, f"{getattr(exc, 'code', 'MALFORMED_JSON')}: {exc}") from None
        ok(current, f"key {pubkey33.hex()}")

        current = "TXID_MISMATCH"
        raw = bytes.fromhex(doc["rawTx"])
        if protocol.txid(raw) != txid:
            raise _Fail(current, f"rawTx hashes to {protocol.txid(raw)}")
        ok(current, txid)

        current = "RECORD_MISMATCH"
        try:
            tx = protocol.parse_transaction(raw)
            if vout >= len(tx.outputs):
                raise _Fail(current, f"the transaction has {len(tx.outputs)} outputs")
            found = protocol.parse_record_script(tx.outputs[vout].script)
        except (protocol.TxParseError, protocol.MalformedRecord, protocol.ScriptError) as exc:
            raise _Fail(current, str(exc)) from None
        if found is None or (found.signed_payload, found.signature_der, found.pubkey33) != (
            payload_bytes,
            der,
            pubkey33,
        ):
            raise _Fail(current, f"output {vout} does not carry this record")
        ok(current, f"output {vout}")

        if doc["status"] == "complete":
            current = "MERKLE_PATH_OTHER_TX"
            try:
                path = MerklePath.from_hex(doc["merklePath"])
            except Exception as exc:  # noqa: BLE001 - any parse failure of the BUMP bytes
                raise _Fail("PROOF_MALFORMED", f"merklePath is not a BRC-74 path: {exc}") from None
            level0 = path.path[0] if path.path else []
            if not any(leaf.get("hash_str") == txid for leaf in level0):
                raise _Fail(current, "the path's level 0 does not hold this txid")
            ok(current)

            current = "MERKLE_ROOT_MISMATCH"
            header = merkle.parse_header(doc["blockHeader"])
            if path.block_height != doc["blockHeight"]:
                raise _Fail(
                    current, f"the path is for height {path.block_height}, not {doc['blockHeight']}"
                )
            try:
                root = path.compute_root(txid)
            except ValueError as exc:
                raise _Fail(current, str(exc)) from None
            if root != header.merkle_root:
                raise _Fail(current, f"root {root} != header's {header.merkle_root}")
            ok(current, f"block {header.hash} at height {doc['blockHeight']}")

            current = "HEADER_POW_INVALID"
            following = [merkle.parse_header(h) for h in doc.get("headers", [])]
            for i, h in enumerate([header, *following]):
                if not h.pow_ok:
                    raise _Fail(current, f"header {i} ({h.hash}) misses its target")
            ok(current, f"{1 + len(following)} headers")

            current = "HEADER_CHAIN_BROKEN"
            prev = header.hash
            for i, h in enumerate(following):
                if h.prev_hash != prev:
                    raise _Fail(current, f"header {i + 1} after the block does not follow")
                prev = h.hash
            ok(current, f"{len(following)} blocks built on it")

        current = "RECEIPT_INVALID"
        if "acceptance" in doc:
            try:
                receipt = verify_receipt(doc["acceptance"])
            except ReceiptError as exc:
                raise _Fail(current, str(exc)) from None
            if "jobId" in doc and doc["jobId"] != receipt["jobId"]:
                raise _Fail(current, "the receipt is for another job")
            ok(current, f"accepted at {receipt['acceptedAt']}")

        current = "FILE_HASH_MISMATCH"
        if original is not None:
            digest = hashlib.sha256(original).hexdigest()
            named = payload.record.get("contentHash")
            if not isinstance(named, str) or named.lower() != digest:
                raise _Fail(current, f"the file's SHA-256 is {digest}, the record names {named}")
            ok(current, digest)
    except _Fail as fail:
        checks.append(Check(fail.code, titles[fail.code], "fail", fail.detail))
        return _finish(checks, fail.code, fail.detail, doc)
    return _finish(checks, None, "", doc)
