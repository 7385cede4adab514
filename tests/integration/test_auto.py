"""Auto mode (docs/PROTOCOL.md §6) against the real regtest SV Node, Redis and the database: a
lone record goes out at once on its own, a burst goes out in few broadcast calls, the wake
never stacks runs nor loses a record, and a collector's crash or a Redis loss leaves nothing
behind (the reaper and the periodic run take over)."""

from __future__ import annotations

import pytest
from rq import Queue, SimpleWorker

from raregen.db import db, transaction, utcnow
from raregen.publish import batch, reaper, tasks
from raregen.publish.models import PublishJob
from raregen.publish.wake import wake_key
from raregen.queue import batch_queue_name, redis_connection
from tests.integration.test_batch import SpyBroadcaster, _jobs, _submit
from tests.integration.test_recovery import expire

pytestmark = pytest.mark.node


@pytest.fixture
def auto_app(chain_app):
    chain_app.config.update(PUBLISH_MODE="auto")
    conn = redis_connection()
    name = chain_app.config["QUEUE_NAME"]
    yield chain_app
    for slot in range(0, 4):
        conn.delete(wake_key(slot))
    Queue(batch_queue_name(name), connection=conn).empty()


def _spy(app) -> SpyBroadcaster:
    from raregen.publish import services

    spy = SpyBroadcaster(services.broadcaster())
    app.extensions["raregen.services"]["broadcaster"] = spy
    return spy


def _collector_queue(app) -> Queue:
    return Queue(batch_queue_name(app.config["QUEUE_NAME"]), connection=redis_connection())


def _work(app) -> None:
    """Run what waits on the collector queue in this process (RQ's own worker, burst)."""
    tasks.set_app(app)
    worker = SimpleWorker([_collector_queue(app)], connection=redis_connection())
    worker.work(burst=True)


def test_a_lone_record_is_woken_and_sent_alone(auto_app, author, regtest_node):
    spy = _spy(auto_app)
    (job_id,) = _submit(auto_app.test_client(), author, 1)
    queue = _collector_queue(auto_app)
    assert queue.count == 1  # one collector run woken
    assert redis_connection().exists(wake_key(0))
    _work(auto_app)
    (job,) = _jobs([job_id])
    assert job.status == "sent" and job.txid in set(regtest_node.rpc.call("getrawmempool"))
    assert spy.many_calls == [1]
    assert not redis_connection().exists(wake_key(0))  # the wake was given back
    # the next record wakes a new run
    _submit(auto_app.test_client(), author, 1, tag="again")
    assert queue.count == 1


def test_a_burst_wakes_one_run_and_goes_in_few_calls(auto_app, author):
    spy = _spy(auto_app)
    ids = _submit(auto_app.test_client(), author, 8)
    assert _collector_queue(auto_app).count == 1  # woken once, never stacked
    _work(auto_app)
    assert [j.status for j in _jobs(ids)] == ["sent"] * 8
    assert spy.many_calls == [8]  # one broadcast call for all of them


def test_full_batches_follow_each_other_until_nothing_waits(auto_app, author):
    auto_app.config.update(BATCH_SIZE=3, AUTO_COLLECTORS=1)
    spy = _spy(auto_app)
    ids = _submit(auto_app.test_client(), author, 7)
    totals = batch.run_auto(0)
    assert totals["sent"] == 7 and totals["batches"] == 3
    assert spy.many_calls == [3, 3, 1]
    assert [j.status for j in _jobs(ids)] == ["sent"] * 7


def test_no_wake_is_lost_while_a_run_is_awake(auto_app, author):
    """An accept that finds the wake key set enqueues nothing; the awake run's last look
    (after giving the key back) takes its record."""
    redis_connection().set(wake_key(0), "1")  # a run is awake
    ids = _submit(auto_app.test_client(), author, 2)
    assert _collector_queue(auto_app).count == 0
    totals = batch.run_auto(0)
    assert totals["sent"] == 2
    assert [j.status for j in _jobs(ids)] == ["sent"] * 2


def test_packed_under_auto_pack(auto_app, author):
    auto_app.config.update(AUTO_PACK=True)
    spy = _spy(auto_app)
    ids = _submit(auto_app.test_client(), author, 5)
    batch.run_auto(0)
    jobs = _jobs(ids)
    assert [j.status for j in jobs] == ["sent"] * 5
    assert len({j.txid for j in jobs}) == 1 and sorted(j.vout for j in jobs) == list(range(5))
    assert spy.many_calls == [1]


def test_redis_loss_the_periodic_run_takes_the_jobs(auto_app, author):
    """The wake and its RQ job are lost (Redis flushed); a stale wake key of a killed
    collector stays: the periodic run takes the jobs from the database and frees the key."""
    ids = _submit(auto_app.test_client(), author, 3)
    _collector_queue(auto_app).empty()  # the woken run is lost
    redis_connection().set(wake_key(0), "1")  # as a killed collector would leave it
    _submit(auto_app.test_client(), author, 1, tag="later")  # finds the key: no new run
    assert _collector_queue(auto_app).count == 0
    assert [j.status for j in _jobs(ids)] == ["queued"] * 3
    totals = batch.run_collector(budget_seconds=5)  # the periodic `batch-collector` run
    assert totals["sent"] == 4
    assert not redis_connection().exists(wake_key(0))
    assert _submit(auto_app.test_client(), author, 1, tag="after")
    assert _collector_queue(auto_app).count == 1  # wakes work again


class _Crash(BaseException):
    """The collector process dies (not an Exception: nothing catches it)."""


def test_crash_between_store_and_broadcast_is_settled_by_the_reaper(auto_app, author, regtest_node):
    ids = _submit(auto_app.test_client(), author, 3)
    spy = _spy(auto_app)

    def die(raws):
        raise _Crash()

    spy.broadcast_many = die  # type: ignore[method-assign]
    with pytest.raises(_Crash):
        batch.run_auto(0)
    jobs = _jobs(ids)
    assert [j.status for j in jobs] == ["processing"] * 3 and all(j.raw_tx for j in jobs)
    assert not redis_connection().exists(wake_key(0))  # the periodic run is not held up
    auto_app.extensions.pop("raregen.services", None)  # the real broadcaster again
    for job_id in ids:
        expire(job_id)
    reaper.reap()
    after = _jobs(ids)
    assert {j.status for j in after} <= {"sent", "queued"}
    batch.run_collector(budget_seconds=5)
    after = _jobs(ids)
    assert [j.status for j in after] == ["sent"] * 3
    # the same transactions as stored before the crash: never re-signed
    assert [j.txid for j in after] == [j.txid for j in jobs]
    mempool = set(regtest_node.rpc.call("getrawmempool"))
    assert {j.txid for j in after} <= mempool


def test_no_job_in_limbo_when_the_pool_is_empty(auto_app, author):
    with transaction():
        db.session.execute(db.text("UPDATE utxos SET status = 'spent' WHERE purpose = 'publish'"))
    ids = _submit(auto_app.test_client(), author, 2)
    totals = batch.run_auto(0)
    assert totals.get("sent", 0) == 0
    with transaction():
        rows = db.session.scalars(db.select(PublishJob).where(PublishJob.job_id.in_(ids))).all()
        assert {r.status for r in rows} == {"queued"}
        assert all(r.not_before is None or r.not_before > utcnow().replace(year=2000) for r in rows)
    assert not redis_connection().exists(wake_key(0))
