"""Shared plumbing of the benchmarks: a throw-away PostgreSQL database, a Redis database of
their own, the app migrated onto them, a regtest node with a funded pool, percentiles and
the machine's state (cores, load) printed with every figure.

Nothing here is imported by the application. Every resource a benchmark makes is removed
when its ``with`` block ends (databases dropped, processes stopped by their own pid).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
#: Redis database 13 unless told otherwise; every run names its queues after its own pid and
#: deletes only its own keys at the end.


# --------------------------------------------------------------------------------------------
# The machine


def machine() -> dict[str, Any]:
    """Cores, load averages and the time, for the header of every benchmark's output."""
    load1, load5, load15 = os.getloadavg()
    return {
        "cores": os.cpu_count() or 0,
        "load": f"{load1:.2f} {load5:.2f} {load15:.2f}",
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": sys.version.split()[0],
    }


def header(title: str) -> None:
    m = machine()
    print(f"== {title} ==")
    print(f"cores={m['cores']} load(1/5/15 min)={m['load']} at {m['when']} python {m['python']}")
    sys.stdout.flush()


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return float(ordered[k])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def emit(result: dict[str, Any]) -> None:
    """Print one machine-readable result line (``RESULT {...}``) after the human table."""
    print("RESULT " + json.dumps(result, sort_keys=True, default=str))
    sys.stdout.flush()


# --------------------------------------------------------------------------------------------
# Databases


@contextlib.contextmanager
def temp_postgres(prefix: str = "raregen_bench") -> Iterator[str]:
    """A new, empty PostgreSQL database; yields its SQLAlchemy URL; dropped at the end."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_redis_keys(queue: str, url: str = REDIS_URL) -> int:
    """Delete this run's keys (RQ queues, jobs and counters named after ``queue``) from the
    benchmarks' Redis database; other runs sharing it are left alone."""
    import redis

    conn = redis.Redis.from_url(url)
    keys = list(conn.scan_iter(match=f"*{queue}*", count=1000))
    for start in range(0, len(keys), 500):
        conn.delete(*keys[start : start + 500])
    return len(keys)


@dataclass
class BenchEnv:
    """Settings a benchmark's processes share (the app in-process, gunicorn, RQ workers)."""

    db_url: str
    redis_url: str
    instance: Path
    wif: str
    queue: str
    extra: dict[str, str]

    def environ(self, **more: str) -> dict[str, str]:
        """Environment for a child process (gunicorn, RQ worker) seeing the same settings."""
        env = dict(os.environ)
        env.update(
            RAREGEN_DATABASE_URL=self.db_url,
            RAREGEN_REDIS_URL=self.redis_url,
            RAREGEN_INSTANCE_PATH=str(self.instance),
            RAREGEN_SERVER_WIF=self.wif,
            RAREGEN_SECRET_KEY="bench-secret",
            RAREGEN_QUEUE_NAME=self.queue,
            RAREGEN_ENV="test",  # no production checks (no mail server here)
            PYTHONPATH=str(ROOT),
        )
        env.update(self.extra)
        env.update(more)
        return env

    def app_config(self) -> dict[str, Any]:
        """The same settings as test_config for :func:`raregen.create_app` in-process."""
        from raregen.config import load_settings

        saved = dict(os.environ)
        try:
            os.environ.update(self.environ())
            cfg = load_settings(str(self.instance))
        finally:
            os.environ.clear()
            os.environ.update(saved)
        cfg.update(SECRET_KEY="bench-secret")
        return cfg


@contextlib.contextmanager
def bench_env(**extra: str) -> Iterator[BenchEnv]:
    """A temp PostgreSQL database migrated to head, queues of this run, a fresh server key."""
    from raregen.publish.txbuilder import ServerWallet

    instance = Path(tempfile.mkdtemp(prefix="raregen-bench-"))
    try:
        with temp_postgres() as url:
            env = BenchEnv(
                db_url=url,
                redis_url=REDIS_URL,
                instance=instance,
                wif=ServerWallet.generate("regtest").to_wif(),
                queue=f"bench{os.getpid()}x{uuid.uuid4().hex[:6]}",
                extra={k: str(v) for k, v in extra.items()},
            )
            app = make_app(env)
            from flask_migrate import upgrade

            with app.app_context():
                upgrade()
                dispose(app)
            try:
                yield env
            finally:
                drop_redis_keys(env.queue)
    finally:
        shutil.rmtree(instance, ignore_errors=True)


