"""Confirmation tracking: ``sent -> confirmed`` with block hash and height (DESIGN.md §1 step 4).

A ``sent`` transaction that the network no longer knows (dropped from the mempool) is sent
again from the stored raw transaction; it is never re-signed.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update

from raregen.db import db, transaction, utcnow
from raregen.publish import pool, services
from raregen.publish.models import CONFIRMED, SENT, PublishJob

log = logging.getLogger(__name__)


def confirm_sent(limit: int = 2000) -> int:
    """Ask the chain about the transactions of ``sent`` jobs and settle the mined ones.

    Args:
        limit: at most this many distinct txids per call.

    Returns:
        The number of jobs marked ``confirmed``.
    """
    with transaction():
        rows = db.session.execute(
            select(PublishJob.txid, PublishJob.raw_tx)
            .where(PublishJob.status == SENT, PublishJob.txid.is_not(None))
            .distinct()
            .limit(limit)
        ).all()
    chain = services.broadcaster()
    confirmed = 0
    for txid, raw_tx in rows:
        try:
            status = chain.tx_status(txid)
        except Exception as exc:
            log.warning("status of %s unavailable: %s", txid, exc.__class__.__name__)
            continue
        if status.state == "confirmed":
            with transaction():
                result = db.session.execute(
                    update(PublishJob)
                    .where(PublishJob.txid == txid, PublishJob.status == SENT)
                    .values(
                        status=CONFIRMED,
                        block_hash=status.block_hash,
                        block_height=status.block_height,
                        confirmed_at=utcnow(),
                    )
                    .execution_options(synchronize_session=False)
                )
                pool.mark_confirmed_outputs(txid)
                confirmed += int(result.rowcount or 0)
        elif status.state == "unknown" and raw_tx:
            try:
                chain.broadcast(raw_tx)
            except Exception as exc:
                log.warning("re-broadcast of %s failed: %s", txid, exc.__class__.__name__)
    return confirmed
