"""Plans and the append-only credit ledger: the monthly allowance, publishing through the
wallet (402 NO_CREDITS reaches the browser), refunds once per job, operator commands, and
concurrent publishes on one remaining credit."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import coincurve
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from raregen import signing
from raregen.db import db, transaction, utcnow
from raregen.errors import NoCredits, RareGenError
from raregen.publish import credits as key_credits
from raregen.publish import intake
from raregen.publish.models import PublishJob, RegisteredKey
from raregen.wallet import accounts, credits
from raregen.wallet.models import Account, CreditEntry
from tests.integration.wallet.conftest import (
    WalletClient,
    expect_error,
    publish_body,
    register_keys,
)


def _account(email: str = "alice@example.com") -> Account:
    account = db.session.scalar(select(Account).where(Account.email == email))
    assert account is not None
    return account


def _ledger(account_id: int) -> list[tuple[int, str, str | None]]:
    rows = db.session.scalars(
        select(CreditEntry).where(CreditEntry.account_id == account_id).order_by(CreditEntry.id)
    )
    return [(r.delta, r.reason, r.job_id) for r in rows]


@pytest.fixture
def identity(signed_in) -> coincurve.PrivateKey:
    key = coincurve.PrivateKey()
    assert register_keys(signed_in, {"identity": key}).status_code == 200
    return key


def test_allowance_granted_on_first_publish_of_the_month(signed_in, identity):
    account = _account()
    assert signed_in.get("/wallet/api/me").json["credits"] == 20
    assert _ledger(account.id) == []  # reading the balance writes nothing
    resp = signed_in.post("/wallet/api/publish", publish_body(identity))
    assert resp.status_code == 202, resp.json
    job_id = resp.json["jobId"]
    month = f"allowance:{utcnow():%Y-%m}"
    assert _ledger(account.id) == [(20, month, None), (-1, "publish", job_id)]
    assert signed_in.get("/wallet/api/me").json["credits"] == 19
    signed_in.post("/wallet/api/publish", publish_body(identity))
    assert [r[1] for r in _ledger(account.id)].count(month) == 1


def test_next_month_grants_again(signed_in, identity, time_machine):
    account = _account()
    assert signed_in.post("/wallet/api/publish", publish_body(identity)).status_code == 202
    next_month = (utcnow().replace(day=1) + timedelta(days=32)).replace(day=2)
    time_machine.move_to(next_month, tick=False)
    # a month on, the 14-day session (and its CSRF token) has expired: Alice signs in again
    back = WalletClient(signed_in.app, ip="192.0.2.30")
    back.sign_in("alice@example.com")
    assert back.get("/wallet/api/me").json["credits"] == 19 + 20
    assert back.post("/wallet/api/publish", publish_body(identity)).status_code == 202
    reasons = [r[1] for r in _ledger(account.id)]
    assert f"allowance:{next_month:%Y-%m}" in reasons
    assert credits.balance(account.id) == 38


def test_publish_through_wallet(signed_in, identity):
    body = publish_body(identity, "First work")
    resp = signed_in.post("/wallet/api/publish", body)
    assert resp.status_code == 202
    job_id = resp.json["jobId"]
    assert resp.json == {
        "jobId": job_id,
        "status": "queued",
        "statusUrl": f"/v1/jobs/{job_id}",
        "panelUrl": f"/wallet/jobs/{job_id}/panel",
    }
    again = signed_in.post("/wallet/api/publish", body)  # exact resubmission
    assert again.status_code == 200 and again.json["jobId"] == job_id
    job = db.session.scalar(select(PublishJob).where(PublishJob.job_id == job_id))
    assert job.account_ref == accounts.account_ref(_account().id)
    # errors of the contract pass through unchanged
    broken = dict(body, signature=body["signature"][:-4] + "AAA=")
    assert signed_in.post("/wallet/api/publish", broken).status_code in (400, 401)
    expect_error(signed_in.post("/wallet/api/publish", csrf=False), 400, "CSRF_FAILED")


def test_jobs_list_newest_first_paginated(signed_in, identity):
    ids = []
    for i in range(3):
        ids.append(
            signed_in.post("/wallet/api/publish", publish_body(identity, f"W{i}")).json["jobId"]
        )
    page = signed_in.get("/wallet/api/jobs?perPage=2").json
    assert [j["jobId"] for j in page["jobs"]] == ids[::-1][:2]
    assert page["total"] == 3 and page["hasMore"] is True and page["page"] == 1
    first = page["jobs"][0]
    assert first["status"] == "queued" and first["title"] == "W2" and first["recordType"] == "work"
    assert first["panelUrl"] == f"/wallet/jobs/{ids[2]}/panel"
    assert {"txid", "blockHeight", "createdAt", "errorCode"} <= set(first)
    rest = signed_in.get("/wallet/api/jobs?perPage=2&page=2").json
    assert [j["jobId"] for j in rest["jobs"]] == [ids[0]] and rest["hasMore"] is False
    bob = WalletClient(signed_in.app, ip="10.3.3.3")
    bob.sign_in("bob@example.com")
    assert bob.get("/wallet/api/jobs").json["jobs"] == []


def test_key_must_belong_to_the_account(signed_in, identity):
    stranger = coincurve.PrivateKey()
    resp = signed_in.post("/wallet/api/publish", publish_body(stranger))
    expect_error(resp, 403, "KEY_NOT_REGISTERED")
    bob = WalletClient(signed_in.app, ip="10.3.3.4")
    bob.sign_in("bob@example.com")
    expect_error(bob.post("/wallet/api/publish", publish_body(identity)), 403, "KEY_NOT_REGISTERED")


def test_no_credits_reaches_the_browser(signed_in, identity, app, monkeypatch):
    monkeypatch.setitem(app.config, "FREE_MONTHLY_CREDITS", 1)
    assert signed_in.get("/wallet/api/me").json["credits"] == 1
    assert signed_in.post("/wallet/api/publish", publish_body(identity)).status_code == 202
    err = expect_error(
        signed_in.post("/wallet/api/publish", publish_body(identity)), 402, "NO_CREDITS"
    )
    assert "no publishing credit" in err["message"]
    assert signed_in.get("/wallet/api/me").json["credits"] == 0
    assert db.session.scalar(select(func.count()).select_from(PublishJob)) == 1


def test_refund_once_per_job(signed_in, identity):
    account = _account()
    job_id = signed_in.post("/wallet/api/publish", publish_body(identity)).json["jobId"]
    key_id = db.session.scalar(select(PublishJob.key_id).where(PublishJob.job_id == job_id))
    assert credits.balance(account.id) == 19
    for _ in range(3):
        with transaction():
            key_credits.refund(key_id, job_id)
    assert credits.balance(account.id) == 20
    assert [r for r in _ledger(account.id) if r[1] == "refund"] == [(1, "refund", job_id)]
    # a job that took no ledger credit is never refunded
    with transaction():
        key_credits.refund(key_id, "00000000-0000-4000-8000-000000000000")
    assert credits.balance(account.id) == 20


def test_operator_keys_keep_their_column(app):
    from raregen.publish import keys

    key = coincurve.PrivateKey()
    keys.register_key(key.public_key.format().hex(), credits=1)
    assert intake.accept(signing.make_request(key, {"a": 1})).created
    with pytest.raises(NoCredits):
        intake.accept(signing.make_request(key, {"a": 2}))
    job = db.session.scalar(select(PublishJob))
    with transaction():
        key_credits.refund(job.key_id, job.job_id)
    assert db.session.scalar(select(RegisteredKey.credits)) == 1
    assert db.session.scalar(select(func.count()).select_from(CreditEntry)) == 0


def test_ledger_is_append_only(signed_in, identity):
    signed_in.post("/wallet/api/publish", publish_body(identity))
    with pytest.raises(DBAPIError, match="append-only"), transaction():
        db.session.execute(text("UPDATE credit_ledger SET delta = 100"))


def test_operator_commands(signed_in, app):
    runner = app.test_cli_runner()
    out = runner.invoke(args=["accounts", "list"])
    assert out.exit_code == 0 and "alice@example.com" in out.output and "credits=20" in out.output
    out = runner.invoke(args=["accounts", "plan", "ALICE@example.com", "paid"])
    assert out.exit_code == 0, out.output
    assert signed_in.get("/wallet/api/me").json["plan"] == "paid"
    assert signed_in.get("/wallet/api/me").json["credits"] == 1000
    out = runner.invoke(args=["accounts", "grant", "alice@example.com", "5", "--reason", "promo"])
    assert out.exit_code == 0 and "balance 5" in out.output
    assert signed_in.get("/wallet/api/me").json["credits"] == 1005
    assert ("grant:promo") in [r[1] for r in _ledger(_account().id)]
    out = runner.invoke(args=["accounts", "ledger", "alice@example.com"])
    assert out.exit_code == 0 and "grant:promo" in out.output
    out = runner.invoke(args=["accounts", "grant", "nobody@example.com", "5"])
    assert out.exit_code != 0 and "NOT_FOUND" in out.output
    out = runner.invoke(args=["accounts", "plan", "alice@example.com", "gold"])
    assert out.exit_code != 0


def _set_balance_to_one(account_id: int) -> None:
    """Mark this month's allowance granted (as 0) and leave exactly one credit."""
    with transaction():
        db.session.add(
            CreditEntry(account_id=account_id, delta=0, reason=credits.allowance_reason(utcnow()))
        )
    with transaction():
        assert credits.grant(account_id, 1, "test") == 1
        assert credits.check_balances() == []