def make_app(env: BenchEnv, **overrides: Any):
    """The Flask app on the bench database (in this process)."""
    import logging

    from raregen import create_app

    logging.getLogger("alembic").setLevel(logging.WARNING)
    os.environ["RAREGEN_INSTANCE_PATH"] = str(env.instance)
    cfg = env.app_config()
    cfg.update(overrides)
    return create_app(cfg)


def dispose(app) -> None:
    from raregen.db import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


# --------------------------------------------------------------------------------------------
# Child processes


class Child:
    """A child process we started; stopped (SIGTERM, then SIGKILL) by its own pid."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        self._fh = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args,
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            # the process group is the child's own (start_new_session): gunicorn's workers and
            # RQ's work horses go with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._fh.close()

    def tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def wait_http(url: str, timeout: float = 30) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout} s")
        time.sleep(0.2)


# --------------------------------------------------------------------------------------------
# Requests and the chain


def make_author():
    import coincurve

    return coincurve.PrivateKey()


def sign_bodies(key, n: int, *, ttl: int = 3600, size: int = 0) -> list[bytes]:
    """``n`` distinct valid v1 request bodies (JSON bytes), signed now with ``key``.

    Args:
        size: extra payload characters per record (0: a small §3-shaped "work" record).
    """
    from raregen import signing

    now = int(time.time())
    pad = "x" * size
    out = []
    for i in range(n):
        record = {"title": f"bench {i}", "contentHash": f"{i:064x}", "note": pad}
        body = signing.make_request(key, record, "work", ttl=ttl, now=now)
        out.append(json.dumps(body, separators=(",", ":")).encode())
    return out


def register_key(app, key, credits: int | None = None) -> None:
    from raregen.publish import keys

    with app.app_context():
        keys.register_key(key.public_key.format().hex(), credits=credits, label="bench")


@contextlib.contextmanager
def regtest_node(workdir: Path) -> Iterator[Any]:
    """A regtest node of our own (stopped by its pid at the end), wallet funded."""
    from raregen_dev.devnet import RegtestNode

    node = RegtestNode(workdir / "node")
    node.start()
    try:
        node.ensure_wallet_funds(50 * 100_000_000)
        yield node
    finally:
        node.stop()


def wire_node(app, node) -> None:
    app.config.update(
        NODE_RPC_URL=node.url, NODE_RPC_USER=node.user, NODE_RPC_PASSWORD=node.password
    )
    app.extensions.pop("raregen.services", None)


def node_environ(node) -> dict[str, str]:
    return {
        "RAREGEN_NODE_RPC_URL": node.url,
        "RAREGEN_NODE_RPC_USER": node.user,
        "RAREGEN_NODE_RPC_PASSWORD": node.password,
    }


def fund_pool(app, node, count: int, satoshis: int, *, per_tx: int = 2500) -> float:
    """Put ``count`` publish UTXOs of ``satoshis`` into the pool, confirmed (depth 0).

    The node's wallet pays one coin per split transaction to the server address; each coin
    is split into ``per_tx`` outputs (``build_split_tx``); the outputs are bulk-inserted
    (one multi-row INSERT per split) rather than added one by one. Returns seconds taken.
    """
    from sqlalchemy import insert

    from raregen.db import db, transaction, utcnow
    from raregen.publish import services
    from raregen.publish.models import Utxo
    from raregen.publish.txbuilder import SpendableUtxo, build_split_tx

    t0 = time.monotonic()
    with app.app_context():
        wallet = services.server_wallet()
        rate = services.fee_rate()
        rpc = node.rpc
        remaining = count
        while remaining > 0:
            n = min(per_tx, remaining)
            need = n * satoshis + n * 40 * rate // 1000 + 100_000
            txid = rpc.call("sendtoaddress", wallet.address, need / 100_000_000)
            raw = rpc.call("getrawtransaction", txid, 1)
            vout = next(
                o["n"] for o in raw["vout"] if o["scriptPubKey"]["hex"] == wallet.locking_script_hex
            )
            coin = SpendableUtxo(txid, vout, need, wallet.locking_script_hex)
            split = build_split_tx(wallet, [coin], n, satoshis, rate)
            rpc.call("sendrawtransaction", split.raw_hex)
            now = utcnow()
            rows = [
                {
                    "txid": split.txid,
                    "vout": v,
                    "satoshis": satoshis,
                    "script_pub_key": wallet.locking_script_hex,
                    "purpose": "publish",
                    "status": "available",
                    "dirty": False,
                    "depth": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for v in range(n)
            ]
            with transaction():
                db.session.execute(insert(Utxo), rows)
            remaining -= n
        node.mine(1)
        dispose(app)
    return time.monotonic() - t0


def pg_analyze(app) -> None:
    from sqlalchemy import text

    from raregen.db import db

    with app.app_context():
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
