"""The fault-injection runs (``bench/fault_*.py``) in their shortened CI form (``--quick``):
each runs as a subprocess with its own regtest node, embedded Redis and temporary PostgreSQL
database, and must end with every record published and zeros in the columns that must be
zero. Needs PostgreSQL (``TEST_POSTGRES_URL``) and the node binary; skipped (or failed in
CI) without them.

The workers run their jobs in-process (``worker.py``: RQ's SimpleWorker, no work horse), so
the crash run's main fault is ``kill -9`` of whole workers, which abandons the job a worker
runs mid-step; one of its two workers runs ``worker.py --fork`` so that work-horse-only
kills, and the forking worker, stay covered; warm stops (SIGTERM once) are mixed in.

They run in ``auto`` mode, the default (``--mode``; the full runs take any mode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from raregen import ROOT
from tests.plugins.db import PG_ADMIN_URL, unavailable

# each quick fault run is a subprocess allowed 600 s, plus the node's start
pytestmark = [pytest.mark.slow, pytest.mark.node, pytest.mark.postgres, pytest.mark.timeout(900)]

MUST_BE_ZERO = (
    "records published twice",
    "UTXOs spent twice",
    "jobs not ended",
    "reservations left past timeout",
    "jobs failed",
)


@pytest.fixture(scope="module")
def postgres_up() -> None:
    import psycopg

    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
    except Exception as exc:
        unavailable(f"PostgreSQL at {PG_ADMIN_URL.split('@')[-1]}: {exc.__class__.__name__}")


@pytest.mark.parametrize(
    "script", ["fault_crash.py", "fault_redis.py", "fault_outage.py", "fault_race.py"]
)
def test_quick_fault_run(script: str, postgres_up: None, node_binary) -> None:
    env = dict(os.environ, RAREGEN_BITCOIND=str(node_binary), PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / script),
            "--quick",
            "--seed",
            "7",
            "--max-seconds",
            "420",
            "--mode",
            "auto",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAULT-RESULT ")]
    assert lines, (
        f"{script} printed no result (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    result = json.loads(lines[-1].split(" ", 1)[1])
    table = "\n".join(ln for ln in proc.stdout.splitlines()[-25:])
    for column in MUST_BE_ZERO:
        assert result[column] == 0, f"{column} = {result[column]}\n{table}"
    if script == "fault_crash.py":
        assert result["kill -9 (worker and children)"] > 0, table
    assert result["records published"] == result["records submitted"] > 0, table
    assert result["publish mode"] == "auto", table
    assert proc.returncode == 0, table
