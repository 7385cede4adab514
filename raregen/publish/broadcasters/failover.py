"""Failover across several broadcasting backends, in order (docs/PROTOCOL.md §5)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from raregen.publish.broadcasters.interface import Broadcaster
from raregen.publish.broadcasters.outcomes import (
    BroadcasterUnavailable,
    BroadcastResult,
    Outcome,
    OutputState,
    TxStatus,
)

log = logging.getLogger(__name__)


class FailoverBroadcaster:
    """Several backends in order: a transaction goes to the next backend only when the
    previous one answered TRANSIENT. Any other answer (success or a real rejection) is
    final.

    Status queries ask the backends in order and return the first answer that is not
    "unknown"; a backend that raises :class:`BroadcasterUnavailable` is skipped; if every
    backend raised, the last error is raised.
    """

    def __init__(self, backends: Sequence[Broadcaster]):
        if not backends:
            raise ValueError("FailoverBroadcaster needs at least one backend")
        self.backends: list[Broadcaster] = list(backends)
        self.name = "failover(" + ",".join(b.name for b in self.backends) + ")"

    def broadcast(self, raw_hex: str) -> BroadcastResult:
        result: BroadcastResult | None = None
        for backend in self.backends:
            result = backend.broadcast(raw_hex)
            if result.outcome is not Outcome.TRANSIENT:
                return result
            log.info("broadcast via %s transient (%s); trying next", backend.name, result.detail)
        assert result is not None
        return result

    def broadcast_many(self, raw_hexes: Sequence[str]) -> list[BroadcastResult]:
        raws = list(raw_hexes)
        results: list[BroadcastResult | None] = [None] * len(raws)
        pending = list(range(len(raws)))
        for backend in self.backends:
            if not pending:
                break
            answers = backend.broadcast_many([raws[i] for i in pending])
            if len(answers) != len(pending):
                raise RuntimeError(
                    f"{backend.name} returned {len(answers)} results for {len(pending)}"
                )
            still: list[int] = []
            for i, answer in zip(pending, answers, strict=True):  # lengths checked above
                results[i] = answer
                if answer.outcome is Outcome.TRANSIENT:
                    still.append(i)
            pending = still
        return [r for r in results if r is not None]

    def tx_status(self, txid: str) -> TxStatus:
        last_error: BroadcasterUnavailable | None = None
        answered: TxStatus | None = None
        for backend in self.backends:
            try:
                status = backend.tx_status(txid)
            except BroadcasterUnavailable as exc:
                last_error = exc
                continue
            if status.state != "unknown":
                return status
            answered = status
        if answered is not None:
            return answered
        assert last_error is not None
        raise last_error

    def output_status(self, txid: str, vout: int) -> OutputState:
        last_error: BroadcasterUnavailable | None = None
        answered = False
        for backend in self.backends:
            try:
                state = backend.output_status(txid, vout)
            except BroadcasterUnavailable as exc:
                last_error = exc
                continue
            if state != "unknown":
                return state
            answered = True
        if answered:
            return "unknown"
        assert last_error is not None
        raise last_error

    def fee_rate_sat_per_kb(self) -> int | None:
        for backend in self.backends:
            try:
                rate = backend.fee_rate_sat_per_kb()
            except BroadcasterUnavailable:
                continue
            if rate is not None:
                return rate
        return None
