"""Crash run: ``kill -9`` of worker processes at random points while records are published,
then recovery; prints records submitted, published, published twice, UTXOs spent twice, jobs
not ended, reservations left past timeout (the last four must be 0).

Full run (the issue's figures): 2,000 records, 4 workers, 50+ kills, PostgreSQL, regtest::

    .venv/bin/python bench/fault_crash.py
    .venv/bin/python bench/fault_crash.py --quick        # CI: 150 records, 8 kills

Faults go on, one every ``--kill-interval`` seconds on average (4), until 95 % of the
records are published and at least ``--kills`` were made. Workers run their jobs in-process
(``worker.py``, RQ's ``SimpleWorker``), except the first ``--fork-workers`` (1), which run
``worker.py --fork`` (a work horse per job). Each fault is one of:

* ``kill -9`` of a whole worker (its main process and its children, by pid: the RQ scheduler
  process if it holds the lock, a ``--fork`` worker's horse): the job it runs is left
  ``processing``; the worker is restarted at once (most faults);
* ``kill -9`` of the work horse only, on a ``--fork`` worker (the worker survives and takes
  the next job);
* SIGTERM once (warm shutdown): the worker finishes its job and exits 0, and the supervisor
  restarts it; nothing may be left ``processing``.

Faults come at random moments, so kills land in every step of a job: claim, reservation,
signing, storing, broadcasting, settling. Jobs are settled by the reaper once their lease
(``--reservation-timeout``, 10 s) expires.
"""

from __future__ import annotations

import sys
import time

from fault_lib import Harness, base_parser, log, report


def main() -> int:
    parser = base_parser(
        __doc__,
        records=2000,
        workers=4,
        utxos=100,
        submit_rate=20.0,
        max_seconds=1800.0,
        fork_workers=1,
    )
    parser.add_argument(
        "--kills",
        type=int,
        default=50,
        help="faults to inject (at least): kill -9 of workers or horses, warm stops",
    )
    parser.add_argument(
        "--kill-interval", type=float, default=4.0, help="mean seconds between kills"
    )
    args = parser.parse_args()
    if args.quick:
        args.records, args.workers, args.utxos, args.kills = 150, 2, 30, 8
        args.submit_rate, args.kill_interval = 25.0, 1.5
        args.recovery_seconds = min(args.recovery_seconds, 120)
    with Harness("crash", args) as h:
        h.start_workers()
        h.start_miner()
        h.submit_all()
        kills = hits = horse_only = warm = 0
        # kill all through the publishing, not only while records arrive: until 95 % are
        # published, and at least --kills times
        while time.monotonic() < h.deadline:
            busy = not h.submitted.is_set() or h.published_count() < 0.95 * args.records
            # the quick (CI) form stops at its kill count: on a loaded 2-core machine a
            # restarted worker needs seconds to boot, and killing on until 95 % are published
            # could starve the run
            if kills >= args.kills and (not busy or args.quick):
                break
            time.sleep(h.rng.uniform(0.2, 2 * args.kill_interval - 0.2))
            worker = h.rng.choice(h.workers)
            roll = h.rng.random()
            if roll < 0.15:
                h.stop_worker(worker)
                warm += 1
            elif roll < 0.4 and any(w.fork for w in h.workers):
                hits += h.kill_worker(
                    h.rng.choice([w for w in h.workers if w.fork]), horse_only=True
                )
                horse_only += 1
            else:
                hits += h.kill_worker(worker)
            kills += 1
            if kills % 10 == 0:
                log(f"{kills} kills: {h.progress()}")
        h.stats["kill -9 (worker and children)"] = kills - horse_only - warm
        h.stats["kill -9 (work horse only, --fork worker)"] = horse_only
        h.stats["SIGTERM (warm stop, restarted)"] = warm
        h.stats["processes killed"] = hits
        log(f"faults over after {kills} kills; waiting for the rest")
        h.wait_until(
            lambda: h.published_count() >= len(h.job_ids) and h.submitted.is_set(),
            args.recovery_seconds,
            what="publishing",
        )
        h.recover()
        result = h.check()
    return report("crash run", result)


if __name__ == "__main__":
    sys.exit(main())
