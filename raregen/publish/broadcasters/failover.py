"""Failover across several broadcasting backends, in order (docs/PROTOCOL.md §5)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from raregen.publish.broadcasters.interface import Broadcaster
from raregen.publish.broadcasters.outcomes import (
    BroadcasterUnavailable,
    BroadcastResult,
    Outcome,
    OutputState,
    TxStatus,
)

log = logging.getLogger(__name__)


def statuses_of(backend: Any, txids: Sequence[str]) -> list[TxStatus]:
    """Where each of ``txids`` is: the backend's ``tx_statuses`` (many txids in one call,
    e.g. one JSON-RPC batch to the SV Node) when it has one, else :meth:`Broadcaster.tx_status`
    one by one.

    Returns:
        One :class:`TxStatus` per txid, same order.

    Raises:
        BroadcasterUnavailable: the backend cannot be asked now.
    """
    many = getattr(backend, "tx_statuses", None)
    if callable(many):
        return list(many(list(txids)))
    return [backend.tx_status(txid) for txid in txids]


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

    def tx_statuses(self, txids: Sequence[str]) -> list[TxStatus]:
        """:meth:`tx_status` of many txids, each backend asked once for all the txids no
        earlier backend placed (:func:`statuses_of`). Same rules: the first answer that is
        not "unknown" wins; a backend that raises :class:`BroadcasterUnavailable` is
        skipped; a txid no backend answered raises the last error."""
        wanted = list(txids)
        found: dict[int, TxStatus] = {}
        answered: set[int] = set()
        last_error: BroadcasterUnavailable | None = None
        pending = list(range(len(wanted)))
        for backend in self.backends:
            if not pending:
                break
            try:
                answers = statuses_of(backend, [wanted[i] for i in pending])
            except BroadcasterUnavailable as exc:
                last_error = exc
                continue
            still = []
            for i, status in zip(pending, answers, strict=True):
                found[i] = status
                answered.add(i)
                if status.state == "unknown":
                    still.append(i)
            pending = still
        if len(answered) < len(wanted):
            assert last_error is not None
            raise last_error
        return [found[i] for i in range(len(wanted))]

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
