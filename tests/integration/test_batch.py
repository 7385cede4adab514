"""Batch and packed modes (docs/PROTOCOL.md §6) against the real regtest SV Node: one broadcast call
for a whole batch, one conflicting transaction among good ones, packed records with their own
vouts, the trigger that does not stack, recovery, the same API answer in every mode; and the
fee policy (docs/PROTOCOL.md §4)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from raregen import protocol, signing
from raregen.db import db, transaction, utcnow
from raregen.publish import batch, confirm, funding, pipeline, pool, reaper, services
from raregen.publish.batch import batch_mode, packed
from raregen.publish.broadcasters.base import BroadcastResult, Outcome
from raregen.publish.models import PublishBatch, PublishJob, Utxo
from raregen.publish.txbuilder import SpendableUtxo, build_publish_tx, required_satoshis


class SpyBroadcaster:
    """The real broadcaster, counting calls; single broadcasts are refused in batch tests."""

    def __init__(self, real, *, allow_single: bool = False):
        self.real = real
        self.name = real.name
        self.many_calls: list[int] = []
        self.allow_single = allow_single

    def broadcast(self, raw_hex):
        assert self.allow_single, "batch mode must broadcast through broadcast_many"
        return self.real.broadcast(raw_hex)

    def broadcast_many(self, raws):
        self.many_calls.append(len(raws))
        return self.real.broadcast_many(raws)

    def __getattr__(self, name):
        return getattr(self.real, name)


def _spy(app, **kw) -> SpyBroadcaster:
    spy = SpyBroadcaster(services.broadcaster(), **kw)
    app.extensions["raregen.services"]["broadcaster"] = spy
    return spy


def _submit(client, author, n: int, tag: str = "r") -> list[str]:
    ids = []
    for i in range(n):
        resp = client.post("/v1/publish", json=signing.make_request(author, {tag: i}))
        assert resp.status_code == 202, resp.json
        ids.append(resp.json["jobId"])
    return ids


def _jobs(ids: list[str]) -> list[PublishJob]:
    with transaction():
        rows = list(db.session.scalars(db.select(PublishJob).where(PublishJob.job_id.in_(ids))))
        for row in rows:
            db.session.expunge(row)
    by_id = {r.job_id: r for r in rows}
    return [by_id[i] for i in ids]


def _batch_row(batch_id: str) -> PublishBatch:
    with transaction():
        row = db.session.get(PublishBatch, batch_id)
        db.session.expunge(row)
        return row


def test_batch_collector_publishes_in_one_call(chain_app, regtest_node, author):
    chain_app.config.update(PUBLISH_MODE="batch")
    from raregen.queue import publish_queue

    ids = _submit(chain_app.test_client(), author, 6)
    assert publish_queue().count == 0  # no RQ job per record in batch mode
    assert [j.status for j in _jobs(ids)] == ["queued"] * 6
    spy = _spy(chain_app)

    report = batch.collect_batch()

    assert spy.many_calls == [6]
    assert report.claimed == 6 and report.counts.get("sent") == 6 and not report.more
    jobs = _jobs(ids)
    assert [j.status for j in jobs] == ["sent"] * 6
    assert len({j.txid for j in jobs}) == 6
    assert {j.processing_batch_id for j in jobs} == {report.batch_id}
    assert all(j.vout == 0 and j.sent_at and j.lease_until is None for j in jobs)
    row = _batch_row(report.batch_id)
    assert row.status == "sent" and row.mode == "batch" and row.job_count == 6
    assert row.broadcasted_at and row.completed_at
    mempool = set(regtest_node.rpc.call("getrawmempool"))
    assert {j.txid for j in jobs} <= mempool
    with transaction():
        spent = db.session.scalars(
            db.select(Utxo).where(Utxo.spent_by_txid.in_([j.txid for j in jobs]))
        ).all()
        assert len(spent) == 6 and {u.status for u in spent} == {"spent"}
        change = db.session.scalars(
            db.select(Utxo).where(Utxo.txid.in_([j.txid for j in jobs]))
        ).all()
        assert len(change) == 6 and {u.status for u in change} == {"available"}
        assert {u.depth for u in change} == {1}
    # a second run finds nothing
    assert batch.collect_batch().claimed == 0
    # and the records read back valid from the chain
    view = chain_app.test_client().get(f"/v1/records/{jobs[0].txid}").json
    assert [r["valid"] for r in view["records"]] == [True]


def test_batch_with_one_conflict_publishes_the_others(chain_app, regtest_node, author):
    chain_app.config.update(PUBLISH_MODE="batch")
    ids = _submit(chain_app.test_client(), author, 4)
    jobs = _jobs(ids)
    rate = services.fee_rate()
    need = min(required_satoshis([pipeline.record_script_for(j)], rate) for j in jobs)
    # the UTXOs the batch will take: the 4 smallest clean ones that cover the fee
    with transaction():
        victims = list(
            db.session.scalars(
                pool.candidates(need, chain_app.config["MAX_UNCONFIRMED_DEPTH"], "publish").limit(4)
            )
        )
        row = db.session.get(Utxo, victims[2])
        spendable = SpendableUtxo(row.txid, row.vout, row.satoshis, row.script_pub_key)
    # someone else (same key, outside RareGen) spends one of them first
    other = build_publish_tx(
        services.server_wallet(),
        spendable,
        [protocol.record_script(b"{}", b"\x30\x06\x02\x01\x01\x02\x01\x01", b"\x02" * 33)],
        rate,
    )
    regtest_node.rpc.call("sendrawtransaction", other.raw_hex)
    spy = _spy(chain_app)

    report = batch.collect_batch()

    assert spy.many_calls == [4]
    assert report.counts.get("sent") == 3 and report.counts.get("dirty") == 1
    jobs = _jobs(ids)
    assert sorted(j.status for j in jobs) == ["queued", "sent", "sent", "sent"]
    loser = next(j for j in jobs if j.status == "queued")
    assert loser.raw_tx is None and loser.txid is None and loser.processing_batch_id is None
    detail = (loser.error_detail or "").upper()
    assert loser.attempts == 1 and ("CONFLICT" in detail or "MISSING" in detail)
    with transaction():
        dirty = db.session.get(Utxo, victims[2])
        assert dirty.dirty is True and dirty.status == "available" and dirty.spent_by_txid is None
    assert _batch_row(report.batch_id).status == "partial"
    # the next run publishes it with another UTXO
    again = batch.collect_batch()
    assert again.counts.get("sent") == 1
    loser = _jobs([loser.job_id])[0]
    assert loser.status == "sent" and (loser.utxo_txid, loser.utxo_vout) != (
        spendable.txid,
        spendable.vout,
    )


def test_packed_mode_gives_each_job_its_own_vout(chain_app, regtest_node, author):
    chain_app.config.update(PUBLISH_MODE="packed")
    client = chain_app.test_client()
    bodies = [signing.make_request(author, {"packed": i, "title": f"work {i}"}) for i in range(5)]
    ids = []
    for body in bodies:
        resp = client.post("/v1/publish", json=body)
        assert resp.status_code == 202
        ids.append(resp.json["jobId"])
    spy = _spy(chain_app, allow_single=True)

    report = batch.collect_packed()

    assert report.claimed == 5 and report.counts.get("sent") == 5
    assert len(spy.many_calls) == 1
    jobs = _jobs(ids)
    assert {j.status for j in jobs} == {"sent"}
    txid = jobs[0].txid
    assert {j.txid for j in jobs} == {txid}
    assert sorted(j.vout for j in jobs) == [0, 1, 2, 3, 4]
    assert all(j.raw_tx is None for j in jobs)  # stored once, on the batch
    row = _batch_row(report.batch_id)
    assert row.mode == "packed" and row.status == "sent" and row.raw_tx
    assert txid in set(regtest_node.rpc.call("getrawmempool"))
    with transaction():
        assert batch.packed_raw_tx(txid) == row.raw_tx
        assert batch.packed_raw_tx("00" * 32) is None
    view = client.get(f"/v1/records/{txid}").json
    assert len(view["records"]) == 5 and all(r["valid"] for r in view["records"])
    by_vout = {r["vout"]: r for r in view["records"]}
    for job, body in zip(jobs, bodies, strict=True):
        assert by_vout[job.vout]["signedPayload"] == body["signedPayload"]
        status = client.get(f"/v1/jobs/{job.job_id}").json
        assert status["status"] == "sent" and status["txid"] == txid and status["vout"] == job.vout
    # one input spent, its change back in the pool
    with transaction():
        assert (
            db.session.scalar(
                db.select(db.func.count()).where(Utxo.spent_by_txid == txid, Utxo.status == "spent")
            )
            == 1
        )
        change = db.session.scalars(db.select(Utxo).where(Utxo.txid == txid)).all()
        assert len(change) == 1 and change[0].status == "available" and change[0].vout == 5


def test_packed_size_limit_splits_transactions(chain_app, regtest_node, author):
    chain_app.config.update(PUBLISH_MODE="packed", PACKED_MAX_BYTES=1200)
    ids = _submit(chain_app.test_client(), author, 5)
    totals = batch.run_collector(budget_seconds=30)
    assert totals.get("sent") == 5 and totals["batches"] >= 2
    jobs = _jobs(ids)
    assert {j.status for j in jobs} == {"sent"}
    assert len({j.txid for j in jobs}) == totals["batches"]
    for txid in {j.txid for j in jobs}:
        raw = regtest_node.rpc.call("getrawtransaction", txid, 0)
        assert len(raw) // 2 <= 1200


def test_packed_transient_failure_is_resent_not_resigned(chain_app, regtest_node, author):
    chain_app.config.update(PUBLISH_MODE="packed")
    ids = _submit(chain_app.test_client(), author, 3)
    real = services.broadcaster()

    class Down(SpyBroadcaster):
        def broadcast_many(self, raws):
            return [BroadcastResult("", Outcome.TRANSIENT, "node down", "node") for _ in raws]

    chain_app.extensions["raregen.services"]["broadcaster"] = Down(real)
    report = batch.collect_packed()
    assert report.counts.get("retry") == 3
    jobs = _jobs(ids)
    assert {j.status for j in jobs} == {"processing"}
    assert {j.lease_until for j in jobs} == {None}  # out of the reaper's reach
    row = _batch_row(report.batch_id)
    assert row.status == "retry" and row.raw_tx
    # the reaper leaves them alone
    assert reaper.reap()["requeued"] == 0
    chain_app.extensions["raregen.services"]["broadcaster"] = real
    # not yet: the back-off has not passed
    assert batch.resume_stale() == 0
    assert batch.resume_stale(now=utcnow() + timedelta(seconds=30)) == 1
    jobs = _jobs(ids)
    assert {j.status for j in jobs} == {"sent"}
    assert {j.txid for j in jobs} == set(json.loads(row.txids or "[]"))
    assert _batch_row(report.batch_id).status == "sent"


def test_batch_job_left_processing_is_recovered_by_the_reaper(
    chain_app, regtest_node, author, monkeypatch
):
    chain_app.config.update(PUBLISH_MODE="batch")
    ids = _submit(chain_app.test_client(), author, 2)

    class Crash(BaseException):
        pass

    def crash(raws):
        raise Crash()

    monkeypatch.setattr(batch_mode, "broadcast_many", crash)
    with pytest.raises(Crash):
        batch.collect_batch()
    monkeypatch.undo()
    jobs = _jobs(ids)
    assert {j.status for j in jobs} == {"processing"} and all(j.raw_tx for j in jobs)
    with transaction():
        db.session.execute(
            db.update(PublishJob).values(lease_until=utcnow() - timedelta(seconds=1))
        )
    counts = reaper.reap()
    assert counts["sent"] == 2
    jobs = _jobs(ids)
    assert {j.status for j in jobs} == {"sent"}
    assert set(regtest_node.rpc.call("getrawmempool")) >= {j.txid for j in jobs}
    # the stale batch row is closed by a later collector run
    assert batch.resume_stale(now=utcnow() + timedelta(seconds=3600)) == 1


def test_trigger_enqueues_one_collector_and_publishes(chain_app, regtest_node, author):
    from rq import Queue, SimpleWorker

    from raregen.queue import batch_queue_name, redis_connection

    chain_app.config.update(PUBLISH_MODE="batch", BATCH_SIZE=3)
    conn = redis_connection()
    # the collector's own queue, <QUEUE_NAME>-batch
    queue = Queue(batch_queue_name(chain_app.config["QUEUE_NAME"]), connection=conn)
    ids = _submit(chain_app.test_client(), author, 2)
    assert queue.count == 0  # not a full batch yet
    ids += _submit(chain_app.test_client(), author, 3, tag="more")
    assert queue.job_ids == [batch.trigger_job_id()]  # triggered once, never stacked
    SimpleWorker([queue], connection=conn).work(burst=True)
    assert {j.status for j in _jobs(ids)} == {"sent"}
    # the job is gone after success, so the next full batch can trigger again
    assert queue.count == 0 and batch.enqueue_collector() is True


@pytest.mark.parametrize("mode", ["immediate", "batch", "packed"])
def test_api_answers_the_same_in_every_mode(chain_app, author, mode):
    chain_app.config.update(PUBLISH_MODE=mode)
    client = chain_app.test_client()
    body = signing.make_request(author, {"mode": mode})
    first = client.post("/v1/publish", json=body)
    assert first.status_code == 202
    assert set(first.json) == {"jobId", "status", "statusUrl", "receipt"}  # docs/PROOFS.md
    assert first.json["status"] == "queued"
    assert first.json["statusUrl"] == f"/v1/jobs/{first.json['jobId']}"
    again = client.post("/v1/publish", json=body)
    assert again.status_code == 200 and again.json == first.json
    view = client.get(first.json["statusUrl"]).json
    assert view["status"] == "queued" and view["jobId"] == first.json["jobId"]


def test_fee_rate_from_policy_cached_with_floor(chain_app, monkeypatch):
    calls: list[int] = []

    class Policy:
        name = "stub"
        answer: int | None = 7

        def fee_rate_sat_per_kb(self):
            calls.append(1)
            return self.answer

    stub = Policy()
    chain_app.extensions["raregen.services"]["broadcaster"] = stub
    chain_app.config.update(
        FEE_RATE_SOURCE="policy", FEE_RATE_SAT_PER_KB=100, FEE_RATE_FLOOR_SAT_PER_KB=1
    )
    try:
        assert services.fee_rate() == 7
        assert services.fee_rate() == 7 and len(calls) == 1  # cached
        chain_app.config.update(FEE_RATE_FLOOR_SAT_PER_KB=10)
        assert services.fee_rate() == 10  # never below the floor
        chain_app.extensions["raregen.services"].pop("fee_policy")
        stub.answer = None
        assert services.fee_rate() == 100  # unknown policy: the configured rate
        chain_app.config.update(FEE_RATE_SOURCE="config", FEE_RATE_SAT_PER_KB=250)
        assert services.fee_rate() == 250
    finally:
        chain_app.config.update(
            FEE_RATE_SOURCE="config", FEE_RATE_SAT_PER_KB=100, FEE_RATE_FLOOR_SAT_PER_KB=1
        )
        chain_app.extensions["raregen.services"].pop("fee_policy", None)


def test_node_policy_rate_and_pool_utxo_size(chain_app, regtest_node):
    chain_app.config.update(FEE_RATE_SOURCE="policy")
    try:
        # the regtest node's -minminingtxfee is 50 sat/kB
        assert services.fee_rate() == regtest_node.min_mining_fee_sat_per_kb
    finally:
        chain_app.config.update(FEE_RATE_SOURCE="config")
        chain_app.extensions["raregen.services"].pop("fee_policy", None)
    # 3 transactions of one 100 000-byte record at 100 sat/kB; packed: one 1 MB transaction
    assert funding.default_utxo_sats() == 30_099
    chain_app.config.update(PUBLISH_MODE="packed")
    assert funding.default_utxo_sats() == 100_000


def test_batch_crash_before_storing_leaves_the_jobs_queued(
    chain_app, regtest_node, author, monkeypatch
):
    chain_app.config.update(PUBLISH_MODE="batch")
    ids = _submit(chain_app.test_client(), author, 3)

    class Crash(BaseException):
        pass

    def crash(*args, **kwargs):
        raise Crash()

    monkeypatch.setattr(batch_mode, "build_publish_tx", crash)
    with pytest.raises(Crash):
        batch.collect_batch()
    monkeypatch.undo()
    # jobs and inputs are written once, with the signed transactions, in the claim's
    # transaction: a crash before its commit leaves nothing to recover
    jobs = _jobs(ids)
    assert {j.status for j in jobs} == {"queued"} and {j.attempts for j in jobs} == {0}
    assert {j.processing_batch_id for j in jobs} == {None}
    with transaction():
        assert db.session.scalar(db.select(db.func.count()).where(Utxo.status == "reserved")) == 0
        assert db.session.scalar(db.select(db.func.count()).select_from(PublishBatch)) == 0
    assert reaper.reap()["requeued"] == 0
    assert batch.run_collector(budget_seconds=30).get("sent") == 3
    jobs = _jobs(ids)
    assert {j.status for j in jobs} == {"sent"} and {j.attempts for j in jobs} == {1}


def test_batch_claim_writes_each_job_and_input_once(chain_app, regtest_node, author):
    """Claim, sign and store are one write per job row and per input (before the broadcast);
    the settle is the second. Counted with a trigger-free look at the row versions: every
    UPDATE of a row bumps PostgreSQL's xmin; on SQLite the statements are counted."""
    chain_app.config.update(PUBLISH_MODE="batch")
    ids = _submit(chain_app.test_client(), author, 4)
    from sqlalchemy import event

    statements: list[str] = []

    def count(conn, cursor, statement, params, context, executemany):
        # an UPDATE, or one query whose CTEs update (the claim's writes in one round trip)
        if statement.lstrip().upper().startswith(("UPDATE", "WITH")):
            statements.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        spy = _spy(chain_app)

        def check(raws):
            # before the broadcast: each job holds its transaction, each input is signed
            jobs = _jobs(ids)
            assert {j.status for j in jobs} == {"processing"}
            assert all(j.raw_tx and j.txid and j.utxo_txid and j.lease_until for j in jobs)
            with transaction():
                signed = db.session.scalars(
                    db.select(Utxo).where(Utxo.spent_by_txid.in_([j.txid for j in jobs]))
                ).all()
            assert len(signed) == 4 and {u.status for u in signed} == {"reserved"}
            assert {u.reserved_by for u in signed} == set(ids)
            return SpyBroadcaster.broadcast_many(spy, raws)

        spy.broadcast_many = check  # type: ignore[method-assign]
        report = batch.collect_batch()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert report.counts.get("sent") == 4
    job_updates = [s for s in statements if "UPDATE PUBLISH_JOBS" in s.upper()]
    # claim (one statement for all jobs) and settle (one statement)
    assert len(job_updates) == 2, job_updates
    utxo_updates = [s for s in statements if "UPDATE UTXOS" in s.upper()]
    # expired reservations released (none here), reserve+sign, spend
    assert len(utxo_updates) <= 3, utxo_updates


