"""Server-side sessions (``wallet_sessions``): sign-out ends the session for every copy of the
cookie, other browsers stay signed in, sessions expire, and the cookie is ``Secure`` under
production settings. SQLite and PostgreSQL (the ``app`` fixture)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from raregen.db import db, utcnow
from raregen.wallet.models import Account, WalletSession
from tests.integration.wallet.conftest import WalletClient, expect_error


def _replay(app: Any, cookie: str) -> WalletClient:
    """Another browser holding a copy of ``cookie``."""
    thief = WalletClient(app, ip="192.0.2.50")
    thief.http.set_cookie("session", cookie)
    return thief


def _sessions() -> int:
    count = db.session.scalar(select(func.count()).select_from(WalletSession))
    db.session.rollback()
    return int(count or 0)


def test_a_cookie_copied_before_sign_out_is_refused_after(signed_in, app):
    copy = signed_in.http.get_cookie("session").value
    thief = _replay(app, copy)
    assert thief.get("/wallet/api/me").status_code == 200  # the copy works while signed in
    assert _sessions() == 1

    resp = signed_in.form("/signout", {})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/signin")
    assert _sessions() == 0

    expect_error(thief.get("/wallet/api/me"), 401, "AUTH_REQUIRED")
    thief.token = signed_in.token
    expect_error(thief.post("/wallet/api/challenge"), 401, "AUTH_REQUIRED")
    page = thief.get("/wallet")
    assert page.status_code == 302 and "/signin" in page.headers["Location"]
    expect_error(signed_in.get("/wallet/api/me"), 401, "AUTH_REQUIRED")


def test_signing_out_one_browser_leaves_the_others_signed_in(signed_in, app):
    laptop = WalletClient(app, ip="192.0.2.9")
    assert laptop.sign_in("alice@example.com")["email"] == "alice@example.com"
    assert _sessions() == 2
    assert signed_in.form("/signout", {}).status_code == 303
    assert laptop.get("/wallet/api/me").status_code == 200
    expect_error(signed_in.get("/wallet/api/me"), 401, "AUTH_REQUIRED")


def test_signing_in_again_replaces_the_browsers_session(signed_in, app):
    old = signed_in.http.get_cookie("session").value
    signed_in.sign_in("alice@example.com")
    assert _sessions() == 1
    expect_error(_replay(app, old).get("/wallet/api/me"), 401, "AUTH_REQUIRED")


def test_sessions_expire_after_the_lifetime(signed_in, app, time_machine):
    lifetime = int(app.config["SESSION_LIFETIME_SECONDS"])
    start = utcnow()
    time_machine.move_to(start + timedelta(seconds=lifetime - 60), tick=False)
    assert signed_in.get("/wallet/api/me").status_code == 200
    later = start + timedelta(seconds=lifetime + 1)
    time_machine.move_to(later, tick=False)
    expect_error(signed_in.get("/wallet/api/me"), 401, "AUTH_REQUIRED")
    # the next sign-in of the account deletes its expired rows
    other = WalletClient(app, ip="192.0.2.10")
    other.sign_in("alice@example.com")
    assert _sessions() == 1


def test_a_cookie_without_a_session_token_is_not_signed_in(signed_in, app):
    """A cookie of the old format (the account id alone), validly signed, names no session."""
    account_id = db.session.scalar(select(Account.id))
    db.session.rollback()
    forged = app.test_client()
    with forged.session_transaction() as sess:
        sess["account_id"] = account_id
    expect_error(forged.get("/wallet/api/me"), 401, "AUTH_REQUIRED")


# ---------------------------------------------------------------------------------------
# Secure cookie
# ---------------------------------------------------------------------------------------


def _set_cookie(tmp_path, monkeypatch, env: dict[str, str]) -> str:
    """The Set-Cookie of a page that writes the session, on an app built from ``env``."""
    from raregen import create_app
    from raregen.publish.txbuilder import ServerWallet

    for name in ("RAREGEN_ENV", "RAREGEN_PUBLIC_BASE_URL", "RAREGEN_COOKIE_SECURE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RAREGEN_INSTANCE_PATH", str(tmp_path))
    app = create_app(
        {
            "SECRET_KEY": "cookie-test",
            # what production needs to start (raregen.config.check_startup)
            "SERVER_WIF": ServerWallet.generate("regtest").to_wif(),
            "RECEIPT_WIF": ServerWallet.generate("regtest").to_wif(),
            "MAIL_SERVER": "127.0.0.1",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'c.sqlite'}",
            "RATELIMIT_STORAGE_URI": "memory://",
        }
    )
    resp = app.test_client().get("/signin?next=/wallet/records")  # remembers the next page
    assert resp.status_code == 200
    return str(resp.headers["Set-Cookie"])


@pytest.mark.parametrize(
    ("env", "secure"),
    [
        ({"RAREGEN_PUBLIC_BASE_URL": "https://raregen.example"}, True),  # production default
        ({"RAREGEN_ENV": "production", "RAREGEN_PUBLIC_BASE_URL": "HTTPS://x.example"}, True),
        ({"RAREGEN_PUBLIC_BASE_URL": "http://raregen.example"}, False),
        ({}, False),  # no public address known
        ({"RAREGEN_ENV": "development", "RAREGEN_PUBLIC_BASE_URL": "https://x.example"}, False),
        # the explicit setting wins either way
        ({"RAREGEN_COOKIE_SECURE": "true"}, True),
        ({"RAREGEN_ENV": "development", "RAREGEN_COOKIE_SECURE": "1"}, True),
        ({"RAREGEN_PUBLIC_BASE_URL": "https://x.example", "RAREGEN_COOKIE_SECURE": "false"}, False),
    ],
)
def test_session_cookie_is_secure_under_production_settings(tmp_path, monkeypatch, env, secure):
    cookie = _set_cookie(tmp_path, monkeypatch, env)
    assert cookie.startswith("session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert ("; Secure" in cookie) is secure, cookie
