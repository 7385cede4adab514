"""Block-header sources the user names for ``raregen verify --check-header`` (docs/PROOFS.md):
do they agree that block X at height H is on the chain?

* an SV Node's JSON-RPC (``getblockheader <hash> true``: ``confirmations`` is -1 for a
  block off the active chain, error -5 for an unknown one);
* a block-headers service URL answering ``GET <URL>/<blockhash>`` with ``200
  {"height": H, ...}`` for a block on its main chain and ``404`` for any other.

Answers: ``"agrees"``, ``"disagrees"`` (unknown block, other height, or not on the main
chain) or ``"unreachable"`` (transport failure, timeout, any other answer).
"""

from __future__ import annotations

from typing import Any

import requests

from raregen.chain.rpc import NodeRPC, RPCError, RPCTransportError

__all__ = ["check_with_node", "check_with_url"]

TIMEOUT = (3.05, 10.0)


def check_with_node(
    block_hash: str, height: int, url: str, user: str | None, password: str | None
) -> tuple[str, str]:
    """Ask an SV Node. Returns ``(answer, detail)``."""
    rpc = NodeRPC(url, user or "", password or "", timeout=TIMEOUT)
    try:
        head = rpc.call("getblockheader", block_hash, True)
    except RPCTransportError as exc:
        return "unreachable", f"the node at {url} cannot be asked: {exc}"
    except RPCError as exc:
        if exc.code in (-5, -8):
            return "disagrees", "the node does not know this block"
        return "unreachable", f"the node answered {exc.code}: {exc.message}"
    return _judge(head, height, "the node")


def check_with_url(block_hash: str, height: int, url: str) -> tuple[str, str]:
    """Ask a block-headers service (module contract). Returns ``(answer, detail)``."""
    target = f"{url.rstrip('/')}/{block_hash}"
    try:
        resp = requests.get(target, timeout=TIMEOUT, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        return "unreachable", f"{target} cannot be reached: {exc.__class__.__name__}"
    if resp.status_code == 404:
        return "disagrees", "the source does not know this block on its main chain"
    if resp.status_code != 200:
        return "unreachable", f"{target} answered HTTP {resp.status_code}"
    try:
        body = resp.json()
    except ValueError:
        return "unreachable", f"{target} did not answer JSON"
    return _judge(body, height, "the source")


def _judge(body: Any, height: int, who: str) -> tuple[str, str]:
    if not isinstance(body, dict) or not isinstance(body.get("height"), int):
        return "unreachable", f"{who} answered without a height"
    if int(body.get("confirmations", 0)) < 0:
        return "disagrees", f"{who} knows the block but not on its main chain"
    if body["height"] != height:
        return "disagrees", f"{who} puts this block at height {body['height']}, not {height}"
    return "agrees", f"{who} has this block at height {height}"
