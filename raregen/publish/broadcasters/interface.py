"""The protocol every broadcasting backend implements (docs/PROTOCOL.md §5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from raregen.publish.broadcasters.outcomes import BroadcastResult, OutputState, TxStatus


@runtime_checkable
class Broadcaster(Protocol):
    """What every backend provides. ``broadcast``/``broadcast_many`` never raise for backend
    trouble: they return TRANSIENT results."""

    name: str

    def broadcast(self, raw_hex: str) -> BroadcastResult:
        """Send one raw transaction (hex) and classify the answer."""
        ...

    def broadcast_many(self, raw_hexes: Sequence[str]) -> list[BroadcastResult]:
        """Send several raw transactions (parents before children); one result per input,
        in the same order."""
        ...

    def tx_status(self, txid: str) -> TxStatus:
        """Where ``txid`` is. Raises :class:`BroadcasterUnavailable`."""
        ...

    def output_status(self, txid: str, vout: int) -> OutputState:
        """``"unspent"`` (in the UTXO set, mempool spends counted), ``"spent"``, or
        ``"unknown"`` (no such output known). Raises :class:`BroadcasterUnavailable`."""
        ...

    def fee_rate_sat_per_kb(self) -> int | None:
        """The backend's minimum fee rate in satoshis per 1000 bytes, or None if unknown."""
        ...
