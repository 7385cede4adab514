"""Throughput of raregen.publish.txbuilder (build + sign + serialize), printed as txs/s.

Usage: ``python bench/bench_txbuilder.py [--seconds S] [--procs N]``

Cases:

* ``publish``: one record (~600-byte script, a §3-shaped record) plus change, the normal job;
* ``publish-1-output``: the same record from a UTXO worth exactly the fee, so no change;
* ``packed-1000``: one transaction with 1000 records (packed batch mode), records/s shown too;
* ``split-1000``: one UTXO split into 1000 pool outputs.

``--procs N`` also runs ``publish`` in N processes at once (batch mode runs on 2 cores; the
target is 500+ records per second). No network is used.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from collections.abc import Callable

from raregen.publish.txbuilder import (
    ServerWallet,
    SpendableUtxo,
    build_packed_tx,
    build_publish_tx,
    build_split_tx,
    native_crypto_available,
    required_satoshis,
)

RATE = 50  # sat/kB


def _push(data: bytes) -> bytes:
    n = len(data)
    if n < 0x4C:
        return bytes([n]) + data
    if n <= 0xFF:
        return b"\x4c" + bytes([n]) + data
    return b"\x4d" + n.to_bytes(2, "little") + data


def _record(payload_bytes: int = 480) -> bytes:
    return (
        b"\x00\x6a"
        + _push(b"raregen")
        + _push(b"\x01")
        + _push(os.urandom(payload_bytes))
        + _push(os.urandom(71))
        + _push(b"\x02" + os.urandom(32))
    )


def _utxo(wallet: ServerWallet, satoshis: int) -> SpendableUtxo:
    return SpendableUtxo(os.urandom(32).hex(), 0, satoshis, wallet.locking_script_hex)


def _rate(fn: Callable[[], object], seconds: float) -> tuple[float, int]:
    """Calls per second of ``fn`` over about ``seconds`` (after a short warm-up)."""
    for _ in range(20):
        fn()
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        fn()
        n += 1
        if n % 16 == 0 and time.perf_counter() >= deadline:
            break
    return n / (time.perf_counter() - start), n


def _publish_loop(seconds: float) -> float:
    wallet = ServerWallet.generate("regtest")
    record = [_record()]
    utxo = _utxo(wallet, 100_000)
    return _rate(lambda: build_publish_tx(wallet, utxo, record, RATE), seconds)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per case")
    parser.add_argument("--procs", type=int, default=2, help="processes for the parallel case")
    args = parser.parse_args()

    print(f"bsv-sdk native secp256k1 backend: {native_crypto_available()}")
    wallet = ServerWallet.generate("regtest")
    record = [_record()]
    big = _utxo(wallet, 100_000)
    exact = _utxo(wallet, required_satoshis(record, RATE))
    packed = [_record() for _ in range(1000)]
    packed_utxo = _utxo(wallet, required_satoshis(packed, RATE) + 10_000)
    split_utxo = _utxo(wallet, 10**8)

    sample = build_publish_tx(wallet, big, record, RATE)
    print(f"publish tx: {sample.size} bytes, fee {sample.fee} sat at {RATE} sat/kB")

    cases: list[tuple[str, Callable[[], object], int]] = [
        ("publish", lambda: build_publish_tx(wallet, big, record, RATE), 1),
        ("publish-1-output", lambda: build_publish_tx(wallet, exact, record, RATE), 1),
        ("packed-1000", lambda: build_packed_tx(wallet, packed_utxo, packed, RATE), 1000),
        ("split-1000", lambda: build_split_tx(wallet, [split_utxo], 1000, 1000, RATE), 0),
    ]
    for name, fn, records in cases:
        per_s, n = _rate(fn, args.seconds)
        extra = f"  ({per_s * records:,.0f} records/s)" if records > 1 else ""
        print(f"{name:18s} {per_s:9,.1f} txs/s  {1e6 / per_s:9.1f} us/tx  n={n}{extra}")

    if args.procs > 1:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(args.procs) as pool:
            rates = pool.map(_publish_loop, [args.seconds] * args.procs)
        print(f"publish x{args.procs} procs  {sum(rates):9,.1f} txs/s in total")


if __name__ == "__main__":
    main()
