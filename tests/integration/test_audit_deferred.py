"""Deferred chaining of the accepts' audit entries on PostgreSQL (migration 0011): the
one-statement accept writes its ``publish:job:accepted`` entry without the chain lock, and
the entry is chained later, under the lock, before any other entry, by the reaper, or by
``audit verify``; the chain verifies, and nothing else may touch a deferred entry."""

from __future__ import annotations

import threading

import coincurve
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from raregen import audit, signing
from raregen.db import db, transaction
from raregen.publish import keys


def _rows() -> list:
    rows = db.session.execute(
        text("SELECT id, seq, prev_hash, hash, action, subject FROM audit_log ORDER BY id")
    ).all()
    db.session.rollback()
    return rows


def _publish(app, key, n: int, threads: int = 4) -> list[str]:
    ids: list[str] = []
    errors: list[BaseException] = []

    def run(part: int) -> None:
        try:
            client = app.test_client()
            for i in range(part, n, threads):
                body = signing.make_request(key, {"title": f"w{i}"})
                resp = client.post("/v1/publish", json=body)
                assert resp.status_code == 202, resp.json
                ids.append(resp.json["jobId"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(p,)) for p in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert not errors, errors
    return ids


@pytest.fixture
def author(pg_app, monkeypatch):
    monkeypatch.setitem(pg_app.config, "PUBLISH_MODE", "batch")  # no RQ job per accept
    key = coincurve.PrivateKey()
    keys.register_key(key.public_key.format().hex())  # chained at once (not deferred)
    return key


def test_accepts_are_deferred_then_chained_first(pg_app, author):
    ids = _publish(pg_app, author, 24)
    rows = _rows()
    accepted = [r for r in rows if r.action == "publish:job:accepted"]
    assert sorted(r.subject for r in accepted) == sorted(ids)
    # written without the chain lock: no place in the chain yet
    assert all(r.seq is None and r.prev_hash == audit.DEFERRED for r in accepted)
    # the next chained write chains them first, then itself
    with transaction():
        audit.audit("cli", "test:entry:after", "x")
    rows = _rows()
    chained = sorted((r for r in rows if r.seq is not None), key=lambda r: r.seq)
    assert [r.seq for r in chained] == list(range(1, len(rows) + 1))
    assert chained[-1].action == "test:entry:after"
    assert {r.subject for r in chained if r.action == "publish:job:accepted"} == set(ids)
    with transaction():
        report = audit.verify()
    assert report.problem is None and report.count == len(rows)


def test_verify_and_the_reaper_chain_what_is_deferred(pg_app, author):
    from raregen.publish import tasks

    _publish(pg_app, author, 6, threads=2)
    with transaction():
        report = audit.verify()
    assert report.problem is None and report.count == 7  # the key and six accepts
    _publish(pg_app, author, 3, threads=1)
    assert sum(r.seq is None for r in _rows()) == 3
    tasks.set_app(pg_app)
    assert tasks.reap().get("audit_chained") == 3
    assert all(r.seq is not None for r in _rows())


def test_a_deferred_entry_is_changed_only_by_chaining(pg_app, author):
    _publish(pg_app, author, 1, threads=1)
    with pytest.raises(DBAPIError, match="append-only"), transaction():
        db.session.execute(
            text("UPDATE audit_log SET subject = 'other' WHERE seq IS NULL AND prev_hash = :d"),
            {"d": audit.DEFERRED},
        )
    with pytest.raises(DBAPIError, match="append-only"), transaction():
        db.session.execute(
            text(
                "UPDATE audit_log SET seq = 99, prev_hash = :z, hash = :z "
                "WHERE seq IS NULL AND prev_hash = :d"
            ),
            {"d": audit.DEFERRED, "z": "f" * 64},
        )
    with transaction():
        assert audit.chain_deferred() == 1
    with transaction():
        assert audit.verify().problem is None


def test_an_entry_written_past_the_trigger_is_not_chained(pg_app, author):
    with transaction():
        db.session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        db.session.execute(
            text(
                "INSERT INTO audit_log (actor, action, subject, created_at) "
                "VALUES ('cli', 'keys:key:registered', 'forged', '2026-11-30 00:00:00')"
            )
        )
    with transaction():
        db.session.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))
    with transaction():
        assert audit.chain_deferred() == 0
        report = audit.verify()
    assert report.problem is not None
