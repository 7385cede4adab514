"""The benchmarks' short forms (``--quick``) run and print numbers: each is run as a
subprocess and must exit 0 and end with a ``RESULT {...}`` line holding its figures.

They need the same services as the integration tests (PostgreSQL, Redis; bench_e2e also the
regtest node binary): a missing one skips the test locally and fails it in CI.

Each bench's figures are then checked for what they name (:data:`FIGURES`): every record
requested is published (stored, sent, delivered), nothing is lost or refused, and each rate
is above a floor. The floors are far below what any machine of ours measures (a slow,
shared CI machine included): they catch a bench that measures nothing (a rate of 1 request
in a second), not a slower machine.
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


def _cost(results: list[dict]) -> None:
    (r,) = results
    assert r["bench"] == "cost" and r["rate_sat_per_kb"] > 0
    rows = r["rows"]
    one = rows[0]
    assert one["records"] == 1 and one["tx_bytes"] == one["bytes_per_record"]
    for row in rows:
        assert row["tx_bytes"] > row["records"] * row["record_output_bytes"], row
        assert row["fee"] > 0 and row["sats_per_record"] * row["records"] == pytest.approx(
            row["fee"]
        )
    # packing several records in one transaction costs less per record than one each
    packed = [row for row in rows if row["records"] > 1]
    assert packed and all(p["bytes_per_record"] < one["bytes_per_record"] for p in packed)
    assert r["largest"]["tx_bytes"] >= max(row["tx_bytes"] for row in rows)


def _pool_scale(results: list[dict]) -> None:
    (r,) = results
    sizes = [row["size"] for row in r["rows"]]
    assert len(sizes) >= 2 and sizes == sorted(sizes)
    for row in r["rows"]:
        assert row["uses_idx_utxos_select"], row["plan"]
        assert 0 < row["reserve_p50_ms"] < 250, row  # one reservation: a few ms at most
        assert 0 < row["many500_p50_ms"] < 5000, row
    assert 0 < r["growth"] < 10, r["growth"]  # an index scan: no growth with the size


def _ingest(results: list[dict]) -> None:
    assert [r["mode"] for r in results] == ["batch"]  # --quick: batch mode only
    for r in results:
        assert r["accepted"] > 0 and r["errors"] == 0 and r["replays_200"] == 0, r
        # every accepted request is stored (the warm-up's too), no other
        assert r["jobs_stored"] == r["accepted"] + r["warmup_accepted"], r
        assert r["ping_rps"] > 20 and r["accepted_rps"] > 10, r


def _e2e(results: list[dict]) -> None:
    (r,) = results
    assert r["ceiling"]["single_tps"] > 1 and r["ceiling"]["batched_tps"] > 1
    assert r["modes"], r
    for mode, m in r["modes"].items():
        drain, live = m["drain"], m["live"]
        assert m["complete"], (mode, m)
        # records published equal records requested: none lost, none left behind
        assert drain["jobs"] > 0 and drain["sent"] == drain["jobs"], (mode, drain)
        assert live["sent"] == live["jobs"], (mode, live)
        assert 1 <= drain["txs"] <= drain["sent"], (mode, drain)
        assert drain["rate"] > 1, (mode, drain)  # records/s


def _proofs(results: list[dict]) -> None:
    (r,) = results
    assert r["packed_records"] == 100  # --quick
    assert 0 < r["size_one_bytes"] < r["size_packed_bytes"], r
    assert 0 < r["verify_one_ms"] < 100, r  # goal < 5 ms; the floor is for slow machines
    assert 0 < r["verify_packed_ms"] < 1000, r
    assert 0 < r["command_ms"] < 30_000, r


def _webhooks(results: list[dict]) -> None:
    (r,) = results
    assert r["events"] > 0
    # every event delivered, in the delay run and the backlog run; none lost to a crash
    assert r["delivered"] == r["drained"] == r["events"], r
    assert r["crash_lost"] == 0 and r["crash_events"] > 0, r
    assert r["bad_signatures"] == 0, r
    assert r["deliveries_per_second"] > 1, r


#: what each bench's RESULT figures must show (see the module docstring)
FIGURES = {
    "bench_cost.py": _cost,
    "bench_pool_scale.py": _pool_scale,
    "bench_ingest.py": _ingest,
    "bench_e2e.py": _e2e,
    "bench_proofs.py": _proofs,
    "bench_webhooks.py": _webhooks,
}
assert set(FIGURES) == set(BENCHES)


@pytest.mark.slow
@pytest.mark.timeout(900)
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
    FIGURES[name](results)
