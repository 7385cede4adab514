"""Recovery of every in-flight state against the real regtest node (docs/PROTOCOL.md §2, §4, §5):
crashes between the pipeline's steps, a stale worker racing the reaper, Redis losing its
data, a double spend made outside RareGen, the node's chain limit, dirty UTXOs, pool
replenishment, health and metrics, and real worker processes stopped with SIGTERM or
``kill -9``. After each scenario the chain itself is read back: every record exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import coincurve
import pytest
from sqlalchemy import select, update

from raregen import ROOT, protocol, signing
from raregen.chain.scan import transactions_since
from raregen.db import db, transaction, utcnow
from raregen.publish import confirm, funding, keys, pipeline, pool, reaper, services
from raregen.publish.models import PublishJob, Utxo
from raregen.publish.txbuilder import SpendableUtxo, build_publish_tx
from raregen.queue import redis_connection
from raregen_dev.devnet import RegtestNode
from tests.plugins.procs import stop_worker
from tests.plugins.wait import wait_until

pytestmark = pytest.mark.node


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def wire(app, node: RegtestNode, monkeypatch, utxos: int = 6, sats: int = 20_000, **cfg):
    """Point ``app`` at ``node``, fund a pool of ``utxos`` confirmed UTXOs."""
    settings = {
        "NODE_RPC_URL": node.url,
        "NODE_RPC_USER": node.user,
        "NODE_RPC_PASSWORD": node.password,
        "BROADCASTERS": ["node"],
        "POOL_TARGET_COUNT": utxos,
        "POOL_LOW_WATER": 0,
        "RESERVATION_TIMEOUT_SECONDS": 30,
        "MAX_UNCONFIRMED_DEPTH": 20,
        # RQ queues (and RQ scheduler locks) of this test's own: a worker another test left
        # behind does not take its jobs
        "QUEUE_NAME": f"test-rec-{uuid.uuid4().hex[:10]}",
    }
    settings.update(cfg)
    for key, value in settings.items():
        monkeypatch.setitem(app.config, key, value)
    app.extensions.pop("raregen.services", None)
    funding.fund_dev(20_000_000)
    if utxos:
        split_txid = funding.split(utxos, sats)["txid"]
        with transaction():  # leftovers of earlier tests on this chain are not this pool
            db.session.execute(
                db.delete(Utxo).where(Utxo.purpose == "publish", Utxo.txid != split_txid)
            )
    node.mine(1)
    confirm.reset_depths()
    redis_connection().flushdb()


@pytest.fixture
def rec_app(app, regtest_node, monkeypatch):
    wire(app, regtest_node, monkeypatch)
    yield app
    app.extensions.pop("raregen.services", None)


@pytest.fixture
def author(rec_app):
    key = coincurve.PrivateKey()
    keys.register_key(key.public_key.format().hex())
    return key


def submit(app, author, n: int = 1) -> list[str]:
    client = app.test_client()
    ids = []
    for i in range(n):
        resp = client.post(
            "/v1/publish", json=signing.make_request(author, {"i": i, "t": time.time()})
        )
        assert resp.status_code == 202, resp.json
        ids.append(resp.json["jobId"])
    return ids


def job(job_id: str) -> PublishJob:
    with transaction():
        row = db.session.scalar(
            select(PublishJob)
            .where(PublishJob.job_id == job_id)
            .execution_options(populate_existing=True)
        )
        db.session.expunge(row)
        return row


def utxo_at(txid: str, vout: int) -> Utxo:
    with transaction():
        row = db.session.scalar(
            select(Utxo)
            .where(Utxo.txid == txid, Utxo.vout == vout)
            .execution_options(populate_existing=True)
        )
        db.session.expunge(row)
        return row


def expire(job_id: str) -> None:
    """The worker holding ``job_id`` died: its lease is in the past."""
    with transaction():
        db.session.execute(
            update(PublishJob)
            .where(PublishJob.job_id == job_id)
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )


def claim_and_sign(job_id: str):
    claimed = pipeline.claim(job_id)
    assert claimed is not None
    assert isinstance(pipeline._sign(job_id, claimed.lease_until), tuple)
    return job(job_id)


def records_on_chain(node: RegtestNode, since_height: int) -> Counter:
    """(pubkey, nonce) -> how many record outputs carry it, in blocks above ``since_height``
    and in the mempool (:func:`raregen.chain.scan.transactions_since`)."""
    found: Counter = Counter()
    for raw in transactions_since(node.rpc, since_height):
        for rec in protocol.extract_records(raw):
            if rec.payload is not None:
                found[(rec.pubkey33.hex(), rec.payload.nonce)] += 1
    return found


def nonce_of(job_id: str) -> tuple[str, str]:
    row = job(job_id)
    return row.pubkey, row.nonce


# ---------------------------------------------------------------------------------------
# crashes between the steps
# ---------------------------------------------------------------------------------------


def test_crash_after_signing_before_broadcast_rebroadcasts_same_tx(rec_app, regtest_node, author):
    start = int(regtest_node.rpc.call("getblockcount"))
    (job_id,) = submit(rec_app, author)
    signed = claim_and_sign(job_id)
    assert signed.raw_tx and signed.status == "processing"
    assert signed.txid not in regtest_node.rpc.call("getrawmempool")  # nothing was sent
    # before the lease expires the reaper leaves it alone
    assert reaper.recover_job(job_id) == "skipped"
    expire(job_id)
    counts = reaper.reap()
    assert counts["sent"] == 1, counts
    after = job(job_id)
    assert after.status == "sent" and after.txid == signed.txid and after.raw_tx == signed.raw_tx
    assert signed.txid in regtest_node.rpc.call("getrawmempool")
    assert utxo_at(signed.utxo_txid, signed.utxo_vout).status == "spent"
    assert records_on_chain(regtest_node, start)[nonce_of(job_id)] == 1


def test_crash_after_broadcast_before_settle_marks_sent_without_rebroadcast(
    rec_app, regtest_node, author, monkeypatch
):
    (job_id,) = submit(rec_app, author)
    signed = claim_and_sign(job_id)
    regtest_node.rpc.call("sendrawtransaction", signed.raw_tx)  # sent, then the worker died
    expire(job_id)
    chain = services.broadcaster()
    calls: list[str] = []
    monkeypatch.setattr(chain, "broadcast", lambda raw: calls.append(raw))  # must not be called
    assert reaper.recover_job(job_id) == "sent"
    assert calls == []
    after = job(job_id)
    assert after.status == "sent" and after.txid == signed.txid
    change = utxo_at(signed.txid, 1)
    assert change.status == "available" and change.depth == 1  # its input was mined


def test_crash_after_broadcast_and_mined_is_confirmed_by_the_reaper(rec_app, regtest_node, author):
    (job_id,) = submit(rec_app, author)
    signed = claim_and_sign(job_id)
    regtest_node.rpc.call("sendrawtransaction", signed.raw_tx)
    regtest_node.confirm([signed.txid])
    expire(job_id)
    assert reaper.recover_job(job_id) == "confirmed"
    after = job(job_id)
    assert after.status == "confirmed" and after.block_height and after.block_hash
    assert utxo_at(signed.txid, 1).depth == 0


def test_input_spent_elsewhere_marks_dirty_and_requeues(rec_app, regtest_node, author):
    start = int(regtest_node.rpc.call("getblockcount"))
    (job_id,) = submit(rec_app, author)
    signed = claim_and_sign(job_id)
    victim = utxo_at(signed.utxo_txid, signed.utxo_vout)
    other = build_publish_tx(
        services.server_wallet(),
        SpendableUtxo(victim.txid, victim.vout, victim.satoshis, victim.script_pub_key),
        [protocol.record_script(b"{}", b"\x30\x06\x02\x01\x01\x02\x01\x01", b"\x02" * 33)],
        services.fee_rate(),
    )
    regtest_node.rpc.call("sendrawtransaction", other.raw_hex)  # someone else spent it
    expire(job_id)
    assert reaper.recover_job(job_id) == "dirty"
    after = job(job_id)
    assert after.status == "queued" and after.raw_tx is None and after.txid is None
    victim = utxo_at(victim.txid, victim.vout)
    assert victim.dirty and victim.status != "spent"
    step = pipeline.process_job(job_id)
    assert step.action == "sent", step
    final = job(job_id)
    assert (final.utxo_txid, final.utxo_vout) != (victim.txid, victim.vout)
    assert final.txid != signed.txid
    assert reaper.settle_dirty() == 1
    assert utxo_at(victim.txid, victim.vout).status == "spent"
    assert records_on_chain(regtest_node, start)[nonce_of(job_id)] == 1


def test_crash_after_reserving_before_signing_releases_and_requeues(rec_app, author):
    (job_id,) = submit(rec_app, author)
    claimed = pipeline.claim(job_id)
    assert claimed is not None
    with transaction():
        held = pool.reserve(1000, job_id, timeout_seconds=3600)
        held_id = held.id
    expire(job_id)
    assert reaper.recover_job(job_id) == "requeued"
    after = job(job_id)
    assert after.status == "queued" and after.raw_tx is None
    with transaction():
        row = db.session.get(Utxo, held_id, populate_existing=True)
        assert row.status == "available" and row.reserved_by is None
    assert pipeline.process_job(job_id).action == "sent"


def test_crash_after_claim_requeues(rec_app, author):
    (job_id,) = submit(rec_app, author)
    assert pipeline.claim(job_id) is not None
    expire(job_id)
    assert reaper.reap()["requeued"] == 1
    assert pipeline.process_job(job_id).action == "sent"


# ---------------------------------------------------------------------------------------
# a stale worker racing the reaper: fencing by the lease token
# ---------------------------------------------------------------------------------------


def test_stale_worker_cannot_store_a_second_transaction(rec_app, regtest_node, author):
    start = int(regtest_node.rpc.call("getblockcount"))
    (job_id,) = submit(rec_app, author)
    stale = pipeline.claim(job_id)
    assert stale is not None
    expire(job_id)
    assert reaper.recover_job(job_id) == "requeued"  # the reaper took the job over
    # a second worker publishes it
    assert pipeline.process_job(job_id).action == "sent"
    # the first worker wakes up and goes on with its old lease: nothing happens
    step = pipeline._sign(job_id, stale.lease_until)
    assert isinstance(step, pipeline.StepResult) and step.action == "skipped"
    with transaction():
        assert db.session.scalar(select(Utxo).where(Utxo.status == "reserved")) is None
    assert job(job_id).status == "sent"
    assert records_on_chain(regtest_node, start)[nonce_of(job_id)] == 1


def test_stale_settle_is_ignored_and_sent_never_fails(rec_app, author):
    from raregen.publish.broadcasters import BroadcastResult, Outcome

    (job_id,) = submit(rec_app, author)
    claimed = pipeline.claim(job_id)
    lease = claimed.lease_until
    assert isinstance(pipeline._sign(job_id, lease), tuple)
    expire(job_id)
    assert reaper.recover_job(job_id) == "sent"
    sent = job(job_id)
    # the old worker's late outcome, and any later REJECTED, change nothing
    for outcome in (Outcome.REJECTED, Outcome.CONFLICT, Outcome.TRANSIENT):
        step = pipeline.settle(
            job_id, BroadcastResult(sent.txid, outcome, "late", "node"), lease=lease
        )
        assert step.action == "skipped"
        step = pipeline.settle(job_id, BroadcastResult(sent.txid, outcome, "late", "node"))
        assert step.action == "skipped"
    assert pipeline.process_job(job_id).action == "skipped"
    assert reaper.reap()["sent"] == 0
    view = rec_app.test_client().get(f"/v1/jobs/{job_id}").json
    assert view["status"] == "sent" and view["txid"] == sent.txid and view["errorCode"] is None


# ---------------------------------------------------------------------------------------
# the database is the source of truth: Redis flushed
# ---------------------------------------------------------------------------------------


def test_redis_flush_sweeper_reenqueues_then_worker_publishes(rec_app, regtest_node, author):
    from rq import Queue, SimpleWorker

    start = int(regtest_node.rpc.call("getblockcount"))
    conn = redis_connection()
    queue = Queue(rec_app.config["QUEUE_NAME"], connection=conn)
    ids = submit(rec_app, author, 4)
    assert queue.count == 4
    # a job waiting on a retry delay: its scheduled delivery is alive and left alone
    assert pipeline.claim(ids[3]) is not None
    with transaction():
        row = pipeline.locked_job(ids[3], None)
        pipeline.requeue(row, keep_tx=False, detail="waiting", delay=600)
    assert (
        reaper.sweep_queued(grace_seconds=0, confirm_dead=False) == 0
    )  # every queued job has a live delivery
    conn.flushdb()
    assert queue.count == 0
    # status pages read the database only
    for job_id in ids:
        assert rec_app.test_client().get(f"/v1/jobs/{job_id}").json["status"] == "queued"
    with transaction():
        db.session.execute(update(PublishJob).values(not_before=None))
    assert reaper.sweep_queued(grace_seconds=0) == 0  # the first look only suspects them
    assert reaper.sweep_queued(grace_seconds=0) == 4  # the second confirms: re-enqueued
    assert reaper.sweep_queued(grace_seconds=0) == 0  # now carried again: not twice
    SimpleWorker([queue], connection=conn).work(burst=True)
    assert [job(j).status for j in ids] == ["sent"] * 4
    found = records_on_chain(regtest_node, start)
    assert [found[nonce_of(j)] for j in ids] == [1, 1, 1, 1]


# ---------------------------------------------------------------------------------------
# chain limits, depth, dirty UTXOs, replenishment
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_chain_node(node_binary, tmp_path_factory):
    """A second regtest node refusing transactions with 3 or more unconfirmed ancestors."""
    node = RegtestNode(
        tmp_path_factory.mktemp("short-chain"), binary=node_binary, limit_ancestor_count=3
    )
    node.start()
    try:
        node.ensure_wallet_funds(5 * 100_000_000)
        yield node
    finally:
        node.stop()


def test_too_long_chain_waits_and_resends_the_same_tx(app, short_chain_node, monkeypatch):
    node = short_chain_node
    wire(app, node, monkeypatch, utxos=1, sats=50_000, MAX_UNCONFIRMED_DEPTH=10)
    key = coincurve.PrivateKey()
    keys.register_key(key.public_key.format().hex())
    ids = submit(app, key, 4)
    for job_id in ids[:3]:  # depth 0, 1, 2: accepted
        assert pipeline.process_job(job_id).action == "sent"
    step = pipeline.process_job(ids[3])  # 3 unconfirmed ancestors: the node refuses
    assert (step.action, step.detail) == ("retry", "TOO_LONG_CHAIN")
    waiting = job(ids[3])
    assert waiting.status == "queued" and waiting.raw_tx and waiting.not_before
    held = utxo_at(waiting.utxo_txid, waiting.utxo_vout)
    assert not held.dirty and held.status == "reserved" and held.spent_by_txid == waiting.txid
    node.mine(1)
    assert confirm.confirm_sent() == 3
    with transaction():
        db.session.execute(update(PublishJob).values(not_before=None))
    assert pipeline.process_job(ids[3]).action == "sent"
    assert job(ids[3]).txid == waiting.txid  # the same stored transaction, not re-signed


def test_pool_depth_limit_waits_for_a_block(app, short_chain_node, monkeypatch):
    node = short_chain_node
    wire(app, node, monkeypatch, utxos=1, sats=50_000, MAX_UNCONFIRMED_DEPTH=3)
    key = coincurve.PrivateKey()
    keys.register_key(key.public_key.format().hex())
    ids = submit(app, key, 4)
    depths = []
    for job_id in ids[:3]:
        assert pipeline.process_job(job_id).action == "sent"
        row = job(job_id)
        depths.append(utxo_at(row.txid, 1).depth)
    assert depths == [1, 2, 3]  # change depth grows along the unconfirmed chain
    step = pipeline.process_job(ids[3])
    assert step.action == "waiting"  # the pool never offers a chain at the node's limit
    assert pool.status_summary()["usable_now"] == 0
    node.mine(1)
    confirm.confirm_sent()
    assert utxo_at(job(ids[2]).txid, 1).depth == 0  # reset on confirmation
    with transaction():
        db.session.execute(update(PublishJob).values(not_before=None))
    assert pipeline.process_job(ids[3]).action == "sent"


def test_settle_dirty_returns_unspent_and_spends_spent(rec_app, regtest_node):
    with transaction():
        rows = list(
            db.session.scalars(
                select(Utxo).where(Utxo.status == "available", Utxo.purpose == "publish").limit(2)
            )
        )
        for row in rows:
            pool.mark_dirty(row, "test")
        a, b = [(r.txid, r.vout) for r in rows]
    spender = utxo_at(*b)
    tx = build_publish_tx(
        services.server_wallet(),
        SpendableUtxo(spender.txid, spender.vout, spender.satoshis, spender.script_pub_key),
        [protocol.record_script(b"{}", b"\x30\x06\x02\x01\x01\x02\x01\x01", b"\x02" * 33)],
        services.fee_rate(),
    )
    regtest_node.rpc.call("sendrawtransaction", tx.raw_hex)
    assert reaper.settle_dirty() == 2
    assert (utxo_at(*a).status, utxo_at(*a).dirty) == ("available", False)
    assert (utxo_at(*b).status, utxo_at(*b).dirty) == ("spent", False)


def test_replenish_under_low_water_and_health_reports_it(rec_app, regtest_node, monkeypatch):
    monkeypatch.setitem(rec_app.config, "POOL_LOW_WATER", 10)
    monkeypatch.setitem(rec_app.config, "POOL_TARGET_COUNT", 15)
    monkeypatch.setitem(rec_app.config, "POOL_UTXO_SATS", 5_000)
    client = rec_app.test_client()
    health = client.get("/healthz").json["details"]  # a loopback client sees the details
    assert health["pool"]["below_low_water"] is True and health["poolHealthy"] is False
    out = rec_app.test_cli_runner().invoke(args=["pool", "status", "--json"])
    assert json.loads(out.output)["below_low_water"] is True
    added = funding.replenish()
    assert added == 15 - 6
    assert pool.status_summary()["available_count"] == 15
    assert funding.replenish() == 0  # healthy now
    health = client.get("/healthz").json["details"]
    assert health["poolHealthy"] is True and health["jobs"]["processingOverdue"] == 0


def test_abandoned_split_reservation_is_settled(rec_app, regtest_node, monkeypatch):
    from raregen.publish.broadcasters import BroadcastResult, Outcome

    chain = services.broadcaster()
    real = chain.broadcast

    def sent_then_lost(raw: str) -> BroadcastResult:  # the answer is lost after sending
        result = real(raw)
        return BroadcastResult(result.txid, Outcome.TRANSIENT, "timeout", "node")

    monkeypatch.setattr(chain, "broadcast", sent_then_lost)
    with pytest.raises(RuntimeError):
        funding.split(3, 4_000)
    monkeypatch.setattr(chain, "broadcast", real)
    with transaction():
        held = db.session.scalar(select(Utxo).where(Utxo.status == "reserved"))
        assert held is not None and held.spent_by_txid
        split_txid = held.spent_by_txid
        db.session.execute(
            update(Utxo)
            .where(Utxo.id == held.id)
            .values(reserved_until=utcnow() - timedelta(seconds=1))
        )
    assert reaper.reap()["reservations"] == 1
    assert utxo_at(held.txid, held.vout).status == "spent"
    with transaction():
        outs = db.session.scalars(select(Utxo).where(Utxo.txid == split_txid)).all()
    assert len(outs) == 4  # 3 split outputs and the change were imported
    assert pool.status_summary()["reserved_past_timeout"] == 0


def test_metrics_exposes_states_pool_outcomes_and_latency(rec_app, author):
    ids = submit(rec_app, author, 2)
    for job_id in ids:
        assert pipeline.process_job(job_id).action == "sent"
    text = rec_app.test_client().get("/metrics").get_data(as_text=True)
    assert 'raregen_jobs{status="sent"} 2.0' in text
    assert 'raregen_jobs{status="queued"} 0.0' in text
    assert 'raregen_broadcast_outcomes_total{backend="node",outcome="accepted"} 2.0' in text
    assert "raregen_submit_to_sent_seconds_count 2.0" in text
    assert 'raregen_queue_jobs{state="queued"}' in text
    assert "raregen_pool_available " in text and "raregen_pool_satoshis{" in text
    assert 'raregen_metrics_source_up{source="redis"} 1.0' in text


# ---------------------------------------------------------------------------------------
# re-queueing by mode, the worker's queues, the periodic-job table
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["immediate", "batch", "packed", "auto"])
def test_requeue_enqueues_an_rq_job_only_in_immediate_mode(rec_app, author, monkeypatch, mode):
    """In batch and packed modes a re-queued job is only set back to ``queued``: the
    collector takes it from the database (an RQ publish job would publish it outside its
    batch)."""
    from rq import Queue

    from raregen.publish import batch
    from raregen.queue import rq_job_id

    (job_id,) = submit(rec_app, author)
    queue = Queue(rec_app.config["QUEUE_NAME"], connection=redis_connection())
    queue.empty()
    monkeypatch.setitem(rec_app.config, "PUBLISH_MODE", mode)
    claimed = pipeline.claim(job_id)
    assert claimed is not None
    with transaction():
        held = pipeline.locked_job(job_id, claimed.lease_until)
        pipeline.requeue(held, keep_tx=False, detail="handed back", delay=None)
    row = job(job_id)
    assert row.status == "queued" and row.lease_until is None
    assert queue.scheduled_job_registry.count == 0
    if mode == "immediate":
        assert queue.job_ids == [rq_job_id(job_id, row.not_before)]
        return
    assert queue.job_ids == []
    batch.run_collector(budget_seconds=5)  # the collector picks the row up
    assert job(job_id).status == "sent"


def test_workers_listen_to_the_collector_queue_first(rec_app):
    import importlib.util

    from rq import SimpleWorker, Worker
    from rq.timeouts import UnixSignalDeathPenalty

    from raregen.publish import tasks

    spec = importlib.util.spec_from_file_location("raregen_worker_entry", ROOT / "worker.py")
    assert spec is not None and spec.loader is not None
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    name = rec_app.config["QUEUE_NAME"]
    simple = entry.build_worker(rec_app)
    forking = entry.build_worker(rec_app, fork=True)
    assert tasks._APP is rec_app
    assert type(simple) is SimpleWorker and type(forking) is Worker
    assert simple.death_penalty_class is UnixSignalDeathPenalty  # job timeouts: SIGALRM
    assert simple.queue_names() == [f"{name}-batch", f"{name}-periodic", name]


def test_in_process_worker_reuses_one_pool_and_enforces_job_timeouts(rec_app, author):
    """``worker.py``'s SimpleWorker: publish jobs run in this process on pooled database
    connections (no new connection per job), and RQ's death penalty still stops a job that
    outlives its ``job_timeout``; the worker goes on with the next job."""
    from rq import Queue, SimpleWorker
    from sqlalchemy import event

    ids = submit(rec_app, author, 3)
    conn = redis_connection()
    queue = Queue(rec_app.config["QUEUE_NAME"], connection=conn)
    slow = queue.enqueue(time.sleep, 30, job_timeout=1, result_ttl=60, failure_ttl=60)
    more = submit(rec_app, author, 1)  # behind the slow job
    engine = db.engine
    connects: list[object] = []

    def count(*_: object) -> None:
        connects.append(1)

    event.listen(engine, "connect", count)
    try:
        started = time.monotonic()
        SimpleWorker([queue], connection=conn).work(burst=True)
        took = time.monotonic() - started
    finally:
        event.remove(engine, "connect", count)
    assert took < 20, took  # the 30 s sleep was cut at 1 s
    slow.refresh()
    assert slow.get_status() == "failed"
    assert "JobTimeoutException" in (slow.latest_result().exc_string or "")
    assert [job(j).status for j in ids + more] == ["sent"] * 4
    assert len(connects) <= 1, connects  # pooled: at most one new connection for all jobs
    assert engine.pool.checkedout() == 0


def test_a_forked_child_starts_with_empty_pools(rec_app):
    """RQ's scheduler process (and a ``--fork`` work horse) is forked from a worker whose
    pool holds open connections: the child gets empty pools, the parent keeps its own."""
    with transaction():
        db.session.execute(db.text("SELECT 1"))
    engine = db.engine
    assert engine.pool.checkedin() >= 1
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            code = 0 if db.engine.pool.checkedin() == 0 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert engine.pool.checkedin() >= 1
    with transaction():  # the parent's pooled connection still works
        assert db.session.execute(db.text("SELECT 1")).scalar() == 1


def test_cron_registers_the_periodic_table(rec_app, monkeypatch):
    from raregen.publish import schedule

    name = rec_app.config["QUEUE_NAME"]
    monkeypatch.setitem(rec_app.config, "CONFIRM_INTERVAL_SECONDS", 5)
    monkeypatch.setitem(rec_app.config, "REAPER_INTERVAL_SECONDS", 7)
    monkeypatch.setitem(rec_app.config, "REPLENISH_INTERVAL_SECONDS", 30)
    monkeypatch.setitem(rec_app.config, "BATCH_WINDOW_SECONDS", 5)
    monkeypatch.setitem(rec_app.config, "BATCH_RUN_SECONDS", 30)
    monkeypatch.delitem(rec_app.config, "SETTLE_DIRTY_INTERVAL_SECONDS", raising=False)
    monkeypatch.setenv("RAREGEN_SETTLE_DIRTY_INTERVAL_SECONDS", "61")
    jobs = {j.name: j for j in schedule.build_cron_scheduler(rec_app).get_jobs()}
    assert list(jobs) == [
        "confirm-sent",
        "reaper",
        "settle-dirty",
        "replenish",
        "pool-sample",
        "purge-wallet",
        "webhooks",
        "batch-collector",
    ]
    periodic, collector = f"{name}-periodic", f"{name}-batch"
    expected = {
        "confirm-sent": ("raregen.publish.tasks.confirm_sent", periodic, 5, 120),
        "reaper": ("raregen.publish.tasks.reap", periodic, 7, 300),
        "settle-dirty": ("raregen.publish.tasks.settle_dirty", periodic, 61, 300),
        "replenish": ("raregen.publish.tasks.replenish_pool", periodic, 30, 300),
        "pool-sample": ("raregen.publish.tasks.sample_pool", periodic, 60, 60),
        "purge-wallet": ("raregen.publish.tasks.purge_wallet_challenges", periodic, 3600, 300),
        "webhooks": ("raregen.publish.tasks.deliver_webhooks", periodic, 2, 120),
        "batch-collector": ("raregen.publish.tasks.collect_batches", collector, 5, 150),
    }
    for cron_name, (func, queue, interval, timeout) in expected.items():
        got = jobs[cron_name]
        assert (got.func_name, got.queue_name, got.interval) == (func, queue, interval)
        assert got.job_options["job_timeout"] == timeout
        assert got.job_options["result_ttl"] == 60


# ---------------------------------------------------------------------------------------
# real worker processes: SIGTERM (warm shutdown) and kill -9
# ---------------------------------------------------------------------------------------


def _worker_env(app, **extra: str) -> dict[str, str]:
    cfg = app.config
    env = dict(os.environ)
    env.update(
        RAREGEN_DATABASE_URL=cfg["SQLALCHEMY_DATABASE_URI"],
        RAREGEN_REDIS_URL=cfg["REDIS_URL"],
        RAREGEN_SERVER_WIF=cfg["SERVER_WIF"],
        RAREGEN_NODE_RPC_URL=cfg["NODE_RPC_URL"],
        RAREGEN_NODE_RPC_USER=cfg["NODE_RPC_USER"],
        RAREGEN_NODE_RPC_PASSWORD=cfg["NODE_RPC_PASSWORD"],
        RAREGEN_INSTANCE_PATH=app.instance_path,
        RAREGEN_SECRET_KEY="test-secret",
        RAREGEN_RESERVATION_TIMEOUT_SECONDS=str(cfg["RESERVATION_TIMEOUT_SECONDS"]),
        RAREGEN_ENV="test",  # no production checks (mail server, SQLite shared with tests)
        RAREGEN_PUBLISH_MODE=cfg["PUBLISH_MODE"],  # the mode the test's intake runs in
        RAREGEN_QUEUE_NAME=cfg["QUEUE_NAME"],
    )
    env.update(extra)
    return env


#: worker processes started by the running test; :func:`_stop_started_workers` ends them
_STARTED: list[subprocess.Popen] = []


def _start_worker(app, *, fork: bool = False, **extra: str) -> subprocess.Popen:
    """``python worker.py`` (jobs in-process) or, with ``fork``, ``worker.py --fork``, in a
    process group of its own: RQ's scheduler process and a work horse are forked from it, and
    a ``kill -9`` of the worker alone would leave them running."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py"), *(["--fork"] if fork else [])],
        env=_worker_env(app, **extra),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _STARTED.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _stop_started_workers():
    """Every worker process a test started is stopped when the test ends, passed or not."""
    yield
    while _STARTED:
        stop_worker(_STARTED.pop(), grace=5)


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _warm_stop_age(app) -> timedelta:
    """How long ago the worker noted its (first) shutdown request in Redis (RQ's public
    ``Worker.shutdown_requested_date``); zero while it has not."""
    from rq import Worker

    dates = [
        w.shutdown_requested_date
        for w in Worker.all(connection=redis_connection(app.config["REDIS_URL"]))
    ]
    noted = [d for d in dates if d is not None]
    return datetime.now(UTC) - max(noted) if noted else timedelta(0)


