"""Cost per record: bytes on chain and satoshis of fee per record in each publish mode, at
the configured fee rate (``FEE_RATE_SAT_PER_KB``, docs/PROTOCOL.md §4) or ``--rate``.

Usage::

    python bench/bench_cost.py [--quick] [--rate SAT_PER_KB] [--payload-bytes N]

Real transactions are built and signed with the server's transaction builder (no network,
no database): a typical signed "work" record (about 450 bytes of signed payload) and, for
comparison, one of the largest allowed payload (``MAX_PAYLOAD_BYTES``).

* immediate and batch: one record per transaction (one pool input, the record output,
  change back to the pool): the same transaction, batch mode only sends them together;
* packed: N records per transaction (10, 100, 1000 and ``PACKED_MAX_RECORDS``), one input
  and one change output for all of them.

Also printed: what a pool UTXO of ``default_utxo_sats()`` pays for, and the share of the
split transaction that made it (one 34-byte output per pool UTXO).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402


def record_script(key, payload_extra: int, i: int) -> bytes:
    from raregen import protocol, signing

    body = signing.make_request(
        key,
        {"title": f"cost {i}", "contentHash": f"{i:064x}", "note": "n" * payload_extra},
        "work",
    )
    return protocol.record_script(
        body["signedPayload"].encode(),
        signing.decode_signature(body["signature"]),
        bytes.fromhex(body["pubkey"]),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rate", type=int, default=None, help="sat/kB (default: configured)")
    ap.add_argument(
        "--payload-bytes", type=int, default=120, help="extra note characters in the typical record"
    )
    args = ap.parse_args()

    from raregen.config import load_settings
    from raregen.publish.txbuilder import (
        ServerWallet,
        SpendableUtxo,
        build_packed_tx,
        build_publish_tx,
        estimate_size,
        fee_for_size,
    )

    cfg = load_settings(os.environ.get("RAREGEN_INSTANCE_PATH", "/tmp"))
    rate = (
        args.rate
        if args.rate is not None
        else max(int(cfg["FEE_RATE_SAT_PER_KB"]), int(cfg["FEE_RATE_FLOOR_SAT_PER_KB"]))
    )
    packed_max = int(cfg["PACKED_MAX_RECORDS"])
    h.header(f"bench_cost: bytes and fee per record at {rate} sat/kB")
    wallet = ServerWallet.generate("regtest")
    key = h.make_author()

    def coin(sats: int) -> SpendableUtxo:
        return SpendableUtxo(os.urandom(32).hex(), 0, sats, wallet.locking_script_hex)

    counts = [10, 100] if args.quick else sorted({10, 100, 1000, packed_max})
    typical = [record_script(key, args.payload_bytes, i) for i in range(max(counts))]
    rows = []
    one = build_publish_tx(wallet, coin(1_000_000), typical[:1], rate)
    for mode in ("immediate", "batch"):
        rows.append(
            {
                "mode": mode,
                "records": 1,
                "tx_bytes": one.size,
                "fee": one.fee,
                "bytes_per_record": one.size,
                "sats_per_record": one.fee,
                "record_output_bytes": len(typical[0]) + 8 + 3,
            }
        )
    for n in counts:
        tx = build_packed_tx(wallet, coin(100_000_000), typical[:n], rate)
        rows.append(
            {
                "mode": "packed",
                "records": n,
                "tx_bytes": tx.size,
                "fee": tx.fee,
                "bytes_per_record": tx.size / n,
                "sats_per_record": tx.fee / n,
                "record_output_bytes": len(typical[0]) + 8 + 3,
            }
        )
    big = record_script(key, 0, 0)
    pad = int(cfg["MAX_PAYLOAD_BYTES"]) - 300
    largest = record_script(key, pad, 1)
    big_tx = build_publish_tx(wallet, coin(10_000_000), [largest], rate)
    print(
        f"typical record: {len(typical[0])}-byte locking script (signed payload, DER "
        f"signature, pubkey and prefix); the smallest such record: {len(big)} bytes"
    )
    print()
    print(
        f"{'mode':<10} {'records/tx':>10} {'tx bytes':>9} {'fee sat':>8} {'B/record':>9} "
        f"{'sat/record':>10}"
    )
    for r in rows:
        print(
            f"{r['mode']:<10} {r['records']:>10} {r['tx_bytes']:>9} {r['fee']:>8} "
            f"{r['bytes_per_record']:>9.1f} {r['sats_per_record']:>10.2f}"
        )
    print(
        f"{'largest':<10} {1:>10} {big_tx.size:>9} {big_tx.fee:>8} {big_tx.size:>9.1f} "
        f"{big_tx.fee:>10.2f}   (payload of about {int(cfg['MAX_PAYLOAD_BYTES'])} bytes)"
    )
    overhead = one.size - (len(typical[0]) + 8 + 3)
    # as funding.default_utxo_sats() computes it
    from raregen import protocol

    biggest = protocol.record_script(
        b"x" * int(cfg["MAX_PAYLOAD_BYTES"]), b"\x30" * 72, b"\x02" * 33
    )
    pool_utxo = max(3 * fee_for_size(estimate_size(1, [biggest], True), rate), 1000)
    print()
    print(
        f"per-record overhead of a one-record transaction: {overhead} bytes (input 148, "
        f"change 34, header 10); packed x{max(counts)}: "
        f"{rows[-1]['bytes_per_record'] - rows[-1]['record_output_bytes']:.2f} bytes"
    )
    print(
        f"a pool UTXO of {pool_utxo} sat (default_utxo_sats at this rate) pays "
        f"{pool_utxo // max(one.fee, 1)} typical one-record publishes; its split output "
        f"adds 34 bytes ({34 * rate / 1000:.1f} sat) to a split transaction"
    )
    h.emit(
        {
            "bench": "cost",
            "rate_sat_per_kb": rate,
            "rows": rows,
            "largest": {"tx_bytes": big_tx.size, "fee": big_tx.fee},
            "machine": h.machine(),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
