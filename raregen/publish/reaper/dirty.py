"""Settlement of dirty UTXOs (docs/PROTOCOL.md §4): the chain decides whether a UTXO the pool
could not trust is spent or back in the pool."""

from __future__ import annotations

from sqlalchemy import select

from raregen.db import db, transaction
from raregen.publish import services
from raregen.publish.broadcasters.base import BroadcasterUnavailable
from raregen.publish.models import SPENT, Utxo
from raregen.queue import count_event


def settle_dirty(limit: int = 500) -> int:
    """Ask the chain about dirty UTXOs: unspent ones return to the pool, spent ones are spent;
    ones the chain does not know (their parent dropped) stay dirty until it does.

    Returns:
        How many dirty UTXOs were settled.
    """
    with transaction():
        rows = db.session.execute(
            select(Utxo.id, Utxo.txid, Utxo.vout).where(Utxo.dirty.is_(True)).limit(limit)
        ).all()
    chain = services.broadcaster()
    settled = 0
    for utxo_id, txid, vout in rows:
        try:
            state = chain.output_status(txid, vout)
        except BroadcasterUnavailable:
            continue
        if state == "unknown":
            continue
        with transaction():
            utxo = db.session.get(Utxo, utxo_id, populate_existing=True)
            if utxo is None or not utxo.dirty:
                continue
            utxo.dirty = False
            if state == "spent":
                utxo.status = SPENT
                utxo.reserved_until = None
            settled += 1
    if settled:
        count_event("reaper", "dirty_settled", settled)
    return settled