def _statuses(ids: list[str]) -> Counter:
    with transaction():
        return Counter(
            db.session.scalars(select(PublishJob.status).where(PublishJob.job_id.in_(ids)))
        )


@pytest.fixture
def pg_rec_app(pg_app, regtest_node, monkeypatch):
    wire(pg_app, regtest_node, monkeypatch, utxos=12)
    yield pg_app
    pg_app.extensions.pop("raregen.services", None)


@pytest.mark.timeout(600)  # 30 jobs sent twice over by real worker processes
@pytest.mark.parametrize("fork", [False, True], ids=["in-process", "fork"])
def test_sigterm_finishes_the_current_job_and_loses_nothing(pg_rec_app, regtest_node, fork):
    app = pg_rec_app
    start = int(regtest_node.rpc.call("getblockcount"))
    key = coincurve.PrivateKey()
    keys.register_key(key.public_key.format().hex())
    ids = submit(app, key, 30)
    worker = _start_worker(app, fork=fork)
    try:
        _wait(lambda: _statuses(ids)["sent"] >= 2, 60, "a first sent job")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0  # warm shutdown: exits by itself
    finally:
        stop_worker(worker, grace=0)
    states = _statuses(ids)
    assert states["processing"] == 0, states  # the job it was running was finished
    worker = _start_worker(app)

    def all_sent() -> bool:
        # the sweeper (the cron process in production) re-enqueues a job the stopped worker
        # had popped from Redis in the instant before it stopped
        reaper.sweep_queued(grace_seconds=5)
        return _statuses(ids)["sent"] == 30

    try:
        _wait(all_sent, 120, "all jobs sent after the restart")
    finally:
        stop_worker(worker)
    found = records_on_chain(regtest_node, start)
    assert sorted(found[(key.public_key.format().hex(), job(j).nonce)] for j in ids) == [1] * 30