def _packed_signed_not_sent(chain_app, author, monkeypatch, count: int = 4) -> list[str]:
    """Packed mode: ``count`` records submitted, their transaction signed and stored, then the
    collector dies before the broadcast (a crash: BaseException). Returns the job ids."""
    chain_app.config.update(PUBLISH_MODE="packed")
    ids = _submit(chain_app.test_client(), author, count)

    class Crash(BaseException):
        pass

    def crash(raws):
        raise Crash()

    monkeypatch.setattr(packed, "broadcast_many", crash)
    with pytest.raises(Crash):
        batch.collect_packed()
    monkeypatch.undo()
    return ids


def test_packed_crash_after_signing_is_resent_by_resume(
    chain_app, regtest_node, author, monkeypatch
):
    ids = _packed_signed_not_sent(chain_app, author, monkeypatch)
    jobs = _jobs(ids)
    assert {j.status for j in jobs} == {"processing"} and len({j.txid for j in jobs}) == 1
    assert reaper.reap()["requeued"] == 0  # no lease on packed jobs: the batch has it
    assert batch.resume_stale() == 0  # not stale yet
    later = utcnow() + timedelta(seconds=chain_app.config["RESERVATION_TIMEOUT_SECONDS"] + 1)
    assert batch.resume_stale(now=later) == 1
    jobs = _jobs(ids)
    assert {j.status for j in jobs} == {"sent"} and sorted(j.vout for j in jobs) == [0, 1, 2, 3]
    assert jobs[0].txid in set(regtest_node.rpc.call("getrawmempool"))


