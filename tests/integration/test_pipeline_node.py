"""End to end against the real regtest SV Node, no fakes: accept, publish, mine, confirm,
read back and verify; a record signed outside Python (Node.js); a double spend of a pool
UTXO made outside RareGen; a real RQ worker; the operator and client commands."""

from __future__ import annotations

import json
import shutil
import subprocess

import coincurve
import pytest
from click.testing import CliRunner

from raregen import ROOT, protocol, signing
from raregen.db import db, transaction
from raregen.publish import confirm, keys, pipeline, pool, services
from raregen.publish.models import PublishJob, Utxo
from raregen.publish.txbuilder import SpendableUtxo, build_publish_tx
from tests.plugins.chain import wire_to_node


@pytest.fixture
def node_app(app, regtest_node):
    """The app wired to the regtest node, with a funded pool of 10 UTXOs."""
    wire_to_node(app, regtest_node, utxos=10, satoshis=20_000, queue_prefix="test-node")
    yield app
    app.extensions.pop("raregen.services", None)


@pytest.fixture
def author(node_app):
    key = coincurve.PrivateKey()
    keys.register_key(key.public_key.format().hex())
    return key


def _submit(client, body: dict) -> str:
    resp = client.post("/v1/publish", json=body)
    assert resp.status_code == 202, resp.json
    return str(resp.json["jobId"])


def _job(job_id: str) -> PublishJob:
    with transaction():
        job = db.session.scalar(db.select(PublishJob).where(PublishJob.job_id == job_id))
        db.session.expunge(job)
        return job


def _publish_and_confirm(node_app, regtest_node, body: dict) -> PublishJob:
    client = node_app.test_client()
    job_id = _submit(client, body)
    step = pipeline.process_job(job_id)
    assert step.action == "sent", step
    regtest_node.mine(1)
    assert confirm.confirm_sent() >= 1
    job = _job(job_id)
    assert job.status == "confirmed"
    assert job.block_height and job.block_hash
    return job


def test_publish_confirm_and_verify(node_app, regtest_node, author):
    body = signing.make_request(author, {"title": "Lion", "contentHash": "ab" * 32}, "work")
    job = _publish_and_confirm(node_app, regtest_node, body)
    client = node_app.test_client()
    view = client.get(f"/v1/jobs/{job.job_id}").json
    assert view["status"] == "confirmed" and view["txid"] == job.txid and view["vout"] == 0
    assert view["blockHeight"] == job.block_height and view["confirmedAt"]
    rec = client.get(f"/v1/records/{job.txid}").json
    assert rec["blockHeight"] == job.block_height
    assert rec["records"] == [
        {
            "vout": 0,
            "signedPayload": body["signedPayload"],
            "signature": body["signature"],
            "pubkey": body["pubkey"],
            "valid": True,
            "error": None,
            "version": 1,  # layout v1: a DER signature (docs/PROTOCOL.md §3)
            "signatureScheme": "der",
        }
    ]
    # the input is spent, the change is back in the pool
    with transaction():
        spent = db.session.scalar(db.select(Utxo).where(Utxo.spent_by_txid == job.txid))
        assert spent.status == "spent"
        change = db.session.scalar(db.select(Utxo).where(Utxo.txid == job.txid))
        assert change is not None and change.status == "available" and change.depth == 0
    # anyone can verify from the raw transaction alone
    from raregen.client.cli import main

    result = CliRunner().invoke(main, ["verify", job.txid, "--raw", rec["rawTx"]])
    assert result.exit_code == 0, result.output
    assert "VALID" in result.output and "INVALID" not in result.output


def test_second_delivery_does_nothing_and_resend_is_success(node_app, regtest_node, author):
    client = node_app.test_client()
    job_id = _submit(client, signing.make_request(author, {"n": 1}))
    assert pipeline.process_job(job_id).action == "sent"
    assert pipeline.process_job(job_id).action == "skipped"
    job = _job(job_id)
    again = services.broadcaster().broadcast(job.raw_tx)
    assert again.ok  # "already in the mempool" counts as success