def _hanging_arc():
    """An ARC endpoint that answers nothing for 20 s (a broadcast that hangs); started, the
    caller stops it."""
    import re

    from pytest_httpserver import HTTPServer
    from werkzeug.wrappers import Response

    def hanging(request):
        time.sleep(20)
        return Response("{}", 503)

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.expect_request(re.compile(".*")).respond_with_handler(hanging)
    server.start()
    return server


@pytest.mark.parametrize(
    "how", ["kill-9", "kill-9-fork", "sigterm-twice"], ids=["kill-9", "kill-9-fork", "cold"]
)
def test_stop_mid_broadcast_is_settled_by_the_reaper(pg_rec_app, regtest_node, monkeypatch, how):
    """The worker's broadcast hangs (an ARC that never answers in time); the worker is
    stopped hard while the job is ``processing`` with its transaction stored: ``kill -9`` of
    the worker and its children (in-process worker, or ``--fork`` with its horse), or a cold
    shutdown (SIGTERM, then SIGTERM again more than 1 s later: RQ raises SystemExit inside
    the running job). The job stays ``processing``; the reaper re-sends that same transaction
    once the lease expires."""
    app = pg_rec_app
    monkeypatch.setitem(app.config, "RESERVATION_TIMEOUT_SECONDS", 3)
    key = coincurve.PrivateKey()
    keys.register_key(key.public_key.format().hex())
    (job_id,) = submit(app, key, 1)
    server = _hanging_arc()
    worker = _start_worker(
        app,
        fork=how == "kill-9-fork",
        RAREGEN_BROADCASTERS="arc",
        RAREGEN_ARC_URL=server.url_for("/").rstrip("/"),
        RAREGEN_RESERVATION_TIMEOUT_SECONDS="3",
    )
    try:
        _wait(lambda: job(job_id).raw_tx is not None, 60, "the signed transaction")
        if how == "sigterm-twice":
            worker.send_signal(signal.SIGTERM)  # warm: would wait for the hanging broadcast
            # RQ ignores a second signal less than 1 s after the first (the date it noted)
            wait_until(
                lambda: _warm_stop_age(app) > timedelta(seconds=1.2), 30, "the warm stop noted"
            )
            assert worker.poll() is None
            worker.send_signal(signal.SIGTERM)  # cold: abandon the job now
            worker.wait(15)
        else:
            children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
            for pid in [worker.pid, *map(int, children)]:
                os.kill(pid, signal.SIGKILL)
            worker.wait(10)
    finally:
        server.clear()
        server.stop()
        stop_worker(worker, grace=0)
    stuck = job(job_id)
    assert stuck.status == "processing" and stuck.raw_tx
    # the reaper takes a processing job once its lease has expired
    wait_until(lambda: job(job_id).lease_until < utcnow(), 30, "the job's lease to expire")
    assert reaper.reap()["sent"] == 1
    after = job(job_id)
    assert after.status == "sent" and after.txid == stuck.txid
    assert stuck.txid in regtest_node.rpc.call("getrawmempool")


