"""Shapes of the server's transactions: the UTXO it spends, the transaction it built, and
the checks of amounts in satoshis and fee rates in satoshis per kilobyte (units: the
docstring of :mod:`raregen.publish.txbuilder`). Pure: no bsv-sdk, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MAX_SATOSHIS = 21_000_000 * 100_000_000

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class TxInvariantError(RuntimeError):
    """A signed transaction broke the size or fee bound :mod:`raregen.publish.txbuilder`
    guarantees (a bug)."""


def check_satoshis(value: object, what: str) -> int:
    """Return ``value`` if it is an int of satoshis in 0..21,000,000 BSV.

    Raises:
        TypeError: not an int (a bool is refused). ValueError: out of range.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int of satoshis, got {type(value).__name__}")
    if not 0 <= value <= _MAX_SATOSHIS:
        raise ValueError(f"{what} out of range: {value}")
    return value


def check_rate(rate_sat_per_kb: object) -> int:
    """Return a fee rate in satoshis per 1000 bytes if it is an int >= 0.

    Raises:
        TypeError: not an int (a bool is refused). ValueError: negative.
    """
    if not isinstance(rate_sat_per_kb, int) or isinstance(rate_sat_per_kb, bool):
        raise TypeError("rate_sat_per_kb must be an int (satoshis per 1000 bytes)")
    if rate_sat_per_kb < 0:
        raise ValueError(f"rate_sat_per_kb must be >= 0, got {rate_sat_per_kb}")
    return rate_sat_per_kb


@dataclass(frozen=True, slots=True)
class SpendableUtxo:
    """One unspent output the server wallet can sign for (a row of table ``utxos``).

    Attributes:
        txid: the funding transaction's id, 64 hex characters, display (big-endian) order.
        vout: the output's index in that transaction, 0..2**32-1.
        satoshis: the output's value, satoshis (it enters the FORKID signature hash).
        script_pub_key: the output's locking script, hex; for the pool the wallet's P2PKH.

    Raises:
        ValueError: on construction, if a field is malformed or out of range.
        TypeError: on construction, if ``vout`` or ``satoshis`` is not an int.
    """

    txid: str
    vout: int
    satoshis: int
    script_pub_key: str

    def __post_init__(self) -> None:
        if not isinstance(self.txid, str) or not _HEX64.fullmatch(self.txid):
            raise ValueError("txid must be 64 hex characters")
        if not isinstance(self.vout, int) or isinstance(self.vout, bool):
            raise TypeError("vout must be an int")
        if not 0 <= self.vout <= 0xFFFFFFFF:
            raise ValueError(f"vout out of range: {self.vout}")
        check_satoshis(self.satoshis, "satoshis")
        try:
            bytes.fromhex(self.script_pub_key)
        except (TypeError, ValueError):
            raise ValueError("script_pub_key must be hex") from None

    @property
    def outpoint(self) -> tuple[str, int]:
        """``(txid, vout)``, the identity of this UTXO."""
        return (self.txid.lower(), self.vout)


@dataclass(frozen=True, slots=True)
class BuiltTx:
    """A signed transaction ready to broadcast, with what the pool and jobs need to record.

    Attributes:
        txid: transaction id, 64 hex characters, display order.
        raw_hex: the serialized transaction, lower-case hex.
        size: serialized size, bytes (``len(raw_hex) // 2``).
        fee: satoshis paid to miners, ``sum(inputs) - sum(outputs)``; at least
            ``fee_for_size(size, rate)``.
        change_satoshis: value of the change output, satoshis, or None if there is none.
        change_vout: index of the change output (always the last output), or None.
        record_vouts: indexes of the record (OP_RETURN) outputs, in the order given;
            empty for a split transaction.
        inputs: the spent outpoints ``(txid, vout)``, in input order.
    """

    txid: str
    raw_hex: str
    size: int
    fee: int
    change_satoshis: int | None
    change_vout: int | None
    record_vouts: list[int]
    inputs: list[tuple[str, int]]
