"""Where the batch collector's time goes, per record: N queued records drained by
``batch.collect_batch`` IN THIS PROCESS (one collector, PostgreSQL, the regtest node), with

* wall time per step (perf_counter around each step of :mod:`raregen.publish.batch`),
  divided by the records: claim (lock jobs), coins (lock UTXOs), build+sign, store (the
  claim's writes), commit, broadcast, settle;
* database statements per batch (counted by an engine event) and per record;
* a py-spy profile of this process while it drains (``--pyspy``), summarized by step.

Usage::

    python bench/profile_collector.py [--records 3000] [--batch 500] [--pyspy]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402
from bench_e2e import RECORD_PAD, bulk_queue  # noqa: E402

STEPS = (
    ("claim.lock_queued", "lock jobs"),
    ("claim.lock_coins", "lock coins"),
    ("batch_mode.build_publish_tx", "build+sign"),
    ("claim.store_signed", "store (claim writes)"),
    ("batch_mode._store", "store (claim writes)"),
    ("batch_mode.broadcast_many", "broadcast"),
    ("settle.settle_batch", "settle"),
    ("batch_mode.record_script", "record script"),
)
PYSPY_KEYS = (
    ("lock_queued (", "lock jobs"),
    ("_match_coins (", "lock coins"),
    ("record_script (", "record script"),
    ("build_publish_tx (", "build+sign"),
    ("store_signed (", "store (claim writes)"),
    ("_store (", "store (claim writes)"),
    ("broadcast_many (", "broadcast"),
    ("settle_batch (", "settle"),
)


def _timed(module, name: str, label: str, spent: Counter) -> None:
    if not hasattr(module, name):
        return
    real = getattr(module, name)

    def wrapper(*a, **kw):
        t0 = time.perf_counter()
        try:
            return real(*a, **kw)
        finally:
            spent[label] += time.perf_counter() - t0

    setattr(module, name, wrapper)


def pyspy_steps(path: Path) -> tuple[int, Counter]:
    """py-spy raw stacks of collect_batch grouped by step: (samples, Counter)."""
    steps: Counter = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or "collect_batch (" not in stack:
            continue
        n = int(count)
        total += n
        label = "other"
        for key, name in PYSPY_KEYS:
            if key in stack:
                label = name
        if label == "other" and "commit" in stack:
            label = "commit"
        steps[label] += n
    return total, steps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=500, help="BATCH_SIZE")
    ap.add_argument("--pyspy", action="store_true", help="py-spy this process while draining")
    args = ap.parse_args()
    h.header("profile_collector: one in-process batch collector, per record")
    tmp = Path(tempfile.mkdtemp(prefix="profile-collector-"))
    with h.bench_env(RAREGEN_MAX_UNCONFIRMED_DEPTH="25") as env, h.regtest_node(tmp) as node:
        app = h.make_app(env, PUBLISH_MODE="batch", BATCH_SIZE=args.batch)
        h.wire_node(app, node)
        key = h.make_author()
        h.register_key(app, key)
        h.fund_pool(app, node, args.records + 50, 20_000)
        h.pg_analyze(app)
        ids = bulk_queue(app, key, h.sign_bodies(key, args.records, size=RECORD_PAD))

        from sqlalchemy import event

        from raregen.db import db
        from raregen.publish.batch import batch_mode, claim, settle

        spent: Counter = Counter()
        modules = {"claim": claim, "batch_mode": batch_mode, "settle": settle}
        for dotted, label in STEPS:
            mod, name = dotted.split(".")
            _timed(modules[mod], name, label, spent)
        statements: Counter = Counter()
        prof = None
        out = tmp / "pyspy.txt"
        with app.app_context():

            def count(conn, cursor, statement, params, context, executemany):
                word = statement.lstrip().split(None, 1)[0].upper()
                statements[word] += 1

            event.listen(db.engine, "before_cursor_execute", count)
            if args.pyspy:
                prof = subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--nonblocking",
                        "--format",
                        "raw",
                        "-r",
                        "250",
                        "-o",
                        str(out),
                        "-p",
                        str(os.getpid()),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1.0)
            cpu0, t0 = time.process_time(), time.perf_counter()
            batches = sent = 0
            while True:
                report = batch_mode.collect_batch()
                if not report.claimed:
                    break
                batches += 1
                sent += report.counts.get("sent", 0)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            if prof is not None:
                prof.send_signal(2)
                prof.wait(30)
            event.remove(db.engine, "before_cursor_execute", count)
            h.dispose(app)
    n = max(sent, 1)
    print(
        f"drained {sent}/{len(ids)} records in {batches} batches: {wall:.2f} s wall "
        f"= {sent / wall:.0f} records/s; this process's CPU {1000 * cpu / n:.3f} ms per record "
        f"(wall {1000 * wall / n:.3f} ms per record)"
    )
    print("wall time per record, by step (ms):")
    for label, seconds in spent.most_common():
        print(f"  {1000 * seconds / n:7.3f}  {label}")
    print(
        f"statements: {sum(statements.values())} ({dict(statements)}), "
        f"{sum(statements.values()) / max(batches, 1):.1f} per batch"
    )
    result = {
        "bench": "profile-collector",
        "records": sent,
        "batches": batches,
        "records_per_s": sent / wall,
        "cpu_ms_per_record": 1000 * cpu / n,
        "wall_ms_per_record": {k: 1000 * v / n for k, v in spent.items()},
        "statements": dict(statements),
    }
    if args.pyspy and out.exists():
        total, steps = pyspy_steps(out)
        print(f"py-spy, {total} samples in collect_batch (250 Hz), by step:")
        for label, samples in steps.most_common():
            print(f"  {100 * samples / max(total, 1):5.1f}%  {label}")
        result["pyspy_steps_pct"] = {k: 100 * v / max(total, 1) for k, v in steps.items()}
    h.emit({**result, "machine": h.machine()})
    return 0 if sent == len(ids) else 1


if __name__ == "__main__":
    sys.exit(main())
