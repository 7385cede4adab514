"""The benchmarks' short forms (``--quick``) run and print numbers: each is run as a
subprocess and must exit 0 and end with a ``RESULT {...}`` line holding its figures.

They need the same services as the integration tests (PostgreSQL, Redis; bench_e2e also the
regtest node binary): a missing one skips the test locally and fails it in CI. Only that they
run is checked here, never how fast (CI machines vary).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHES = {
    "bench_cost.py": 60,
    "bench_pool_scale.py": 120,
    "bench_ingest.py": 180,
    "bench_e2e.py": 420,
    "bench_proofs.py": 120,
    "bench_webhooks.py": 240,
}


def _services_or_skip(name: str) -> None:
    from tests.plugins.db import PG_ADMIN_URL, unavailable

    if name in ("bench_cost.py", "bench_proofs.py"):
        return
    try:
        import psycopg
        import redis

        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
        redis.Redis.from_url(
            os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
            socket_connect_timeout=2,
        ).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means the service is missing
        unavailable(f"PostgreSQL or Redis for {name}: {exc.__class__.__name__}")


def _numbers(value: object) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BENCHES))
def test_bench_quick_runs_and_prints_numbers(name: str, tmp_path: Path) -> None:
    _services_or_skip(name)
    if name == "bench_e2e.py":
        from raregen_dev.devnet import NodeBinaryError, ensure_node_binary
        from tests.plugins.node import node_unavailable

        try:
            ensure_node_binary()
        except NodeBinaryError as exc:
            node_unavailable(str(exc))
    env = dict(os.environ, PYTHONPATH=str(ROOT), RAREGEN_INSTANCE_PATH=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / name), "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BENCHES[name],
    )
    out = proc.stdout
    assert proc.returncode == 0, (
        f"{name} exited {proc.returncode}:\n{out[-3000:]}\n{proc.stderr[-3000:]}"
    )
    results = [
        json.loads(line[len("RESULT ") :])
        for line in out.splitlines()
        if line.startswith("RESULT ")
    ]
    assert results, f"{name} printed no RESULT line:\n{out[-2000:]}"
    numbers = [n for r in results for n in _numbers(r)]
    assert any(n > 0 for n in numbers), f"no figures in {results}"