def test_live_deliveries_distrusts_stale_redis_state(rec_app, author):
    """A delivery counts as alive only if RQ will really run it: listed in the queue, due in
    the scheduled registry (not long overdue: no scheduler runs), or started just now."""
    from rq import Queue

    from raregen.queue import live_deliveries, rq_job_id

    (job_id,) = submit(rec_app, author)
    rq_id = rq_job_id(job_id)
    conn = redis_connection()
    queue = Queue(rec_app.config["QUEUE_NAME"], connection=conn)
    assert live_deliveries([rq_id]) == {rq_id}  # in the queue's list
    conn.lrem(queue.key, 0, rq_id)  # popped by a worker that died before starting it
    assert conn.hget(f"rq:job:{rq_id}", "status") == b"queued"
    assert live_deliveries([rq_id]) == set()
    registry = queue.scheduled_job_registry.key
    conn.zadd(registry, {rq_id: time.time() + 60})  # a retry due in a minute
    assert live_deliveries([rq_id]) == {rq_id}
    conn.zadd(registry, {rq_id: time.time() - 120})  # overdue: no scheduler moves it
    assert live_deliveries([rq_id]) == set()
    conn.zrem(registry, rq_id)
    conn.hset(
        f"rq:job:{rq_id}",
        mapping={
            "status": "started",
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
        },
    )
    assert live_deliveries([rq_id]) == {rq_id}
    conn.hset(f"rq:job:{rq_id}", "started_at", "2020-01-01T00:00:00.000000Z")  # worker long dead
    assert live_deliveries([rq_id]) == set()
