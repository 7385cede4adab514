"""Make the raregen-proof v1 test vectors in this folder (docs/PROOFS.md), against a real
regtest SV Node: a one-record and a packed transaction published through the app, their
pending and complete proof files, and tampered copies, each listed in ``index.json`` with
the verdict and reason code every verifier must give.

Run from the repository root::

    .venv/bin/python tests/data/proofs/make_vectors.py

It starts a regtest node of its own in a temporary folder (the node binary from
``$RAREGEN_NODE_CACHE`` or ``.cache``) and a throwaway SQLite app; nothing else is touched.
The vectors are committed: rerunning makes new keys, transactions and blocks (all valid
the same way).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from bsv import MerklePath  # noqa: E402

from raregen.proofs import verify as proofs  # noqa: E402

ORIGINAL = b"RareGen test work: a short song, as the bytes of a file.\n"
OTHER = b"Some other file.\n"


def _write(
    name: str,
    doc: Any,
    entries: list[dict[str, Any]],
    description: str,
    verdict: str,
    reason: str | None,
    original: bytes | None = None,
    raw: bytes | None = None,
) -> None:
    data = raw if raw is not None else (json.dumps(doc, indent=1) + "\n").encode()
    (HERE / name).write_bytes(data)
    result = proofs.verify_proof_bytes(data, original=original)
    assert (result.verdict, result.reason) == (verdict, reason), (name, result.to_dict())
    entry: dict[str, Any] = {
        "file": name,
        "description": description,
        "verdict": verdict,
        "reason": reason,
    }
    if original is not None:
        entry["originalBase64"] = base64.b64encode(original).decode()
    entries.append(entry)


def _make(tmp: Path) -> tuple[dict, dict, dict, dict]:
    import coincurve
    from flask_migrate import upgrade

    from raregen import create_app, signing
    from raregen.db import db, transaction
    from raregen.publish import batch, confirm, funding, keys, pipeline
    from raregen.publish.txbuilder import ServerWallet
    from raregen_dev.devnet import RegtestNode, ensure_node_binary

    cache = Path(os.environ.get("RAREGEN_NODE_CACHE") or HERE.parents[2] / ".cache")
    node = RegtestNode(tmp / "node", binary=ensure_node_binary(cache)).start()
    try:
        node.ensure_wallet_funds(10 * 100_000_000)
        os.environ["RAREGEN_INSTANCE_PATH"] = str(tmp / "instance")
        app = create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'v.sqlite'}",
                "RATELIMIT_STORAGE_URI": "memory://",
                "RATELIMIT_ENABLED": False,
                "SERVER_WIF": ServerWallet.generate("regtest").to_wif(),
                "SECRET_KEY": "vectors",
                "NODE_RPC_URL": node.url,
                "NODE_RPC_USER": node.user,
                "NODE_RPC_PASSWORD": node.password,
                "POOL_TARGET_COUNT": 6,
                "POOL_LOW_WATER": 0,
                "REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9"),
                "QUEUE_NAME": "proof-vectors",
            }
        )
        with app.app_context():
            upgrade()
            funding.fund_dev(20_000_000)
            funding.split(6, 40_000)
            node.mine(1)
            with transaction():
                db.session.execute(db.text("UPDATE utxos SET depth = 0"))
            author = coincurve.PrivateKey()
            keys.register_key(author.public_key.format().hex())
            client = app.test_client()

            def publish(record: dict) -> str:
                body = signing.make_request(author, record, "work")
                resp = client.post("/v1/publish", json=body)
                assert resp.status_code == 202, resp.json
                return str(resp.json["jobId"])

            def proof(job_id: str) -> dict:
                resp = client.get(f"/v1/jobs/{job_id}/proof")
                assert resp.status_code == 200, resp.json
                return resp.json  # type: ignore[no-any-return]

            one = publish(
                {
                    "title": "Test song",
                    "creator": "Vectors",
                    "contentHash": hashlib.sha256(ORIGINAL).hexdigest(),
                }
            )
            assert pipeline.process_job(one).action == "sent"
            one_pending = proof(one)
            node.mine(1)
            confirm.confirm_sent()
            app.config["PUBLISH_MODE"] = "packed"
            packed_ids = [publish({"title": f"Packed work {i}", "n": i}) for i in range(3)]
            batch.collect_packed()
            packed_pending = proof(packed_ids[1])
            node.mine(1)
            node.mine(6)
            confirm.confirm_sent()
            return one_pending, proof(one), packed_pending, proof(packed_ids[1])
    finally:
        node.stop()


def _tamper_sibling(bump_hex: str, txid: str) -> str:
    path = MerklePath.from_hex(bump_hex)
    for level in path.path:
        for leaf in level:
            if leaf.get("hash_str") and leaf.get("hash_str") != txid:
                leaf["hash_str"] = "11" * 32
                return MerklePath(path.block_height, path.path).to_hex()  # type: ignore[arg-type]
    raise AssertionError("no sibling to change")


def main() -> None:
    """Write the vectors and index.json (module docstring)."""
    for old in HERE.glob("*.json"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        one_pending, one, packed_pending, packed = _make(Path(tmp))
    assert one["status"] == packed["status"] == "complete" and len(one["headers"]) == 6
    assert one["blockHash"] != packed["blockHash"]
    entries: list[dict[str, Any]] = []
    w = _write
    w(
        "valid-one-pending.json",
        one_pending,
        entries,
        "one-record transaction, not yet in a block (valid, with its acceptance receipt)",
        "valid",
        None,
    )
    w(
        "valid-one-complete.json",
        one,
        entries,
        "one-record transaction in a block, 6 headers after it",
        "valid",
        None,
    )
    w(
        "valid-one-complete-with-file.json",
        one,
        entries,
        "as valid-one-complete, checked with the original file (originalBase64)",
        "valid",
        None,
        original=ORIGINAL,
    )
    w(
        "valid-packed-pending.json",
        packed_pending,
        entries,
        "record 1 of a packed transaction of 3 records, not yet in a block",
        "valid",
        None,
    )
    w(
        "valid-packed-complete.json",
        packed,
        entries,
        "record 1 of a packed transaction of 3 records, in a block",
        "valid",
        None,
    )

    doc = json.loads(json.dumps(one))
    payload = doc["record"]["signedPayload"]
    doc["record"]["signedPayload"] = payload.replace("Test song", "Test sonG")
    w(
        "tampered-payload-byte.json",
        doc,
        entries,
        "one byte of signedPayload changed",
        "invalid",
        "SIGNATURE_INVALID",
    )
    doc = dict(one, txid="ab" * 32)
    w(
        "tampered-txid.json",
        doc,
        entries,
        "txid is not the hash of rawTx",
        "invalid",
        "TXID_MISMATCH",
    )
    doc = dict(packed, vout=(packed["vout"] + 1) % 3)
    w(
        "tampered-wrong-vout-packed.json",
        doc,
        entries,
        "vout names another record of the packed transaction",
        "invalid",
        "RECORD_MISMATCH",
    )
    doc = dict(one, vout=1)
    w(
        "tampered-wrong-vout.json",
        doc,
        entries,
        "vout names the change output",
        "invalid",
        "RECORD_MISMATCH",
    )
    doc = dict(one, merklePath=_tamper_sibling(one["merklePath"], one["txid"]))
    w(
        "tampered-merkle-sibling.json",
        doc,
        entries,
        "one sibling hash of the merkle path changed",
        "invalid",
        "MERKLE_ROOT_MISMATCH",
    )
    doc = dict(one, merklePath=packed["merklePath"])
    w(
        "tampered-merkle-other-tx.json",
        doc,
        entries,
        "the merkle path of another transaction (the packed one, in another block)",
        "invalid",
        "MERKLE_PATH_OTHER_TX",
    )
    doc = dict(one, blockHeight=one["blockHeight"] + 1)
    w(
        "tampered-block-height.json",
        doc,
        entries,
        "blockHeight differs from the merkle path's height",
        "invalid",
        "MERKLE_ROOT_MISMATCH",
    )
    header = bytearray(bytes.fromhex(one["blockHeader"]))
    header[72:76] = (0x1D00FFFF).to_bytes(4, "little")  # a real difficulty the hash misses
    doc = dict(one, blockHeader=header.hex())
    w(
        "tampered-header-pow.json",
        doc,
        entries,
        "the block header's bits set to 0x1d00ffff: its hash misses that target",
        "invalid",
        "HEADER_POW_INVALID",
    )
    doc = dict(one, headers=one["headers"][1:])
    w(
        "tampered-header-chain.json",
        doc,
        entries,
        "the first following header removed: the next one does not build on the block",
        "invalid",
        "HEADER_CHAIN_BROKEN",
    )
    doc = json.loads(json.dumps(one))
    doc["acceptance"]["receipt"]["acceptedAt"] = "2020-01-01T00:00:00Z"
    w(
        "tampered-receipt.json",
        doc,
        entries,
        "the receipt's acceptedAt changed after signing",
        "invalid",
        "RECEIPT_INVALID",
    )
    w(
        "tampered-file-hash.json",
        one,
        entries,
        "a valid proof checked with another file (originalBase64)",
        "invalid",
        "FILE_HASH_MISMATCH",
        original=OTHER,
    )
    w(
        "bad-not-json.json",
        None,
        entries,
        "not JSON",
        "could-not-check",
        "PROOF_MALFORMED",
        raw=b"this is not a proof\n",
    )
    text = (json.dumps(one) + "\n").encode()
    w(
        "bad-truncated.json",
        None,
        entries,
        "a complete proof cut in the middle",
        "could-not-check",
        "PROOF_MALFORMED",
        raw=text[: len(text) // 2],
    )
    w(
        "bad-missing-member.json",
        {k: v for k, v in one.items() if k != "rawTx"},
        entries,
        "rawTx missing",
        "could-not-check",
        "PROOF_MALFORMED",
    )
    w(
        "bad-version.json",
        dict(one, version=2),
        entries,
        "version 2",
        "could-not-check",
        "PROOF_UNSUPPORTED",
    )
    index = {
        "format": "raregen-proof",
        "version": 1,
        "maxBytes": proofs.DEFAULT_MAX_BYTES,
        "vectors": entries,
    }
    (HERE / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    print(f"wrote {len(entries)} vectors to {HERE}")


if __name__ == "__main__":
    main()
