"""The UTXO pool (docs/PROTOCOL.md §4): reservation races on PostgreSQL and SQLite, fee coverage,
expired reservations, the updated_at trigger."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from datetime import timedelta

from sqlalchemy import text

from raregen import protocol
from raregen.db import db, transaction, utcnow
from raregen.publish import pipeline, pool, services
from raregen.publish.models import AVAILABLE, RESERVED, Utxo
from raregen.publish.txbuilder import SpendableUtxo, build_publish_tx, required_satoshis

SCRIPT = "76a914" + "11" * 20 + "88ac"


def add(n: int, sats: int = 10_000, start: int = 0) -> None:
    with transaction():
        for i in range(start, start + n):
            pool.add_utxo(f"{i:064x}", 0, sats, SCRIPT)


def test_twenty_reservers_five_utxos_postgres(pg_app):
    add(5)
    barrier = threading.Barrier(20)
    winners: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def reserve(i: int) -> None:
        try:
            with pg_app.app_context():
                barrier.wait()
                with transaction():
                    utxo = pool.reserve(1, f"job-{i}")
                    got = utxo.id if utxo else None
                    time.sleep(0.05)  # hold the row lock while others try
                if got is not None:
                    with lock:
                        winners.append(got)
                db.session.remove()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reserve, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(winners) == 5
    assert len(set(winners)) == 5
    with transaction():
        assert db.session.scalar(text("SELECT count(*) FROM utxos WHERE status = 'reserved'")) == 5


def _sqlite_reserver(url: str, instance: str, wif: str, start_at: float, out) -> None:
    os.environ["RAREGEN_INSTANCE_PATH"] = instance
    from raregen import create_app

    # ENV_NAME test: two processes on one SQLite file, as production refuses
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "SERVER_WIF": wif,
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "ENV_NAME": "test",
        }
    )
    with app.app_context():
        while time.time() < start_at:
            time.sleep(0.001)
        with transaction():
            utxo = pool.reserve(1, f"proc-{os.getpid()}")
            out.put(utxo.id if utxo else None)


def test_two_processes_one_utxo_sqlite(sqlite_app):
    add(1)
    url = sqlite_app.config["SQLALCHEMY_DATABASE_URI"]
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3
    procs = [
        ctx.Process(
            target=_sqlite_reserver,
            args=(url, sqlite_app.instance_path, sqlite_app.config["SERVER_WIF"], start_at, out),
        )
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert sorted(r is not None for r in results) == [False, True]


def test_exact_fee_utxo_no_change_and_one_short_never_chosen(app):
    wallet = services.server_wallet()
    record = protocol.record_script(b'{"v":1}', b"\x30" * 70, b"\x02" * 33)
    rate = services.fee_rate()
    need = required_satoshis([record], rate)
    with transaction():
        short = pool.add_utxo("aa" * 32, 0, need - 1, wallet.locking_script_hex)
        assert short is not None
        assert pool.reserve(need, "job-short") is None
        exact = pool.add_utxo("bb" * 32, 0, need, wallet.locking_script_hex)
        got = pool.reserve(need, "job-exact")
        assert got is not None and got.id == exact.id
    built = build_publish_tx(
        wallet, SpendableUtxo(got.txid, got.vout, got.satoshis, got.script_pub_key), [record], rate
    )
    assert built.change_vout is None
    assert built.fee == need
    assert pipeline.outputs_to(built.raw_hex, wallet.locking_script_hex) == []


def test_smallest_covering_utxo_is_taken(app):
    with transaction():
        pool.add_utxo("01" * 32, 0, 500, SCRIPT)
        pool.add_utxo("02" * 32, 0, 5_000, SCRIPT)
        pool.add_utxo("03" * 32, 0, 900, SCRIPT)
        got = pool.reserve(800, "job")
        assert got is not None and got.satoshis == 900


def test_dirty_and_deep_utxos_are_skipped(app):
    with transaction():
        dirty = pool.add_utxo("04" * 32, 0, 1000, SCRIPT)
        pool.mark_dirty(dirty, "test")
        pool.add_utxo("05" * 32, 0, 1000, SCRIPT, depth=50)
        assert pool.reserve(1, "job", max_depth=20) is None


def test_expired_reservation_released_unless_signed(app):
    add(2)
    with transaction():
        a = pool.reserve(1, "job-a", timeout_seconds=1)
        b = pool.reserve(1, "job-b", timeout_seconds=1)
        pool.mark_signed(b, "cc" * 32)
    later = utcnow() + timedelta(seconds=5)
    with transaction():
        assert pool.release_expired(later) == 1
        assert db.session.get(Utxo, a.id).status == AVAILABLE
        assert db.session.get(Utxo, b.id).status == RESERVED
        summary = pool.status_summary(later)
        assert summary["reserved_past_timeout"] == 1


def test_updated_at_trigger_on_raw_update(app):
    add(1)
    with transaction():
        db.session.execute(
            text("UPDATE utxos SET updated_at = :t"), {"t": utcnow() - timedelta(days=1)}
        )
    with transaction():
        before = db.session.execute(text("SELECT updated_at FROM utxos")).scalar()
        db.session.execute(text("UPDATE utxos SET satoshis = satoshis + 1"))
    with transaction():
        after = db.session.execute(text("SELECT updated_at FROM utxos")).scalar()
    if isinstance(before, str):
        assert after > before
    else:
        assert after > before


def test_prevouts_resolves_pool_outpoints_for_arc_extended_format(app, monkeypatch):
    """ARC gets Extended Format: the pool answers each input's satoshis and locking script."""
    add(3, sats=12_345)
    with transaction():
        rows = [(u.txid, u.vout, u.script_pub_key) for u in db.session.query(Utxo).all()]
    wanted = [(txid, vout) for txid, vout, _ in rows[:2]] + [("ff" * 32, 7)]
    found = pool.prevouts(wanted)
    assert found == {(txid, vout): (12_345, script) for txid, vout, script in rows[:2]}

    # services.broadcaster wires it into the ARC backend
    monkeypatch.setitem(app.config, "BROADCASTERS", "arc")
    monkeypatch.setitem(app.config, "ARC_URL", "http://127.0.0.1:9")
    services._cache(app).pop("broadcaster", None)
    try:
        chain = services.broadcaster(app)
        arc = getattr(chain, "backends", [chain])[0]
        assert arc.prevouts is not None
        assert arc.prevouts(wanted[:1]) == {wanted[0]: found[wanted[0]]}
    finally:
        services._cache(app).pop("broadcaster", None)
