"""Publishing events in the audit log, each in the transaction of its change: accepted
(the one-statement path on PostgreSQL too), batch and packed settlement listing the jobs
sent, confirmation listing a transaction's jobs; and the chain stays whole through them."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select

from raregen import audit
from raregen.db import db, transaction
from raregen.publish import batch, confirm, services
from raregen.publish.models import AuditLog
from tests.integration.test_batch import _submit


def _entries(action: str) -> list[tuple[str | None, dict]]:
    with transaction():
        rows = db.session.execute(
            select(AuditLog.subject, AuditLog.detail)
            .where(AuditLog.action == action)
            .order_by(AuditLog.seq)
        ).all()
    return [(subject, json.loads(detail) if detail else {}) for subject, detail in rows]


def _chain_intact() -> None:
    with transaction():
        report = audit.verify()
    assert report.problem is None, report.problem


def test_batch_settlement_lists_the_jobs_sent(chain_app, author):
    chain_app.config.update(PUBLISH_MODE="batch")
    ids = _submit(chain_app.test_client(), author, 3)
    assert sorted(s for s, _ in _entries("publish:job:accepted")) == sorted(ids)
    report = batch.collect_batch()
    assert report.counts.get("sent") == 3
    settled = _entries("publish:batch:settled")
    assert settled == [(report.batch_id, {"sent": 3, "sent_jobs": sorted(ids)})]
    _chain_intact()


def test_packed_settlement_and_confirmation_list_their_jobs(
    chain_app, author, regtest_node, caplog
):
    chain_app.config.update(PUBLISH_MODE="packed")
    ids = _submit(chain_app.test_client(), author, 4)
    report = batch.collect_packed()
    assert report.counts.get("sent") == 4
    [(subject, detail)] = _entries("publish:batch:settled")
    assert subject == report.batch_id and detail["sent_jobs"] == sorted(ids)
    txid = detail["txid"]
    regtest_node.mine(1)
    status = services.broadcaster().tx_status(txid)
    # rolled back: the jobs stay sent and no entry is left
    with pytest.raises(RuntimeError), transaction():
        assert confirm.mark_confirmed(txid, status) == 4
        raise RuntimeError("abort")
    assert _entries("publish:tx:confirmed") == []
    with caplog.at_level(logging.INFO, logger="raregen.audit"):
        assert confirm.confirm_sent() == 4
    [(subject, detail)] = _entries("publish:tx:confirmed")
    assert subject == txid and detail["jobs"] == sorted(ids)
    # its log line (raregen.logs) names every job: grep of one job id finds its confirmation
    [line] = [
        r.getMessage()
        for r in caplog.records
        if getattr(r, "action", None) == "publish:tx:confirmed"
    ]
    assert txid in line and all(job in line for job in ids), line
    assert detail["block_height"] == status.block_height
    _chain_intact()
