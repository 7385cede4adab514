"""A record signed by an existing BSV wallet's "sign message" (Bitcoin Signed Message, here
bsv-sdk's ``sign_text``) published for real on the regtest node: layout v2 on chain, verified
by ``GET /v1/records``, the record page and ``raregen verify``; DER records (v1) beside it."""

from __future__ import annotations

import base64
import json

import coincurve
import pytest
from bsv.keys import PrivateKey as BsvPrivateKey
from click.testing import CliRunner

from raregen import signing
from raregen.client.cli import main as client_main
from raregen.proofs import verify as proofs
from raregen.publish import batch, confirm, keys, pipeline
from tests.jsbridge import run_js

pytestmark = pytest.mark.node


@pytest.mark.parametrize("mode", ["immediate", "packed"])
def test_bsm_record_on_chain(chain_app, regtest_node, mode: str) -> None:
    chain_app.config.update(PUBLISH_MODE=mode)
    client = chain_app.test_client()
    wallet_key = BsvPrivateKey()
    der_key = coincurve.PrivateKey()
    for pub in (wallet_key.public_key().hex(), der_key.public_key.format().hex()):
        keys.register_key(pub)
    text = signing.build_payload({"title": "Signed in a wallet"}, type="work")
    _address, signature = wallet_key.sign_text(text)
    bodies = [
        {
            "signedPayload": text,
            "signature": signature,
            "pubkey": wallet_key.public_key().hex(),
            "signatureScheme": "bsm",
        },
        signing.make_request(der_key, {"title": "DER"}),
    ]
    ids = []
    for body in bodies:
        resp = client.post("/v1/publish", json=body)
        assert resp.status_code == 202, resp.get_json()
        ids.append(resp.get_json()["jobId"])
    again = client.post("/v1/publish", json=bodies[0])
    assert again.status_code == 200  # exact resubmission
    if mode == "immediate":
        for job_id in ids:
            assert pipeline.process_job(job_id).action == "sent"
    else:
        assert batch.collect_packed().counts.get("sent") == 2
    txids = {client.get(f"/v1/jobs/{j}").get_json()["txid"] for j in ids}
    seen = {}
    for txid in txids:
        view = client.get(f"/v1/records/{txid}").get_json()
        for rec in view["records"]:
            seen[rec["signatureScheme"]] = rec
        page = client.get(f"/records/{txid}").get_data(as_text=True)
        assert "Signature valid" in page
        result = CliRunner().invoke(client_main, ["verify", txid, "--raw", view["rawTx"]])
        assert result.exit_code == 0, result.output
    assert seen["bsm"]["valid"] is True and seen["bsm"]["version"] == 2
    assert seen["bsm"]["signature"] == signature
    assert seen["der"]["valid"] is True and seen["der"]["version"] == 1

    # proof files of both records, checked by the Python and the browser verifier
    regtest_node.mine(2)
    confirm.confirm_sent()
    cases = []
    for job_id in ids:
        resp = client.get(f"/v1/jobs/{job_id}/proof")
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.json["status"] == "complete"
        result = proofs.verify_proof_bytes(resp.data)
        assert result.verdict == "valid", result
        cases.append({"file": job_id, "proofBase64": base64.b64encode(resp.data).decode()})
    for answer in run_js("proof_vectors.mjs", "-", requests=cases):
        assert answer["verdict"] == "valid", json.dumps(answer)
    # a BSM proof whose signature was swapped for another key's is refused by both
    doc = json.loads(client.get(f"/v1/jobs/{ids[0]}/proof").data)
    doc["record"]["signature"] = signing.sign_bsm(der_key, text)
    bad = json.dumps(doc).encode()
    assert proofs.verify_proof_bytes(bad).reason == "SIGNATURE_INVALID"
    [answer] = run_js(
        "proof_vectors.mjs",
        "-",
        requests=[{"file": "bad", "proofBase64": base64.b64encode(bad).decode()}],
    )
    assert answer["reason"] == "SIGNATURE_INVALID"
