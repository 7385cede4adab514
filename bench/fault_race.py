"""Race run: many worker processes contend for a small pool at full speed; every UTXO must be
spent at most once and every record published exactly once. Prints the fault-run table.

Full run (the issue's figures): 8 workers, 5,000 records, a pool of 300 UTXOs::

    .venv/bin/python bench/fault_race.py
    .venv/bin/python bench/fault_race.py --quick         # CI: 4 workers, 200 records, 15 UTXOs

Records are accepted as fast as the intake goes (``--submit-rate``), so the queue is deep and
every worker reserves at the same moments (``FOR UPDATE SKIP LOCKED`` on PostgreSQL); the pool
is small against the load, so change outputs are re-used along unconfirmed chains up to
``MAX_UNCONFIRMED_DEPTH`` and jobs wait for blocks.
"""

from __future__ import annotations

import sys

from fault_lib import Harness, base_parser, report


def main() -> int:
    parser = base_parser(
        __doc__,
        records=5000,
        workers=8,
        utxos=300,
        submit_rate=200.0,
        max_seconds=2400.0,
        block_interval=3.0,
    )
    args = parser.parse_args()
    if args.quick:
        args.records, args.workers, args.utxos = 200, 4, 15
        args.recovery_seconds = min(args.recovery_seconds, 120)
    with Harness("race", args) as h:
        h.start_workers()
        h.start_miner()
        h.submit_all()
        h.wait_until(
            lambda: h.submitted.is_set() and h.published_count() >= len(h.job_ids),
            args.max_seconds,
            every=15,
            what="racing",
        )
        h.recover()
        result = h.check()
    return report("race run", result)


if __name__ == "__main__":
    sys.exit(main())
