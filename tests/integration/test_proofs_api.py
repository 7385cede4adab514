"""Proof files end to end against the real regtest SV Node (docs/PROOFS.md): the signed
acceptance receipt of POST /v1/publish, GET .../proof pending then complete, the packed
mode, the endpoints' errors, and ``raregen proof`` / ``raregen verify --proof`` as a user
runs them (subprocess), with the header sources they can name."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from raregen import signing
from raregen.db import db, transaction
from raregen.proofs import receipt as receipts
from raregen.proofs import verify as proofs
from raregen.publish import batch, confirm, pipeline
from raregen.publish.models import PublishJob

pytestmark = pytest.mark.node

CLI = [sys.executable, "-m", "raregen.client.cli"]


def _publish(client, author, record) -> tuple[str, dict]:
    body = signing.make_request(author, record, "work")
    raw = json.dumps(body).encode()
    resp = client.post("/v1/publish", data=raw, content_type="application/json")
    assert resp.status_code == 202, resp.json
    return resp.json["jobId"], {"raw": raw, "answer": resp.json}


def _conforms(client, name: str, doc: dict) -> None:
    """``doc`` matches component ``name`` of the served OpenAPI document."""
    import jsonschema

    components = client.get("/v1/openapi.json").json["components"]
    root = {"$ref": f"#/components/schemas/{name}", "components": components}
    jsonschema.Draft202012Validator(root).validate(doc)


def _confirm(app, node, job_id: str) -> None:
    assert pipeline.process_job(job_id).action == "sent"
    node.mine(1)
    confirm.confirm_sent()


def _run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, **kw)


def test_publish_answers_a_signed_receipt_and_the_same_one_on_resubmission(chain_app, author):
    client = chain_app.test_client()
    body = signing.make_request(author, {"title": "receipt"})
    raw = json.dumps(body, indent=1).encode()
    first = client.post("/v1/publish", data=raw, content_type="application/json")
    assert first.status_code == 202
    signed = first.json["receipt"]
    got = receipts.verify_receipt(signed)
    assert got["jobId"] == first.json["jobId"]
    assert got["bodySha256"] == hashlib.sha256(raw).hexdigest()
    assert got["acceptedAt"] < got["deadline"]
    key = client.get("/.well-known/raregen/receipt-key").json
    assert key == {"pubkey": signed["pubkey"], "algorithm": "ecdsa-secp256k1-sha256-jcs"}
    # never the funds key
    from raregen.publish import services

    assert key["pubkey"] != services.server_wallet().public_key_hex
    again = client.post("/v1/publish", json=body)
    assert again.status_code == 200 and again.json["receipt"] == signed


def test_proof_pending_then_complete_and_the_cli_verifies_it(
    chain_app, regtest_node, author, tmp_path
):
    client = chain_app.test_client()
    work = b"the song, as a file\n"
    job_id, made = _publish(
        client, author, {"title": "Song", "contentHash": hashlib.sha256(work).hexdigest()}
    )
    _conforms(client, "Published", made["answer"])
    resp = client.get(f"/v1/jobs/{job_id}/proof")
    assert resp.status_code == 409 and resp.json["error"]["code"] == "PROOF_NOT_READY"
    assert pipeline.process_job(job_id).action == "sent"
    pending = client.get(f"/v1/jobs/{job_id}/proof")
    assert pending.status_code == 200 and pending.mimetype == "application/json"
    assert pending.json["status"] == "pending" and "merklePath" not in pending.json
    _conforms(client, "ProofFile", pending.json)
    result = proofs.verify_proof_bytes(pending.data)
    assert result.verdict == "valid" and "receipt key" in result.trust
    regtest_node.mine(3)
    confirm.confirm_sent()
    done = client.get(f"/v1/jobs/{job_id}/proof")
    doc = done.json
    assert doc["status"] == "complete" and len(doc["headers"]) == 2
    _conforms(client, "ProofFile", doc)
    disposition = done.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="raregen-proof-{doc["txid"]}-{doc["vout"]}.json"'
    same = client.get(f"/v1/records/{doc['txid']}/{doc['vout']}/proof")
    assert same.data == done.data
    path = tmp_path / "proof.json"
    path.write_bytes(done.data)
    original = tmp_path / "song.flac"
    original.write_bytes(work)
    out = _run("verify", "--proof", str(path), "--file", str(original))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verdict: valid" in out.stdout
    assert f"block {doc['blockHeight']} with hash {doc['blockHash']}" in out.stdout
    other = tmp_path / "other.flac"
    other.write_bytes(b"another file")
    out = _run("verify", "--proof", str(path), "--file", str(other))
    assert out.returncode == 1 and "FILE_HASH_MISMATCH" in out.stdout
    # the header sources the user names
    node_args = [
        "--node-url",
        regtest_node.url,
        "--node-user",
        regtest_node.user,
        "--node-password",
        regtest_node.password,
    ]
    out = _run("verify", "--proof", str(path), "--check-header", "node", *node_args)
    assert out.returncode == 0 and "header source: agrees" in out.stdout, out.stdout


def test_proof_command_saves_the_file_from_a_running_server(
    chain_app, regtest_node, author, tmp_path
):
    job_id, _ = _publish(chain_app.test_client(), author, {"title": "saved"})
    _confirm(chain_app, regtest_node, job_id)
    server = make_server("127.0.0.1", 0, chain_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        out = _run("--server", url, "proof", job_id, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        saved = tmp_path / out.stdout.strip()
        assert saved.name.startswith("raregen-proof-") and saved.exists()
        out = _run("--server", url, "proof", job_id, "-o", str(tmp_path / "p.json"))
        assert out.returncode == 0 and (tmp_path / "p.json").read_bytes() == saved.read_bytes()
        assert _run("verify", "--proof", str(saved)).returncode == 0
        out = _run("--server", url, "proof", "00000000-0000-4000-8000-000000000000")
        assert out.returncode == 1 and "404 NOT_FOUND" in out.stderr
    finally:
        server.shutdown()
        thread.join(5)


def test_packed_record_proof(chain_app, regtest_node, author):
    chain_app.config.update(PUBLISH_MODE="packed")
    client = chain_app.test_client()
    ids = [_publish(client, author, {"packed": i})[0] for i in range(3)]
    batch.collect_packed()
    regtest_node.mine(1)
    confirm.confirm_sent()
    docs = [client.get(f"/v1/jobs/{i}/proof").json for i in ids]
    assert {d["status"] for d in docs} == {"complete"}
    assert len({d["txid"] for d in docs}) == 1 and sorted(d["vout"] for d in docs) == [0, 1, 2]
    assert len({d["merklePath"] for d in docs}) == 1
    for d in docs:
        assert proofs.verify_document(d).verdict == "valid"
    # another record's output is not this record
    wrong = dict(docs[0], vout=docs[1]["vout"])
    result = proofs.verify_document(wrong)
    assert (result.verdict, result.reason) == ("invalid", "RECORD_MISMATCH")


def test_proof_endpoint_errors(chain_app, author):
    client = chain_app.test_client()
    resp = client.get("/v1/jobs/00000000-0000-4000-8000-000000000000/proof")
    assert resp.status_code == 404 and resp.json["error"]["code"] == "NOT_FOUND"
    resp = client.get(f"/v1/records/{'ab' * 32}/0/proof")
    assert resp.status_code == 404 and resp.json["error"]["code"] == "NOT_FOUND"
    resp = client.get("/v1/records/xyz/0/proof")
    assert resp.status_code == 400 and resp.json["error"]["code"] == "MALFORMED_JSON"
    job_id, _ = _publish(client, author, {"title": "will fail"})
    with transaction():
        db.session.execute(
            db.update(PublishJob)
            .where(PublishJob.job_id == job_id)
            .values(status="failed", error_code="BROADCAST_REJECTED")
        )
    resp = client.get(f"/v1/jobs/{job_id}/proof")
    assert resp.status_code == 409 and resp.json["error"]["code"] == "JOB_FAILED"


def test_cli_bad_input_is_a_coded_error_never_a_traceback(tmp_path):
    cases = {
        "not json": (b"hello", "PROOF_MALFORMED"),
        "truncated": (b'{"format": "raregen-proof", "version": 1, "rec', "PROOF_MALFORMED"),
        "version 2": (
            json.dumps({"format": "raregen-proof", "version": 2}).encode(),
            "PROOF_UNSUPPORTED",
        ),
        "other format": (json.dumps({"format": "x", "version": 1}).encode(), "PROOF_UNSUPPORTED"),
        "array": (b"[1, 2]", "PROOF_MALFORMED"),
        "not utf-8": (b"\xff\xfe{}", "PROOF_MALFORMED"),
        "oversized": (b" " * 2000 + b"{}", "PROOF_TOO_LARGE"),
    }
    env = dict(os.environ, RAREGEN_PROOF_MAX_BYTES="1000")
    for name, (data, code) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_bytes(data)
        out = _run("verify", "--proof", str(path), env=env)
        assert out.returncode == 3, (name, out.stdout, out.stderr)
        assert code in out.stdout and "Traceback" not in out.stdout + out.stderr, name
    out = _run("verify", "--proof", str(tmp_path / "missing.json"))
    assert out.returncode == 3 and "PROOF_UNREADABLE" in out.stderr
    assert "Traceback" not in out.stderr


class _HeadersService:
    """A tiny block-headers service with the documented contract (docs/PROOFS.md)."""

    def __init__(self, known: dict[str, int]):
        self.known = known

    def __call__(self, request: Request) -> Response:
        block = request.path.rsplit("/", 1)[-1]
        if block in self.known:
            return Response(
                json.dumps({"height": self.known[block]}), 200, content_type="application/json"
            )
        return Response("{}", 404, content_type="application/json")


@pytest.fixture
def complete_proof(chain_app, regtest_node, author, tmp_path) -> Iterator[tuple[Path, dict]]:
    job_id, _ = _publish(chain_app.test_client(), author, {"title": "headers"})
    _confirm(chain_app, regtest_node, job_id)
    resp = chain_app.test_client().get(f"/v1/jobs/{job_id}/proof")
    path = tmp_path / "p.json"
    path.write_bytes(resp.data)
    yield path, resp.json


def test_check_header_with_a_headers_service(complete_proof):
    path, doc = complete_proof
    service = _HeadersService({doc["blockHash"]: doc["blockHeight"]})
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.expect_request(re.compile("/headers/.*")).respond_with_handler(service)
    server.start()
    url = server.url_for("/headers")
    try:
        out = _run("verify", "--proof", str(path), "--check-header", url)
        assert out.returncode == 0 and "header source: agrees" in out.stdout, out.stdout
        service.known[doc["blockHash"]] = doc["blockHeight"] + 1
        out = _run("verify", "--proof", str(path), "--check-header", url)
        assert out.returncode == 1 and "HEADER_NOT_ON_CHAIN" in out.stdout
        service.known.clear()
        out = _run("verify", "--proof", str(path), "--check-header", url)
        assert out.returncode == 1 and "HEADER_NOT_ON_CHAIN" in out.stdout
    finally:
        server.clear()
        server.stop()
    out = _run("verify", "--proof", str(path), "--check-header", url)  # nothing listens now
    assert out.returncode == 3 and "HEADER_SOURCE_UNREACHABLE" in out.stdout
