"""Wallet events in the audit log, in the transaction of their change: wrong sign-in codes
and lock-outs, the monthly allowance, and the purge command."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from raregen.db import db, transaction, utcnow
from raregen.publish.models import AuditLog
from raregen.wallet import accounts, credits
from raregen.wallet.models import CreditEntry, OtpChallenge
from tests.integration.wallet.conftest import expect_error, latest_code

JSON = {"Accept": "application/json"}


def _entries(prefix: str) -> list[tuple[str, str, str | None, dict]]:
    with transaction():
        rows = db.session.execute(
            select(AuditLog.actor, AuditLog.action, AuditLog.subject, AuditLog.detail)
            .where(AuditLog.action.like(f"{prefix}%"))
            .order_by(AuditLog.seq)
        ).all()
    return [(a, b, s, json.loads(d) if d else {}) for a, b, s, d in rows]


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_wrong_codes_and_the_lock_out_are_audited(wallet, app):
    wallet.request_code("hank@example.com")
    code = latest_code(app, "hank@example.com")
    with transaction():
        challenge = db.session.scalar(select(OtpChallenge.id).order_by(OtpChallenge.id.desc()))
    for _ in range(4):
        expect_error(wallet.enter_code(_wrong(code), headers=JSON), 401, "CODE_WRONG")
    expect_error(wallet.enter_code(_wrong(code), headers=JSON), 401, "TOO_MANY_TRIES")
    expect_error(wallet.enter_code(code, headers=JSON), 401, "TOO_MANY_TRIES")
    entries = _entries("wallet:signin:")
    assert [e[1] for e in entries] == ["wallet:signin:code-wrong"] * 4 + [
        "wallet:signin:locked-out",
        "wallet:signin:code-refused",
    ]
    assert {e[2] for e in entries} == {f"otp-challenge:{challenge}"}
    assert [e[3].get("tries_left") for e in entries[:5]] == [4, 3, 2, 1, 0]
    assert entries[5][3] == {"account": None, "code": "TOO_MANY_TRIES"}
    assert all(e[0].startswith("ip:") for e in entries)
    # never the address or the code
    assert not any("hank" in json.dumps(e) or code in json.dumps(e) for e in entries)


def test_allowance_is_audited_with_its_ledger_row(app):
    with transaction():
        account = accounts.get_or_create("ivy@example.com")
        account_id = account.id
    with pytest.raises(RuntimeError), transaction():
        credits.charge(account_id, "job-rolled-back")
        raise RuntimeError("abort")
    assert _entries("credits:account:allowance") == []
    with transaction():
        assert db.session.scalar(select(func.count()).select_from(CreditEntry)) == 0
    with transaction():
        credits.charge(account_id, "job-1")
    [(actor, _action, subject, detail)] = _entries("credits:account:allowance")
    assert actor == "system" and subject == accounts.account_ref(account_id)
    assert detail["amount"] == credits.monthly_allowance("free")
    assert detail["reason"] == credits.allowance_reason(utcnow())


def test_purge_command_is_audited(app):
    from datetime import timedelta

    with transaction():
        db.session.add(
            OtpChallenge(
                email="old@example.com",
                purpose="signin",
                code_hash="0" * 64,
                expires_at=utcnow() - timedelta(days=3),
                created_at=utcnow() - timedelta(days=3),
            )
        )
    result = app.test_cli_runner().invoke(args=["accounts", "purge-expired"])
    assert result.exit_code == 0, result.output
    [(actor, _action, _subject, detail)] = _entries("wallet:challenges:purged")
    assert actor == "cli" and detail["otp_challenges"] == 1 and detail["key_challenges"] == 0
    # nothing to purge: nothing changed, nothing recorded
    assert app.test_cli_runner().invoke(args=["accounts", "purge-expired"]).exit_code == 0
    assert len(_entries("wallet:challenges:purged")) == 1
