"""The operator console's services and commands (raregen.publish.operator, raregen.ops), on
both database backends: the operator role command, retrying a failed job, releasing a dirty
UTXO, the chart data and the pool sampler, and the console's access and CSRF rules seen
through the test client. The browser side is tests/browser/test_ops_console.py."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta

from sqlalchemy import select

from raregen.db import db, transaction, utcnow
from raregen.publish import keys, pool
from raregen.publish.models import AuditLog, PoolSample, PublishJob, RegisteredKey, Utxo
from raregen.publish.txbuilder import ServerWallet
from raregen.wallet import accounts
from raregen.wallet.models import WalletSession

SCRIPT = "76a914" + "11" * 20 + "88ac"


def _entries(action: str) -> list[AuditLog]:
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action)))


def _failed_job(key_id: int | None = None, code: str = "BROADCAST_REJECTED") -> str:
    job_id = str(uuid.uuid4())
    with transaction():
        db.session.add(
            PublishJob(
                job_id=job_id,
                key_id=key_id,
                pubkey="02" + "11" * 32,
                nonce=uuid.uuid4().hex,
                signed_payload="{}",
                signature="AA==",
                status="failed",
                error_code=code,
                txid="ab" * 32,
                raw_tx="00",
            )
        )
    return job_id


def test_operator_command_grants_and_revokes(app) -> None:
    with transaction():
        accounts.get_or_create("boss@example.org")
    runner = app.test_cli_runner()
    assert runner.invoke(args=["accounts", "operator", "Boss@Example.org"]).exit_code == 0
    assert accounts.by_email("boss@example.org").is_operator is True
    result = runner.invoke(args=["accounts", "operator", "boss@example.org", "--revoke"])
    assert result.exit_code == 0 and "no longer" in result.output
    db.session.expire_all()
    assert accounts.by_email("boss@example.org").is_operator is False
    assert [json.loads(e.detail)["operator"] for e in _entries("wallet:account:operator")] == [
        True,
        False,
    ]
    assert runner.invoke(args=["accounts", "operator", "nobody@example.org"]).exit_code == 1


def test_jobs_retry_requeues_and_takes_a_key_credit(app) -> None:
    pubkey = ServerWallet.generate("regtest").public_key_hex
    keys.register_key(pubkey, credits=2)
    key_id = db.session.scalar(select(RegisteredKey.id))
    job_id = _failed_job(key_id)
    result = app.test_cli_runner().invoke(args=["jobs", "retry", job_id])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    job = db.session.scalar(select(PublishJob).where(PublishJob.job_id == job_id))
    assert (job.status, job.error_code, job.txid, job.raw_tx) == ("queued", None, None, None)
    assert db.session.get(RegisteredKey, key_id).credits == 1
    entry = _entries("publish:job:retried")[0]
    assert (entry.actor, entry.subject) == ("cli", job_id)
    assert json.loads(entry.detail)["previous_error"] == "BROADCAST_REJECTED"
    again = app.test_cli_runner().invoke(args=["jobs", "retry", job_id])
    assert again.exit_code == 1 and "JOB_NOT_FAILED" in again.output
    assert "NOT_FOUND" in app.test_cli_runner().invoke(args=["jobs", "retry", "x"]).output


def test_release_dirty_and_bad_outpoints(app) -> None:
    with transaction():
        utxo = pool.add_utxo("cd" * 32, 1, 5000, SCRIPT)
        pool.mark_dirty(utxo, "MEMPOOL_CONFLICT: test")
    runner = app.test_cli_runner()
    assert "BAD_OUTPOINT" in runner.invoke(args=["pool", "release-dirty", "nope"]).output
    result = runner.invoke(args=["pool", "release-dirty", f"{'CD' * 32}:1"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    row = db.session.scalar(select(Utxo))
    assert (row.status, row.dirty, row.dirty_reason) == ("available", False, None)
    assert _entries("pool:utxo:released")[0].subject == f"{'cd' * 32}:1"
    # no longer dirty: a second release is NOT_FOUND
    assert "NOT_FOUND" in runner.invoke(args=["pool", "release-dirty", f"{'cd' * 32}:1"]).output


def test_chart_data_buckets_rates_and_percentiles(app) -> None:
    from raregen.ops import charts

    now = utcnow().replace(second=30, microsecond=0)
    with transaction():
        for i, wait in enumerate([1, 2, 3, 4, 100]):
            created = now - timedelta(minutes=5)
            db.session.add(
                PublishJob(
                    job_id=str(uuid.uuid4()),
                    pubkey="02" + "22" * 32,
                    nonce=f"n{i:020d}",
                    signed_payload="{}",
                    signature="AA==",
                    status="confirmed",
                    created_at=created,
                    sent_at=created + timedelta(seconds=wait),
                    confirmed_at=created + timedelta(seconds=wait + 60),
                )
            )
        db.session.add(
            PublishJob(
                job_id=str(uuid.uuid4()),
                pubkey="02" + "22" * 32,
                nonce="f" * 20,
                signed_payload="{}",
                signature="AA==",
                status="failed",
                error_code="BAD_RECORD",
            )
        )
        db.session.add(
            PublishJob(  # outside the hour
                job_id=str(uuid.uuid4()),
                pubkey="02" + "22" * 32,
                nonce="o" * 20,
                signed_payload="{}",
                signature="AA==",
                status="queued",
                created_at=now - timedelta(hours=2),
            )
        )
    data = charts.chart_data("hour", now)
    assert len(data["t"]) == 60 and data["bucketSeconds"] == 60
    assert sum(data["accepted"]) == 6  # five confirmed and the failed one (created now)
    assert sum(data["sent"]) == 5 and sum(data["confirmed"]) == 5
    p50 = [v for v in data["sentP50"] if v is not None]
    p99 = [v for v in data["sentP99"] if v is not None]
    # the sends fall in one or two minute buckets; the slowest shows as the p99 of its bucket
    assert max(p99) == 100 and min(p50) >= 1
    assert data["failureTotals"] == {"BAD_RECORD": 1}
    day = charts.chart_data("day", now)
    assert len(day["t"]) == 96 and round(sum(day["accepted"]) * 15) == 7  # + the 2-hour-old one
    assert charts.percentile([5, 1, 3], 50) == 3 and charts.percentile([], 99) is None


def test_sample_pool_stores_and_prunes(app) -> None:
    from raregen.ops import charts

    with transaction():
        pool.add_utxo("ef" * 32, 0, 7000, SCRIPT)
        db.session.add(
            PoolSample(
                sampled_at=utcnow() - timedelta(days=3),
                available_count=1,
                available_satoshis=1,
                reserved_count=0,
                dirty_count=0,
            )
        )
    assert charts.sample_pool() == {"available": 1, "dirty": 0, "reserved": 0}
    rows = db.session.scalars(select(PoolSample)).all()
    assert [(r.available_count, r.available_satoshis) for r in rows] == [(1, 7000)]


def test_the_pool_sample_task_stores_a_sample(app) -> None:
    from raregen.publish import tasks

    assert tasks.sample_pool() == {"available": 0, "dirty": 0, "reserved": 0}
    assert db.session.scalar(select(PoolSample.available_count)) == 0


def _sign_in_client(app, email: str) -> object:
    """A test client signed in as ``email`` (a stored session row, as sign-in makes)."""
    with transaction():
        account = accounts.get_or_create(email)
        token = uuid.uuid4().hex
        db.session.add(
            WalletSession(
                id=hashlib.sha256(token.encode()).hexdigest(),
                account_id=account.id,
                created_at=utcnow(),
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
        account_id = account.id
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["account_id"] = account_id
        sess["session_token"] = token
    return client


def test_console_access_and_csrf(app) -> None:
    anonymous = app.test_client()
    assert anonymous.get("/ops").status_code == 403
    assert anonymous.post("/ops/actions/replenish").status_code == 403  # 403 before CSRF
    resp = anonymous.get("/ops/api/charts")
    assert resp.status_code == 403 and resp.json["error"]["code"] == "FORBIDDEN"
    plain = _sign_in_client(app, "plain@example.org")
    assert plain.get("/ops/charts").status_code == 403
    boss = _sign_in_client(app, "boss@example.org")
    with transaction():
        accounts.set_operator("boss@example.org", True)
    assert boss.get("/ops").status_code == 200
    assert boss.get("/ops/api/charts?window=week").json["error"]["code"] == "BAD_WINDOW"
    assert boss.get("/ops/api/charts?window=day").json["window"] == "day"
    assert boss.get("/ops/confirm/nope").status_code == 404
    assert boss.get("/ops/confirm/retry?job_id=x").status_code == 404
    refused = boss.post("/ops/actions/replenish", headers={"Accept": "application/json"})
    assert refused.status_code == 400 and refused.json["error"]["code"] == "CSRF_FAILED"