def test_packed_crash_before_signing_leaves_the_jobs_queued(
    chain_app, regtest_node, author, monkeypatch
):
    chain_app.config.update(PUBLISH_MODE="packed")
    ids = _submit(chain_app.test_client(), author, 2)

    class Crash(BaseException):
        pass

    def crash(*args, **kwargs):
        raise Crash()

    monkeypatch.setattr(packed, "build_packed_tx", crash)
    with pytest.raises(Crash):
        batch.collect_packed()
    monkeypatch.undo()
    # packed jobs are written only once their transaction is signed and stored: nothing to
    # recover, nothing reserved
    jobs = _jobs(ids)
    assert {j.status for j in jobs} == {"queued"} and {j.attempts for j in jobs} == {0}
    with transaction():
        assert db.session.scalar(db.select(db.func.count()).where(Utxo.status == "reserved")) == 0
        assert db.session.scalar(db.select(db.func.count()).select_from(PublishBatch)) == 0
    assert batch.collect_packed().counts.get("sent") == 2


class Swallow(SpyBroadcaster):
    """Answers "accepted" without sending anything: a transaction the network then lost."""

    def broadcast_many(self, raws):
        from raregen.publish.broadcasters.base import txid_of

        return [BroadcastResult(txid_of(r), Outcome.ACCEPTED, "swallowed", "node") for r in raws]


