"""Reading records back from the chain (``GET /v1/records/<txid>``, docs/PROTOCOL.md §3)."""

from __future__ import annotations

import re
from typing import Any

import raregen.protocol as protocol
from raregen.chain.rpc import RPCError, RPCTransportError
from raregen.errors import NotFound, RequestError, ServiceError
from raregen.publish import services

_TXID = re.compile(r"\A[0-9a-fA-F]{64}\Z")


def read_records(txid: str) -> dict[str, Any]:
    """Fetch transaction ``txid`` from the node and verify every RareGen record in it.

    Returns:
        ``{"txid", "rawTx" (hex), "blockHash", "blockHeight" (None while unconfirmed),
        "records": [{"vout", "version", "signatureScheme", "signedPayload", "signature"
        (base64: DER or compact BSM), "pubkey" (hex),
        "valid", "error"}]}``.

    Raises:
        RequestError: MALFORMED_JSON (field txid) for a txid that is not 64 hex characters.
        NotFound: the node does not know the transaction.
        ServiceError: the node is unreachable.
    """
    if not _TXID.match(txid):
        raise RequestError(
            "A txid is 64 hexadecimal characters.", code="MALFORMED_JSON", field="txid"
        )
    rpc = services.node_rpc()
    try:
        info = rpc.call("getrawtransaction", txid.lower(), 1)
    except RPCError:
        raise NotFound("No transaction with this txid is known.", field="txid") from None
    except RPCTransportError:
        raise ServiceError("The node is unreachable; try again shortly.") from None
    raw_hex = info["hex"]
    height = None
    block_hash = info.get("blockhash")
    if block_hash:
        try:
            height = rpc.call("getblockheader", block_hash, True).get("height")
        except (RPCError, RPCTransportError):
            height = None
    return {
        "txid": txid.lower(),
        "rawTx": raw_hex,
        "blockHash": block_hash,
        "blockHeight": height,
        "records": [r.to_dict() for r in protocol.extract_records(bytes.fromhex(raw_hex))],
    }
