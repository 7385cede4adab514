"""The audit log's hash chain (migration 0007, raregen.audit, raregen.auditchain): every
writer is chained by the database; ``flask audit verify`` finds each kind of tampering and
``audit tail`` shows the newest entries. SQLite and PostgreSQL; concurrent writers on
PostgreSQL."""

from __future__ import annotations

import itertools
import json
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from raregen import audit as audit_mod
from raregen.audit import audit
from raregen.auditchain import GENESIS, entry_hash
from raregen.db import db, transaction


def _write(n: int, prefix: str = "test") -> None:
    for i in range(n):
        with transaction():
            audit("cli", f"{prefix}:entry:made", f"subject-{i}", n=i, note="línea\nnueva: ok")


def _exec(sql: str, params: dict | None = None) -> None:
    """Run tampering SQL with the append-only trigger out of the way (an attacker with
    the database owner's rights)."""
    pg = db.engine.dialect.name == "postgresql"
    with transaction():
        if pg:
            db.session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        else:
            db.session.execute(text("DROP TRIGGER trg_audit_log_append_only"))
            db.session.execute(text("DROP TRIGGER trg_audit_log_chain"))
        db.session.execute(text(sql), params or {})
    _restore_triggers()


def _restore_triggers() -> None:
    with transaction():
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))
            return
        mig = _migration()
        db.session.execute(text("DROP TRIGGER IF EXISTS trg_audit_log_chain"))
        db.session.execute(text("DROP TRIGGER IF EXISTS trg_audit_log_append_only"))
        db.session.execute(text(mig._SQLITE_CHAIN))
        db.session.execute(text(mig._SQLITE_APPEND_ONLY))


