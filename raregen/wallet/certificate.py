"""What the public record page and the printable certificate show about a record (reading
only: the chain through :func:`raregen.publish.records.read_records`, this server's jobs).

* :func:`published_outputs`: the outputs of a transaction whose records this server
  published, so the record page offers their proof file (``GET /v1/records/<txid>/<vout>/proof``).
* :func:`certificate_facts`: the facts printed on a work's certificate: title, creator,
  fingerprint (the record's ``contentHash``), signer key, block height, hash and time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from raregen.chain.rpc import RPCError, RPCTransportError
from raregen.db import db, transaction
from raregen.errors import NotFound, RareGenError
from raregen.publish import records, services
from raregen.publish.models import FAILED, PublishJob

__all__ = ["certificate_facts", "published_outputs"]


def published_outputs(txid: str) -> set[int]:
    """Output indexes of ``txid`` (lowercase hex) that carry a record this server published
    and did not give up on; empty when the database cannot be read."""
    try:
        with transaction():
            rows = db.session.scalars(
                select(PublishJob.vout).where(
                    PublishJob.txid == txid.lower(),
                    PublishJob.vout.is_not(None),
                    PublishJob.status != FAILED,
                )
            ).all()
    except SQLAlchemyError:
        return set()
    return {int(v) for v in rows if v is not None}


def _utc(seconds: Any) -> str | None:
    if isinstance(seconds, int) and 0 < seconds < 2**33:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return None


def _block_time(block_hash: str | None) -> str | None:
    if not block_hash:
        return None
    try:
        header = services.node_rpc().call("getblockheader", block_hash, True)
    except (RPCError, RPCTransportError, RareGenError):  # the time is shown as unknown
        return None
    return _utc(header.get("time") if isinstance(header, dict) else None)


def certificate_facts(txid: str, vout: int) -> dict[str, Any]:
    """The certificate of the work recorded at output ``txid:vout``.

    Returns:
        ``{"txid", "vout", "title", "creator", "contentHash", "mediaType", "license",
        "signer" (compressed key hex), "signedAt", "blockHeight", "blockHash", "blockTime"}``;
        the block members are None while the transaction is not in a block, optional record
        members None when absent. Times are ``YYYY-MM-DD HH:MM:SS UTC``.

    Raises:
        RequestError: MALFORMED_JSON (field txid), a txid that is not 64 hex characters.
        NotFound: no such transaction, or no valid record of kind ``work`` at that output.
        ServiceError: the node is unreachable.
    """
    found = records.read_records(txid)
    rec = next((r for r in found["records"] if r["vout"] == vout), None)
    if rec is None or not rec["valid"]:
        raise NotFound("No valid record at this output.", field="vout")
    payload = json.loads(rec["signedPayload"])  # valid: the contract's canonical JSON object
    record = payload.get("record") if isinstance(payload.get("record"), dict) else {}
    if payload.get("type") != "work" or not isinstance(record.get("contentHash"), str):
        raise NotFound("The record at this output is not a registered work.", field="vout")

    def text(name: str) -> str | None:
        value = record.get(name)
        return value if isinstance(value, str) and value else None

    return {
        "txid": found["txid"],
        "vout": vout,
        "title": text("title"),
        "creator": text("creator"),
        "contentHash": record["contentHash"].lower(),
        "mediaType": text("mediaType"),
        "license": text("license"),
        "signer": rec["pubkey"],
        "signedAt": _utc(payload.get("iat")),
        "blockHeight": found["blockHeight"],
        "blockHash": found["blockHash"],
        "blockTime": _block_time(found["blockHash"]),
    }
