"""What a broadcasting backend answers: the outcome of one transaction (:class:`Outcome`,
:class:`BroadcastResult`; the table of outcomes is in :mod:`raregen.publish.broadcasters.base`),
where a transaction is (:class:`TxStatus`), the error of a query that could not be asked,
and the txid of a raw transaction. Imports neither Flask nor SQLAlchemy.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Literal


class Outcome(enum.Enum):
    """How a backend answered one transaction (see the module table)."""

    ACCEPTED = "accepted"
    ALREADY_KNOWN = "already_known"
    CONFLICT = "conflict"
    MISSING_INPUTS = "missing_inputs"
    REJECTED = "rejected"
    TOO_LONG_CHAIN = "too_long_chain"
    ORPHAN = "orphan"
    TRANSIENT = "transient"

    @property
    def ok(self) -> bool:
        """ACCEPTED or ALREADY_KNOWN: the transaction is on its way."""
        return self in (Outcome.ACCEPTED, Outcome.ALREADY_KNOWN)

    @property
    def dirties_input(self) -> bool:
        """CONFLICT or MISSING_INPUTS: mark the UTXO dirty, retry with another."""
        return self in (Outcome.CONFLICT, Outcome.MISSING_INPUTS)

    @property
    def retry_later(self) -> bool:
        """TRANSIENT, TOO_LONG_CHAIN or ORPHAN: send the same transaction again later."""
        return self in (Outcome.TRANSIENT, Outcome.TOO_LONG_CHAIN, Outcome.ORPHAN)


@dataclass(frozen=True)
class BroadcastResult:
    """The answer for one transaction.

    Attributes:
        txid: the transaction id (hex, display order); "" if the raw hex was not hex.
        outcome: the classification.
        detail: the backend's own text (for the node: its exact reject message, e.g.
            ``"258: txn-mempool-conflict"``); "" on plain acceptance.
        backend: name of the backend that answered (e.g. ``"node"``).
    """

    txid: str
    outcome: Outcome
    detail: str
    backend: str

    @property
    def ok(self) -> bool:
        """True for ACCEPTED and ALREADY_KNOWN."""
        return self.outcome.ok


TxState = Literal["unknown", "mempool", "confirmed"]
OutputState = Literal["unspent", "spent", "unknown"]


@dataclass(frozen=True)
class TxStatus:
    """Where a transaction is.

    Attributes:
        txid: the transaction id.
        state: ``"unknown"`` (the backend does not know it), ``"mempool"`` or ``"confirmed"``.
        block_hash: hex hash of the containing block when confirmed, else None.
        block_height: height of that block when confirmed, else None.
        confirmations: 0 unless confirmed (1 = in the tip block).
        merkle_path: the backend's BRC-74 merkle path (BUMP hex) of the transaction in that
            block, when its status answer carries one (ARC's ``merklePath``), else None.
    """

    txid: str
    state: TxState
    block_hash: str | None = None
    block_height: int | None = None
    confirmations: int = 0
    merkle_path: str | None = None


class BroadcasterUnavailable(Exception):
    """A status or policy query could not be answered (backend unreachable, timeout, 5xx).

    Attributes:
        backend: name of the backend.
    """

    def __init__(self, backend: str, message: str):
        super().__init__(f"{backend}: {message}")
        self.backend = backend


def txid_of(raw_hex: str) -> str:
    """The txid of a raw transaction: SHA-256d of its bytes, byte-reversed, hex.

    Returns "" when ``raw_hex`` is not hex (such a transaction can only be REJECTED).
    """
    try:
        raw = bytes.fromhex(raw_hex)
    except (ValueError, TypeError):
        return ""
    return hashlib.sha256(hashlib.sha256(raw).digest()).digest()[::-1].hex()
