"""Ingest: ``POST /v1/publish`` under gunicorn (2 workers) against PostgreSQL and Redis, and in
the same run the same server's trivial ``GET /v1/ping`` as the ceiling.

Usage::

    python bench/bench_ingest.py [--quick] [--seconds S] [--connections C]
                                 [--modes batch,immediate] [--client wrk|python]
                                 [--worker-class sync|gthread] [--threads N] [--profile]
                                 [--lean] [--ratelimit-headers] [--no-ratelimit]

What it does, per publish mode (``PUBLISH_MODE``; the API answers the same in every mode,
immediate mode also enqueues one RQ job per request, batch mode one Redis INCR):

1. a temp PostgreSQL database migrated to head, RQ queues of this run only, one registered
   operator key (unlimited credits), and all request bodies signed *before* timing, each
   with its own nonce (a replay would answer 200 and take another code path);
2. ``gunicorn -w 2 -b 127.0.0.1:PORT 'app:create_app()'`` with the environment pointing at
   them, the rate limit raised out of the way (the limiter itself still runs);
3. load from a separate process: ``wrk`` (C, keep-alive where the server allows it, a Lua
   script hands out the pre-signed bodies) when installed, else Python threads with
   ``requests.Session``. The load generator runs on the same 2 cores as the server,
   PostgreSQL and Redis, and takes its share of them;
4. ``GET /v1/ping`` for S seconds, then ``POST /v1/publish`` for S seconds; requests/s,
   p50 and p99 latency, and every answer's status counted (only 202 counts as accepted).

After the table, the CPU each part of the system used per request during each phase, read
from ``/proc``: the gunicorn workers, the PostgreSQL backends of the bench database, the
Redis server (shared with whatever else uses it), the load generator, and ``other`` (the
rest of the machine: other people's processes, unattributed kernel work), with how busy the
cores were. On a shared machine the request rates move with ``other``; the CPU of our own
parts per request is the steadier figure to compare code by.

``--profile`` samples one gunicorn worker with py-spy during the publish phase and prints
where its time goes (inclusive share of the samples per frame).

Worker class: ``sync`` by default, as ``scripts/run`` runs the app (``gunicorn -w 2``): one
request at a time per worker, no keep-alive (``wrk`` opens a connection per request, for ping
as for publish). ``--worker-class gthread --threads 4`` keeps connections open and overlaps
one thread's waits on PostgreSQL and Redis with another's work: more requests/s for both
endpoints, and relatively more for ping (so a lower publish/ping ratio). ``--lean`` is the
setting advised for the web processes (not the RQ workers, which rely on the pre-ping after a
PostgreSQL restart): a publish retries once on a dropped connection, other requests answer
503 UNAVAILABLE.

Goals (issue 5): >= 1000 accepted publishes/s, >= 40 % of the ping rate, p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

WRK_LUA = r"""
local threads = {}
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  mode = args[1]
  local path, nthreads = args[2], tonumber(args[3])
  bodies = {}
  if mode == "publish" then
    local i = 0
    for line in io.lines(path) do
      if i % nthreads == id then bodies[#bodies + 1] = line end
      i = i + 1
    end
  end
  idx = 0
  s202, s200, s2xx, other = 0, 0, 0, 0
end
function request()
  if mode == "ping" then
    return wrk.format("GET", "/v1/ping")
  end
  idx = idx + 1
  if idx > #bodies then idx = 1 end
  return wrk.format("POST", "/v1/publish", {["Content-Type"] = "application/json"}, bodies[idx])
end
function response(status, headers, body)
  if status == 202 then s202 = s202 + 1
  elseif status == 200 then s200 = s200 + 1
  elseif status < 300 then s2xx = s2xx + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local a, b, c, d = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("s202"); b = b + t:get("s200"); c = c + t:get("s2xx"); d = d + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,' ..
    '"max_us":%d,"s202":%d,"s200":%d,"s2xx":%d,"other":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, a, b, c, d, e.connect + e.read + e.write + e.timeout))
end
"""


def run_wrk(
    base: str, mode: str, bodies_path: Path, seconds: float, conns: int, threads: int, tmp: Path
) -> dict:
    script = tmp / "bench.lua"
    script.write_text(WRK_LUA)
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        base,
        "--",
        mode,
        str(bodies_path),
        str(threads),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(line[len("WRKJSON ") :])
    secs = r["duration_us"] / 1e6
    return {
        "requests": r["requests"],
        "seconds": secs,
        "rps": r["requests"] / secs,
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "s202": r["s202"],
        "s200": r["s200"],
        "other": r["other"] + r["socket_errors"],
    }


def run_python(base: str, mode: str, bodies: list[bytes], seconds: float, conns: int) -> dict:
    """Load from this process: ``conns`` threads, each a keep-alive ``requests.Session``."""
    import requests

    lat: list[list[float]] = [[] for _ in range(conns)]
    codes: list[Counter[int]] = [Counter() for _ in range(conns)]
    stop = time.monotonic() + seconds
    slices = [bodies[i::conns] for i in range(conns)]

    def worker(i: int) -> None:
        s = requests.Session()
        mine = slices[i]
        n = 0
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            if mode == "ping":
                r = s.get(base + "/v1/ping", timeout=5)
            else:
                body = mine[n % len(mine)] if mine else b"{}"
                n += 1
                r = s.post(
                    base + "/v1/publish",
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=5,
                )
            lat[i].append(time.perf_counter() - t0)
            codes[i][r.status_code] += 1

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    secs = time.monotonic() - t0
    alll = [x for part in lat for x in part]
    total = sum(codes, Counter())
    return {
        "requests": len(alll),
        "seconds": secs,
        "rps": len(alll) / secs,
        "p50_ms": h.percentile(alll, 50) * 1000,
        "p99_ms": h.percentile(alll, 99) * 1000,
        "s202": total[202],
        "s200": total[200],
        "other": sum(v for k, v in total.items() if k not in (200, 202)),
    }


_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    vals = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = vals[3] + vals[4]  # idle + iowait
    return (sum(vals) - idle) / _TICK, sum(vals) / _TICK


def _pg_backends(db_url: str) -> list[int]:
    """Pids of the PostgreSQL backends connected to the bench database (its server runs on
    this machine)."""
    import psycopg

    name = db_url.rsplit("/", 1)[1]
    with psycopg.connect(h.PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)
        ).fetchall()
    return [int(r[0]) for r in rows]


def _redis_pid(url: str) -> int | None:
    import redis

    try:
        return int(redis.Redis.from_url(url).info("server")["process_id"])
    except (redis.RedisError, KeyError, ValueError):
        return None


class CpuMeter:
    """CPU time of each part of the system during one load phase: the gunicorn workers, the
    PostgreSQL backends of the bench database, the Redis server (shared with anything else
    using it), the load generator (``wrk``, a reaped child, or this process's own client
    threads) and the rest of the machine (other processes, the kernel's softirq work not charged to a process).

    ``start()`` before the phase, ``stop()`` after; ``per_request(n)`` gives CPU ms per
    request of each part, ``busy_share`` how busy the machine's cores were (1.0 = all).
    """

    def __init__(self, workers: list[int], db_url: str, redis_url: str):
        self.workers = workers
        self.db_url = db_url
        self.redis = _redis_pid(redis_url)

    def _snap(self) -> dict[str, float]:
        import resource

        snap = {
            "gunicorn workers": sum(_proc_cpu(p) for p in self.workers),
            "postgres backends": sum(_proc_cpu(p) for p in _pg_backends(self.db_url)),
            "redis-server": _proc_cpu(self.redis) if self.redis else 0.0,
        }
        # wrk: a reaped child of this process; the Python client: this process itself
        ru, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(0)
        snap["load generator"] = ru.ru_utime + ru.ru_stime + me.ru_utime + me.ru_stime
        snap["_busy"], snap["_total"] = _machine_cpu()
        return snap

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.a = self._snap()

    def stop(self) -> None:
        self.b = self._snap()
        self.wall = time.monotonic() - self.t0

    def per_request(self, n: int) -> dict[str, float]:
        """CPU ms per request of each part; ``other`` is the rest of the machine's busy time
        (other processes, e.g. other people's tests, and unattributed kernel work)."""
        d = {k: self.b[k] - self.a[k] for k in self.a}
        # a backend that connected during the phase was not in the first snapshot: count
        # all its time (it is small next to the phase)
        parts = {k: v for k, v in d.items() if not k.startswith("_")}
        parts["other"] = max(0.0, d["_busy"] - sum(parts.values()))
        self.busy_share = d["_busy"] / d["_total"] if d["_total"] else float("nan")
        return {k: 1000 * v / max(n, 1) for k, v in parts.items()}


def gunicorn_workers(master_pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(master_pid)], capture_output=True, text=True
    )
    return [int(x) for x in out.stdout.split()]


def summarize_pyspy(path: Path, top: int = 18) -> list[tuple[str, float, float]]:
    """From py-spy's collapsed stacks: ``[(frame, inclusive %, self %)]``, most inclusive
    first, frames of the server's own plumbing (gunicorn's loop) left out."""
    incl: Counter[str] = Counter()
    selfc: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].split("/")[-1] + ")"
            if " (" in f
            else f
            for f in stack.split(";")
        ]
        for f in set(frames):
            incl[f] += n
        if frames:
            selfc[frames[-1]] += n
    skip = (
        "<module>",
        "run (",
        "run_for_one",
        "accept (",
        "handle (",
        "wsgi_app",
        "__call__",
        "full_dispatch_request",
        "dispatch_request",
        "_run (",
        "start (",
        "spawn_worker",
        "manage_workers",
        "init_process",
        "run_worker",
        "main (",
        "wrapped_fun",
        "rundispatch",
        "_main (",
    )
    rows = []
    for frame, n in incl.most_common():
        if any(frame.startswith(s) or s in frame for s in skip):
            continue
        rows.append((frame, 100 * n / total, 100 * selfc[frame] / total))
        if len(rows) >= top:
            break
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few seconds, for CI")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--modes", default="batch,immediate")
    ap.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--worker-class", default="sync")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4, help="per worker, gthread only")
    ap.add_argument("--profile", action="store_true", help="py-spy one worker while publishing")
    ap.add_argument(
        "--lean",
        action="store_true",
        help="DB_POOL_PRE_PING=0: no connection check before each pooled use (one round trip)",
    )
    ap.add_argument(
        "--ratelimit-headers",
        action="store_true",
        help="RATELIMIT_HEADERS_ENABLED=1: X-RateLimit-* headers (two Redis round trips more)",
    )
    ap.add_argument(
        "--no-ratelimit",
        action="store_true",
        help="RATELIMIT_ENABLED=0: measures what the limiter's Redis round trips cost",
    )
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.modes = 1.5, "batch"
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") and not args.quick else "python"
    modes = [m for m in args.modes.split(",") if m]

    h.header("bench_ingest: POST /v1/publish vs GET /v1/ping under gunicorn")
    threads = f" --threads {args.threads}" if args.worker_class == "gthread" else ""
    print(
        f"gunicorn -w {args.workers} -k {args.worker_class}{threads}; client={client} "
        f"connections={args.connections}; {args.seconds:.1f} s per phase; modes={modes}"
        f"{'; lean (no pool pre-ping)' if args.lean else ''}"
        f"{'; X-RateLimit headers on' if args.ratelimit_headers else ''}"
        f"{'; rate limiter OFF' if args.no_ratelimit else ''}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    results = []
    limits = {"RAREGEN_PUBLISH_RATE_LIMIT": "100000000 per minute"}
    if args.no_ratelimit:
        limits["RAREGEN_RATELIMIT_ENABLED"] = "0"
    if args.lean:
        limits["RAREGEN_DB_POOL_PRE_PING"] = "0"
    if args.ratelimit_headers:
        limits["RAREGEN_RATELIMIT_HEADERS_ENABLED"] = "1"
    with h.bench_env(**limits) as env:
        app = h.make_app(env)
        key = h.make_author()
        h.register_key(app, key)
        h.dispose(app)
        # enough distinct bodies that none is sent twice at up to 4000 requests/s
        per_mode = int(4000 * args.seconds) + 2000 if not args.quick else 3000
        t0 = time.monotonic()
        bodies = h.sign_bodies(key, per_mode * len(modes))
        print(
            f"signed {len(bodies)} request bodies in {time.monotonic() - t0:.1f} s "
            f"({len(bodies[0])} bytes each)"
        )
        for mi, mode in enumerate(modes):
            mine = bodies[mi * per_mode : (mi + 1) * per_mode]
            warm, mine = mine[:300], mine[300:]
            path = tmp / f"bodies-{mode}.txt"
            path.write_bytes(b"\n".join(mine) + b"\n")
            port = h.free_port()
            base = f"http://127.0.0.1:{port}"
            cmd = [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                str(args.workers),
                "-k",
                args.worker_class,
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
            ]
            if args.worker_class == "gthread":
                cmd += ["--threads", str(args.threads)]
            cmd.append("app:create_app()")
            srv = h.Child(cmd, env.environ(RAREGEN_PUBLISH_MODE=mode), tmp / f"gunicorn-{mode}.log")
            try:
                h.wait_http(base + "/v1/ping", timeout=60)
                run_python(base, "ping", [], 0.5, 2)  # warm both workers
                warmed = run_python(base, "publish", warm, 0.5, 2)
                meter = CpuMeter(gunicorn_workers(srv.pid), env.db_url, env.redis_url)
                meter.start()
                if client == "wrk":
                    ping = run_wrk(base, "ping", path, args.seconds, args.connections, 2, tmp)
                else:
                    ping = run_python(base, "ping", [], args.seconds, args.connections)
                meter.stop()
                ping_cpu = meter.per_request(ping["requests"])
                ping_busy = meter.busy_share
                prof = None
                if args.profile:
                    pid = gunicorn_workers(srv.pid)[0]
                    raw = tmp / f"pyspy-{mode}.txt"
                    prof = subprocess.Popen(
                        [
                            str(Path(sys.executable).parent / "py-spy"),
                            "record",
                            "--nonblocking",
                            "--format",
                            "raw",
                            "-r",
                            "200",
                            "-d",
                            str(max(1, int(args.seconds))),
                            "-o",
                            str(raw),
                            "-p",
                            str(pid),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                meter.start()
                if client == "wrk":
                    pub = run_wrk(base, "publish", path, args.seconds, args.connections, 2, tmp)
                else:
                    pub = run_python(base, "publish", mine, args.seconds, args.connections)
                meter.stop()
                pub_cpu = meter.per_request(pub["requests"])
                pub_busy = meter.busy_share
                if prof is not None:
                    prof.wait(60)
            finally:
                srv.stop()
            app = h.make_app(env)
            with app.app_context():
                from sqlalchemy import func, select

                from raregen.db import db
                from raregen.publish.models import PublishJob

                stored = db.session.scalar(select(func.count()).select_from(PublishJob))
            h.dispose(app)
            accepted_rps = pub["s202"] / pub["seconds"]
            row = {
                "ratelimit": not args.no_ratelimit,
                "lean": args.lean,
                "ratelimit_headers": args.ratelimit_headers,
                "worker_class": args.worker_class,
                "mode": mode,
                "client": client,
                "ping_rps": ping["rps"],
                "ping_p50_ms": ping["p50_ms"],
                "ping_p99_ms": ping["p99_ms"],
                "publish_rps": pub["rps"],
                "accepted_rps": accepted_rps,
                "publish_p50_ms": pub["p50_ms"],
                "publish_p99_ms": pub["p99_ms"],
                "accepted": pub["s202"],
                # accepted while warming up (stored too, not in the figures)
                "warmup_accepted": warmed["s202"],
                "replays_200": pub["s200"],
                "errors": pub["other"],
                "jobs_stored": stored,
                "ratio_vs_ping": accepted_rps / ping["rps"],
                "load_after": h.machine()["load"],
                "ping_cpu_ms": {k: round(v, 3) for k, v in ping_cpu.items()},
                "publish_cpu_ms": {k: round(v, 3) for k, v in pub_cpu.items()},
                "ping_busy": round(ping_busy, 3),
                "publish_busy": round(pub_busy, 3),
            }
            results.append(row)
            if args.profile and (tmp / f"pyspy-{mode}.txt").exists():
                print(
                    f"\npy-spy, one gunicorn worker, PUBLISH_MODE={mode} "
                    "(inclusive % of samples, self %):"
                )
                for frame, inc, slf in summarize_pyspy(tmp / f"pyspy-{mode}.txt"):
                    print(f"  {inc:5.1f}% {slf:5.1f}%  {frame}")
            # leave the next mode an empty queue
            h.drop_redis_keys(env.queue)

    print()
    print(
        f"{'mode':<10} {'endpoint':<16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'accepted':>9} {'other':>6}  load after (1/5/15 min)"
    )
    for r in results:
        print(
            f"{r['mode']:<10} {'GET /v1/ping':<16} {r['ping_rps']:8.0f} {r['ping_p50_ms']:8.2f} "
            f"{r['ping_p99_ms']:8.2f} {'':>9} {'':>6}"
        )
        print(
            f"{r['mode']:<10} {'POST /v1/publish':<16} {r['accepted_rps']:8.0f} "
            f"{r['publish_p50_ms']:8.2f} {r['publish_p99_ms']:8.2f} {r['accepted']:9d} "
            f"{r['errors'] + r['replays_200']:6d}  {r['load_after']}"
        )
        goals = (
            f"  goals: accepted/s {r['accepted_rps']:.0f} >= 1000: "
            f"{'met' if r['accepted_rps'] >= 1000 else 'NOT met'}; "
            f"{100 * r['ratio_vs_ping']:.0f}% of ping >= 40%: "
            f"{'met' if r['ratio_vs_ping'] >= 0.4 else 'NOT met'}; "
            f"p99 {r['publish_p99_ms']:.1f} ms < 50: "
            f"{'met' if r['publish_p99_ms'] < 50 else 'NOT met'}"
        )
        print(goals)
    print(
        "\nCPU ms per request during each phase (machine busy = share of all cores in use;"
        " redis-server is shared with other users of it; other = the rest of the machine):"
    )
    parts = ["gunicorn workers", "postgres backends", "redis-server", "load generator", "other"]
    print(f"{'mode':<10} {'endpoint':<16} " + " ".join(f"{p[:17]:>17}" for p in parts) + "    busy")
    for r in results:
        for label, cpu, busy in (
            ("GET /v1/ping", r["ping_cpu_ms"], r["ping_busy"]),
            ("POST /v1/publish", r["publish_cpu_ms"], r["publish_busy"]),
        ):
            print(
                f"{r['mode']:<10} {label:<16} "
                + " ".join(f"{cpu[p]:17.3f}" for p in parts)
                + f"  {100 * busy:5.0f}%"
            )
    for r in results:
        h.emit({"bench": "ingest", **r})
    shutil.rmtree(tmp, ignore_errors=True)
    ok = all(r["accepted"] > 0 and r["errors"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
