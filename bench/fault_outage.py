"""Broadcaster outage: the regtest node is stopped for 60 seconds during a run (workers keep
signing and get TRANSIENT answers; jobs wait with their stored transactions), then started
again on the same datadir and ports; recovery. All records must be published after it
returns, none twice, and no UTXO left reserved. Prints the fault-run table.

Full run: 1,000 records, 4 workers, a 60 s outage::

    .venv/bin/python bench/fault_outage.py
    .venv/bin/python bench/fault_outage.py --quick       # CI: 150 records, 10 s outage

The node is stopped cleanly (RPC ``stop``: it writes its mempool to disk) and restarted with
the same datadir, so the chain and the mempool come back as a restarted node's would.
"""

from __future__ import annotations

import sys
import time

from fault_lib import Harness, base_parser, log, report


def main() -> int:
    parser = base_parser(
        __doc__, records=1000, workers=4, utxos=100, submit_rate=30.0, max_seconds=1500.0
    )
    parser.add_argument("--outage", type=float, default=60.0, help="seconds the node is down")
    parser.add_argument(
        "--stop-at",
        type=float,
        default=0.3,
        help="stop the node once this fraction of the records is published",
    )
    args = parser.parse_args()
    if args.quick:
        args.records, args.workers, args.utxos, args.outage = 150, 2, 30, 10.0
        args.submit_rate = 25.0
        args.recovery_seconds = min(args.recovery_seconds, 150)
    from raregen_dev.devnet import RegtestNode

    with Harness("outage", args) as h:
        h.start_workers()
        h.start_miner()
        h.submit_all()
        h.wait_until(
            lambda: h.published_count() >= args.stop_at * args.records,
            args.max_seconds,
            what="before the outage",
        )
        h.mining.clear()
        node = h.node
        rpc_port, p2p_port, datadir, binary = (
            node.rpc_port,
            node.p2p_port,
            node.datadir,
            node._binary,
        )
        mempool = len(node.rpc.call("getrawmempool"))
        log(f"OUTAGE: stopping the node ({mempool} txs in its mempool); {h.progress()}")
        node.stop()
        down_at = time.monotonic()
        while time.monotonic() - down_at < args.outage:
            time.sleep(min(10.0, args.outage))
            log(f"node down {time.monotonic() - down_at:.0f} s: {h.progress()}")
        h.node = RegtestNode(datadir, rpc_port=rpc_port, p2p_port=p2p_port, binary=binary)
        h.node.start()
        back = len(h.node.rpc.call("getrawmempool"))
        log(f"node back after {time.monotonic() - down_at:.0f} s with {back} mempool txs")
        h.stats["outage seconds"] = round(time.monotonic() - down_at)
        h.mining.set()
        h.wait_until(
            lambda: h.submitted.is_set() and h.published_count() >= len(h.job_ids),
            args.recovery_seconds,
            what="after the outage",
        )
        h.recover()
        result = h.check()
    return report("broadcaster outage", result, extra_zero=("UTXOs left reserved",))


if __name__ == "__main__":
    sys.exit(main())