def test_confirm_limit_counts_transactions_not_jobs(chain_app, regtest_node, author):
    chain_app.config.update(PUBLISH_MODE="packed", PACKED_MAX_RECORDS=3)
    ids = _submit(chain_app.test_client(), author, 6)
    assert batch.run_collector(budget_seconds=30).get("sent") == 6
    assert len({j.txid for j in _jobs(ids)}) == 2
    regtest_node.mine(1)
    # two packed transactions of three jobs each: a limit of 2 covers both
    assert confirm.confirm_sent(limit=2) == 6
    assert {j.status for j in _jobs(ids)} == {"confirmed"}


def test_confirm_limit_one_transaction_confirms_all_its_jobs(chain_app, regtest_node, author):
    chain_app.config.update(PUBLISH_MODE="packed", PACKED_MAX_RECORDS=3)
    ids = _submit(chain_app.test_client(), author, 6)
    assert batch.run_collector(budget_seconds=30).get("sent") == 6
    regtest_node.mine(1)
    assert confirm.confirm_sent(limit=1) == 3  # the oldest transaction, all of its jobs
    assert confirm.confirm_sent(limit=1) == 3
    assert {j.status for j in _jobs(ids)} == {"confirmed"}


def test_confirm_rebroadcasts_a_lost_packed_transaction(chain_app, regtest_node, author):
    chain_app.config.update(PUBLISH_MODE="packed")
    ids = _submit(chain_app.test_client(), author, 3)
    real = services.broadcaster()
    chain_app.extensions["raregen.services"]["broadcaster"] = Swallow(real)
    assert batch.collect_packed().counts.get("sent") == 3
    chain_app.extensions["raregen.services"]["broadcaster"] = real
    jobs = _jobs(ids)
    txid = jobs[0].txid
    assert {j.raw_tx for j in jobs} == {None}  # kept on the batch row only
    assert txid not in set(regtest_node.rpc.call("getrawmempool"))
    # the poller finds the network does not know it, and sends the batch's copy again
    assert confirm.confirm_sent() == 0
    assert txid in set(regtest_node.rpc.call("getrawmempool"))
    regtest_node.mine(1)
    assert confirm.confirm_sent() == 3


