"""Purge of expired sign-in codes and key challenges (``raregen.wallet.purge``) and its
operator command, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from raregen.db import db, transaction, utcnow
from raregen.wallet import accounts
from raregen.wallet.models import KeyChallenge, OtpChallenge
from raregen.wallet.purge import DEFAULT_GRACE, purge_expired
from tests.integration.wallet.conftest import latest_code


def _rows(now):
    """One account; codes and key challenges that expired at various times before ``now``."""
    ages = {
        "fresh": timedelta(minutes=-5),  # still valid for 5 minutes
        "just-expired": timedelta(minutes=1),
        "inside-grace": DEFAULT_GRACE - timedelta(seconds=1),
        "at-grace": DEFAULT_GRACE,  # kept: only rows expired *longer* than the grace go
        "past-grace": DEFAULT_GRACE + timedelta(seconds=1),
        "old-used": timedelta(days=30),
    }
    with transaction():
        account = accounts.get_or_create("purge@example.com")
        for i, (label, age) in enumerate(ages.items()):
            used = now - age - timedelta(minutes=1) if label == "old-used" else None
            db.session.add(
                OtpChallenge(
                    email=f"{label}@example.com",
                    code_hash="0" * 64,
                    expires_at=now - age,
                    used_at=used,
                    created_at=now - age - timedelta(minutes=10),
                )
            )
            db.session.add(
                KeyChallenge(
                    account_id=account.id,
                    challenge=f"{i:064x}",
                    expires_at=now - age,
                    used_at=used,
                    created_at=now - age - timedelta(minutes=5),
                )
            )


def _left() -> tuple[list[str], int]:
    emails = sorted(db.session.scalars(select(OtpChallenge.email)))
    keys = int(db.session.scalar(select(func.count()).select_from(KeyChallenge)) or 0)
    return [e.split("@")[0] for e in emails], keys


def test_purge_deletes_only_rows_expired_longer_than_the_grace(app):
    now = utcnow().replace(microsecond=0)
    _rows(now)
    assert purge_expired(now) == {"otp_challenges": 2, "key_challenges": 2}
    assert _left() == (["at-grace", "fresh", "inside-grace", "just-expired"], 4)
    # idempotent
    assert purge_expired(now) == {"otp_challenges": 0, "key_challenges": 0}
    # a shorter grace goes further; a zero grace leaves only what is still valid
    assert purge_expired(now, timedelta(hours=1)) == {"otp_challenges": 2, "key_challenges": 2}
    assert purge_expired(now, timedelta(0)) == {"otp_challenges": 1, "key_challenges": 1}
    assert _left() == (["fresh"], 1)


def test_purge_refuses_bad_arguments(app):
    from datetime import UTC, datetime

    with pytest.raises(ValueError):
        purge_expired(utcnow(), timedelta(seconds=-1))
    with pytest.raises(ValueError):
        purge_expired(datetime.now(UTC))


def test_purge_is_one_transaction(app, monkeypatch):
    """A failure on the second table rolls back the first table's deletions."""
    from raregen.wallet import purge

    now = utcnow()
    _rows(now)
    real = purge._deleted
    calls = []

    def failing(statement):
        calls.append(statement)
        if len(calls) == 2:
            raise RuntimeError("database went away")
        return real(statement)

    monkeypatch.setattr(purge, "_deleted", failing)
    with pytest.raises(RuntimeError):
        purge_expired(now)
    assert len(_left()[0]) == 6 and _left()[1] == 6


def test_purged_code_asks_for_a_new_one(wallet, app):
    wallet.request_code("pia@example.com")
    code = latest_code(app, "pia@example.com")
    later = utcnow() + timedelta(days=2)
    assert purge_expired(later) == {"otp_challenges": 1, "key_challenges": 0}
    resp = wallet.enter_code(code, headers={"Accept": "application/json"})
    assert resp.status_code == 401 and resp.json["error"]["code"] == "CODE_EXPIRED"


def test_purge_command(app, time_machine):
    now = utcnow()
    _rows(now)
    time_machine.move_to(now, tick=False)  # the command's clock
    runner = app.test_cli_runner()
    out = runner.invoke(args=["accounts", "purge-expired"])
    assert out.exit_code == 0, out.output
    assert "purged 2 sign-in codes and 2 key challenges expired before" in out.output
    out = runner.invoke(args=["accounts", "purge-expired", "--grace-hours", "0"])
    assert out.exit_code == 0, out.output
    assert "purged 3 sign-in codes and 3 key challenges" in out.output
    out = runner.invoke(args=["accounts", "purge-expired", "--grace-hours", "-1"])
    assert out.exit_code != 0
    assert _left() == (["fresh"], 1)


def test_periodic_task_purges(app, monkeypatch):
    """The cron's ``purge-wallet`` job (``tasks.purge_wallet_challenges``) runs the purge."""
    from raregen.publish import tasks

    now = utcnow().replace(microsecond=0)
    _rows(now)
    # the task reads the same clock as the rows (on a loaded machine it ran seconds later)
    monkeypatch.setattr("raregen.wallet.purge.utcnow", lambda: now)
    tasks.set_app(app)
    purged = tasks.purge_wallet_challenges()
    assert purged == {"otp_challenges": 2, "key_challenges": 2}
    left = _left()[0]
    assert {"fresh", "just-expired", "inside-grace"} <= set(left)
    assert "past-grace" not in left and "old-used" not in left