def test_record_signed_with_nodejs(node_app, regtest_node, author):
    node_bin = shutil.which("node")
    if node_bin is None or not (ROOT / "node_modules" / "@noble" / "curves").exists():
        pytest.fail("Node.js and the npm packages are needed: run scripts/test (it runs npm ci)")
    key = coincurve.PrivateKey()
    keys.register_key(key.public_key.format().hex())
    request = {"privateKeyHex": key.secret.hex(), "record": {"title": "signed in JS", "n": 1.5}}
    out = subprocess.run(
        [node_bin, str(ROOT / "tests" / "js" / "sign_record.mjs")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    body = json.loads(out.stdout)
    job = _publish_and_confirm(node_app, regtest_node, body)
    rec = node_app.test_client().get(f"/v1/records/{job.txid}").json
    assert rec["records"][0]["valid"] is True
    assert rec["records"][0]["signedPayload"] == body["signedPayload"]


def test_outside_double_spend_marks_dirty_and_retries(node_app, regtest_node, author):
    client = node_app.test_client()
    job_id = _submit(client, signing.make_request(author, {"n": "double"}))
    # the UTXO the job would take next: the smallest clean one that covers the fee
    job = _job(job_id)
    script = pipeline.record_script_for(job)
    from raregen.publish.txbuilder import required_satoshis

    need = required_satoshis([script], services.fee_rate())
    with transaction():
        victim = db.session.scalar(
            pool.candidates(need, node_app.config["MAX_UNCONFIRMED_DEPTH"], "publish").limit(1)
        )
        row = db.session.get(Utxo, victim)
        spendable = SpendableUtxo(row.txid, row.vout, row.satoshis, row.script_pub_key)
    # someone else (same key, outside RareGen) spends it first
    other = build_publish_tx(
        services.server_wallet(),
        spendable,
        [protocol.record_script(b"{}", b"\x30\x06\x02\x01\x01\x02\x01\x01", b"\x02" * 33)],
        services.fee_rate(),
    )
    regtest_node.rpc.call("sendrawtransaction", other.raw_hex)
    step = pipeline.process_job(job_id)
    assert step.action == "retry" and step.detail in ("CONFLICT", "MISSING_INPUTS")
    with transaction():
        row = db.session.get(Utxo, victim)
        assert row.dirty is True and row.status != "spent"
    assert _job(job_id).status == "queued"
    step = pipeline.process_job(job_id)
    assert step.action == "sent"
    job = _job(job_id)
    assert (job.utxo_txid, job.utxo_vout) != (spendable.txid, spendable.vout)
    # the periodic check settles the dirty UTXO as spent once it knows
    from raregen.publish import reaper

    assert reaper.settle_dirty() == 1
    with transaction():
        assert db.session.get(Utxo, victim).status == "spent"


def test_real_rq_worker_publishes(node_app, regtest_node, author):
    from rq import Queue, SimpleWorker

    from raregen.queue import redis_connection

    with node_app.app_context():
        conn = redis_connection()
        conn.flushdb()
        queue = Queue(node_app.config["QUEUE_NAME"], connection=conn)
    client = node_app.test_client()
    job_ids = [_submit(client, signing.make_request(author, {"n": i})) for i in range(3)]
    assert queue.count == 3
    SimpleWorker([queue], connection=conn).work(burst=True)
    assert [_job(j).status for j in job_ids] == ["sent"] * 3
    assert len({_job(j).txid for j in job_ids}) == 3


def test_pool_commands(node_app, regtest_node):
    runner = node_app.test_cli_runner()
    out = runner.invoke(args=["pool", "status"])
    assert out.exit_code == 0 and "available" in out.output
    out = runner.invoke(args=["pool", "split", "--count", "3", "--sats", "5000"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(args=["pool", "status", "--json"])
    assert json.loads(out.output)["available_count"] >= 13
    out = runner.invoke(args=["pool", "sync", "--no-rescan"])
    assert out.exit_code == 0, out.output
    key = coincurve.PrivateKey().public_key.format().hex()
    assert runner.invoke(args=["keys", "add", key, "--credits", "3"]).exit_code == 0
    assert key in runner.invoke(args=["keys", "list"]).output
    assert runner.invoke(args=["keys", "revoke", key]).exit_code == 0
    bad = runner.invoke(args=["keys", "add", "zz"])
    assert bad.exit_code != 0 and "BAD_PUBKEY" in bad.output
