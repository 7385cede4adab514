"""raregen.rawtx (the one transaction parser) and the block split of raregen.chain.scan."""

from __future__ import annotations

import json

import pytest
from bsv.utils import unsigned_to_varint  # type: ignore[import-untyped]

from raregen.chain.scan import FIRST_WINDOW_BYTES, block_transactions
from raregen.rawtx import TxParseError, parse_raw, read_transaction
from tests.vectors import vector_file


def _valid_txs() -> list[bytes]:
    rows = json.loads(vector_file("bsv", "tx_valid.json").read_text())
    return [
        bytes.fromhex(row[1])
        for row in rows
        if isinstance(row, list) and len(row) == 3 and isinstance(row[1], str)
    ]


def _big_tx() -> bytes:
    """One input with a 12,288-byte unlocking script: larger than the first window."""
    script = b"\x51" * 0x3000
    return (
        b"\x01\x00\x00\x00\x01"
        + b"\x11" * 36
        + unsigned_to_varint(len(script))
        + script
        + b"\xff" * 4
        + b"\x01"
        + b"\x00" * 8
        + b"\x00"
        + b"\x00" * 4
    )


def test_read_transaction_returns_the_exact_bytes_and_leaves_what_follows() -> None:
    for raw in _valid_txs()[:50]:
        tx, read = read_transaction(raw + b"\xde\xad")
        assert read == raw and tx.txid() == parse_raw(raw).txid()


def test_refusals() -> None:
    raw = _valid_txs()[0]
    with pytest.raises(TxParseError):
        parse_raw(raw + b"\x00")  # trailing byte
    with pytest.raises(TxParseError):
        parse_raw(raw[:-1])  # cut short
    with pytest.raises(TxParseError):
        parse_raw(raw[:4] + b"\xfd" + raw[4:5] + b"\x00" + raw[5:])  # non-minimal count
    with pytest.raises(TxParseError):
        parse_raw(raw[:4] + bytes.fromhex("0000000000ef") + raw[4:])  # Extended Format
    assert issubclass(TxParseError, ValueError)


def test_block_split_reads_small_and_large_transactions() -> None:
    big = _big_tx()
    assert len(big) > 8 * FIRST_WINDOW_BYTES
    txs = [*_valid_txs()[:20], big, *_valid_txs()[20:30], big]
    block = b"\x00" * 80 + unsigned_to_varint(len(txs)) + b"".join(txs)
    assert block_transactions(block) == txs
    assert block_transactions(block + b"\x00\x00") == txs  # bytes after the last: ignored
    for cut in (81, 200, len(block) - len(big) // 2, len(block) - 1):
        with pytest.raises(IndexError):
            block_transactions(block[:cut])
    with pytest.raises(IndexError):
        block_transactions(b"\x00" * 80)
