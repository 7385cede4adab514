"""End to end: records from ``queued`` to ``sent`` in each publish mode against PostgreSQL,
Redis, real RQ workers and a regtest SV node of its own; and, in the same run, the node's raw
ceiling for pre-signed transactions (``sendrawtransaction`` one by one, and
``sendrawtransactions`` in batches).

Usage::

    python bench/bench_e2e.py [--quick] [--records N] [--immediate-records N]
                              [--modes immediate,batch,packed] [--workers K]
                              [--simple-worker] [--collectors C] [--window S]
                              [--live-seconds S] [--ceiling N] [--cron] [--profile]
                              [--proof-capture on|off|both] [--ab-rounds R] [--confirm-every S]

Per mode, two measurements:

* **drain** (capacity): N jobs (signed records, valid on chain) are stored ``queued``
  together, then publishing starts (immediate: one RQ job each, put on the queue at once,
  K ``worker.py`` processes, or rq's SimpleWorker with ``--simple-worker``; batch and
  packed: C ``worker.py`` processes, the collector triggered C times at once).
  Rate = N / (last ``sent_at`` - start).
* **live** (latency): records are submitted through ``intake.accept`` (the API's own path:
  credit, insert, RQ enqueue or batch trigger) at a steady rate for S seconds while the
  workers run; submit-to-sent latency = ``sent_at - created_at`` per job, p50 and p99.
  Immediate mode is fed at a low rate (``--immediate-rate``, 2/s: "at low load"), batch
  and packed at 100/s (``--live-rate``), so the batch window, not the batch size, decides
  when they go.

The periodic collector run is a thread of this bench enqueuing it every window (``--cron``
runs the real cron process, whose confirmation poller and reaper then share the worker).
The pool is split beforehand (``build_split_tx``, thousands of outputs per transaction) and
a block is mined between phases so every phase starts from confirmed UTXOs.

**Proof capture** (``--proof-capture``, docs/PROOFS.md): batch mode's drain only, with the
confirmation poller running during it as in production (a thread of this bench mines a
block and enqueues the ``confirm_sent`` job on the periodic queue every ``--confirm-every``
seconds, unless the last one is still waiting or running), the workers started with
``RAREGEN_PROOF_CAPTURE=1`` (on) or ``=0`` (off). ``both`` alternates off/on runs R times
(A/B/A/B...) in the same invocation, so drift of a shared machine falls on both sides, and
prints each run, the medians and the ratio on/off (goal: capture costs <= 5 %). Between
runs the jobs left ``sent`` are marked ``confirmed`` directly (so a run never confirms the
one before's transactions) and a block is mined. The live phase is skipped.

Goals (issue 5): batch >= 500 records/s sustained and >= 50 % of the node's batched
ceiling; packed >= 5000 records/s; immediate p50 submit-to-sent < 250 ms at low load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

RECORD_PAD = 120  # extra characters per record: a ~450-byte signed payload, like a "work"


def _job_rows(key_id: int, bodies: list[bytes]) -> list[dict]:
    """``queued`` job rows of pre-signed requests (``created_at`` set when stored)."""
    rows = []
    for raw in bodies:
        body = json.loads(raw)
        rows.append(
            {
                "job_id": str(uuid.uuid4()),
                "key_id": key_id,
                "pubkey": body["pubkey"],
                "nonce": json.loads(body["signedPayload"])["nonce"],
                "signed_payload": body["signedPayload"],
                "signature": body["signature"],
                "record_type": "work",
                "status": "queued",
                "attempts": 0,
            }
        )
    return rows


def _key_id(key) -> int:
    from raregen.db import db
    from raregen.publish.models import RegisteredKey

    return int(
        db.session.scalar(
            db.select(RegisteredKey.id).where(RegisteredKey.pubkey == key.public_key.format().hex())
        )
    )


def _store(rows: list[dict]) -> None:
    from sqlalchemy import insert

    from raregen.db import db, transaction, utcnow
    from raregen.publish.models import PublishJob

    now = utcnow()
    for row in rows:
        row["created_at"] = row["updated_at"] = now
    with transaction():
        db.session.execute(insert(PublishJob), rows)


def bulk_queue(app, key, bodies: list[bytes]) -> list[str]:
    """Store pre-signed requests as ``queued`` jobs in one multi-row INSERT per 1000 (the
    intake path itself is measured by bench_ingest and by the live phase here)."""
    ids: list[str] = []
    with app.app_context():
        rows = _job_rows(_key_id(key), bodies)
        for start in range(0, len(rows), 1000):
            _store(rows[start : start + 1000])
        ids = [r["job_id"] for r in rows]
        h.dispose(app)
    return ids


def feed(app, key, rate: float, seconds: float) -> tuple[list[str], int]:
    """Offer ``rate`` records a second for ``seconds`` faster than one Python thread can
    run ``intake.accept`` (about 2.5 ms of CPU each): every couple of milliseconds the
    records now due are stored in one INSERT and the collector is woken as intake does
    after its commit (``batch.notify_queued``). ``created_at`` is the time of storing.

    Returns:
        ``(job ids, how many were not sent yet when the feed stopped)``.
    """
    from raregen.publish import batch

    n = max(1, int(rate * seconds))
    with app.app_context():
        rows = _job_rows(_key_id(key), h.sign_bodies(key, n, size=RECORD_PAD))
        t0 = time.monotonic()
        done = 0
        while done < n:
            due = min(n, int((time.monotonic() - t0) * rate) + 1)
            if due > done:
                _store(rows[done:due])
                batch.notify_queued(due - done)
                done = due
            else:
                time.sleep(0.002)
        h.dispose(app)
    ids = [r["job_id"] for r in rows]
    return ids, len(ids) - count_sent(app, ids)


def sent_stats(app, ids: list[str], t0_wall: float | None) -> dict:
    from raregen.db import db
    from raregen.publish.models import PublishBatch, PublishJob

    with app.app_context():
        rows = db.session.execute(
            db.select(
                PublishJob.status, PublishJob.created_at, PublishJob.sent_at, PublishJob.txid
            ).where(PublishJob.job_id.in_(ids))
        ).all()
        batches = db.session.execute(
            db.select(PublishBatch.created_at, PublishBatch.completed_at, PublishBatch.job_count)
            .where(
                PublishBatch.batch_id.in_(
                    db.select(PublishJob.processing_batch_id).where(PublishJob.job_id.in_(ids))
                )
            )
            .order_by(PublishBatch.created_at)
        ).all()
        h.dispose(app)
    sent = [r for r in rows if r.sent_at is not None]
    lat = [(r.sent_at - r.created_at).total_seconds() for r in sent]
    out = {
        "jobs": len(ids),
        "sent": len(sent),
        "txs": len({r.txid for r in sent}),
        "p50_s": h.percentile(lat, 50),
        "p99_s": h.percentile(lat, 99),
        "statuses": dict(Counter(r.status for r in rows)),
    }
    if sent:
        first_created = min(r.created_at for r in rows)
        last = max(r.sent_at for r in sent)
        epoch = datetime(1970, 1, 1)
        start = t0_wall if t0_wall is not None else (first_created - epoch).total_seconds()
        if t0_wall is not None and batches:
            # a periodic collector run may have started on the backlog before the kick
            start = min(start, (batches[0].created_at - epoch).total_seconds())
        span = (last - epoch).total_seconds() - start
        out["seconds"] = span
        out["rate"] = len(sent) / span if span > 0 else float("inf")
    if batches:
        secs = [(b.completed_at - b.created_at).total_seconds() for b in batches if b.completed_at]
        out["batches"] = len(batches)
        out["batch_p50_s"] = h.percentile(secs, 50)
        if t0_wall is not None:
            epoch = datetime(1970, 1, 1)
            out["first_batch_after_s"] = (batches[0].created_at - epoch).total_seconds() - t0_wall
        elif rows:
            first = min(r.created_at for r in rows)
            out["batch_starts_s"] = [
                round((b.created_at - first).total_seconds(), 1) for b in batches[:20]
            ]
    return out


def count_sent(app, ids: list[str]) -> int:
    from sqlalchemy import func

    from raregen.db import db
    from raregen.publish.models import PublishJob

    with app.app_context():
        n = 0
        for start in range(0, len(ids), 5000):
            n += (
                db.session.scalar(
                    db.select(func.count()).where(
                        PublishJob.job_id.in_(ids[start : start + 5000]),
                        PublishJob.status.in_(("sent", "confirmed")),
                    )
                )
                or 0
            )
        db.session.remove()
    return int(n)


def wait_sent(app, ids: list[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count_sent(app, ids) >= len(ids):
            return True
        time.sleep(0.5)
    return False


def settle_chain(app, node) -> None:
    """Mine the mempool and count every pool output as confirmed again."""
    from raregen.db import db, transaction

    node.mine(1)
    with app.app_context():
        with transaction():
            db.session.execute(db.text("UPDATE utxos SET depth = 0 WHERE depth <> 0"))
        h.dispose(app)


def node_ceiling(app, node, count: int, chunk: int) -> dict:
    """Pre-sign 2 x ``count`` publish transactions (coins split for the purpose, not in the
    pool), then time the node accepting them: one ``sendrawtransaction`` per transaction,
    and ``sendrawtransactions`` with ``chunk`` transactions per call."""
    from raregen import protocol, signing
    from raregen.publish import services
    from raregen.publish.txbuilder import SpendableUtxo, build_publish_tx, build_split_tx

    key = h.make_author()
    with app.app_context():
        wallet = services.server_wallet()
        rate = services.fee_rate()
        coins: list[SpendableUtxo] = []
        rpc = node.rpc
        while len(coins) < 2 * count:
            n = min(2500, 2 * count - len(coins))
            need = n * 20_000 + 200_000
            txid = rpc.call("sendtoaddress", wallet.address, need / 1e8)
            raw = rpc.call("getrawtransaction", txid, 1)
            vout = next(
                o["n"] for o in raw["vout"] if o["scriptPubKey"]["hex"] == wallet.locking_script_hex
            )
            split = build_split_tx(
                wallet,
                [SpendableUtxo(txid, vout, need, wallet.locking_script_hex)],
                n,
                20_000,
                rate,
            )
            rpc.call("sendrawtransaction", split.raw_hex)
            coins += [
                SpendableUtxo(split.txid, v, 20_000, wallet.locking_script_hex) for v in range(n)
            ]
        node.mine(1)
        raws = []
        for i, coin in enumerate(coins):
            body = signing.make_request(key, {"ceiling": i, "note": "y" * RECORD_PAD})
            script = protocol.record_script(
                body["signedPayload"].encode(),
                signing.decode_signature(body["signature"]),
                bytes.fromhex(body["pubkey"]),
            )
            raws.append(build_publish_tx(wallet, coin, [script], rate).raw_hex)
        h.dispose(app)
    one, many = raws[:count], raws[count:]
    rpc = node.rpc
    t0 = time.perf_counter()
    for raw in one:
        rpc.call("sendrawtransaction", raw)
    single = count / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for start in range(0, len(many), chunk):
        answer = rpc.call(
            "sendrawtransactions",
            [{"hex": r} for r in many[start : start + chunk]],
            timeout=(3.05, 300),
        )
        bad = (answer or {}).get("invalid") or []
        if bad:
            raise RuntimeError(f"node refused {len(bad)} ceiling transactions: {bad[:2]}")
    batched = count / (time.perf_counter() - t0)
    node.mine(1)
    return {
        "single_tps": single,
        "batched_tps": batched,
        "chunk": chunk,
        "count": count,
        "tx_bytes": len(raws[0]) // 2,
    }


class Workers:
    """K ``worker.py`` processes (and optionally ``worker.py --cron``) of this bench."""

    def __init__(
        self,
        env: h.BenchEnv,
        node,
        tmp: Path,
        k: int,
        mode: str,
        cron: bool,
        simple: bool = False,
        more: dict[str, str] | None = None,
    ):
        extra = dict(
            h.node_environ(node),
            RAREGEN_PUBLISH_MODE=mode,
            # only the batch collector runs periodically during a measurement: confirmations
            # and the reaper would compete for the same 2 cores (they are not what is measured)
            RAREGEN_CONFIRM_INTERVAL_SECONDS="3600",
            RAREGEN_REAPER_INTERVAL_SECONDS="3600",
            RAREGEN_SETTLE_DIRTY_INTERVAL_SECONDS="3600",
            RAREGEN_REPLENISH_INTERVAL_SECONDS="3600",
        )
        extra.update(more or {})
        if simple:
            # rq's own CLI; raregen.publish.tasks builds the app from the environment
            cmd = [
                str(Path(sys.executable).parent / "rq"),
                "worker",
                "-u",
                env.redis_url,
                "-w",
                "rq.worker.SimpleWorker",
                "--with-scheduler",
                "-q",
                f"{env.queue}-periodic",
                env.queue,
            ]
        else:
            cmd = [sys.executable, "worker.py"]
        self.k = k
        self.children = [
            h.Child(cmd, env.environ(**extra), tmp / f"worker-{mode}-{i}.log") for i in range(k)
        ]
        if cron:
            self.children.append(
                h.Child(
                    [sys.executable, "worker.py", "--cron"],
                    env.environ(**extra),
                    tmp / f"cron-{mode}.log",
                )
            )
        time.sleep(0.5)

    @property
    def worker_pids(self) -> list[int]:
        return [c.pid for c in self.children[: self.k]]

    def pids(self) -> list[int]:
        return [c.pid for c in self.children]

    def stop(self) -> None:
        for c in self.children:
            c.stop()


class Ticker:
    """The periodic collector run of production (RQ cron, every ``BATCH_WINDOW_SECONDS``),
    emulated: a thread enqueues the collector every window under the same fixed job id the
    intake trigger uses. The real cron process would also enqueue the confirmation poller and
    the reaper on the same queue; they are not what is measured, and on a single worker a
    long confirmation run (one RPC per sent transaction) delays the collector."""

    def __init__(self, app, window: float):
        self.app, self.window = app, window
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from raregen.publish import batch

        while not self.stop_event.wait(self.window):
            with self.app.app_context():
                batch.enqueue_collector()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(5)


class Confirmer:
    """The confirmation poller during a drain: every ``every`` seconds a block is mined and
    ``tasks.confirm_sent`` enqueued on the periodic queue (as the cron process would, every
    ``CONFIRM_INTERVAL_SECONDS``), unless the previous one is still queued or running."""

    def __init__(self, app, node, every: float):
        self.app, self.node, self.every = app, node, every
        self.passes = 0
        self.blocks = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from rq import Queue

        from raregen.publish import tasks
        from raregen.queue import periodic_queue_name, redis_connection

        last = None
        while not self.stop_event.wait(self.every):
            self.node.mine(1)
            self.blocks += 1
            with self.app.app_context():
                if last is not None and last.get_status(refresh=True) in ("queued", "started"):
                    continue
                q = Queue(
                    periodic_queue_name(self.app.config["QUEUE_NAME"]),
                    connection=redis_connection(),
                )
                last = q.enqueue(tasks.confirm_sent, job_timeout=120, result_ttl=60)
                self.passes += 1

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(30)


def count_proofs(app, ids: list[str]) -> int:
    """Proofs stored (``tx_proofs``) for the transactions of these jobs."""
    from raregen.db import db
    from raregen.publish.models import PublishJob, TxProof

    with app.app_context():
        n = db.session.scalar(
            db.select(db.func.count())
            .select_from(TxProof)
            .where(
                TxProof.txid.in_(
                    db.select(PublishJob.txid).where(PublishJob.job_id.in_(ids)).distinct()
                )
            )
        )
        h.dispose(app)
    return int(n or 0)


def close_run(app, node) -> None:
    """Between A/B runs: jobs still ``sent`` are marked ``confirmed`` directly (bookkeeping
    of the bench, not measured) and the chain is settled."""
    from raregen.db import db, transaction

    with app.app_context():
        with transaction():
            db.session.execute(
                db.text("UPDATE publish_jobs SET status = 'confirmed' WHERE status = 'sent'")
            )
        h.dispose(app)
    settle_chain(app, node)


def proof_capture_ab(app, env, node, key, tmp: Path, args) -> dict:
    """Batch drains with proof capture off and on, alternating (module docstring)."""
    order = {"on": ["on"], "off": ["off"], "both": ["off", "on"] * args.ab_rounds}[
        args.proof_capture
    ]
    runs: list[dict] = []
    app.config["PUBLISH_MODE"] = "batch"
    for i, side in enumerate(order):
        bodies = h.sign_bodies(key, args.records, size=RECORD_PAD)
        ids = bulk_queue(app, key, bodies)
        workers = Workers(
            env,
            node,
            tmp,
            args.collectors,
            "batch",
            cron=False,
            more={"RAREGEN_PROOF_CAPTURE": "1" if side == "on" else "0"},
        )
        ticker = confirmer = None
        try:
            wait_workers_ready(env, workers.worker_pids)
            ticker = Ticker(app, args.window)
            load_before = h.machine()["load"]
            t0 = kick(app, "batch", ids, args.collectors)
            confirmer = Confirmer(app, node, args.confirm_every)
            done = wait_sent(app, ids, args.timeout)
            confirmer.stop()
            drain = sent_stats(app, ids, t0)
        finally:
            if confirmer is not None:
                confirmer.stop()
            if ticker is not None:
                ticker.stop()
            workers.stop()
        proofs = count_proofs(app, ids)
        close_run(app, node)
        run = {
            "run": i + 1,
            "capture": side,
            "rate": drain.get("rate", 0.0),
            "seconds": drain.get("seconds", 0.0),
            "sent": drain["sent"],
            "txs": drain["txs"],
            "proofs": proofs,
            "confirm_passes": confirmer.passes,
            "blocks": confirmer.blocks,
            "complete": done,
            "load_before": load_before,
            "load_after": h.machine()["load"],
        }
        runs.append(run)
        print(
            f"run {i + 1} capture {side:>3}: drained {drain['sent']}/{args.records} in "
            f"{run['seconds']:.1f} s = {run['rate']:.0f} records/s; {confirmer.blocks} blocks, "
            f"{confirmer.passes} confirmation passes, {proofs} proofs stored by the end; "
            f"load {load_before} -> {run['load_after']}"
        )
        sys.stdout.flush()
    med = {}
    for side in ("off", "on"):
        rates = sorted(r["rate"] for r in runs if r["capture"] == side)
        if rates:
            med[side] = statistics.median(rates)
    out: dict = {"runs": runs, "median": med}
    print()
    print(
        "proof capture, batch drain (alternating runs on a shared, noisy machine; "
        "medians of each side):"
    )
    for side, rate in med.items():
        print(f"  capture {side:>3}: median {rate:.0f} records/s")
    if "on" in med and "off" in med and med["off"] > 0:
        ratio = med["on"] / med["off"]
        out["ratio"] = ratio
        print(
            f"  ratio on/off: {ratio:.3f} ({100 * (1 - ratio):+.1f} % cost); goal <= 5 %: "
            f"{'met' if ratio >= 0.95 else 'NOT met'}"
        )
    return out


def wait_workers_ready(env: h.BenchEnv, pids: list[int], timeout: float = 90) -> None:
    """Until the RQ workers of these processes have registered with Redis (a stopped
    worker of an earlier phase may still be listed: only our pids count)."""
    import redis
    from rq import Worker

    conn = redis.Redis.from_url(env.redis_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = {w.pid for w in Worker.all(connection=conn)}
        if set(pids) <= alive:
            return
        time.sleep(0.2)
    raise RuntimeError("RQ workers did not start")


def kick(app, mode: str, ids: list[str], collectors: int = 1) -> float:
    """Start publishing the stored backlog; returns the wall-clock start (epoch seconds)."""
    from datetime import UTC

    start = datetime.now(UTC).replace(tzinfo=None)
    t0 = (start - datetime(1970, 1, 1)).total_seconds()
    with app.app_context():
        if mode == "immediate":
            from rq import Queue

            from raregen.publish import tasks
            from raregen.queue import redis_connection, rq_job_id

            q = Queue(app.config["QUEUE_NAME"], connection=redis_connection())
            for s in range(0, len(ids), 500):
                q.enqueue_many(
                    [
                        Queue.prepare_data(
                            tasks.process_job, (j,), job_id=rq_job_id(j), timeout=120, result_ttl=60
                        )
                        for j in ids[s : s + 500]
                    ]
                )
        elif mode == "auto":
            from raregen.publish import batch

            batch.wake()  # as intake does after its commit; helpers join under load
        else:
            from rq import Queue

            from raregen.publish import batch, tasks
            from raregen.queue import periodic_queue_name, redis_connection

            batch.enqueue_collector()
            q = Queue(periodic_queue_name(app.config["QUEUE_NAME"]), connection=redis_connection())
            for i in range(collectors - 1):  # as the periodic run would start more of them
                q.enqueue(
                    tasks.collect_batches,
                    job_id=f"bench-collector-{i}",
                    job_timeout=900,
                    result_ttl=0,
                )
    return t0


def live(app, key, mode: str, rate: float, seconds: float) -> list[str]:
    """Submit records through ``intake.accept`` at ``rate`` per second for ``seconds``."""
    from raregen.publish import intake

    n = max(1, int(rate * seconds))
    bodies = [json.loads(b) for b in h.sign_bodies(key, n, size=RECORD_PAD)]
    ids: list[str] = []
    with app.app_context():
        t0 = time.monotonic()
        for i, body in enumerate(bodies):
            due = t0 + i / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            ids.append(intake.accept(body).job_id)
        h.dispose(app)
    return ids


def profile_pid(pid: int, seconds: int, out: Path) -> subprocess.Popen:  # type: ignore[type-arg]
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--nonblocking",
            "--subprocesses",
            "--format",
            "raw",
            "-r",
            "100",
            "-d",
            str(seconds),
            "-o",
            str(out),
            "-p",
            str(pid),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few hundred records, for CI")
    ap.add_argument(
        "--auto-pack",
        action="store_true",
        help="auto mode with AUTO_PACK=1 (records packed into one transaction per step)",
    )
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument(
        "--modes", default="auto", help="any of auto,immediate,batch,packed (default: auto)"
    )
    ap.add_argument(
        "--auto-rates",
        default="2,100,1000",
        help="auto mode: offered loads (records/s) of the live phases",
    )
    ap.add_argument(
        "--intake-max-rate",
        type=float,
        default=200.0,
        help="live phases up to this rate go through intake.accept; faster ones are fed in "
        "bulk (see feed())",
    )
    ap.add_argument(
        "--live-timeout", type=float, default=120.0, help="seconds a live phase may take to end"
    )
    ap.add_argument(
        "--workers", type=int, default=2, help="RQ worker processes in immediate and auto modes"
    )
    ap.add_argument("--live-seconds", type=float, default=10.0)
    ap.add_argument("--ceiling", type=int, default=5000, help="transactions per ceiling run")
    ap.add_argument("--profile", action="store_true", help="py-spy the workers while draining")
    ap.add_argument("--profile-seconds", type=int, default=20, help="--profile: how long")
    ap.add_argument("--profile-top", type=int, default=14, help="--profile: frames printed")
    ap.add_argument("--timeout", type=float, default=900, help="per drain, seconds")
    ap.add_argument("--window", type=int, default=5, help="BATCH_WINDOW_SECONDS")
    ap.add_argument(
        "--immediate-rate",
        type=float,
        default=2.0,
        help="records/s submitted in immediate mode's live phase (low load)",
    )
    ap.add_argument(
        "--live-rate",
        type=float,
        default=100.0,
        help="records/s submitted in batch and packed modes' live phase",
    )
    ap.add_argument(
        "--cron",
        action="store_true",
        help="run the real `worker.py --cron` (all periodic jobs) instead of a collector tick",
    )
    ap.add_argument(
        "--immediate-records",
        type=int,
        default=0,
        help="records for immediate mode's drain (default: --records)",
    )
    ap.add_argument(
        "--simple-worker",
        action="store_true",
        help="immediate mode with rq's SimpleWorker (no fork per job) instead of worker.py",
    )
    ap.add_argument(
        "--collectors",
        type=int,
        default=1,
        help="batch/packed: worker processes, and collector runs started at once",
    )
    ap.add_argument(
        "--proof-capture",
        choices=("on", "off", "both"),
        default=None,
        help="batch drains only, confirmations running, RAREGEN_PROOF_CAPTURE on/off/both "
        "(alternating); see above",
    )
    ap.add_argument("--ab-rounds", type=int, default=2, help="--proof-capture both: off/on pairs")
    ap.add_argument(
        "--confirm-every",
        type=float,
        default=1.0,
        help="--proof-capture: seconds between a block and a confirmation pass",
    )
    args = ap.parse_args()
    if args.quick:
        args.records, args.live_seconds, args.ceiling, args.timeout = 30, 1.0, 100, 120
        args.live_timeout = 60.0
        args.window = 1
        args.confirm_every = min(args.confirm_every, 0.5)
    modes = [m for m in args.modes.split(",") if m]
    if args.proof_capture:
        modes = ["batch"]

    def per_mode(mode: str) -> int:
        if mode == "immediate" and args.immediate_records:
            return int(args.immediate_records)
        return int(args.records)

    auto_rates = [float(x) for x in args.auto_rates.split(",") if x]

    def live_rates(mode: str) -> list[float]:
        if mode == "auto":
            return auto_rates
        return [args.immediate_rate if mode == "immediate" else args.live_rate]

    h.header("bench_e2e: queued -> sent per mode, and the node's ceiling")
    print(
        f"records per mode={args.records} (immediate {per_mode('immediate')}); immediate: "
        f"{args.workers} {'SimpleWorker' if args.simple_worker else 'worker.py'} processes; "
        f"batch/packed: "
        f"{args.collectors} collector(s); live {args.live_seconds} s; window {args.window} s"
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    results: dict[str, dict] = {}
    extra = {
        "RAREGEN_BATCH_RUN_SECONDS": "600",
        "RAREGEN_POOL_LOW_WATER": "0",
        "RAREGEN_MAX_UNCONFIRMED_DEPTH": "25",
        "RAREGEN_BATCH_WINDOW_SECONDS": str(args.window),
        "RAREGEN_AUTO_PACK": "1" if args.auto_pack else "0",
    }
    with h.bench_env(**extra) as env, h.regtest_node(tmp) as node:
        app = h.make_app(env)
        h.wire_node(app, node)
        key = h.make_author()
        h.register_key(app, key)

        # pool: one UTXO per record for immediate and batch, per live record too; packed:
        # a few big ones (each pays a whole packed transaction, change goes on)
        def live_n(mode: str) -> int:
            return int(sum(live_rates(mode)) * args.live_seconds) + 50 * len(live_rates(mode))

        small = sum(per_mode(m) + live_n(m) for m in modes if m in ("immediate", "batch", "auto"))
        if args.proof_capture:
            runs = 2 * args.ab_rounds if args.proof_capture == "both" else 1
            small = runs * args.records + 50
        t = h.fund_pool(app, node, small, 20_000) if small else 0.0
        if "packed" in modes or ("auto" in modes and args.auto_pack):
            t += h.fund_pool(app, node, 60, 200_000, per_tx=60)
        h.pg_analyze(app)
        print(f"pool funded: {small} x 20000 sat + 60 x 200000 sat in {t:.1f} s")
        if args.proof_capture:
            ab = proof_capture_ab(app, env, node, key, tmp, args)
            h.emit(
                {
                    "bench": "e2e-proof-capture",
                    "records": args.records,
                    "collectors": args.collectors,
                    "confirm_every": args.confirm_every,
                    **ab,
                    "machine": h.machine(),
                }
            )
            shutil.rmtree(tmp, ignore_errors=True)
            return 0 if all(r["complete"] for r in ab["runs"]) else 1
        ceiling = node_ceiling(app, node, args.ceiling, 500)
        print(
            f"node ceiling: sendrawtransaction {ceiling['single_tps']:.0f} tx/s, "
            f"sendrawtransactions x{ceiling['chunk']} {ceiling['batched_tps']:.0f} tx/s "
            f"({ceiling['tx_bytes']} bytes each, {ceiling['count']} each)"
        )
        for mode in modes:
            app.config["PUBLISH_MODE"] = mode
            app.config["AUTO_PACK"] = bool(args.auto_pack)
            k = args.collectors if mode in ("batch", "packed") else args.workers
            n = per_mode(mode)
            bodies = h.sign_bodies(key, n, size=RECORD_PAD)
            ids = bulk_queue(app, key, bodies)
            workers = Workers(
                env,
                node,
                tmp,
                k,
                mode,
                cron=args.cron and mode != "immediate",
                simple=args.simple_worker and mode == "immediate",
            )
            ticker = None
            if mode != "immediate" and not args.cron:
                ticker = Ticker(app, args.window)
            lives: dict[str, dict] = {}
            try:
                wait_workers_ready(env, workers.worker_pids)
                prof = None
                if args.profile:
                    prof = profile_pid(
                        workers.pids()[0], args.profile_seconds, tmp / f"pyspy-{mode}.txt"
                    )
                t0 = kick(app, mode, ids, args.collectors)
                done = wait_sent(app, ids, args.timeout)
                drain = sent_stats(app, ids, t0)
                if prof is not None:
                    prof.wait(60)
                settle_chain(app, node)
                for rate in live_rates(mode):
                    if rate <= args.intake_max_rate:
                        live_ids = live(app, key, mode, rate, args.live_seconds)
                        waiting = len(live_ids) - count_sent(app, live_ids)
                        how = "intake.accept"
                    else:
                        live_ids, waiting = feed(app, key, rate, args.live_seconds)
                        how = "bulk feed"
                    complete = wait_sent(app, live_ids, args.live_timeout)
                    lv = sent_stats(app, live_ids, None)
                    lv.update(
                        waiting_when_feed_stopped=waiting,
                        left_waiting=lv["jobs"] - lv["sent"],
                        complete=complete,
                        feed=how,
                    )
                    lives[f"{rate:g}"] = lv
                    settle_chain(app, node)
            finally:
                if ticker is not None:
                    ticker.stop()
                workers.stop()
            first = next(iter(lives.values()))
            results[mode] = {
                "drain": drain,
                "live": first,
                "lives": lives,
                "live_rate": float(next(iter(lives))),
                "complete": done,
            }
            extra_keys = ("batches", "batch_p50_s", "first_batch_after_s")
            more = {k: round(drain[k], 2) for k in extra_keys if k in drain}
            print(
                f"{mode}: drained {drain['sent']}/{n} in {drain.get('seconds', 0):.1f} s "
                f"= {drain.get('rate', 0):.0f} records/s in {drain['txs']} txs {more} "
                f"({k} worker processes) load {h.machine()['load']}"
            )
            for rate, lv in lives.items():
                print(
                    f"  live at {rate}/s ({lv['feed']}): submit->sent p50 "
                    f"{lv['p50_s'] * 1000:.0f} ms p99 {lv['p99_s'] * 1000:.0f} ms; "
                    f"{lv['sent']}/{lv['jobs']} sent in {lv['txs']} txs; "
                    f"{lv['waiting_when_feed_stopped']} waiting when the feed stopped, "
                    f"{lv['left_waiting']} left waiting at the end"
                )
            if args.profile and (tmp / f"pyspy-{mode}.txt").exists():
                from bench_ingest import summarize_pyspy

                print(f"  py-spy, {mode} worker while draining (inclusive %, self %):")
                raw = tmp / f"pyspy-{mode}.txt"
                for frame, inc, slf in summarize_pyspy(raw, top=args.profile_top):
                    print(f"    {inc:5.1f}% {slf:5.1f}%  {frame}")
                kept = Path(tempfile.gettempdir()) / f"bench-e2e-pyspy-{mode}-{os.getpid()}.txt"
                shutil.copy(raw, kept)
                print(f"  py-spy raw stacks kept in {kept}")
            sys.stdout.flush()

    batched = ceiling["batched_tps"]
    print()
    print(
        f"{'mode':<10} {'drain rec/s':>12} {'of ceiling':>10} {'live rate':>10} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'left':>6} {'txs':>6}"
    )
    for mode, r in results.items():
        rate = r["drain"].get("rate", 0)
        for i, (live_rate, lv) in enumerate(r["lives"].items()):
            head = (
                f"{mode:<10} {rate:12.0f} {100 * rate / batched:9.0f}%"
                if i == 0
                else f"{'':<10} {'':>12} {'':>10}"
            )
            print(
                f"{head} {float(live_rate):10g} {lv['p50_s'] * 1000:8.0f} "
                f"{lv['p99_s'] * 1000:8.0f} {lv['left_waiting']:6d} "
                f"{r['drain']['txs'] if i == 0 else lv['txs']:6d}"
            )
    print(f"{'node 1x1':<10} {ceiling['single_tps']:12.0f}")
    print(f"{'node x500':<10} {batched:12.0f}")
    if "auto" in results:
        r = results["auto"]
        a = r["drain"].get("rate", 0)
        print(
            f"auto: drain {a:.0f} records/s = {a / batched:.2f} of the node's batched ceiling "
            f"({batched:.0f} tx/s, same run); goal >= 0.50: {'met' if a >= 0.5 * batched else 'NOT met'}"
        )
        for live_rate, lv in r["lives"].items():
            print(
                f"auto at {live_rate}/s: p50 {lv['p50_s'] * 1000:.0f} ms, p99 "
                f"{lv['p99_s'] * 1000:.0f} ms, left waiting at the end {lv['left_waiting']}"
            )
    if "batch" in results:
        b = results["batch"]["drain"].get("rate", 0)
        print(
            f"goal batch >= 500/s: {'met' if b >= 500 else 'NOT met'} ({b:.0f}); "
            f">= 50% of node batched ({batched:.0f}/s): "
            f"{'met' if b >= 0.5 * batched else 'NOT met'} "
            f"({100 * b / batched:.0f}%)"
        )
    if "packed" in results:
        p = results["packed"]["drain"].get("rate", 0)
        print(f"goal packed >= 5000/s: {'met' if p >= 5000 else 'NOT met'} ({p:.0f})")
    if "immediate" in results:
        p50 = results["immediate"]["live"]["p50_s"] * 1000
        print(
            f"goal immediate p50 < 250 ms at low load ({args.immediate_rate:g}/s): "
            f"{'met' if p50 < 250 else 'NOT met'} ({p50:.0f} ms)"
        )
    h.emit({"bench": "e2e", "ceiling": ceiling, "modes": results, "machine": h.machine()})
    shutil.rmtree(tmp, ignore_errors=True)
    ok = all(
        r["complete"] and all(lv["sent"] == lv["jobs"] for lv in r["lives"].values())
        for r in results.values()
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