def _migration():
    import importlib.util

    from raregen import ROOT

    path = ROOT / "migrations" / "versions" / "0007_audit_chain.py"
    spec = importlib.util.spec_from_file_location("raregen_migration_0007", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cli(app, *args: str):
    return app.test_cli_runner().invoke(args=["audit", *args])


def _rows() -> list:
    rows = db.session.execute(
        text(
            "SELECT id, seq, prev_hash, hash, actor, action, subject, detail FROM audit_log "
            "ORDER BY seq"
        )
    ).all()
    db.session.rollback()
    return rows


def test_clean_chain_verifies(app):
    result = _cli(app, "verify")
    assert result.exit_code == 0, result.output
    assert "0 entries" in result.output
    _write(5)
    rows = _rows()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    result = _cli(app, "verify")
    assert result.exit_code == 0, result.output
    assert f"5 entries, head seq 5 hash {rows[-1].hash}" in result.output
    # the anchor noted now still holds
    assert _cli(app, "verify", "--anchor", f"3:{rows[2].hash}").exit_code == 0


def test_python_and_database_agree_on_the_hash(app):
    _write(2)
    with transaction():
        created = (
            db.session.execute(text("SELECT created_at FROM audit_log ORDER BY seq"))
            .scalars()
            .all()
        )
    rows = _rows()
    for row, stamp in zip(rows, created, strict=True):
        assert row.hash == entry_hash(
            row.seq,
            row.id,
            stamp,
            row.actor,
            row.action,
            row.subject,
            row.detail,
            row.prev_hash,
        )


def test_writer_values_for_the_chain_are_ignored_and_updates_refused(app):
    _write(1)
    forged = text(
        "INSERT INTO audit_log (actor, action, created_at, seq, prev_hash, hash) "
        "VALUES ('x', 'forged', '2026-01-01 00:00:00', 99, :z, :z)"
    )
    if db.engine.dialect.name == "postgresql":
        # the trigger overwrites what the writer sent: chained as seq 2
        with transaction():
            db.session.execute(forged, {"z": "f" * 64})
        rows = _rows()
        assert [r.seq for r in rows] == [1, 2]
        assert rows[1].prev_hash == rows[0].hash and rows[1].hash != "f" * 64
    else:
        # SQLite's trigger can only refuse a row that comes with a hash
        with pytest.raises(DBAPIError, match="append-only"), transaction():
            db.session.execute(forged, {"z": "f" * 64})
    with pytest.raises(DBAPIError, match="append-only"), transaction():
        db.session.execute(text("UPDATE audit_log SET actor = 'someone else'"))
    assert _cli(app, "verify").exit_code == 0


def _expect(app, kind: str, entry_id: int) -> str:
    result = _cli(app, "verify")
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert f"entry {entry_id} " in lines[0] and kind in lines[0], lines[0]
    return lines[0]


def test_edited_field_is_found(app):
    _write(6)
    victim = _rows()[3]
    _exec("UPDATE audit_log SET detail = :d WHERE id = :i", {"d": '{"n": 99}', "i": victim.id})
    _expect(app, "edited", victim.id)


def test_deleted_middle_entry_is_found(app):
    _write(6)
    rows = _rows()
    _exec("DELETE FROM audit_log WHERE id = :i", {"i": rows[2].id})
    line = _expect(app, "deleted", rows[3].id)
    assert "seq 3 missing" in line


def test_forged_entry_outside_the_chain_is_found(app):
    _write(4)
    _exec(
        "INSERT INTO audit_log (actor, action, subject, created_at) "
        "VALUES ('cli', 'keys:key:registered', 'forged', '2026-11-30 00:00:00')"
    )
    forged = db.session.scalar(text("SELECT id FROM audit_log WHERE subject = 'forged'"))
    db.session.rollback()
    _expect(app, "inserted", forged)


def test_forged_entry_chained_in_the_middle_is_found(app):
    """A forger who hashes a new entry right after seq 2 and moves the later ones up."""
    _write(5)
    rows = _rows()
    _exec("UPDATE audit_log SET seq = -seq WHERE seq >= 3")
    _exec("UPDATE audit_log SET seq = 1 - seq WHERE seq < 0")  # 3 -> 4, 4 -> 5, ...
    new_id = max(r.id for r in rows) + 100
    stamp = "2026-11-30 00:00:00"
    digest = entry_hash(3, new_id, stamp, "cli", "keys:key:revoked", "forged", None, rows[1].hash)
    _exec(
        "INSERT INTO audit_log (id, seq, actor, action, subject, created_at, prev_hash, hash) "
        "VALUES (:i, 3, 'cli', 'keys:key:revoked', 'forged', :c, :p, :h)",
        {"i": new_id, "c": stamp, "p": rows[1].hash, "h": digest},
    )
    _expect(app, "inserted", new_id)


def test_swapped_entries_are_found(app):
    _write(6)
    rows = _rows()
    a, b = rows[1], rows[4]
    _exec("UPDATE audit_log SET seq = -1 WHERE id = :i", {"i": a.id})
    _exec("UPDATE audit_log SET seq = :s WHERE id = :i", {"s": a.seq, "i": b.id})
    _exec("UPDATE audit_log SET seq = :s WHERE id = :i", {"s": b.seq, "i": a.id})
    _expect(app, "reordered", b.id)


def test_swapped_contents_are_found(app):
    _write(6)
    rows = _rows()
    a, b = rows[1], rows[4]
    for dst, src in ((a, b), (b, a)):
        _exec(
            "UPDATE audit_log SET actor = :ac, action = :an, subject = :s, detail = :d "
            "WHERE id = :i",
            {"ac": src.actor, "an": src.action, "s": src.subject, "d": src.detail, "i": dst.id},
        )
    _expect(app, "edited", a.id)


def test_truncated_tail_is_found_with_an_anchor(app):
    _write(5)
    rows = _rows()
    _exec("DELETE FROM audit_log WHERE seq >= 4")
    assert _cli(app, "verify").exit_code == 0  # a chain alone cannot tell
    result = _cli(app, "verify", "--anchor", f"5:{rows[4].hash}")
    assert result.exit_code != 0 and "truncated" in result.output


def test_tail(app):
    _write(5)
    result = _cli(app, "tail", "-n", "2", "--json")
    assert result.exit_code == 0, result.output
    entries = [json.loads(line) for line in result.output.splitlines()]
    assert [e["seq"] for e in entries] == [4, 5]
    assert entries[1]["detail"] == {"n": 4, "note": "línea\nnueva: ok"}
    plain = _cli(app, "tail")
    assert plain.exit_code == 0 and plain.output.count("test:entry:made") == 5


def test_rolled_back_change_leaves_no_entry(app):
    with pytest.raises(RuntimeError), transaction():
        audit("cli", "test:entry:made", "gone")
        assert audit_mod.pending_count() == 1
        raise RuntimeError("abort")
    # a savepoint rolled back takes its entries with it; the outer ones stay
    with transaction():
        audit("cli", "test:entry:outer", "kept")
        nested = db.session.begin_nested()
        audit("cli", "test:entry:inner", "dropped")
        nested.rollback()
    assert [r.subject for r in _rows()] == ["kept"]
    assert audit_mod.pending_count() == 0


def test_parallel_writers_keep_one_chain(pg_app):
    """8 threads, each with its own connection, 50 committed entries each."""
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with pg_app.app_context():
                for i in range(50):
                    with transaction():
                        audit(f"writer:{n}", "test:entry:parallel", f"{n}-{i}")
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    rows = _rows()
    assert len(rows) == 400 and [r.seq for r in rows] == list(range(1, 401))
    result = _cli(pg_app, "verify")
    assert result.exit_code == 0, result.output
    assert "400 entries" in result.output
