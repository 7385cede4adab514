"""The audit trail: one append-only row per noteworthy action."""

from __future__ import annotations

import json
from typing import Any

from raregen.db import db
from raregen.publish.models import AuditLog


def audit(actor: str, action: str, subject: str | None = None, **detail: Any) -> None:
    """Add an audit row to the current transaction (the caller's :func:`transaction` commits).

    Args:
        actor: who acted, e.g. ``"cli"``, ``"worker"``, ``"key:02ab…"``, ``"account:42"``.
        action: ``source:subject:action``, e.g. ``"publish:job:sent"``.
        subject: the id acted on (job id, txid:vout, pubkey).
        detail: JSON-serialisable facts. Never secrets.
    """
    db.session.add(
        AuditLog(
            actor=actor,
            action=action,
            subject=subject,
            detail=json.dumps(detail, sort_keys=True, default=str) if detail else None,
        )
    )
