"""HEAD never runs a form's action (issue 9, hole 2).

Flask answers HEAD with the view registered for GET, and Flask-WTF checks no CSRF token on
HEAD (a "safe" method). A view that took every non-GET request for a POST therefore mailed
a code (``/signin``) or signed a session in (``/signin/code``) for a HEAD with a form body
and no token. Each test sends such a HEAD and checks that nothing changed: no mail, no row,
no session, no spent try.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from raregen.db import db
from raregen.wallet import mail
from raregen.wallet.models import OtpChallenge
from tests.integration.wallet.conftest import WalletClient, latest_code


def _state(wallet: WalletClient) -> dict[str, Any]:
    """Everything a HEAD could have changed: rows of every table, the outbox, the session."""
    db.session.remove()
    rows = {
        table.name: db.session.scalar(select(func.count()).select_from(table))
        for table in db.metadata.sorted_tables
    }
    tries = {
        c.id: (c.tries, c.used_at, c.expires_at) for c in db.session.scalars(select(OtpChallenge))
    }
    with wallet.app.test_request_context():
        outbox = len(mail.outbox(limit=10_000))
    cookie = wallet.http.get_cookie("session")
    me = wallet.get("/wallet/api/me").status_code
    return {
        "rows": rows,
        "challenges": tries,
        "outbox": outbox,
        "cookie": cookie.value if cookie else None,
        "me": me,
    }


def _head(wallet: WalletClient, path: str, form: dict[str, str]) -> Any:
    return wallet.http.open(path, method="HEAD", data=form, environ_base={"REMOTE_ADDR": wallet.ip})


def test_head_sign_in_with_a_form_body_mails_no_code(wallet):
    wallet.refresh_token()
    before = _state(wallet)
    for path in ("/signin", "/signup"):
        assert _head(wallet, path, {"email": "vic@example.com"}).status_code == 200
        # even with the session's own token: HEAD is not a POST
        form = {"email": "vic@example.com", "csrf_token": wallet.token or ""}
        assert _head(wallet, path, form).status_code == 200
    after = _state(wallet)
    assert after == before
    assert after["rows"]["otp_challenges"] == 0  # the outbox file is shared: compared above


def test_head_with_the_right_code_signs_nobody_in(wallet, app):
    assert wallet.request_code("wes@example.com").status_code == 303
    code = latest_code(app, "wes@example.com")
    before = _state(wallet)
    assert before["me"] == 401
    resp = _head(wallet, "/signin/code", {"code": code, "csrf_token": wallet.token or ""})
    assert resp.status_code == 200 and "Location" not in resp.headers
    assert _state(wallet) == before  # not signed in, no try spent, code still unused
    # the code still works for the POST that was meant to use it
    assert wallet.enter_code(code).status_code == 303


def test_head_on_every_get_and_post_route_changes_nothing(wallet, app):
    rules = [
        rule
        for rule in app.url_map.iter_rules()
        if {"GET", "POST"} <= (rule.methods or set()) and not rule.arguments
    ]
    paths = sorted({rule.rule for rule in rules})
    assert {"/signin", "/signup", "/signin/code"} <= set(paths), paths
    # a pending code in the session, so that /signin/code would reach its action
    assert wallet.request_code("xan@example.com").status_code == 303
    form = {
        "email": "yara@example.com",
        "code": latest_code(app, "xan@example.com"),
        "csrf_token": wallet.token or "",
    }
    before = _state(wallet)
    for path in paths:
        resp = _head(wallet, path, form)
        assert resp.status_code < 500, (path, resp.status_code)
        assert _state(wallet) == before, path
