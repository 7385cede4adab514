"""Merkle proofs captured at confirmation (docs/PROOFS.md) against the real regtest SV Node:
one-record and packed transactions, a reorganisation made with ``invalidateblock`` (the job
goes back to ``sent``, its proof is dropped, then it confirms again with the new block's
proof), and ARC's ``merklePath`` read from an HTTP-level ARC fake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bsv import MerklePath

from raregen import signing
from raregen.db import db, transaction
from raregen.proofs import capture, merkle
from raregen.publish import batch, confirm, pipeline, services
from raregen.publish.broadcasters import ARCBroadcaster, FailoverBroadcaster
from raregen.publish.broadcasters.base import TxStatus
from raregen.publish.models import PublishJob, TxProof
from tests.integration.test_broadcasters_http import FakeHTTP, arc_ok, fake_http

pytestmark = pytest.mark.node


def _submit(client, body: dict) -> str:
    resp = client.post("/v1/publish", json=body)
    assert resp.status_code == 202, resp.json
    return str(resp.json["jobId"])


def _job(job_id: str) -> PublishJob:
    with transaction():
        job = db.session.scalar(db.select(PublishJob).where(PublishJob.job_id == job_id))
        db.session.expunge(job)
        return job


def _proof(txid: str) -> TxProof | None:
    with transaction():
        row = db.session.get(TxProof, txid)
        if row is not None:
            db.session.expunge(row)
        return row


def _check_row(row: TxProof, txid: str, block_hash: str) -> None:
    header = merkle.parse_header(row.block_header)
    assert header.hash == block_hash == row.block_hash
    path = MerklePath.from_hex(row.merkle_path)
    assert path.block_height == row.block_height
    assert path.compute_root(txid) == header.merkle_root


def _mine_elsewhere(node) -> str:
    """Mine one block paying a fresh address, so it cannot be a copy of an invalidated one
    (same transactions, time and coinbase would make the very block the node refused)."""
    from bsv import PrivateKey
    from bsv.constants import Network

    return str(node.mine(1, address=PrivateKey(network=Network.TESTNET).address())[0])


def _publish_confirmed(app, node, author) -> PublishJob:
    job_id = _submit(app.test_client(), signing.make_request(author, {"title": "proof"}))
    assert pipeline.process_job(job_id).action == "sent"
    node.mine(1)
    assert confirm.confirm_sent() >= 1
    job = _job(job_id)
    assert job.status == "confirmed"
    return job


def test_confirmation_stores_a_checked_merkle_proof(chain_app, regtest_node, author):
    job = _publish_confirmed(chain_app, regtest_node, author)
    row = _proof(job.txid)
    assert row is not None and row.block_height == job.block_height
    _check_row(row, job.txid, job.block_hash)


def test_capture_off_stores_nothing_and_the_recheck_fills_it_in(chain_app, regtest_node, author):
    chain_app.config["PROOF_CAPTURE"] = False
    job = _publish_confirmed(chain_app, regtest_node, author)
    assert _proof(job.txid) is None
    chain_app.config["PROOF_CAPTURE"] = True
    confirm.confirm_sent()  # the re-check captures proofs missing in recent blocks
    _check_row(_proof(job.txid), job.txid, job.block_hash)


def test_packed_transaction_has_one_proof_for_all_its_records(chain_app, regtest_node, author):
    chain_app.config.update(PUBLISH_MODE="packed")
    client = chain_app.test_client()
    ids = [_submit(client, signing.make_request(author, {"packed": i})) for i in range(4)]
    batch.collect_packed()
    regtest_node.mine(1)
    assert confirm.confirm_sent() == 4
    jobs = [_job(i) for i in ids]
    assert len({j.txid for j in jobs}) == 1 and sorted(j.vout for j in jobs) == [0, 1, 2, 3]
    with transaction():
        assert db.session.scalar(db.select(db.func.count()).select_from(TxProof)) == 1
    _check_row(_proof(jobs[0].txid), jobs[0].txid, jobs[0].block_hash)


def test_reorg_sends_the_job_back_and_it_confirms_with_the_new_block(
    chain_app, regtest_node, author
):
    job = _publish_confirmed(chain_app, regtest_node, author)
    old_block = job.block_hash
    rpc = regtest_node.rpc
    rpc.call("invalidateblock", old_block)
    try:
        confirm.confirm_sent()
        again = _job(job.job_id)
        assert again.status == "sent" and again.block_hash is None
        assert _proof(job.txid) is None
        # the transaction is back in the mempool; a new block takes it
        assert job.txid in rpc.call("getrawmempool")
        new_block = _mine_elsewhere(regtest_node)
        assert new_block != old_block
        confirm.confirm_sent()
        again = _job(job.job_id)
        assert again.status == "confirmed" and again.block_hash == new_block
        row = _proof(job.txid)
        _check_row(row, job.txid, new_block)
        assert row.block_hash != old_block
    finally:
        # the old block stays invalid (reconsidering it could switch chains under later tests)
        pass


def test_reorg_seen_by_a_backend_that_cannot_judge_blocks(chain_app, regtest_node, author):
    """Without ``block_state`` (e.g. ARC alone) the re-check asks for the transactions."""
    job = _publish_confirmed(chain_app, regtest_node, author)
    real = services.broadcaster()

    class TxOnly:
        name = "tx-only"

        def tx_status(self, txid):
            return real.tx_status(txid)

    regtest_node.rpc.call("invalidateblock", job.block_hash)
    out = capture.recheck(TxOnly(), blocks=6)
    assert out["reverted"] == 1
    assert _job(job.job_id).status == "sent" and _proof(job.txid) is None
    _mine_elsewhere(regtest_node)
    confirm.confirm_sent()
    assert _job(job.job_id).status == "confirmed"


@pytest.fixture
def arc_fake() -> Iterator[FakeHTTP]:
    with fake_http() as fake:
        yield fake


def test_arc_merkle_path_is_stored_with_the_nodes_header(chain_app, regtest_node, author, arc_fake):
    chain_app.config["PROOF_CAPTURE"] = False
    job = _publish_confirmed(chain_app, regtest_node, author)
    block = regtest_node.rpc.call("getblock", job.block_hash, 1)
    bump = merkle.bump_from_txids(block["height"], block["tx"], job.txid)
    # ARC's documented status answer for a mined transaction carries the BUMP
    arc_fake.routes[("GET", f"/v1/tx/{job.txid}")] = lambda r: (
        200,
        arc_ok(
            "MINED",
            txid=job.txid,
            blockHash=job.block_hash,
            blockHeight=block["height"],
            merklePath=bump,
        ),
    )
    arc = ARCBroadcaster(arc_fake.url, "k")
    node = services.broadcaster()
    chain = FailoverBroadcaster([arc, node])
    status = chain.tx_status(job.txid)
    assert status.merkle_path == bump
    assert capture.capture(job.txid, status, chain)
    row = _proof(job.txid)
    assert row.merkle_path == bump
    _check_row(row, job.txid, job.block_hash)
    # a path whose root is not the block's (a sibling changed) is refused, nothing stored
    wrong = merkle.bump_from_branch(
        block["height"], block["tx"].index(job.txid), job.txid, ["ab" * 32]
    )
    arc_fake.routes[("GET", f"/v1/tx/{job.txid}")] = lambda r: (
        200,
        arc_ok(
            "MINED",
            txid=job.txid,
            blockHash=job.block_hash,
            blockHeight=block["height"],
            merklePath=wrong,
        ),
    )
    with transaction():
        db.session.execute(db.delete(TxProof))
    assert not capture.capture(job.txid, chain.tx_status(job.txid), chain)
    assert _proof(job.txid) is None


class CountingRPC:
    """The real node RPC client, counting the methods called (a batch counts each call)."""

    def __init__(self, real):
        self.real = real
        self.calls: list[str] = []

    def call(self, method, *params, **kw):
        self.calls.append(method)
        return self.real.call(method, *params, **kw)

    def batch(self, calls, **kw):
        calls = list(calls)
        self.calls.extend(m for m, _ in calls)
        return self.real.batch(calls, **kw)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_a_block_of_many_of_our_transactions_is_captured_with_one_getblock(
    chain_app, regtest_node, author
):
    """Batch mode: every record is its own transaction; one confirmation pass captures the
    proofs of all of them with one ``getblock`` and one header, no per-txid proof call."""
    chain_app.config.update(PUBLISH_MODE="batch")
    client = chain_app.test_client()
    ids = [_submit(client, signing.make_request(author, {"many": i})) for i in range(12)]
    assert batch.collect_batch().counts.get("sent") == 12
    block_hash = str(regtest_node.mine(1)[0])
    node = next(b for b in capture._backends(services.broadcaster()) if hasattr(b, "rpc"))
    counting = CountingRPC(node.rpc)
    node.rpc = counting
    try:
        assert confirm.confirm_sent() >= 12
    finally:
        node.rpc = counting.real
    jobs = [_job(i) for i in ids]
    assert {j.status for j in jobs} == {"confirmed"} and {j.block_hash for j in jobs} == {
        block_hash
    }
    assert len({j.txid for j in jobs}) == 12
    assert counting.calls.count("getblock") == 1, counting.calls
    assert "getmerkleproof2" not in counting.calls
    for job in jobs:  # every stored path holds its txid and leads to the block's root
        _check_row(_proof(job.txid), job.txid, block_hash)


def test_block_capture_refuses_a_path_that_is_not_the_blocks(chain_app, regtest_node, author):
    """A status naming the wrong block height stores nothing for that txid, the others of
    the block are stored."""
    chain_app.config["PROOF_CAPTURE"] = False
    job = _publish_confirmed(chain_app, regtest_node, author)
    chain = services.broadcaster()
    good = chain.tx_status(job.txid)
    wrong = TxStatus(job.txid, "confirmed", job.block_hash, job.block_height + 1, 1)
    assert capture.capture_many([(job.txid, wrong)], chain) == 0
    assert _proof(job.txid) is None
    assert capture.capture_many([(job.txid, good), ("00" * 32, good)], chain) == 1
    _check_row(_proof(job.txid), job.txid, job.block_hash)
