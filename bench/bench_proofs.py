"""Proof files (docs/PROOFS.md): size and offline verification time.

Prints, then a ``RESULT {...}`` line:

* proof file size in bytes (compact JSON) of a one-record transaction (the committed vector
  ``tests/data/proofs/valid-one-complete.json``) and of one record of a packed transaction
  of 1,000 records (built here: 1,000 signed records of a typical 200-byte payload, in a
  block of 1,000 transactions, 6 headers after it), beside OpenTimestamps' about 650-byte
  complete proof (which proves a hash only: no signature, no record, no transaction);
* offline verification time per proof in one process (goal < 5 ms), and of a whole
  ``raregen verify --proof`` command (a new Python process).

Proofs served per second by ``GET .../proof`` and the cost of capturing proofs in batch
mode (``bench_e2e.py`` with ``RAREGEN_PROOF_CAPTURE=0`` and ``=1``) are measured on a
running stack, not here.

    .venv/bin/python bench/bench_proofs.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OTS_COMPLETE_BYTES = 650


def _packed_proof(records: int) -> dict:  # type: ignore[type-arg]
    """A valid complete proof of record 0 of a packed transaction of ``records`` records."""
    import coincurve

    from raregen import protocol, signing
    from raregen.proofs import merkle

    key = coincurve.PrivateKey()
    bodies = [
        signing.make_request(key, {"title": f"work {i}", "contentHash": f"{i:064x}",
                                   "creator": "bench"}, "work")
        for i in range(records)
    ]
    scripts = [
        protocol.record_script(b["signedPayload"].encode(), signing.decode_signature(b["signature"]),
                               bytes.fromhex(b["pubkey"]))
        for b in bodies
    ]

    def varint(n: int) -> bytes:
        if n < 0xFD:
            return bytes([n])
        if n <= 0xFFFF:
            return b"\xfd" + n.to_bytes(2, "little")
        return b"\xfe" + n.to_bytes(4, "little")

    raw = b"\x01\x00\x00\x00" + b"\x01" + b"\x11" * 32 + b"\x00" * 4 + b"\x00" + b"\xff" * 4
    raw += varint(len(scripts))
    for s in scripts:
        raw += b"\x00" * 8 + varint(len(s)) + s
    raw += b"\x00" * 4
    txid = protocol.txid(raw)
    block = [os.urandom(32).hex() for _ in range(999)]
    block.insert(500, txid)
    root = merkle.merkle_root(block)
    prev = os.urandom(32)
    headers = []
    for _ in range(7):
        nonce = 0
        while True:
            head = (b"\x00\x00\x00\x20" + prev + bytes.fromhex(root)[::-1] + b"\x00" * 4
                    + (0x207FFFFF).to_bytes(4, "little") + nonce.to_bytes(4, "little"))
            parsed = merkle.parse_header(head)
            if parsed.pow_ok:
                break
            nonce += 1
        headers.append(head.hex())
        prev = bytes.fromhex(parsed.hash)[::-1]
    b0 = bodies[0]
    return {
        "format": "raregen-proof", "version": 1,
        "record": {k: b0[k] for k in ("signedPayload", "signature", "pubkey")},
        "txid": txid, "vout": 0, "rawTx": raw.hex(), "status": "complete",
        "merklePath": merkle.bump_from_txids(800_000, block, txid),
        "blockHeader": headers[0], "blockHeight": 800_000,
        "headers": headers[1:],
    }


def _time_verify(data: bytes, rounds: int) -> float:
    from raregen.proofs import verify as proofs

    assert proofs.verify_proof_bytes(data).verdict == "valid"
    started = time.perf_counter()
    for _ in range(rounds):
        proofs.verify_proof_bytes(data)
    return (time.perf_counter() - started) / rounds * 1000


def main() -> None:
    """Measure and print (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (smoke test)")
    args = parser.parse_args()
    rounds = 20 if args.quick else 500
    one = json.loads((ROOT / "tests/data/proofs/valid-one-complete.json").read_text())
    one_bytes = json.dumps(one, separators=(",", ":")).encode()
    packed = _packed_proof(100 if args.quick else 1000)
    packed_bytes = json.dumps(packed, separators=(",", ":")).encode()
    one_ms = _time_verify(one_bytes, rounds)
    packed_ms = _time_verify(packed_bytes, max(5, rounds // 10))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.json"
        path.write_bytes(one_bytes)
        runs = 2 if args.quick else 5
        started = time.perf_counter()
        for _ in range(runs):
            proc = subprocess.run([sys.executable, "-m", "raregen.client.cli", "verify",
                                   "--proof", str(path)], capture_output=True, cwd=ROOT)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        command_ms = (time.perf_counter() - started) / runs * 1000
    records = 100 if args.quick else 1000
    print(f"proof size, one-record tx:            {len(one_bytes):>9,} bytes")
    print(f"proof size, 1 record of packed {records:>5}: {len(packed_bytes):>9,} bytes")
    print(f"OpenTimestamps complete proof:        {OTS_COMPLETE_BYTES:>9,} bytes (a hash only)")
    print(f"offline verification, one-record:     {one_ms:9.2f} ms per proof (goal < 5 ms)")
    print(f"offline verification, packed:         {packed_ms:9.2f} ms per proof")
    print(f"`raregen verify --proof` command:     {command_ms:9.0f} ms (new process)")
    result = {
        "size_one_bytes": len(one_bytes), "size_packed_bytes": len(packed_bytes),
        "packed_records": records, "ots_bytes": OTS_COMPLETE_BYTES,
        "verify_one_ms": round(one_ms, 3), "verify_packed_ms": round(packed_ms, 3),
        "command_ms": round(command_ms, 1),
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
