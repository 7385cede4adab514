"""A newcomer's first burst under ``scripts/run`` (issue 15): the service started as
``scripts/run`` starts it, 3,000 signed records through the HTTP API, then a trickle.

Usage::

    python bench/bench_burst.py [--mode MODE] [--records 3000] [--trickle 20] [--rate 2]
                                [--concurrency 8] [--workers N] [--keep-log]

What it does:

1. starts the project's dev runner (:data:`DEV_RUNNER`, what ``scripts/run`` executes) on
   embedded defaults: a temp instance folder (SQLite file, the regtest node, the embedded
   Redis: ``REDIS_URL`` is removed from its environment), a free port, ``PUBLISH_MODE``
   from ``--mode`` (default: not set, so the configured default), everything else as
   configured. It waits for ``GET /v1/ping``;
2. registers a key (``flask keys add``, unlimited credits) and signs every body before
   timing;
3. sends ``--records`` bodies to ``POST /v1/publish`` as fast as the service takes them
   (``--concurrency`` keep-alive connections), then waits until every one of them is
   ``sent``. Printed: the accept rate, and the time from the last accept to the last
   ``sent_at`` (both the server's own timestamps; goal: under 3 s);
4. right after, ``--trickle`` records at ``--rate`` per second: each one's submit -> sent
   latency (client's submit time to the job's ``sent_at``; goal: none over 1 s);
5. waits until the burst's records are ``confirmed`` (the run's miner makes a block every
   ``DEV_MINE_INTERVAL_SECONDS``) and prints how long the confirmations took to record:
   the periodic worker's ``confirmation pass`` log lines (jobs, blocks, seconds spent
   recording; goal: 3,000 in under 2 s), and the spread of the burst's ``confirmed_at``;
6. stops the dev runner with SIGTERM (it stops its children by pid, in order), SIGKILL of
   its process group if it has not stopped within a minute, and removes the temp folder.

The job states are read from the run's SQLite file (read-only). Loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

ROOT = h.ROOT
#: The dev runner ``scripts/run`` executes (``python -m <DEV_RUNNER>``).
DEV_RUNNER = "raregen_dev.devrun"
#: Seconds the service gets to start (the node, migrations, funding and splitting the pool).
START_TIMEOUT = 300
#: Seconds a phase may take before the bench gives up on it.
PHASE_TIMEOUT = 600

_PASS_RE = re.compile(
    r"confirmation pass: (\d+) jobs of (\d+) transactions in (\d+) block\(s\) recorded in "
    r"([0-9.]+) s \(chain asked in ([0-9.]+) s, pass ([0-9.]+) s\)"
)


def _epoch(text: str | None) -> float | None:
    """A naive-UTC timestamp as SQLite stores it -> Unix seconds."""
    if not text:
        return None
    return datetime.fromisoformat(str(text)).replace(tzinfo=UTC).timestamp()


class Run:
    """The dev runner as a child process (its own session), its log, its SQLite file."""

    def __init__(self, mode: str | None, workers: int | None, tmp: Path):
        self.instance = tmp / "instance"
        self.instance.mkdir()
        self.port = h.free_port()
        self.log_path = tmp / "run.log"
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "RAREGEN_REDIS_URL")}
        for name in list(env):
            # embedded defaults: none of the caller's RareGen settings
            if name.startswith("RAREGEN_") and name not in ("RAREGEN_BITCOIND",):
                env.pop(name)
        # as scripts/run: the development environment (the dev runner sets it too)
        env.update(
            RAREGEN_INSTANCE_PATH=str(self.instance),
            RAREGEN_ENV="development",
            PYTHONUNBUFFERED="1",
        )
        if mode:
            env["RAREGEN_PUBLISH_MODE"] = mode
        if workers:
            env["WORKERS"] = str(workers)
        self.env = env
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", DEV_RUNNER, "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.base = f"127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the dev runner ended at start:\n{self.tail()}")
            try:
                conn = http.client.HTTPConnection(self.base, timeout=2)
                conn.request("GET", "/v1/ping")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the service did not answer within {START_TIMEOUT} s:\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def flask(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)}: {out.stderr[-800:]}")
        return out.stdout

    def db(self) -> sqlite3.Connection:
        path = self.instance / "raregen.sqlite"
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL of the process group after a minute; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


def post_all(base: str, bodies: list[bytes], concurrency: int) -> tuple[list[str], list[str]]:
    """POST every body (``concurrency`` keep-alive connections); returns the job ids of the
    202 answers, in the order of ``bodies``, and the other answers (status and code)."""
    ids: list[str | None] = [None] * len(bodies)
    errors: list[str] = []
    lock = threading.Lock()
    nxt = iter(range(len(bodies)))

    def worker() -> None:
        conn = http.client.HTTPConnection(base, timeout=60)
        while True:
            with lock:
                i = next(nxt, None)
            if i is None:
                break
            for _attempt in range(5):
                try:
                    conn.request(
                        "POST",
                        "/v1/publish",
                        body=bodies[i],
                        headers={"Content-Type": "application/json"},
                    )
                    resp = conn.getresponse()
                    data = resp.read()
                    break
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection(base, timeout=60)
            else:
                with lock:
                    errors.append("connection failed")
                continue
            if resp.status == 202:
                ids[i] = json.loads(data)["jobId"]
            else:
                with lock:
                    errors.append(f"{resp.status} {data[:120]!r}")
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [i for i in ids if i], errors


def _in(ids: list[str]) -> tuple[str, list[str]]:
    return ",".join("?" * len(ids)), ids


def wait_states(run: Run, ids: list[str], states: tuple[str, ...], timeout: float) -> bool:
    """Wait until every job of ``ids`` is in ``states`` or ``failed``; True if they got there."""
    marks, params = _in(ids)
    wanted = ",".join(f"'{s}'" for s in (*states, "failed"))
    deadline = time.monotonic() + timeout
    with run.db() as db:
        while time.monotonic() < deadline:
            done = db.execute(
                f"SELECT count(*) FROM publish_jobs WHERE job_id IN ({marks}) "
                f"AND status IN ({wanted})",
                params,
            ).fetchone()[0]
            if done >= len(ids):
                return True
            time.sleep(0.05)
    return False


def job_rows(run: Run, ids: list[str]) -> dict[str, tuple]:  # type: ignore[type-arg]
    """job_id -> (status, created_at, sent_at, confirmed_at, block_height)."""
    marks, params = _in(ids)
    with run.db() as db:
        rows = db.execute(
            f"SELECT job_id, status, created_at, sent_at, confirmed_at, block_height "
            f"FROM publish_jobs WHERE job_id IN ({marks})",
            params,
        ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mode", default=None, help="PUBLISH_MODE (default: the configured default)")
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--trickle", type=int, default=20)
    ap.add_argument("--rate", type=float, default=2.0, help="trickle records per second")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--workers", type=int, default=None, help="WORKERS (default: the run's)")
    ap.add_argument("--keep-log", action="store_true", help="print the run's log at the end")
    args = ap.parse_args()

    h.header("bench_burst: a burst through the API under scripts/run (embedded defaults)")
    tmp = Path(tempfile.mkdtemp(prefix="raregen-burst-"))
    run = None
    result: dict[str, object] = {"bench": "burst", "mode": args.mode or "default"}
    ok = True
    try:
        key = h.make_author()
        t0 = time.monotonic()
        bodies = h.sign_bodies(key, args.records + args.trickle)
        print(f"signed {len(bodies)} request bodies in {time.monotonic() - t0:.1f} s")
        run = Run(args.mode, args.workers, tmp)
        t0 = time.monotonic()
        run.wait_ready()
        print(f"service up on port {run.port} in {time.monotonic() - t0:.1f} s ({DEV_RUNNER})")
        run.flask("keys", "add", key.public_key.format().hex(), "--label", "bench-burst")

        # 1. the burst
        t0 = time.monotonic()
        ids, errors = post_all(run.base, bodies[: args.records], args.concurrency)
        took = time.monotonic() - t0
        print(
            f"burst: {len(ids)} of {args.records} accepted in {took:.2f} s "
            f"({len(ids) / took:.0f}/s), {len(errors)} other answers"
            + (f" (first: {errors[0]})" if errors else "")
        )
        drained = wait_states(run, ids, ("sent", "confirmed"), PHASE_TIMEOUT)
        rows = job_rows(run, ids)
        last_accept = max(_epoch(r[1]) or 0 for r in rows.values())
        sent = [_epoch(r[2]) for r in rows.values() if r[2]]
        failed = sum(1 for r in rows.values() if r[0] == "failed")
        last_sent = max(s for s in sent if s is not None) if sent else None
        drain = (last_sent - last_accept) if last_sent else None
        print(
            f"burst: {len(sent)} sent, {failed} failed; last sent "
            + (f"{drain:.2f} s after the last accept" if drain is not None else "never")
            + ("" if drained else f" (gave up after {PHASE_TIMEOUT} s)")
            + "  (goal: under 3 s)"
        )
        result.update(
            burst_accepted=len(ids),
            burst_accept_rps=round(len(ids) / took, 1),
            burst_failed=failed,
            burst_sent_after_last_accept_s=None if drain is None else round(drain, 3),
        )
        ok &= drain is not None and drain < 3 and failed == 0

        # 2. the trickle, right after
        latencies: list[float] = []
        trickle_ids: list[tuple[str, float]] = []
        start = time.monotonic()
        for i, body in enumerate(bodies[args.records :]):
            pause = start + i / args.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            submitted = time.time()
            got, errs = post_all(run.base, [body], 1)
            if got:
                trickle_ids.append((got[0], submitted))
            else:
                print(f"trickle {i}: refused: {errs}")
        wait_states(run, [j for j, _ in trickle_ids], ("sent", "confirmed"), 120)
        trows = job_rows(run, [j for j, _ in trickle_ids])
        print(f"trickle: {len(trickle_ids)} records at {args.rate:g}/s, submit -> sent:")
        for n, (job_id, submitted) in enumerate(trickle_ids):
            sent_at = _epoch(trows[job_id][2])
            lat = None if sent_at is None else sent_at - submitted
            if lat is not None:
                latencies.append(lat)
            print(f"  {n + 1:3d}  {'not sent' if lat is None else f'{lat * 1000:8.0f} ms'}")
        worst = max(latencies) if latencies else None
        print(
            "trickle: max "
            + ("-" if worst is None else f"{worst * 1000:.0f} ms")
            + f", {len(latencies)} of {len(trickle_ids)} sent  (goal: max <= 1 s)"
        )
        result.update(
            trickle_latencies_ms=[round(x * 1000) for x in latencies],
            trickle_max_ms=None if worst is None else round(worst * 1000),
        )
        ok &= worst is not None and worst <= 1.0 and len(latencies) == args.trickle

        # 3. the burst's confirmations
        confirmed = wait_states(run, ids, ("confirmed",), PHASE_TIMEOUT)
        rows = job_rows(run, ids)
        stamps = [_epoch(r[3]) for r in rows.values() if r[3]]
        heights = sorted({r[4] for r in rows.values() if r[4] is not None})
        passes = [m.groups() for m in _PASS_RE.finditer(run.log_path.read_text(errors="replace"))]
        print(
            f"confirmations: {len(stamps)} of {len(ids)} burst records confirmed in "
            f"{len(heights)} block(s)"
            + ("" if confirmed else f" (gave up after {PHASE_TIMEOUT} s)")
        )
        for jobs, txs, blocks, rec, ask, whole in passes:
            print(
                f"  confirmation pass: {jobs} jobs ({txs} transactions, {blocks} block(s)) "
                f"recorded in {float(rec):.3f} s; chain asked in {float(ask):.3f} s; "
                f"whole pass {float(whole):.3f} s"
            )
        if stamps:
            print(f"confirmations: the burst's confirmed_at span {max(stamps) - min(stamps):.2f} s")
        recorded = sum(float(p[3]) for p in passes)
        print(
            f"confirmations: recording took {recorded:.3f} s in all over {len(passes)} pass(es)"
            "  (goal: 3,000 in under 2 s)"
        )
        result.update(
            confirmed=len(stamps),
            blocks=len(heights),
            confirm_passes=[
                {"jobs": int(p[0]), "record_s": float(p[3]), "ask_s": float(p[4])} for p in passes
            ],
            confirm_record_s=round(recorded, 3),
        )
        ok &= confirmed and recorded < 2
        result["goals_met"] = bool(ok)
    finally:
        if run is not None:
            code = run.stop()
            print(f"dev runner stopped (exit {code})")
            if args.keep_log:
                print(run.tail(200))
        shutil.rmtree(tmp, ignore_errors=True)
    h.emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
