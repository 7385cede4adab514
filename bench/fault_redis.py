"""Redis loss: ``FLUSHALL`` midway through a run (every RQ job, queued, scheduled or running,
and every worker registration is gone), then recovery. The database is the source of truth:
the sweeper re-enqueues the ``queued`` jobs no RQ job carries. Prints the fault-run table;
all records must be published, none twice.

Full run (the issue's figures): 1,000 records, 4 workers::

    .venv/bin/python bench/fault_redis.py
    .venv/bin/python bench/fault_redis.py --quick        # CI: 150 records

The flush hits the run's own embedded Redis (``FLUSHALL``); with ``--redis-url`` only that
database is flushed (``FLUSHDB``), so a shared server is never wiped.
"""

from __future__ import annotations

import sys

from fault_lib import Harness, base_parser, log, report


def main() -> int:
    parser = base_parser(
        __doc__, records=1000, workers=4, utxos=100, submit_rate=40.0, max_seconds=1500.0
    )
    parser.add_argument(
        "--flush-at",
        type=float,
        default=0.5,
        help="flush once this fraction of the records is published",
    )
    parser.add_argument("--flushes", type=int, default=1, help="how many times to flush")
    args = parser.parse_args()
    if args.quick:
        args.records, args.workers, args.utxos, args.submit_rate = 150, 2, 30, 40.0
        args.recovery_seconds = min(args.recovery_seconds, 120)
    import redis

    with Harness("redis", args) as h:
        h.start_workers()
        h.start_miner()
        h.submit_all()
        conn = redis.Redis.from_url(h.redis_url)
        for n in range(args.flushes):
            share = args.flush_at * (n + 1) / args.flushes
            h.wait_until(
                lambda s=share: h.published_count() >= s * args.records,
                args.max_seconds,
                what="before the flush",
            )
            before = conn.dbsize()
            if args.redis_url:
                conn.flushdb()
            else:
                conn.flushall()
            h.stats["redis flushes"] += 1
            h.stats["redis keys flushed"] += before
            log(f"FLUSH: {before} Redis keys gone; {h.progress()}")
        h.wait_until(
            lambda: h.submitted.is_set() and h.published_count() >= len(h.job_ids),
            args.recovery_seconds,
            what="after the flush",
        )
        h.recover()
        result = h.check()
    return report("Redis loss", result)


if __name__ == "__main__":
    sys.exit(main())
