"""Webhook delivery: deliveries per second, delay from the state change's commit to the
receiver, and deliveries lost when the worker that committed the change is killed (SIGKILL)
before any delivery.

Setup: a throw-away PostgreSQL database and Redis keys of this run (``_harness``), a key with
one endpoint pointing at a real receiver on loopback (``tests/webhook_receiver.py``: every
request's Standard Webhooks signature is checked with ``standardwebhooks``), ``--events``
jobs put in ``sent``. Then:

1. delay: ``--workers`` delivery processes run the workers' delivery loop
   (:func:`raregen.webhooks.delivery.deliver_due`, polled every 50 ms when idle, as a
   stand-in for the RQ runs a state change enqueues) while this process confirms
   ``--events`` jobs one by one through the real confirmation path
   (``confirm.mark_confirmed``: state change and outbox row in one transaction). Delay =
   arrival at the receiver minus the commit.
   Throughput: ``--events`` more jobs are confirmed first, then the delivery processes
   start and drain that backlog; deliveries per second = events / (last arrival - start).
2. crash: ``--crash-rounds`` times, a child process confirms ``--crash-jobs`` jobs, prints
   once committed and is killed with SIGKILL before it delivers anything; a delivery process
   started afterwards must deliver every event. Lost = expected minus received.

    .venv/bin/python bench/bench_webhooks.py                 # 500 events, 2 workers
    .venv/bin/python bench/bench_webhooks.py --quick         # 100 events, 1 crash round
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from _harness import ROOT, bench_env, dispose, emit, header, make_app, percentile

CHILD = str(ROOT / "bench" / "bench_webhooks.py")


def child(mode: str, arg: str) -> int:
    """Child processes: ``loop SECONDS`` (delivery worker), ``commit TXID`` (killed after
    its commit), ``once`` (a restarted worker's pass)."""
    from raregen import create_app
    from raregen.db import transaction
    from raregen.publish import confirm
    from raregen.publish.broadcasters.base import TxStatus
    from raregen.webhooks import delivery

    app = create_app()
    with app.app_context():
        if mode == "loop":
            from sqlalchemy import text

            from raregen.db import db

            db.session.execute(text("SELECT 1"))  # connected before saying so
            db.session.commit()
            print("READY", flush=True)
            stop = time.monotonic() + float(arg)
            stopping: list[int] = []
            # SIGTERM: finish the claim in hand (recorded), then exit
            signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
            while time.monotonic() < stop and not stopping:
                counts = delivery.deliver_due(budget_seconds=0.5)
                if not any(counts.values()):
                    time.sleep(0.05)
            return 0
        if mode == "commit":
            with transaction():
                n = confirm.mark_confirmed(arg, TxStatus("confirmed", arg, "ab" * 32, 9))
            print(f"COMMITTED {n}", flush=True)
            time.sleep(300)  # killed here
            return 3
        if mode == "once":
            delivery.deliver_due(budget_seconds=60)
            return 0
    return 2


def main() -> int:
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        return child(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--crash-rounds", type=int, default=3)
    parser.add_argument("--crash-jobs", type=int, default=20)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.events, args.crash_rounds, args.crash_jobs = 100, 1, 10
    header("webhook delivery")

    import coincurve
    from sqlalchemy import update

    from raregen import signing
    from raregen.db import db, transaction, utcnow
    from raregen.publish import confirm, keys
    from raregen.publish.broadcasters.base import TxStatus
    from raregen.publish.models import PublishJob
    from raregen.webhooks.commands import make_command
    from tests.webhook_receiver import Receiver

    with (
        bench_env(
            RAREGEN_WEBHOOK_ALLOW_PRIVATE_URLS="true",
            RAREGEN_RATELIMIT_ENABLED="false",
            RAREGEN_PUBLISH_MODE="batch",
            RAREGEN_ROLE="publisher",
        ) as env,
        Receiver() as receiver,
    ):
        app = make_app(env)
        total_jobs = 2 * args.events + args.crash_rounds * args.crash_jobs
        with app.app_context():
            key = coincurve.PrivateKey()
            keys.register_key(key.public_key.format().hex(), label="bench")
            client = app.test_client()
            resp = client.post(
                "/v1/webhooks", json=make_command(key, "webhooks.create", {"url": receiver.url})
            )
            assert resp.status_code == 201, resp.get_json()
            receiver.secret = resp.get_json()["endpoint"]["secret"]
            now = int(time.time())
            ids = []
            for i in range(total_jobs):
                body = signing.make_request(key, {"n": i}, now=now, ttl=3600)
                ids.append(client.post("/v1/publish", json=body).get_json()["jobId"])
            txid_of = {job_id: f"{i + 1:064x}" for i, job_id in enumerate(ids)}
            with transaction():
                for job_id, txid in txid_of.items():
                    db.session.execute(
                        update(PublishJob)
                        .where(PublishJob.job_id == job_id)
                        .values(status="sent", txid=txid, vout=0, sent_at=utcnow())
                    )
            # crash rounds use the last jobs: several per txid
            crash_ids = ids[2 * args.events :]
            for r in range(args.crash_rounds):
                group = crash_ids[r * args.crash_jobs : (r + 1) * args.crash_jobs]
                with transaction():
                    db.session.execute(
                        update(PublishJob)
                        .where(PublishJob.job_id.in_(group))
                        .values(txid=f"{r + 1:02x}" * 32)
                    )

            run_seconds = max(60.0, args.events / 5)

            def start_workers() -> list[subprocess.Popen[str]]:
                procs = [
                    subprocess.Popen(
                        [sys.executable, CHILD, "--child", "loop", str(run_seconds)],
                        env=env.environ(),
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                    for _ in range(args.workers)
                ]
                for proc in procs:  # started and connected before anything is measured
                    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
                return procs

            def stop_workers(procs: list[subprocess.Popen[str]]) -> None:
                for proc in procs:
                    proc.send_signal(signal.SIGTERM)
                for proc in procs:
                    proc.wait(30)

            def wait_unique(wanted: set[str], timeout: float) -> None:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    seen = {e["data"]["jobId"] for e in list(receiver.events)}
                    if wanted <= seen:
                        return
                    time.sleep(0.02)

            def confirm_one(job_id: str) -> None:
                txid = txid_of[job_id]
                with transaction():
                    confirm.mark_confirmed(txid, TxStatus("confirmed", txid, "cd" * 32, 8))

            # 1. delay: delivery workers running, jobs confirmed one by one
            workers = start_workers()
            committed: dict[str, float] = {}
            for job_id in ids[: args.events]:
                confirm_one(job_id)
                committed[job_id] = time.time()
            wait_unique(set(ids[: args.events]), run_seconds)
            stop_workers(workers)
            events = list(receiver.events)
            delays = [
                (e["at"] - committed[e["data"]["jobId"]]) * 1000
                for e in events
                if e["data"]["jobId"] in committed
            ]
            delivered = len({e["data"]["jobId"] for e in events})

            # 1b. throughput: a backlog of committed events drained by the workers
            for job_id in ids[args.events : 2 * args.events]:
                confirm_one(job_id)
            workers = start_workers()
            started = time.time()
            wait_unique(set(ids[args.events : 2 * args.events]), run_seconds)
            events = list(receiver.events)
            backlog = [e for e in events if e["data"]["jobId"] not in committed]
            finished = max((e["at"] for e in backlog), default=time.time())
            stop_workers(workers)
            drained = len({e["data"]["jobId"] for e in backlog})
            rate = drained / max(finished - started, 1e-9)

            # 2. crash: SIGKILL after the commit, before any delivery
            expected = lost = 0
            for r in range(args.crash_rounds):
                txid = f"{r + 1:02x}" * 32
                proc = subprocess.Popen(
                    [sys.executable, CHILD, "--child", "commit", txid],
                    env=env.environ(),
                    stdout=subprocess.PIPE,
                    text=True,
                )
                line = proc.stdout.readline() if proc.stdout else ""
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
                assert line.startswith("COMMITTED"), line
                expected += int(line.split()[1])
                subprocess.run(
                    [sys.executable, CHILD, "--child", "once"],
                    env=env.environ(),
                    check=True,
                    timeout=120,
                )
            wait_unique(set(crash_ids), 30)
            crash_set = set(crash_ids)
            crash_received = len(
                {e["data"]["jobId"] for e in receiver.events if e["data"]["jobId"] in crash_set}
            )
            lost = expected - crash_received
            dispose(app)

        print(
            f"events delivered            {delivered} / {args.events} (delay run), "
            f"{drained} / {args.events} (backlog run)"
        )
        print(
            f"deliveries per second       {rate:.1f}  (backlog drained by {args.workers} "
            "delivery processes)"
        )
        print(
            f"delay commit -> receiver    p50 {percentile(delays, 50):.1f} ms  "
            f"p95 {percentile(delays, 95):.1f} ms  max {max(delays, default=float('nan')):.1f} ms"
        )
        print(f"bad signatures at receiver  {len(receiver.rejected)}")
        print(
            f"crash (SIGKILL after commit) rounds={args.crash_rounds} events={expected} lost={lost}"
        )
        emit(
            {
                "bench": "webhooks",
                "events": args.events,
                "delivered": delivered,
                "drained": drained,
                "workers": args.workers,
                "deliveries_per_second": round(rate, 1),
                "p50_delay_ms": round(percentile(delays, 50), 1),
                "p95_delay_ms": round(percentile(delays, 95), 1),
                "bad_signatures": len(receiver.rejected),
                "crash_events": expected,
                "crash_lost": lost,
            }
        )
        ok = lost == 0 and delivered == drained == args.events and not receiver.rejected
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