def test_packed_job_with_expired_lease_is_resent_with_its_batch(
    chain_app, regtest_node, author, monkeypatch
):
    ids = _packed_signed_not_sent(chain_app, author, monkeypatch)
    jobs = _jobs(ids)
    txid = jobs[0].txid
    assert {j.status for j in jobs} == {"processing"} and {j.raw_tx for j in jobs} == {None}
    # a packed job carrying a lease that expired (written by hand: the collector gives packed
    # jobs none) must not be re-queued without its transaction: its batch re-sends it
    with transaction():
        db.session.execute(
            db.update(PublishJob)
            .where(PublishJob.job_id.in_(ids[:2]))
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )
    counts = reaper.reap()
    assert counts["requeued"] == 0 and counts["packed"] == 1
    jobs = _jobs(ids)
    assert {j.status for j in jobs} == {"sent"} and {j.txid for j in jobs} == {txid}
    assert sorted(j.vout for j in jobs) == [0, 1, 2, 3]
    assert {j.lease_until for j in jobs} == {None}
    assert txid in set(regtest_node.rpc.call("getrawmempool"))
    assert _batch_row(jobs[0].processing_batch_id).status == "sent"
    with transaction():
        spent = db.session.scalars(db.select(Utxo).where(Utxo.spent_by_txid == txid)).all()
        assert [u.status for u in spent] == ["spent"]
        assert len(db.session.scalars(db.select(Utxo).where(Utxo.txid == txid)).all()) == 1
    # nothing left for the collector's recovery
    later = utcnow() + timedelta(seconds=chain_app.config["RESERVATION_TIMEOUT_SECONDS"] + 1)
    assert batch.resume_stale(now=later) == 0


