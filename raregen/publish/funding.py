"""Funding and splitting the pool (docs/PROTOCOL.md §4): split a large UTXO into N of S satoshis,
replenish under the low-water mark, import the server address's UTXOs, fund in development.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from sqlalchemy import func, select

import raregen.protocol as protocol
from raregen.audit import audit
from raregen.db import db, transaction
from raregen.errors import InsufficientFunds
from raregen.publish import pool, services
from raregen.publish.broadcasters.base import BroadcastResult, Outcome
from raregen.publish.models import (
    AVAILABLE,
    PURPOSE_FUNDING,
    PURPOSE_PUBLISH,
    Utxo,
)
from raregen.publish.txbuilder import (
    SpendableUtxo,
    build_split_tx,
    estimate_size,
    fee_for_size,
)

log = logging.getLogger(__name__)

# an output at least this large is kept as a funding coin, not used to publish directly
FUNDING_THRESHOLD_SATS = 1_000_000


def default_utxo_sats() -> int:
    """The size of a new publish UTXO, satoshis (``POOL_UTXO_SATS`` overrides it).

    Enough for three transactions each carrying one record of the largest allowed payload
    (``MAX_PAYLOAD_BYTES``) with a change output, at the current fee rate, so a UTXO's
    change lives on for a few publishes whatever the payload; in packed mode at least the
    fee of one packed transaction of ``PACKED_MAX_BYTES``. Never below 1000 satoshis.

    At the defaults (100 sat/kB, 100 000-byte payloads) this is 30 099 satoshis; in packed
    mode (1 000 000 bytes) 100 000 satoshis.
    """
    cfg = current_app.config
    if cfg["POOL_UTXO_SATS"]:
        return int(cfg["POOL_UTXO_SATS"])
    rate = services.fee_rate()
    biggest = protocol.record_script(b"x" * cfg["MAX_PAYLOAD_BYTES"], b"\x30" * 72, b"\x02" * 33)
    one = fee_for_size(estimate_size(1, [biggest], with_change=True), rate)
    sats = 3 * one
    if cfg["PUBLISH_MODE"] == "packed" or (cfg["PUBLISH_MODE"] == "auto" and cfg.get("AUTO_PACK")):
        sats = max(sats, fee_for_size(int(cfg["PACKED_MAX_BYTES"]), rate))
    return max(sats, 1000)


def split(count: int, satoshis_each: int, *, actor: str = "cli") -> dict[str, Any]:
    """Split funding coins into ``count`` publish UTXOs of ``satoshis_each``.

    Returns:
        ``{"txid", "count", "satoshis_each", "fee"}``.

    Raises:
        InsufficientFunds: no funding coin is large enough.
        RuntimeError: the broadcast was refused (the detail says why).
    """
    wallet = services.server_wallet()
    rate = services.fee_rate()
    need = count * satoshis_each + 200 + count * 40 * max(rate, 1) // 1000 + 1000
    holder = f"split-{count}x{satoshis_each}"
    with transaction():
        utxo = pool.reserve(need, holder, purpose=PURPOSE_FUNDING, max_depth=10_000)
        if utxo is None:
            utxo = pool.reserve(need, holder, purpose=PURPOSE_PUBLISH, max_depth=10_000)
        if utxo is None:
            raise InsufficientFunds(f"no funding UTXO of at least {need} satoshis")
        spendable = SpendableUtxo(utxo.txid, utxo.vout, utxo.satoshis, utxo.script_pub_key)
        utxo_id, depth = utxo.id, utxo.depth
    try:
        built = build_split_tx(wallet, [spendable], count, satoshis_each, rate)
    except Exception:
        with transaction():
            row = db.session.get(Utxo, utxo_id)
            if row is not None:
                pool.release(row)
        raise
    # record the signed spender before broadcasting: a crash from here on leaves a signed
    # reservation that the reaper settles from the chain (reaper.settle_reservations)
    with transaction():
        row = db.session.get(Utxo, utxo_id)
        assert row is not None
        pool.mark_signed(row, built.txid)
    try:
        result = services.broadcaster().broadcast(built.raw_hex)
    except Exception as exc:  # a backend bug: the outcome is unknown, as for TRANSIENT
        result = BroadcastResult(built.txid, Outcome.TRANSIENT, str(exc)[:300], "unknown")
    if not result.ok:
        with transaction():
            row = db.session.get(Utxo, utxo_id, populate_existing=True)
            if row is not None and result.outcome.dirties_input:
                pool.mark_dirty(row, f"{result.outcome.name}: {result.detail}")
            elif row is not None and result.outcome is Outcome.REJECTED:
                pool.release(row)
            # TRANSIENT and the like: the transaction may be out there; the reservation
            # stays (signed) and the reaper settles it after its timeout
        raise RuntimeError(f"split transaction refused: {result.outcome.name} {result.detail}")
    with transaction():
        row = db.session.get(Utxo, utxo_id, populate_existing=True)
        assert row is not None
        pool.mark_spent(row, built.txid)
        script = wallet.locking_script_hex
        for vout in range(count):
            pool.add_utxo(built.txid, vout, satoshis_each, script, depth=depth + 1)
        if built.change_vout is not None and built.change_satoshis:
            purpose = (
                PURPOSE_FUNDING
                if built.change_satoshis >= FUNDING_THRESHOLD_SATS
                else PURPOSE_PUBLISH
            )
            pool.add_utxo(
                built.txid,
                built.change_vout,
                built.change_satoshis,
                script,
                purpose=purpose,
                depth=depth + 1,
            )
        audit(actor, "pool:utxo:split", built.txid, count=count, satoshis_each=satoshis_each)
    return {"txid": built.txid, "count": count, "satoshis_each": satoshis_each, "fee": built.fee}


def replenish(*, actor: str = "replenish") -> int:
    """Split new publish UTXOs when the pool is under ``POOL_LOW_WATER``.

    Args:
        actor: recorded as the split's actor in the audit log.

    Returns:
        How many UTXOs were added (0 when the pool is healthy or no funding coin is left).
    """
    cfg = current_app.config
    with transaction():
        available = db.session.scalar(
            select(func.count()).where(
                Utxo.status == AVAILABLE,
                Utxo.purpose == PURPOSE_PUBLISH,
                Utxo.dirty.is_(False),
            )
        )
    if (available or 0) >= cfg["POOL_LOW_WATER"]:
        return 0
    count = max(cfg["POOL_TARGET_COUNT"] - int(available or 0), 1)
    try:
        return int(split(count, default_utxo_sats(), actor=actor)["count"])
    except InsufficientFunds:
        log.warning("pool under its low-water mark and no funding coin left")
        return 0
    except RuntimeError as exc:
        log.warning("pool replenishment failed: %s", exc)
        return 0


def sync_from_node(*, rescan: bool = True) -> int:
    """Import the server address's unspent outputs known to the node into the pool.

    Args:
        rescan: let the node rescan the chain for the address (needed for coins sent before
            the address was first imported; slow on a long chain).

    Outputs of at least ``FUNDING_THRESHOLD_SATS`` become funding coins. Returns how many
    were added.
    """
    wallet = services.server_wallet()
    rpc = services.node_rpc()
    rpc.call("importaddress", wallet.address, "", rescan)
    added = 0
    with transaction():
        for row in rpc.call("listunspent", 0, 9_999_999, [wallet.address]):
            sats = round(float(row["amount"]) * 100_000_000)
            purpose = PURPOSE_FUNDING if sats >= FUNDING_THRESHOLD_SATS else PURPOSE_PUBLISH
            depth = 0 if int(row.get("confirmations", 0)) > 0 else 1
            if pool.add_utxo(
                row["txid"],
                int(row["vout"]),
                sats,
                wallet.locking_script_hex,
                purpose=purpose,
                depth=depth,
            ):
                added += 1
        if added:
            audit("cli", "pool:utxo:sync", wallet.address, added=added)
    return added


def fund_dev(satoshis: int = 1_000_000_000) -> dict[str, Any]:
    """Development only: pay ``satoshis`` from the regtest node's wallet to the server address
    (mining blocks first if the node wallet has no mature coins), mine it, and import it.

    Returns:
        ``{"txid", "satoshis", "added"}``.
    """
    if current_app.config["NETWORK"] != "regtest":
        raise RuntimeError("pool fund only works on regtest; fund the server address instead")
    rpc = services.node_rpc()
    wallet = services.server_wallet()
    balance = float(rpc.call("getbalance"))
    if balance * 100_000_000 < satoshis + 1_000_000:
        node_address = rpc.call("getnewaddress")
        rpc.call("generatetoaddress", 101, node_address)
    rpc.call("importaddress", wallet.address, "", False)
    txid = rpc.call("sendtoaddress", wallet.address, satoshis / 100_000_000)
    rpc.call("generatetoaddress", 1, rpc.call("getnewaddress"))
    added = sync_from_node(rescan=False)
    return {"txid": txid, "satoshis": satoshis, "added": added}
