"""Pool scale: how the UTXO reservation's latency grows with the size of the ``utxos`` table
(PostgreSQL), and which plan the reservation query gets.

Usage::

    python bench/bench_pool_scale.py [--quick] [--sizes 1000,100000,1000000] [--iterations N]
                                     [--old-index]

For each size the table is filled to that many rows (server-side ``INSERT ... SELECT
generate_series``: a freshly split pool, every UTXO of one value, the worst case for the
ordering), ``ANALYZE``d, and then timed, each in its own transaction as the pipeline does:

* ``reserve+release``: :func:`pool.reserve` of the smallest fitting UTXO, then
  :func:`pool.release` (median and p99 over N iterations);
* ``reserve_many(500)+release``: one batch-mode reservation of 500 UTXOs (median, p99).

``EXPLAIN`` of the reservation's candidate query is printed per size (it must use
``idx_utxos_select``). ``--old-index`` also times the index of migration 0001
``(status, purpose, satoshis)`` at each size, to show why migration 0003 added ``id``.

Goal (issue 5): the reservation latency grows by no more than 2x from the smallest to the
largest table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

FILL = """
INSERT INTO utxos (txid, vout, satoshis, script_pub_key, purpose, status, dirty, depth,
                   created_at, updated_at)
SELECT md5(i::text) || md5((i + 7)::text), 0, 20000, :script, 'publish', 'available', false, 0,
       now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'
FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS i
"""


def fill(app, lo: int, hi: int) -> float:
    from sqlalchemy import text

    from raregen.db import db, transaction
    from raregen.publish import services

    t0 = time.monotonic()
    with app.app_context():
        script = services.server_wallet().locking_script_hex
        for start in range(lo, hi + 1, 200_000):
            with transaction():
                db.session.execute(
                    text(FILL), {"script": script, "lo": start, "hi": min(hi, start + 199_999)}
                )
        h.dispose(app)
    h.pg_analyze(app)
    return time.monotonic() - t0


def explain(app) -> str:
    from sqlalchemy.dialects import postgresql

    from raregen.db import db, transaction
    from raregen.publish import pool
    from raregen.publish.models import Utxo

    q = pool.candidates(100, 20, "publish").limit(1).with_for_update(skip_locked=True, of=Utxo)
    sql = str(q.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    with app.app_context():
        with transaction():
            plan = [r[0] for r in db.session.execute(db.text("EXPLAIN " + sql))]
        h.dispose(app)
    return " | ".join(p.strip() for p in plan)


def time_reserve(app, iterations: int) -> tuple[list[float], list[float]]:
    from sqlalchemy import update

    from raregen.db import db, transaction
    from raregen.publish import pool
    from raregen.publish.models import Utxo

    single: list[float] = []
    many: list[float] = []
    with app.app_context():
        for i in range(iterations + 10):
            t0 = time.perf_counter()
            with transaction():
                utxo = pool.reserve(100, f"bench-{i}", timeout_seconds=300, max_depth=20)
                assert utxo is not None
            with transaction():
                pool.release(db.session.get(Utxo, utxo.id))
            if i >= 10:  # warm-up rounds are not counted
                single.append(time.perf_counter() - t0)
        for i in range(max(5, iterations // 50)):
            t0 = time.perf_counter()
            with transaction():
                got = pool.reserve_many(500, 100, f"bench-many-{i}", timeout_seconds=300)
                ids = [u.id for u in got]
            with transaction():
                db.session.execute(
                    update(Utxo)
                    .where(Utxo.id.in_(ids))
                    .values(
                        status="available",
                        reserved_at=None,
                        reserved_until=None,
                        reserved_by=None,
                    )
                    .execution_options(synchronize_session=False)
                )
            many.append(time.perf_counter() - t0)
        h.dispose(app)
    return single, many


def set_index(app, old: bool) -> None:
    from sqlalchemy import text

    from raregen.db import db, transaction

    cols = "status, purpose, satoshis" if old else "status, purpose, satoshis, id"
    with app.app_context():
        with transaction():
            db.session.execute(text("DROP INDEX IF EXISTS idx_utxos_select"))
            db.session.execute(text(f"CREATE INDEX idx_utxos_select ON utxos ({cols})"))
        h.dispose(app)
    h.pg_analyze(app)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", default="1000,100000,1000000")
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--old-index", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.iterations = "1000,20000", 60
    sizes = sorted(int(s) for s in args.sizes.split(","))
    h.header("bench_pool_scale: reservation latency vs utxos table size (PostgreSQL)")
    rows = []
    with h.bench_env() as env:
        app = h.make_app(env)
        have = 0
        for size in sizes:
            secs = fill(app, have + 1, size)
            have = size
            plan = explain(app)
            single, many = time_reserve(app, args.iterations)
            row = {
                "size": size,
                "fill_s": secs,
                "plan": plan,
                "uses_idx_utxos_select": "idx_utxos_select" in plan,
                "reserve_p50_ms": h.percentile(single, 50) * 1000,
                "reserve_p99_ms": h.percentile(single, 99) * 1000,
                "many500_p50_ms": h.percentile(many, 50) * 1000,
                "many500_p99_ms": h.percentile(many, 99) * 1000,
            }
            if args.old_index:
                set_index(app, old=True)
                old_single, _ = time_reserve(app, max(10, args.iterations // 10))
                row["old_index_reserve_p50_ms"] = h.percentile(old_single, 50) * 1000
                row["old_plan"] = explain(app)
                set_index(app, old=False)
            rows.append(row)
            print(
                f"{size:>9} rows (filled in {secs:.1f} s): reserve+release p50 "
                f"{row['reserve_p50_ms']:.2f} ms p99 {row['reserve_p99_ms']:.2f} ms; "
                f"reserve_many(500)+release p50 {row['many500_p50_ms']:.1f} ms p99 "
                f"{row['many500_p99_ms']:.1f} ms"
                + (
                    f"; old index p50 {row['old_index_reserve_p50_ms']:.2f} ms"
                    if args.old_index
                    else ""
                )
            )
            print(f"          plan: {plan}")
            sys.stdout.flush()
        h.dispose(app)
    first, last = rows[0], rows[-1]
    growth = last["reserve_p50_ms"] / first["reserve_p50_ms"]
    growth_many = last["many500_p50_ms"] / first["many500_p50_ms"]
    print()
    print(f"{'rows':>9} {'p50 ms':>8} {'p99 ms':>8} {'x500 p50':>9} {'x500 p99':>9}  index")
    for r in rows:
        print(
            f"{r['size']:>9} {r['reserve_p50_ms']:8.2f} {r['reserve_p99_ms']:8.2f} "
            f"{r['many500_p50_ms']:9.1f} {r['many500_p99_ms']:9.1f}  "
            f"{'idx_utxos_select' if r['uses_idx_utxos_select'] else 'NOT THE INDEX'}"
        )
    print(
        f"growth {first['size']} -> {last['size']} rows: reserve x{growth:.2f}, "
        f"reserve_many x{growth_many:.2f}; goal <= 2x: {'met' if growth <= 2 else 'NOT met'}"
    )
    h.emit(
        {
            "bench": "pool_scale",
            "rows": rows,
            "growth": growth,
            "growth_many": growth_many,
            "machine": h.machine(),
        }
    )
    return 0 if all(r["uses_idx_utxos_select"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
