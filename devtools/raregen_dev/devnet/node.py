""":class:`RegtestNode`: one regtest node, its process (:mod:`.process`) and its wallet
(:mod:`.wallet`) in one object."""

from __future__ import annotations

from raregen_dev.devnet.process import NodeProcess
from raregen_dev.devnet.wallet import NodeWallet


class RegtestNode(NodeProcess, NodeWallet):
    """One regtest ``bitcoind`` child process (arguments: :class:`~.process.NodeProcess`) with
    the helpers of its node wallet (:class:`~.wallet.NodeWallet`: ``mine``, ``confirm``,
    ``send_to_address``, ``send_outputs``, ...)."""
