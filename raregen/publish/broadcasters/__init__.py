"""Broadcasting backends (docs/PROTOCOL.md §5).

Public API::

    from raregen.publish.broadcasters import (
        Outcome, BroadcastResult, TxStatus, Broadcaster, BroadcasterUnavailable,
        FailoverBroadcaster, SVNodeBroadcaster, classify_node_error,
        REGISTRY, register_broadcaster, build_broadcaster, build_chain,
    )

    b = build_broadcaster("node", rpc_url="http://127.0.0.1:18332", rpc_user="u", rpc_password="p")
    result = b.broadcast(raw_hex)          # BroadcastResult(txid, outcome, detail, backend)
    chain = build_chain(app.config)        # BROADCASTERS = ["node", "arc", ...] in failover order

Importing this package registers the built-in backends: "node" (SV Node JSON-RPC), "arc"
(ARC, ``arc.py``) and "woc" (WhatsOnChain, ``woc.py``); each registers itself with
:func:`register_broadcaster` in its module. ``BROADCASTERS=arc,node`` in the configuration
builds a failover over ARC then the node, each from its ``<NAME>_*`` settings
(``ARC_URL``, ``ARC_API_KEY``, ``WOC_URL``, ``WOC_NETWORK``, ``NODE_RPC_URL`` ...).
"""

from __future__ import annotations

from raregen.publish.broadcasters.arc import ARCBroadcaster, classify_arc_answer
from raregen.publish.broadcasters.base import (
    REGISTRY,
    Broadcaster,
    BroadcasterUnavailable,
    BroadcastResult,
    FailoverBroadcaster,
    Outcome,
    OutputState,
    TxState,
    TxStatus,
    build_broadcaster,
    build_chain,
    register_broadcaster,
    settings_from_config,
    txid_of,
)
from raregen.publish.broadcasters.node import SVNodeBroadcaster, classify_node_error
from raregen.publish.broadcasters.woc import (
    WhatsOnChainBroadcaster,
    classify_woc_answer,
)

__all__ = [
    "REGISTRY",
    "ARCBroadcaster",
    "BroadcastResult",
    "Broadcaster",
    "BroadcasterUnavailable",
    "FailoverBroadcaster",
    "Outcome",
    "OutputState",
    "SVNodeBroadcaster",
    "TxState",
    "TxStatus",
    "WhatsOnChainBroadcaster",
    "build_broadcaster",
    "build_chain",
    "classify_arc_answer",
    "classify_node_error",
    "classify_woc_answer",
    "register_broadcaster",
    "settings_from_config",
    "txid_of",
]
