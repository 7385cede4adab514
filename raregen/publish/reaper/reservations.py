"""Abandoned reservations (docs/PROTOCOL.md §4).

:func:`settle_reservations` ends reservations that outlived their timeout while holding a
signed transaction that no live (``queued``/``processing``) job owns, either by txid or as
the reservation's holder (a crash inside :func:`raregen.publish.funding.split`, say): spent
if the chain knows the spender (its outputs to us are imported), released if the input is
still unspent, dirty otherwise.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from raregen.db import db, transaction, utcnow
from raregen.publish import confirm, pipeline, pool, services
from raregen.publish.broadcasters.base import BroadcasterUnavailable
from raregen.publish.models import PROCESSING, QUEUED, RESERVED, PublishJob, Utxo

log = logging.getLogger(__name__)


def settle_reservations(limit: int = 500) -> int:
    """End reservations past their timeout that hold a signed transaction no ``queued`` or
    ``processing`` job owns (see the module docstring).

    Returns:
        How many were settled.
    """
    now = utcnow()
    with transaction():
        rows = db.session.execute(
            select(Utxo.id, Utxo.txid, Utxo.vout, Utxo.spent_by_txid, Utxo.reserved_by)
            .where(
                Utxo.status == RESERVED,
                Utxo.reserved_until < now,
                Utxo.spent_by_txid.is_not(None),
            )
            .limit(limit)
        ).all()
        live = (QUEUED, PROCESSING)
        owned = set(
            db.session.scalars(
                select(PublishJob.txid).where(
                    PublishJob.txid.in_([r.spent_by_txid for r in rows] or [""]),
                    PublishJob.status.in_(live),
                )
            )
        )
        # a live job holding the reservation owns it even when the transaction is kept
        # elsewhere (packed batches store it on the batch row)
        holders = set(
            db.session.scalars(
                select(PublishJob.job_id).where(
                    PublishJob.job_id.in_([r.reserved_by for r in rows if r.reserved_by] or [""]),
                    PublishJob.status.in_(live),
                )
            )
        )
    chain = services.broadcaster()
    settled = 0
    for utxo_id, txid, vout, spender_or_none, holder in rows:
        spender = str(spender_or_none)
        if spender in owned or holder in holders:
            continue
        try:
            known = chain.tx_status(spender).state != "unknown"
            state = "spent" if known else chain.output_status(txid, vout)
        except BroadcasterUnavailable:
            continue
        with transaction():
            utxo = db.session.get(Utxo, utxo_id, populate_existing=True)
            if utxo is None or utxo.status != RESERVED or utxo.spent_by_txid != spender:
                continue
            if known:
                pool.mark_spent(utxo, spender)
                _import_outputs(spender, utxo.depth + 1)
            elif state == "unspent":
                pool.release(utxo)
            else:
                pool.mark_dirty(utxo, f"abandoned reservation, input {state}")
            settled += 1
    return settled


def _import_outputs(txid: str, depth: int) -> None:
    """Add the outputs of ``txid`` that pay the server key to the pool (from a job's stored
    transaction, else from the node). Logs and returns if the raw transaction is not at hand
    (``pool sync`` imports it later)."""
    raw = confirm.stored_raw_tx(txid)
    if raw is None:
        try:
            raw = services.node_rpc().call("getrawtransaction", txid, 0)
        except Exception as exc:
            log.warning(
                "outputs of %s not imported (%s); run `pool sync`", txid, exc.__class__.__name__
            )
            return
    wallet = services.server_wallet()
    for vout, sats in pipeline.outputs_to(str(raw), wallet.locking_script_hex):
        purpose = "funding" if sats >= 1_000_000 else "publish"
        pool.add_utxo(txid, vout, sats, wallet.locking_script_hex, purpose=purpose, depth=depth)
