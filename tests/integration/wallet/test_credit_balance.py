"""``accounts.credit_balance``, the running sum of the credit ledger: every ledger write
(charge, refund, grant, allowance) moves it in the same transaction, concurrent writers
keep it exact, and ``check_balances`` / ``accounts check-balances`` find and repair drift.
Runs on SQLite and PostgreSQL (the ``app`` fixture)."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from raregen.db import db, transaction, utcnow
from raregen.errors import NoCredits, RareGenError
from raregen.publish.models import AuditLog
from raregen.wallet import accounts, credits
from raregen.wallet.credits import BalanceMismatch
from raregen.wallet.models import Account, CreditEntry


def _new_account(email: str = "bal@example.com") -> int:
    with transaction():
        return accounts.get_or_create(email).id


def _column(account_id: int) -> int:
    db.session.expire_all()
    value = db.session.scalar(select(Account.credit_balance).where(Account.id == account_id))
    assert value is not None
    return int(value)


def _ledger_sum(account_id: int) -> int:
    total = db.session.scalar(
        select(func.coalesce(func.sum(CreditEntry.delta), 0)).where(
            CreditEntry.account_id == account_id
        )
    )
    return int(total or 0)


def _consistent(account_id: int) -> int:
    """Assert column == SUM(delta) (and no mismatch anywhere); the balance."""
    column = _column(account_id)
    assert column == _ledger_sum(account_id) == credits.balance(account_id)
    assert credits.check_balances() == []
    db.session.rollback()  # SQLite: do not keep the write lock between steps
    return column


def _job() -> str:
    return str(uuid.uuid4())


def test_new_account_starts_at_zero(app):
    account_id = _new_account()
    assert _consistent(account_id) == 0
    assert credits.balance(10**9) == 0  # unknown account
    db.session.rollback()


def test_every_ledger_write_moves_the_column(app, monkeypatch):
    monkeypatch.setitem(app.config, "FREE_MONTHLY_CREDITS", 3)
    account_id = _new_account()
    jobs = [_job() for _ in range(3)]

    # first charge of the month: allowance (+3) then the charge (-1)
    with transaction():
        credits.charge(account_id, jobs[0])
    assert _consistent(account_id) == 2
    with transaction():
        credits.charge(account_id, jobs[1])
    assert _consistent(account_id) == 1

    # refund: once per job, only for a job that was charged
    with transaction():
        assert credits.refund(account_id, jobs[1]) is True
    assert _consistent(account_id) == 2
    with transaction():
        assert credits.refund(account_id, jobs[1]) is False
        assert credits.refund(account_id, _job()) is False
    assert _consistent(account_id) == 2

    # grants, positive and negative; the new balance is returned
    with transaction():
        assert credits.grant(account_id, 10, "promo") == 12
    assert _consistent(account_id) == 12
    with transaction():
        assert credits.grant(account_id, -13, "mistake") == -1
    assert _consistent(account_id) == -1
    with transaction(), pytest.raises(NoCredits):
        credits.charge(account_id, jobs[2])
    assert _consistent(account_id) == -1
    with transaction():
        assert credits.grant(account_id, 1) == 0

    # next month: the allowance is added before the charge
    next_month = (utcnow().replace(day=1) + timedelta(days=32)).replace(day=2)
    with transaction():
        assert credits.available(db.session.get(Account, account_id), now=next_month) == 3
        credits.charge(account_id, jobs[2], now=next_month)
    assert _consistent(account_id) == 2
    reasons = [r for r in db.session.scalars(select(CreditEntry.reason)) if "allowance" in r]
    assert reasons == [credits.allowance_reason(utcnow()), credits.allowance_reason(next_month)]
    db.session.rollback()


def test_failed_insert_leaves_the_column(app):
    """A refused ledger row (a job charged twice) rolls back with its column update."""
    account_id = _new_account()
    job = _job()
    with transaction():
        credits.grant(account_id, 5)
        credits.charge(account_id, job, now=datetime(2020, 1, 1))
    before = _consistent(account_id)
    with pytest.raises(IntegrityError), transaction():
        credits.charge(account_id, job, now=datetime(2020, 1, 1))
    assert _consistent(account_id) == before


def test_charges_read_the_column_not_the_ledger(app):
    """The balance is the column: a ledger row written behind the service's back is not
    seen until repaired (and check_balances reports it)."""
    account_id = _new_account()
    with transaction():
        db.session.add(CreditEntry(account_id=account_id, delta=0, reason="allowance:2020-01"))
        db.session.add(CreditEntry(account_id=account_id, delta=2, reason="grant:raw"))
    # the column was not moved: no credit to spend
    with transaction(), pytest.raises(NoCredits):
        credits.charge(account_id, _job(), now=datetime(2020, 1, 15))
    with transaction():
        assert credits.check_balances() == [
            BalanceMismatch(account_id, "bal@example.com", column=0, ledger=2)
        ]
        assert credits.check_balances(account_id) == credits.check_balances()
        assert credits.check_balances(account_id + 1) == []
    with transaction():
        repaired = credits.repair_balances()
    assert repaired == [BalanceMismatch(account_id, "bal@example.com", column=0, ledger=2)]
    assert _consistent(account_id) == 2
    with transaction():
        credits.charge(account_id, _job(), now=datetime(2020, 1, 15))
    assert _consistent(account_id) == 1
    action = db.session.scalar(
        select(AuditLog.action).where(AuditLog.action == "credits:account:balance-repaired")
    )
    assert action is not None
    db.session.rollback()


def test_check_balances_command(app):
    runner = app.test_cli_runner()
    good = _new_account("good@example.com")
    bad = _new_account("bad@example.com")
    with transaction():
        credits.grant(good, 7)
        credits.grant(bad, 3)
    out = runner.invoke(args=["accounts", "check-balances"])
    assert out.exit_code == 0, out.output
    assert "all account balances match" in out.output

    with transaction():  # drift: the column moved without a ledger row
        db.session.execute(
            text("UPDATE accounts SET credit_balance = 10 WHERE id = :i"), {"i": bad}
        )
    out = runner.invoke(args=["accounts", "check-balances"])
    assert out.exit_code == 1
    assert "bad@example.com" in out.output and "good@example.com" not in out.output
    assert "column=10" in out.output and "ledger=3" in out.output and "diff=+7" in out.output
    assert "1 account balance(s) differ" in out.output
    assert _column(bad) == 10  # checking changes nothing
    db.session.rollback()

    out = runner.invoke(args=["accounts", "check-balances", "--repair"])
    assert out.exit_code == 0, out.output
    assert "bad@example.com" in out.output and "repaired" in out.output
    assert _consistent(bad) == 3 and _consistent(good) == 7
    out = runner.invoke(args=["accounts", "check-balances"])
    assert out.exit_code == 0 and "all account balances match" in out.output


def _run_threads(app, count: int, work) -> list[str]:
    barrier = threading.Barrier(count)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                with transaction():
                    work(i)
                result = "ok"
            except RareGenError as err:
                result = err.code
            except Exception as err:  # noqa: BLE001 (reported by the assertion)
                result = repr(err)
            finally:
                db.session.remove()
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


def test_first_charges_of_the_month_race_for_one_credit(app, monkeypatch):
    """8 concurrent first charges of a month with an allowance of 1: the allowance is added
    once and exactly one charge succeeds (row lock on PostgreSQL, BEGIN IMMEDIATE on
    SQLite)."""
    monkeypatch.setitem(app.config, "FREE_MONTHLY_CREDITS", 1)
    account_id = _new_account("race@example.com")
    outcomes = _run_threads(app, 8, lambda i: credits.charge(account_id, _job()))
    assert sorted(outcomes) == ["NO_CREDITS"] * 7 + ["ok"]
    assert _consistent(account_id) == 0
    reasons = list(db.session.scalars(select(CreditEntry.reason).order_by(CreditEntry.id)))
    assert reasons == [credits.allowance_reason(utcnow()), "publish"]
    db.session.rollback()


def test_concurrent_writers_keep_the_column_exact(app):
    """Charges, grants and refunds from 6 threads at once: no update of the column is lost."""
    account_id = _new_account("busy@example.com")
    with transaction():
        credits.grant(account_id, 100)
    refundable = [_job() for _ in range(6)]
    with transaction():
        for job in refundable:
            credits.charge(account_id, job, now=datetime(2020, 1, 1))
    start = _consistent(account_id)  # 100 + allowance(2020-01) - 6

    def work(i: int) -> None:
        for _ in range(4):
            credits.charge(account_id, _job(), now=datetime(2020, 1, 1))
        credits.grant(account_id, 2, f"t{i}")
        assert credits.refund(account_id, refundable[i])

    outcomes = _run_threads(app, 6, work)
    assert outcomes == ["ok"] * 6
    assert _consistent(account_id) == start + 6 * (-4 + 2 + 1)