@pytest.mark.parametrize(("max_attempts", "status"), [(1, "failed"), (2, "queued")])
def test_batch_conflict_counts_the_attempt_just_signed(
    chain_app, regtest_node, author, max_attempts, status
):
    chain_app.config.update(PUBLISH_MODE="batch", MAX_ATTEMPTS=max_attempts)
    ids = _submit(chain_app.test_client(), author, 2)
    real = services.broadcaster()

    class Conflict(SpyBroadcaster):
        def broadcast_many(self, raws):
            from raregen.publish.broadcasters.base import txid_of

            detail = "258: txn-mempool-conflict"
            return [BroadcastResult(txid_of(r), Outcome.CONFLICT, detail, "node") for r in raws]

    chain_app.extensions["raregen.services"]["broadcaster"] = Conflict(real)
    try:
        report = batch.collect_batch()
    finally:
        chain_app.extensions["raregen.services"]["broadcaster"] = real
        chain_app.config.update(MAX_ATTEMPTS=8)
    jobs = _jobs(ids)
    assert {j.status for j in jobs} == {status} and {j.attempts for j in jobs} == {1}
    assert report.counts.get("failed" if status == "failed" else "dirty") == 2
    if status == "failed":
        assert {j.error_code for j in jobs} == {"BROADCAST_CONFLICT"}
    with transaction():
        assert db.session.scalar(db.select(db.func.count()).where(Utxo.dirty.is_(True))) == 2
        assert db.session.scalar(db.select(db.func.count()).where(Utxo.status == "reserved")) == 0