def test_one_credit_left_concurrent_publishes_accept_exactly_one(app):
    """Runs on PostgreSQL (row lock) and SQLite (BEGIN IMMEDIATE): 8 threads, one credit."""
    from raregen.publish import account_keys

    with transaction():
        account = accounts.get_or_create("race@example.com")
        account_id = account.id
    ref = accounts.account_ref(account_id)
    key = coincurve.PrivateKey()
    account_keys.register_account_keys(ref, [("identity", key.public_key.format().hex())])
    _set_balance_to_one(account_id)
    bodies = [signing.make_request(key, {"n": i}) for i in range(8)]
    barrier = threading.Barrier(len(bodies))
    outcomes: list[str] = []
    lock = threading.Lock()

    def publish(body: dict) -> None:
        with app.app_context():
            barrier.wait()
            try:
                intake.accept(body)
                result = "accepted"
            except RareGenError as err:
                result = err.code
            finally:
                db.session.remove()
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=publish, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["NO_CREDITS"] * 7 + ["accepted"]
    db.session.expire_all()
    assert credits.balance(account_id) == 0
    assert db.session.scalar(select(func.count()).select_from(PublishJob)) == 1


def test_one_credit_left_concurrent_publishes_postgresql(pg_app):
    """The same race on PostgreSQL through the wallet's own publish path."""
    from raregen.publish import account_keys

    with transaction():
        account_id = accounts.get_or_create("race2@example.com").id
    ref = accounts.account_ref(account_id)
    key = coincurve.PrivateKey()
    account_keys.register_account_keys(ref, [("identity", key.public_key.format().hex())])
    _set_balance_to_one(account_id)
    raws = [json.dumps(signing.make_request(key, {"n": i})).encode() for i in range(12)]
    barrier = threading.Barrier(len(raws))
    outcomes: list[str] = []

    def publish(raw: bytes) -> None:
        with pg_app.test_request_context():
            barrier.wait()
            try:
                account_keys.accept_for_account(ref, raw, "application/json")
                outcomes.append("accepted")
            except RareGenError as err:
                outcomes.append(err.code)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=publish, args=(r,)) for r in raws]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["NO_CREDITS"] * 11 + ["accepted"]
    db.session.expire_all()
    assert credits.balance(account_id) == 0
    ledger = _ledger(account_id)
    assert [r[1] for r in ledger].count("publish") == 1
