"""Email one-time codes over the real pages: sign-up, reuse, expiry, tries, rate limits,
CSRF, session cookie, sign-out, the development outbox and SMTP delivery."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from raregen.db import db, utcnow
from raregen.wallet import signin
from raregen.wallet.models import Account, OtpChallenge
from tests.integration.wallet.conftest import WalletClient, expect_error, free_port, latest_code

JSON = {"Accept": "application/json"}


def test_sign_up_creates_account_and_session(wallet):
    me = wallet.sign_in("  Alice@Example.COM ")
    assert me == {
        "email": "alice@example.com",
        "plan": "free",
        "credits": 20,
        "keys": [],
        "hasBackup": False,
        "backupVersion": None,
    }
    # signing in again is the same account
    other = WalletClient(wallet.app)
    assert other.sign_in("alice@example.com")["email"] == "alice@example.com"
    assert db.session.scalar(select(func.count()).select_from(Account)) == 1
    # only a keyed hash of the code is stored
    code_hash = db.session.scalars(select(OtpChallenge.code_hash)).first()
    assert code_hash and len(code_hash) == 64


def test_pages_state_validity_and_mail_says_it(wallet, app):
    page = wallet.get("/signin").get_data(as_text=True)
    assert "valid for 10 minutes" in page
    resp = wallet.request_code("bob@example.com")
    assert resp.status_code == 303
    code_page = wallet.get("/signin/code").get_data(as_text=True)
    assert "bob@example.com" in code_page and "valid for 10 minutes" in code_page
    outbox = wallet.get("/dev/outbox").get_data(as_text=True)
    assert "Development only" in outbox and "valid for 10 minutes" in outbox
    assert latest_code(app, "bob@example.com") in outbox


def test_bad_email_refused(wallet):
    resp = wallet.request_code("not-an-address")
    assert resp.status_code == 400
    assert "valid email address" in resp.get_data(as_text=True)
    expect_error(wallet.request_code("x@y", headers=JSON), 400, "BAD_EMAIL")


def test_code_is_single_use_even_with_a_replayed_cookie(wallet, app):
    assert wallet.request_code("carol@example.com").status_code == 303
    code = latest_code(app, "carol@example.com")
    before = wallet.http.get_cookie("session").value  # the cookie naming the challenge
    assert wallet.enter_code(code).status_code == 303

    replay = WalletClient(app)
    replay.http.set_cookie("session", before)
    replay.token = wallet.token  # the token of the replayed session
    resp = replay.enter_code(code, headers=JSON)
    expect_error(resp, 401, "CODE_USED")
    page = replay.enter_code(code)
    assert page.status_code == 401 and "already used" in page.get_data(as_text=True)


def test_code_expires(wallet, app, time_machine):
    wallet.request_code("dave@example.com")
    code = latest_code(app, "dave@example.com")
    later = utcnow() + timedelta(seconds=601)
    time_machine.move_to(later, tick=False)
    resp = wallet.enter_code(code)
    assert resp.status_code == 401
    assert "expired" in resp.get_data(as_text=True)
    expect_error(wallet.enter_code(code, headers=JSON), 401, "CODE_EXPIRED")


def test_code_valid_just_before_expiry(wallet, app, time_machine):
    wallet.request_code("erin@example.com")
    code = latest_code(app, "erin@example.com")
    later = utcnow() + timedelta(seconds=590)
    time_machine.move_to(later, tick=False)
    assert wallet.enter_code(code).status_code == 303


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_five_wrong_tries_then_refused_even_with_right_code(wallet, app):
    wallet.request_code("frank@example.com")
    code = latest_code(app, "frank@example.com")
    for left in (4, 3, 2, 1):
        err = expect_error(wallet.enter_code(_wrong(code), headers=JSON), 401, "CODE_WRONG")
        assert f"{left} tr" in err["message"]
    page = wallet.enter_code(_wrong(code))  # the 5th wrong try spends the last one
    assert page.status_code == 401 and "no tries are left" in page.get_data(as_text=True)
    expect_error(wallet.enter_code(code, headers=JSON), 401, "TOO_MANY_TRIES")
    assert wallet.get("/wallet/api/me").status_code == 401
    # a new code works again
    wallet.request_code("frank@example.com")
    assert wallet.enter_code(latest_code(app, "frank@example.com")).status_code == 303


def test_fifth_attempt_may_be_right(wallet, app):
    wallet.request_code("gina@example.com")
    code = latest_code(app, "gina@example.com")
    for _ in range(4):
        wallet.enter_code(_wrong(code))
    assert wallet.enter_code(code).status_code == 303


def _tries(email: str) -> int:
    return int(
        db.session.scalar(
            select(OtpChallenge.tries)
            .where(OtpChallenge.email == email)
            .order_by(OtpChallenge.id.desc())
            .limit(1)
        )
    )


NOT_CODES = ["", "   ", "abcdef", "12345", "1234567", "12a456", "12.456", "\uff11" * 6]


def test_entry_that_cannot_be_a_code_spends_no_try(wallet, app):
    wallet.request_code("gus@example.com")
    code = latest_code(app, "gus@example.com")
    for entry in NOT_CODES:
        err = expect_error(wallet.enter_code(entry, headers=JSON), 400, "BAD_CODE")
        assert err["field"] == "code" and "did not count" in err["message"], err
    page = wallet.enter_code("abc")
    text = page.get_data(as_text=True)
    assert page.status_code == 400
    assert 'data-code="BAD_CODE"' in text and "5 tries left" in text
    assert 'id="code-form"' in text  # the form stays: the same code can still be typed
    assert _tries("gus@example.com") == 0
    # all five tries are still there: four wrong ones, then the right one (spaces allowed)
    for left in (4, 3, 2, 1):
        err = expect_error(wallet.enter_code(_wrong(code), headers=JSON), 401, "CODE_WRONG")
        assert f"{left} tr" in err["message"]
    assert _tries("gus@example.com") == 4
    assert wallet.enter_code(f"{code[:3]} {code[3:]}").status_code == 303


def test_entry_that_cannot_be_a_code_on_a_dead_code_says_why(wallet, app, time_machine):
    wallet.request_code("hal@example.com")
    code = latest_code(app, "hal@example.com")
    for _ in range(5):
        wallet.enter_code(_wrong(code))
    # a new code is needed whatever is typed: say so rather than "not a code"
    expect_error(wallet.enter_code("", headers=JSON), 401, "TOO_MANY_TRIES")
    wallet.request_code("hal@example.com")
    later = utcnow() + timedelta(seconds=601)
    time_machine.move_to(later, tick=False)
    expect_error(wallet.enter_code("x", headers=JSON), 401, "CODE_EXPIRED")


def test_code_attempts_are_rate_limited_per_ip(wallet, app, monkeypatch):
    assert signin.VERIFY_RATE_LIMIT_PER_IP == "100 per hour"
    monkeypatch.setitem(app.config, "OTP_VERIFY_RATE_LIMIT_PER_IP", "3 per minute")
    wallet.request_code("ike@example.com")
    code = latest_code(app, "ike@example.com")
    expect_error(wallet.enter_code("", headers=JSON), 400, "BAD_CODE")
    expect_error(wallet.enter_code("abc", headers=JSON), 400, "BAD_CODE")
    expect_error(wallet.enter_code(_wrong(code), headers=JSON), 401, "CODE_WRONG")
    # malformed and well-formed attempts count alike; refused ones spend no try
    resp = wallet.enter_code("abc", headers=JSON)
    expect_error(resp, 429, "RATE_LIMITED")
    assert 0 < int(resp.headers["Retry-After"]) <= 60
    page = wallet.enter_code(code)
    assert page.status_code == 429 and "Try again in" in page.get_data(as_text=True)
    assert int(page.headers["Retry-After"]) > 0
    assert _tries("ike@example.com") == 1
    # another IP is counted on its own
    other = WalletClient(app, ip="198.51.100.4")
    other.request_code("jo@example.com")
    assert other.enter_code(latest_code(app, "jo@example.com")).status_code == 303


def test_wrong_code_page_says_tries_left(wallet, app):
    wallet.request_code("hank@example.com")
    code = latest_code(app, "hank@example.com")
    page = wallet.enter_code(_wrong(code))
    assert page.status_code == 401
    text = page.get_data(as_text=True)
    assert "Wrong code; 4 tries left." in text and 'data-tries-left="4"' in text


def test_new_code_retires_the_old_one(wallet, app):
    wallet.request_code("ivy@example.com")
    old = latest_code(app, "ivy@example.com")
    old_cookie = wallet.http.get_cookie("session").value
    wallet.request_code("ivy@example.com")
    replay = WalletClient(app)
    replay.http.set_cookie("session", old_cookie)
    replay.token = wallet.token
    expect_error(replay.enter_code(old, headers=JSON), 401, "CODE_EXPIRED")


def test_rate_limit_per_address(wallet):
    for _ in range(5):
        assert wallet.request_code("jack@example.com").status_code == 303
    page = wallet.request_code("jack@example.com")
    assert page.status_code == 429
    assert int(page.headers["Retry-After"]) > 0
    assert "Try again in" in page.get_data(as_text=True)
    err = wallet.request_code("JACK@example.com", headers=JSON)
    expect_error(err, 429, "RATE_LIMITED")
    assert 0 < int(err.headers["Retry-After"]) <= 15 * 60
    # the same address from another IP is still refused; another address is not
    elsewhere = WalletClient(wallet.app, ip="10.0.0.9")
    expect_error(elsewhere.request_code("jack@example.com", headers=JSON), 429, "RATE_LIMITED")
    assert wallet.request_code("kate@example.com").status_code == 303


def test_rate_limit_per_ip(wallet, app):
    for i in range(20):
        assert wallet.request_code(f"user{i}@example.com").status_code == 303
    resp = wallet.request_code("user20@example.com", headers=JSON)
    expect_error(resp, 429, "RATE_LIMITED")
    assert 0 < int(resp.headers["Retry-After"]) <= 3600
    other_ip = WalletClient(app, ip="192.0.2.7")
    assert other_ip.request_code("user20@example.com").status_code == 303


def test_limits_are_configurable(wallet, app, monkeypatch):
    monkeypatch.setitem(app.config, "OTP_RATE_LIMIT_PER_EMAIL", "1 per minute")
    assert wallet.request_code("liz@example.com").status_code == 303
    resp = wallet.request_code("liz@example.com", headers=JSON)
    expect_error(resp, 429, "RATE_LIMITED")
    assert int(resp.headers["Retry-After"]) <= 60


def test_csrf_required_on_forms_and_api(wallet):
    resp = wallet.http.post("/signin", data={"email": "max@example.com"})
    assert resp.status_code == 400 and "expired or was not sent by this site" in resp.get_data(
        as_text=True
    )
    wallet.sign_in("max@example.com")
    expect_error(wallet.post("/wallet/api/challenge", csrf=False), 400, "CSRF_FAILED")
    bad = wallet.post("/wallet/api/challenge", headers={"X-CSRFToken": "forged"}, csrf=False)
    expect_error(bad, 400, "CSRF_FAILED")
    assert wallet.post("/wallet/api/challenge").status_code == 200
    assert wallet.http.post("/signout").status_code == 400
    assert wallet.get("/wallet/api/me").status_code == 200


def test_session_cookie_flags(wallet, app, monkeypatch):
    wallet.request_code("ned@example.com")
    resp = wallet.enter_code(latest_code(app, "ned@example.com"))
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", True)
    secure = WalletClient(app)
    secure.request_code("ned@example.com")
    resp = secure.enter_code(latest_code(app, "ned@example.com"))
    assert "Secure" in resp.headers["Set-Cookie"]


def test_api_needs_a_session_and_sign_out_ends_it(signed_in):
    anonymous = WalletClient(signed_in.app)
    expect_error(anonymous.get("/wallet/api/me"), 401, "AUTH_REQUIRED")
    expect_error(anonymous.post("/wallet/api/challenge"), 401, "AUTH_REQUIRED")
    resp = signed_in.form("/signout", {})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/signin")
    expect_error(signed_in.get("/wallet/api/me"), 401, "AUTH_REQUIRED")


def test_next_path_is_kept_but_never_offsite(wallet, app):
    wallet.get("/signin?next=/wallet/records")
    wallet.request_code("olga@example.com")
    resp = wallet.enter_code(latest_code(app, "olga@example.com"))
    assert resp.headers["Location"].endswith("/wallet/records")
    evil = WalletClient(app)
    evil.get("/signin?next=//evil.example/x")
    evil.request_code("olga@example.com")
    resp = evil.enter_code(latest_code(app, "olga@example.com"))
    assert resp.headers["Location"].endswith("/wallet")


def test_code_page_without_challenge_goes_to_sign_in(wallet):
    resp = wallet.get("/signin/code")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/signin")


def test_dev_outbox_only_in_development(app, tmp_path, monkeypatch):
    from raregen import create_app
    from raregen.publish.txbuilder import ServerWallet

    assert app.test_client().get("/dev/outbox").status_code == 200
    # the same app switched to production answers 404 even though the page was registered
    monkeypatch.setitem(app.config, "ENV_NAME", "production")
    assert app.test_client().get("/dev/outbox").status_code == 404
    monkeypatch.setenv("RAREGEN_INSTANCE_PATH", str(tmp_path))
    prod = create_app(
        {
            "ENV_NAME": "production",
            "SECRET_KEY": "prod-test",
            "MAIL_SERVER": "127.0.0.1",  # production refuses to start without one
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'p.sqlite'}",
            "RATELIMIT_STORAGE_URI": "memory://",
            "SERVER_WIF": app.config["SERVER_WIF"],
            "RECEIPT_WIF": ServerWallet.generate("regtest").to_wif(),
        }
    )
    assert "wallet_dev.outbox" not in prod.view_functions
    resp = prod.test_client().get("/dev/outbox", headers={"Accept": "application/json"})
    assert resp.status_code == 404 and resp.json["error"]["code"] == "NOT_FOUND"
    # and nothing is written to an outbox outside development, even with no mail server
    monkeypatch.setitem(prod.config, "MAIL_SERVER", None)
    with prod.test_request_context():
        from raregen.wallet import mail

        mail.send_code("p@example.com", "123456", 10)
        assert mail.outbox() == []


def test_mail_goes_over_smtp_when_configured(wallet, app, monkeypatch):
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    received: list[str] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope.content.decode("utf-8", "replace"))
            return "250 OK"

    port = free_port()
    controller = aiosmtpd.Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        from raregen.wallet import mail

        monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")
        monkeypatch.setitem(app.config, "MAIL_PORT", port)
        mail.mail.init_app(app)
        assert wallet.request_code("pia@example.com").status_code == 303
    finally:
        controller.stop()
        monkeypatch.undo()
        from raregen.wallet import mail

        mail.mail.init_app(app)
    assert len(received) == 1
    assert "pia@example.com" in received[0] and "valid for 10 minutes" in received[0]


def test_unreachable_mail_server_is_a_clear_503(wallet, app, monkeypatch):
    from raregen.wallet import mail

    monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")
    monkeypatch.setitem(app.config, "MAIL_PORT", free_port())  # nothing listens there
    mail.mail.init_app(app)
    try:
        page = wallet.request_code("quinn@example.com")
        assert page.status_code == 503
        assert "could not send the mail" in page.get_data(as_text=True)
    finally:
        monkeypatch.undo()
        mail.mail.init_app(app)
