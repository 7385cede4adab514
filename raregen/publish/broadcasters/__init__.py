"""Broadcasting backends (DESIGN.md §5).

Public API::

    from raregen.publish.broadcasters import (
        Outcome, BroadcastResult, TxStatus, Broadcaster, BroadcasterUnavailable,
        FailoverBroadcaster, SVNodeBroadcaster, classify_node_error,
        REGISTRY, register_broadcaster, build_broadcaster, build_chain,
    )

    b = build_broadcaster("node", rpc_url="http://127.0.0.1:18332", rpc_user="u", rpc_password="p")
    result = b.broadcast(raw_hex)          # BroadcastResult(txid, outcome, detail, backend)
    chain = build_chain(app.config)        # BROADCASTERS = ["node", "arc", ...] in failover order

Importing this package registers the built-in backends ("node"). Other backends (ARC,
WhatsOnChain) register in their own modules with :func:`register_broadcaster` and are
imported here.
"""

from __future__ import annotations

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

__all__ = [
    "REGISTRY",
    "BroadcastResult",
    "Broadcaster",
    "BroadcasterUnavailable",
    "FailoverBroadcaster",
    "Outcome",
    "OutputState",
    "SVNodeBroadcaster",
    "TxState",
    "TxStatus",
    "build_broadcaster",
    "build_chain",
    "classify_node_error",
    "register_broadcaster",
    "settings_from_config",
    "txid_of",
]
