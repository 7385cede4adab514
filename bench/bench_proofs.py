"""Proof files (docs/PROOFS.md): size and offline verification time.

Prints, then a ``RESULT {...}`` line:

* proof file size in bytes (compact JSON) of a one-record transaction (the committed vector
  ``tests/data/proofs/valid-one-complete.json``) and of one record of a packed transaction
  of 1,000 records (built here: 1,000 signed records of a typical 200-byte payload, in a
  block of 1,000 transactions, 6 headers after it), beside OpenTimestamps' about 650-byte
  complete proof (which proves a hash only: no signature, no record, no transaction);
* offline verification time per proof in one process (goal < 5 ms), and of a whole
  ``raregen verify --proof`` command (a new Python process).

With ``--serve``, also complete proofs served per second on a real server: a throw-away
PostgreSQL database, Redis, a regtest node of its own; R records are published (immediate
mode, in-process), mined, confirmed with their proofs captured, and buried under more
blocks than ``PROOF_RECHECK_BLOCKS`` + ``PROOF_HEADERS_COUNT`` (so the following headers
come from the cache); then ``gunicorn -w 2`` on loopback is asked, by C keep-alive client
threads for S seconds each, for ``GET /v1/jobs/<jobId>/proof`` and then
``GET /v1/records/<txid>/<vout>/proof`` of those records in turn. Every answer must be a
200 holding a ``complete`` proof; requests/s and p50/p99 latency are printed per endpoint.

The cost of capturing proofs in batch mode is measured by
``bench_e2e.py --modes batch --proof-capture both``.

    .venv/bin/python bench/bench_proofs.py [--quick] [--serve] [--seconds S] [--conns C]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

OTS_COMPLETE_BYTES = 650


def _packed_proof(records: int) -> dict:  # type: ignore[type-arg]
    """A valid complete proof of record 0 of a packed transaction of ``records`` records."""
    import coincurve

    from raregen import protocol, signing
    from raregen.proofs import merkle

    key = coincurve.PrivateKey()
    bodies = [
        signing.make_request(
            key, {"title": f"work {i}", "contentHash": f"{i:064x}", "creator": "bench"}, "work"
        )
        for i in range(records)
    ]
    scripts = [
        protocol.record_script(
            b["signedPayload"].encode(),
            signing.decode_signature(b["signature"]),
            bytes.fromhex(b["pubkey"]),
        )
        for b in bodies
    ]

    def varint(n: int) -> bytes:
        if n < 0xFD:
            return bytes([n])
        if n <= 0xFFFF:
            return b"\xfd" + n.to_bytes(2, "little")
        return b"\xfe" + n.to_bytes(4, "little")

    raw = b"\x01\x00\x00\x00" + b"\x01" + b"\x11" * 32 + b"\x00" * 4 + b"\x00" + b"\xff" * 4
    raw += varint(len(scripts))
    for s in scripts:
        raw += b"\x00" * 8 + varint(len(s)) + s
    raw += b"\x00" * 4
    txid = protocol.txid(raw)
    block = [os.urandom(32).hex() for _ in range(999)]
    block.insert(500, txid)
    root = merkle.merkle_root(block)
    prev = os.urandom(32)
    headers = []
    for _ in range(7):
        nonce = 0
        while True:
            head = (
                b"\x00\x00\x00\x20"
                + prev
                + bytes.fromhex(root)[::-1]
                + b"\x00" * 4
                + (0x207FFFFF).to_bytes(4, "little")
                + nonce.to_bytes(4, "little")
            )
            parsed = merkle.parse_header(head)
            if parsed.pow_ok:
                break
            nonce += 1
        headers.append(head.hex())
        prev = bytes.fromhex(parsed.hash)[::-1]
    b0 = bodies[0]
    return {
        "format": "raregen-proof",
        "version": 1,
        "record": {k: b0[k] for k in ("signedPayload", "signature", "pubkey")},
        "txid": txid,
        "vout": 0,
        "rawTx": raw.hex(),
        "status": "complete",
        "merklePath": merkle.bump_from_txids(800_000, block, txid),
        "blockHeader": headers[0],
        "blockHeight": 800_000,
        "headers": headers[1:],
    }


def _time_verify(data: bytes, rounds: int) -> float:
    from raregen.proofs import verify as proofs

    assert proofs.verify_proof_bytes(data).verdict == "valid"
    started = time.perf_counter()
    for _ in range(rounds):
        proofs.verify_proof_bytes(data)
    return (time.perf_counter() - started) / rounds * 1000


def _confirmed_records(app, node, key, count: int) -> list[tuple[str, str, int]]:
    """Publish ``count`` records (immediate mode, in this process), mine them, confirm them
    with proof capture on, then bury them; returns ``(jobId, txid, vout)`` of each."""
    import _harness as h

    from raregen.db import db
    from raregen.publish import confirm, intake, pipeline
    from raregen.publish.models import PublishJob, TxProof

    bodies = [json.loads(b) for b in h.sign_bodies(key, count, size=120)]
    with app.app_context():
        ids = [intake.accept(body).job_id for body in bodies]
        for job_id in ids:
            assert pipeline.process_job(job_id).action == "sent", job_id
        node.mine(1)
        confirmed = 0
        for _ in range(20):
            confirmed += confirm.confirm_sent()
            if confirmed >= count:
                break
        assert confirmed == count, f"{confirmed} of {count} confirmed"
        extra = int(app.config.get("PROOF_RECHECK_BLOCKS", 6)) + int(
            app.config.get("PROOF_HEADERS_COUNT", 6)
        )
        node.mine(extra + 1)
        confirm.confirm_sent()  # the re-check pass, as the periodic job would run it
        rows = db.session.execute(
            db.select(PublishJob.job_id, PublishJob.txid, PublishJob.vout).where(
                PublishJob.job_id.in_(ids)
            )
        ).all()
        proofs = db.session.scalar(db.select(db.func.count()).select_from(TxProof))
        assert proofs == count, f"{proofs} proofs stored for {count} records"
        h.dispose(app)
    return [(r.job_id, r.txid, int(r.vout)) for r in rows]


def _load(urls: list[str], seconds: float, conns: int) -> dict:  # type: ignore[type-arg]
    """``conns`` threads, each a keep-alive session, GET random ``urls`` for ``seconds``;
    every answer must be 200 with a complete proof (else counted as ``bad``)."""
    import _harness as h
    import requests

    lat: list[list[float]] = [[] for _ in range(conns)]
    bad = [0] * conns
    sizes: list[int] = [0] * conns
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        rnd = random.Random(i)
        with requests.Session() as s:
            while time.monotonic() < stop:
                url = rnd.choice(urls)
                t0 = time.perf_counter()
                r = s.get(url, timeout=10)
                body = r.content
                lat[i].append(time.perf_counter() - t0)
                if r.status_code != 200 or (
                    b'"status":"complete"' not in body and not url.endswith("/ping")
                ):
                    bad[i] += 1
                sizes[i] = len(body)

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - started
    every = [x for part in lat for x in part]
    return {
        "requests": len(every),
        "seconds": round(secs, 2),
        "rps": round(len(every) / secs, 1),
        "p50_ms": round(h.percentile(every, 50) * 1000, 2),
        "p99_ms": round(h.percentile(every, 99) * 1000, 2),
        "bad": sum(bad),
        "bytes": max(sizes),
    }


def serve(records: int, seconds: float, conns: int) -> dict:  # type: ignore[type-arg]
    """Complete proofs served per second by gunicorn (module docstring); returns figures."""
    import _harness as h

    h.header("bench_proofs --serve: GET .../proof under gunicorn -w 2 (loopback)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-proofs-"))
    out: dict = {}  # type: ignore[type-arg]
    with h.bench_env(RAREGEN_PUBLISH_MODE="immediate") as env, h.regtest_node(tmp) as node:
        app = h.make_app(env)
        h.wire_node(app, node)
        key = h.make_author()
        h.register_key(app, key)
        h.fund_pool(app, node, records + 10, 20_000)
        t0 = time.monotonic()
        recs = _confirmed_records(app, node, key, records)
        print(f"{records} records published, confirmed and buried in {time.monotonic() - t0:.1f} s")
        port = h.free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "app:create_app()",
        ]
        srv = h.Child(cmd, env.environ(**h.node_environ(node)), tmp / "gunicorn.log")
        try:
            h.wait_http(base + "/v1/ping", timeout=60)
            targets = {
                "ping": [f"{base}/v1/ping"],
                "job": [f"{base}/v1/jobs/{j}/proof" for j, _, _ in recs],
                "record": [f"{base}/v1/records/{t}/{v}/proof" for _, t, v in recs],
            }
            _load(targets["job"][:20] + targets["record"][:20], 1.0, conns)  # warm both workers
            for name, urls in targets.items():
                out[name] = _load(urls, seconds, conns)
                out[name]["load"] = h.machine()["load"]
        except BaseException:
            print(srv.tail(), file=sys.stderr)
            raise
        finally:
            srv.stop()
    labels = {
        "ping": "GET /v1/ping (the floor, same server)",
        "job": "GET /v1/jobs/<jobId>/proof",
        "record": "GET /v1/records/<txid>/<vout>/proof",
    }
    print(
        f"{records} complete proofs of one-record transactions, {conns} client threads, "
        f"{seconds:g} s per endpoint in turn, every answer checked (200 and status complete); "
        f"shared machine: compare with the ping floor measured in the same run"
    )
    for name, r in out.items():
        unit = "req/s   " if name == "ping" else "proofs/s"
        print(
            f"{labels[name]:<38} {r['rps']:8.1f} {unit}  p50 {r['p50_ms']:6.1f} ms  "
            f"p99 {r['p99_ms']:6.1f} ms  ({r['requests']} requests, {r['bad']} bad, "
            f"{r['bytes']} bytes each, load after {r['load']})"
        )
    return {"records": records, "conns": conns, "seconds": seconds, **out}


def main() -> None:
    """Measure and print (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (smoke test)")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="also proofs/s served by gunicorn (PostgreSQL, Redis, regtest node)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="--serve: per endpoint")
    parser.add_argument("--conns", type=int, default=2, help="--serve: client threads")
    parser.add_argument("--records", type=int, default=200, help="--serve: confirmed records")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.records = min(args.seconds, 1.5), min(args.records, 10)
    rounds = 20 if args.quick else 500
    one = json.loads((ROOT / "tests/data/proofs/valid-one-complete.json").read_text())
    one_bytes = json.dumps(one, separators=(",", ":")).encode()
    packed = _packed_proof(100 if args.quick else 1000)
    packed_bytes = json.dumps(packed, separators=(",", ":")).encode()
    one_ms = _time_verify(one_bytes, rounds)
    packed_ms = _time_verify(packed_bytes, max(5, rounds // 10))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.json"
        path.write_bytes(one_bytes)
        runs = 2 if args.quick else 5
        started = time.perf_counter()
        for _ in range(runs):
            proc = subprocess.run(
                [sys.executable, "-m", "raregen.client.cli", "verify", "--proof", str(path)],
                capture_output=True,
                cwd=ROOT,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
        command_ms = (time.perf_counter() - started) / runs * 1000
    records = 100 if args.quick else 1000
    print(f"proof size, one-record tx:            {len(one_bytes):>9,} bytes")
    print(f"proof size, 1 record of packed {records:>5}: {len(packed_bytes):>9,} bytes")
    print(f"OpenTimestamps complete proof:        {OTS_COMPLETE_BYTES:>9,} bytes (a hash only)")
    print(f"offline verification, one-record:     {one_ms:9.2f} ms per proof (goal < 5 ms)")
    print(f"offline verification, packed:         {packed_ms:9.2f} ms per proof")
    print(f"`raregen verify --proof` command:     {command_ms:9.0f} ms (new process)")
    result = {
        "size_one_bytes": len(one_bytes),
        "size_packed_bytes": len(packed_bytes),
        "packed_records": records,
        "ots_bytes": OTS_COMPLETE_BYTES,
        "verify_one_ms": round(one_ms, 3),
        "verify_packed_ms": round(packed_ms, 3),
        "command_ms": round(command_ms, 1),
    }
    if args.serve:
        print()
        result["serve"] = serve(args.records, args.seconds, args.conns)
        if any(result["serve"][k]["bad"] for k in ("ping", "job", "record")):
            print("RESULT " + json.dumps(result))
            sys.exit("some answers were not 200 with a complete proof")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
