"""The command line: ``python -m raregen_dev.devnet ensure|run``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from raregen_dev.devnet.binary import NodeBinaryError, ensure_node_binary
from raregen_dev.devnet.node import RegtestNode
from raregen_dev.devnet.process import NodeStartError


def main(argv: Sequence[str] | None = None) -> int:
    """``ensure [--cache DIR]``: fetch the binary, print its path.
    ``run --datadir DIR [--rpc-port N] [--mine-interval S]``: run a node until Ctrl-C
    (prints its RPC URL and the conf file holding the credentials)."""
    import argparse
    import signal
    import threading

    parser = argparse.ArgumentParser(prog="python -m raregen_dev.devnet")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_ensure = sub.add_parser("ensure", help="download the regtest node binary if missing")
    p_ensure.add_argument("--cache", type=Path, default=None)
    p_run = sub.add_parser("run", help="run a regtest node in the foreground")
    p_run.add_argument("--datadir", type=Path, required=True)
    p_run.add_argument("--rpc-port", type=int, default=None)
    p_run.add_argument("--cache", type=Path, default=None)
    p_run.add_argument("--mine-interval", type=float, default=0, help="seconds; 0: no mining")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "ensure":
            print(ensure_node_binary(args.cache))
            return 0
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with RegtestNode(args.datadir, rpc_port=args.rpc_port, cache_dir=args.cache) as node:
            node.ensure_wallet_funds(1)
            print(f"regtest node pid {node.pid} at {node.url}; credentials in {node.conf_path}")
            sys.stdout.flush()
            while not stop.wait(args.mine_interval or 3600):
                if args.mine_interval:
                    node.mine(1)
        return 0
    except (NodeBinaryError, NodeStartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
